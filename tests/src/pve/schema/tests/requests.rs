//! The provisioner's other calls (network, storage, tasks, container lifecycle) and the
//! answers to what Proxmox refuses (400 bodies, 501 for unknown paths).

use std::collections::BTreeMap;

use super::*;

#[test]
fn unknown_paths_and_methods_are_501() {
    let rejection = match schema().check("GET", "/nodes/pve/nope", &[]) {
        Err(r) => r,
        Ok(c) => panic!("{c:?}"),
    };
    assert_eq!(rejection.status(), 501);
    assert_eq!(rejection.message(), "Method 'GET /nodes/pve/nope' not implemented");
    assert_eq!(rejection.body(), serde_json::json!({ "data": null }));
    for (method, path) in [("DELETE", "/version"), ("PATCH", "/nodes"), ("GET", "/")] {
        let r = schema().check(method, path, &[]);
        assert!(matches!(r, Err(Rejection::NotImplemented { .. })), "{method} {path}: {r:?}");
    }
}

#[test]
fn a_400_has_proxmox_body() {
    let rejection = match schema().check("POST", "/nodes/pve/lxc", &create_with(&[("vmid", "")])) {
        Err(r) => r,
        Ok(c) => panic!("{c:?}"),
    };
    assert_eq!(rejection.status(), 400);
    assert_eq!(rejection.message(), "Parameter verification failed.");
    assert_eq!(
        rejection.body(),
        serde_json::json!({
            "data": null,
            "errors": { "vmid": "property is missing and it is not optional" }
        })
    );
    assert_eq!(
        rejection.to_string(),
        "400 Parameter verification failed.\nvmid: property is missing and it is not optional"
    );
}

#[test]
fn task_paths_take_a_upid() {
    let status = format!("/nodes/pve/tasks/{UPID}/status");
    let checked = passes("GET", &status, &[]);
    assert_eq!(checked.template, "/nodes/{node}/tasks/{upid}/status");
    assert_eq!(checked.path_params.get("upid").map(String::as_str), Some(UPID));
    let encoded = format!("/nodes/pve/tasks/{}/log", UPID.replace(':', "%3A").replace('!', "%21"));
    let checked = passes("GET", &encoded, &[("start", "0"), ("limit", "500")]);
    assert_eq!(checked.path_params.get("upid").map(String::as_str), Some(UPID));
    let errors = invalid("GET", &encoded, &pairs(&[("limit", "-1")]));
    assert_eq!(error(&errors, "limit"), "value must have a minimum value of 0");
}

#[test]
fn storage_upload() {
    let path = "/nodes/pve/storage/local/upload";
    let params = [
        ("content", "vztmpl"),
        ("filename", "proximity-appliance_0.1.0-0123456789ab_amd64.tar.zst"),
        ("checksum", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        ("checksum-algorithm", "sha256"),
    ];
    let checked = passes("POST", path, &params);
    assert_eq!(checked.path_params.get("storage").map(String::as_str), Some("local"));
    let errors = invalid("POST", path, &pairs(&params[..3]));
    assert_eq!(error(&errors, "checksum-algorithm"), "missing property - 'checksum' requires this property");
    let errors = invalid("POST", path, &pairs(&[("content", "images"), ("filename", "x")]));
    assert_eq!(
        error(&errors, "content"),
        "value 'images' does not have a value in the enumeration 'iso, vztmpl, import'"
    );
    let errors = invalid("POST", path, &pairs(&[("content", "bogus"), ("filename", "x")]));
    assert_eq!(error(&errors, "content"), "invalid format - invalid content type 'bogus'\n");
    let errors = invalid("POST", "/nodes/pve/storage/1local/upload", &pairs(&params));
    assert_eq!(
        error(&errors, "storage"),
        "invalid format - storage ID '1local' contains illegal characters\n"
    );
}

#[test]
fn storage_content() {
    passes("GET", "/nodes/pve/storage", &[]);
    passes("GET", "/nodes/pve/storage/local/content", &[("content", "vztmpl")]);
    let errors = invalid("GET", "/nodes/pve/storage/local/content", &pairs(&[("content", "templates")]));
    assert!(error(&errors, "content").contains("invalid content type"));
    let volume = format!("/nodes/pve/storage/local/content/{}", TEMPLATE.replace('/', "%2F"));
    let checked = passes("DELETE", &volume, &[]);
    assert_eq!(checked.template, "/nodes/{node}/storage/{storage}/content/{volume}");
    assert_eq!(checked.path_params.get("volume").map(String::as_str), Some(TEMPLATE));
    let checked = passes("DELETE", &format!("/nodes/pve/storage/local/content/{TEMPLATE}"), &[]);
    assert_eq!(checked.path_params.get("volume").map(String::as_str), Some(TEMPLATE));
    let r = schema().check("GET", "/nodes/pve/storage/local/status/x", &[]);
    assert!(matches!(r, Err(Rejection::NotImplemented { .. })), "only {{volume}} is greedy: {r:?}");
}

#[test]
fn move_volume() {
    let path = "/nodes/pve/lxc/100/move_volume";
    passes("POST", path, &[("volume", "mp0"), ("storage", "local-lvm"), ("delete", "1")]);
    passes("POST", path, &[("volume", "rootfs"), ("target-vmid", "101"), ("target-volume", "mp3")]);
    let errors = invalid("POST", path, &pairs(&[("volume", "mp300")]));
    assert!(error(&errors, "volume").starts_with("value 'mp300' does not have a value"));
    let errors = invalid("POST", path, &pairs(&[("volume", "mp0"), ("bwlimit", "-1")]));
    assert_eq!(error(&errors, "bwlimit"), "value must have a minimum value of 0");
    let errors = invalid("POST", path, &[]);
    assert_eq!(error(&errors, "volume"), "property is missing and it is not optional");
}

#[test]
fn network_names_follow_pve_iface() {
    let path = "/nodes/pve/network";
    let errors = invalid("POST", path, &pairs(&[("iface", "proximity-lan"), ("type", "bridge")]));
    assert_eq!(
        errors,
        BTreeMap::from([(
            "iface".to_owned(),
            "invalid format - invalid network interface name 'proximity-lan'\n".to_owned()
        )])
    );
    passes("POST", path, &[("iface", "vmbr7"), ("type", "bridge"), ("autostart", "1")]);
    passes(
        "POST",
        path,
        &[("iface", "vmbr7"), ("type", "bridge"), ("cidr", "10.20.0.1/24"), ("bridge_ports", "")],
    );
    let errors = invalid("POST", path, &pairs(&[("iface", "vmbr7")]));
    assert_eq!(error(&errors, "type"), "property is missing and it is not optional");
    let errors =
        invalid("POST", path, &pairs(&[("iface", "vmbr7"), ("type", "bridge"), ("address", "10.0.0.1")]));
    assert_eq!(error(&errors, "netmask"), "missing property - 'address' requires this property");
    let errors = invalid("POST", path, &pairs(&[("iface", "v"), ("type", "bridge")]));
    assert!(error(&errors, "iface").contains("invalid network interface name"));
    passes("PUT", path, &[]);
    passes("GET", path, &[("type", "any_bridge")]);
    passes("GET", "/nodes/pve/network/vmbr7", &[]);
    passes("DELETE", "/nodes/pve/network/vmbr7", &[]);
    let errors = invalid("DELETE", "/nodes/pve/network/proximity-lan", &[]);
    assert!(error(&errors, "iface").contains("'proximity-lan'"));
}

#[test]
fn the_rest_of_the_provisioner_calls_pass() {
    passes("GET", "/version", &[]);
    passes("GET", "/cluster/nextid", &[]);
    passes("GET", "/cluster/nextid", &[("vmid", "100")]);
    passes("GET", "/nodes", &[]);
    passes("GET", "/nodes/pve/lxc", &[]);
    passes("GET", "/nodes/pve/lxc/100/config", &[]);
    passes("PUT", "/nodes/pve/lxc/100/config", &[("onboot", "1"), ("description", "a\nb")]);
    passes(
        "DELETE",
        "/nodes/pve/lxc/100",
        &[("purge", "1"), ("destroy-unreferenced-disks", "1"), ("force", "1")],
    );
    passes("GET", "/nodes/pve/lxc/100/status/current", &[]);
    passes("POST", "/nodes/pve/lxc/100/status/start", &[]);
    passes("POST", "/nodes/pve/lxc/100/status/stop", &[]);
    passes("POST", "/nodes/pve/lxc/100/status/shutdown", &[("timeout", "30")]);
    passes("GET", "/nodes/pve/lxc/100/interfaces", &[]);
    let errors = invalid("GET", "/nodes/bad_node/lxc", &[]);
    assert_eq!(error(&errors, "node"), "invalid format - value does not look like a valid node name\n");
    let errors = invalid("DELETE", "/nodes/pve/lxc/100", &pairs(&[("purge", "yes please")]));
    assert!(error(&errors, "purge").starts_with("type check ('boolean')"));
}
