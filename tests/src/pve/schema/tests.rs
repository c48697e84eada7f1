//! The validator against the official schema: the provisioner's requests pass, and what
//! Proxmox refuses is refused with Proxmox's texts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::Value;

use super::pattern::Patterns;
use super::{Rejection, Schema, SchemaError, formats, property_string};

const TEMPLATE: &str = "local:vztmpl/proximity-appliance_0.1.0-0123456789ab_amd64.tar.zst";
const UPID: &str = "UPID:pve:0000ABCD:0001E240:6745A1B2:vzcreate:100:root@pam!ci:";

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| match Schema::official() {
        Ok(schema) => schema,
        Err(e) => panic!("the vendored schema loads: {e}"),
    })
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The container the provisioner creates.
fn create_params() -> Vec<(String, String)> {
    pairs(&[
        ("vmid", "100"),
        ("ostemplate", TEMPLATE),
        ("ostype", "unmanaged"),
        ("arch", "amd64"),
        ("unprivileged", "1"),
        ("hostname", "proximity"),
        ("memory", "256"),
        ("swap", "0"),
        ("cores", "1"),
        ("rootfs", "local-lvm:1"),
        ("mp0", "local-lvm:1,mp=/var/lib/proximity,backup=1"),
        ("net0", "name=eth0,bridge=vmbr0,ip=dhcp,firewall=0"),
        ("net1", "name=eth1,bridge=proximity-lan,ip=10.20.0.1/24,firewall=0"),
        ("onboot", "1"),
        ("tags", "proximity"),
        ("description", "Proximity network appliance\nmanaged by `proximity up`; do not edit\n"),
    ])
}

/// `params` = the create call with `changes` applied (an empty value removes the key).
fn create_with(changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params = create_params();
    for (key, value) in changes {
        params.retain(|(k, _)| k != key);
        if !value.is_empty() {
            params.push(((*key).to_owned(), (*value).to_owned()));
        }
    }
    params
}

/// The errors of a request that must be refused with 400.
fn invalid(method: &str, path: &str, params: &[(String, String)]) -> BTreeMap<String, String> {
    match schema().check(method, path, params) {
        Err(Rejection::Invalid { errors }) => errors,
        other => panic!("{method} {path} {params:?}: expected a 400, got {other:?}"),
    }
}

fn create_errors(changes: &[(&str, &str)]) -> BTreeMap<String, String> {
    invalid("POST", "/nodes/pve/lxc", &create_with(changes))
}

fn error<'e>(errors: &'e BTreeMap<String, String>, key: &str) -> &'e str {
    match errors.get(key) {
        Some(e) => e,
        None => panic!("no error for {key}: {errors:?}"),
    }
}

fn passes(method: &str, path: &str, params: &[(&str, &str)]) -> super::Checked {
    match schema().check(method, path, &pairs(params)) {
        Ok(checked) => checked,
        Err(e) => panic!("{method} {path} {params:?}: {e}"),
    }
}

#[test]
fn the_create_call_passes() {
    let checked = match schema().check("POST", "/nodes/pve/lxc", &create_params()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(checked.template, "/nodes/{node}/lxc");
    assert_eq!(checked.path_params.get("node").map(String::as_str), Some("pve"));
    assert_eq!(checked.params.get("ostemplate").map(String::as_str), Some(TEMPLATE));
    assert_eq!(checked.params.len(), create_params().len());
    assert!(!checked.params.contains_key("node"));
}

#[test]
fn an_unknown_parameter_is_refused() {
    let errors = create_errors(&[("colour", "blue")]);
    assert_eq!(
        errors,
        BTreeMap::from([(
            "colour".to_owned(),
            "property is not defined in schema and the schema does not allow additional properties"
                .to_owned()
        )])
    );
}

#[test]
fn a_bridge_with_a_space_is_refused() {
    let errors = create_errors(&[("net0", "name=eth0,bridge=bad bridge,ip=dhcp")]);
    assert_eq!(
        error(&errors, "net0"),
        "invalid format - format error\nnet0.bridge: value does not match the regex pattern\n"
    );
    assert_eq!(errors.len(), 1);
}

#[test]
fn an_unknown_net_key_is_refused() {
    let errors = create_errors(&[("net0", "name=eth0,foo=1")]);
    assert_eq!(
        error(&errors, "net0"),
        "invalid format - invalid key in comma-separated list property: foo\n"
    );
}

#[test]
fn a_bad_mac_is_refused() {
    let errors = create_errors(&[("net0", "name=eth0,bridge=vmbr0,hwaddr=zz")]);
    assert_eq!(
        error(&errors, "net0"),
        "invalid format - format error\nnet0.hwaddr: invalid format - value does not look like a valid unicast MAC address\n\n"
    );
    // A multicast MAC (I/G bit set) is refused too; a unicast one passes.
    let errors = create_errors(&[("net0", "name=eth0,hwaddr=01:00:5E:00:00:01")]);
    assert!(error(&errors, "net0").contains("net0.hwaddr"));
    let ok = create_with(&[("net0", "name=eth0,hwaddr=BC:24:11:93:8B:9B,bridge=vmbr0")]);
    assert!(schema().check("POST", "/nodes/pve/lxc", &ok).is_ok());
}

#[test]
fn a_net_without_name_is_refused() {
    let errors = create_errors(&[("net0", "bridge=vmbr0,ip=dhcp")]);
    assert_eq!(
        error(&errors, "net0"),
        "invalid format - format error\nnet0.name: property is missing and it is not optional\n"
    );
}

#[test]
fn net_keys_are_checked_by_their_schema() {
    let errors = create_errors(&[("net0", "name=eth0,ip=10.20.0.1")]);
    assert!(
        error(&errors, "net0").contains(
            "net0.ip: invalid format - value does not look like a valid ipv4 network configuration"
        ),
        "{errors:?}"
    );
    for ip in ["dhcp", "manual", "10.20.0.1/24", "192.168.1.5/8"] {
        let ok = create_with(&[("net0", &format!("name=eth0,bridge=vmbr0,ip={ip}"))]);
        assert!(schema().check("POST", "/nodes/pve/lxc", &ok).is_ok(), "{ip}");
    }
    for ip in ["10.20.0.1/7", "10.20.0.1/33", "256.1.1.1/24", "auto", "10.020.0.1/24"] {
        let bad = create_with(&[("net0", &format!("name=eth0,ip={ip}"))]);
        assert!(schema().check("POST", "/nodes/pve/lxc", &bad).is_err(), "{ip}");
    }
    let ok = create_with(&[("net0", "name=eth0,ip6=auto,gw=10.0.0.1,mtu=1500,tag=5,rate=1.5")]);
    assert!(schema().check("POST", "/nodes/pve/lxc", &ok).is_ok());
    let errors = create_errors(&[("net0", "name=eth0,mtu=63")]);
    assert!(error(&errors, "net0").contains("net0.mtu: value must have a minimum value of 64"));
}

#[test]
fn property_string_booleans_are_read_like_pve() {
    let ok = create_with(&[("net0", "name=eth0,firewall=yes,link_down=OFF")]);
    assert!(schema().check("POST", "/nodes/pve/lxc", &ok).is_ok());
    let errors = create_errors(&[("net0", "name=eth0,firewall=maybe")]);
    assert_eq!(
        error(&errors, "net0"),
        "invalid format - format error\nnet0.firewall: type check ('boolean') failed - got 'maybe'\n"
    );
}

#[test]
fn property_string_syntax_errors() {
    let cases = [
        ("name=eth0,name=eth1", "duplicate key in comma-separated list property: name"),
        ("name=eth0,bridge=", "missing key in comma-separated list property"),
        ("eth0", "value without key, but schema does not define a default key"),
    ];
    for (value, message) in cases {
        let errors = create_errors(&[("net0", value)]);
        assert_eq!(error(&errors, "net0"), format!("invalid format - {message}\n"), "{value}");
    }
    let errors = create_errors(&[("rootfs", "local-lvm:1,local-lvm:2")]);
    assert_eq!(
        error(&errors, "rootfs"),
        "invalid format - duplicate key in comma-separated list property: volume\n"
    );
    let errors = create_errors(&[("rootfs", "volume=local-lvm:1,local-lvm:2")]);
    assert!(error(&errors, "rootfs").contains("duplicate key"));
}

#[test]
fn mount_points() {
    let ok = create_with(&[
        ("rootfs", "volume=local-lvm:8,size=8G,acl=1,mountoptions=noatime;nodev"),
        ("mp255", "/srv/data,mp=/data,ro=1"),
        ("mp7", "local:100/vm-100-disk-1.raw,mp=/x"),
    ]);
    if let Err(e) = schema().check("POST", "/nodes/pve/lxc", &ok) {
        panic!("{e}");
    }
    let errors = create_errors(&[("mp0", "local-lvm:1,backup=1")]);
    assert_eq!(
        error(&errors, "mp0"),
        "invalid format - format error\nmp0.mp: property is missing and it is not optional\n"
    );
    let errors = create_errors(&[("mp0", "local-lvm:1,mp=/var/lib/../etc")]);
    assert!(error(&errors, "mp0").contains("contains illegal character sequences"));
    let errors = create_errors(&[("rootfs", "local-lvm:1,size=abc")]);
    assert!(
        error(&errors, "rootfs")
            .contains("rootfs.size: invalid format - value does not look like a valid disk size: abc")
    );
    let errors = create_errors(&[("rootfs", "local-lvm:1,mountoptions=noatime;sync")]);
    assert!(error(&errors, "rootfs").contains("rootfs.mountoptions: value does not match"));
}

#[test]
fn indexed_parameters_have_pve_limits() {
    for key in ["net31", "mp255", "unused255", "dev255"] {
        let value = match key {
            "net31" => "name=eth9",
            "mp255" => "local-lvm:1,mp=/m",
            "unused255" => "local-lvm:vm-100-disk-9",
            _ => "/dev/net/tun",
        };
        let ok = create_with(&[(key, value)]);
        if let Err(e) = schema().check("POST", "/nodes/pve/lxc", &ok) {
            panic!("{key}: {e}");
        }
    }
    for key in ["net32", "net01", "mp256", "unused256", "dev256", "net", "netx1", "net[n]"] {
        let errors = create_errors(&[(key, "name=eth0")]);
        assert_eq!(
            error(&errors, key),
            "property is not defined in schema and the schema does not allow additional properties",
            "{key}"
        );
    }
    let errors = create_errors(&[("dev0", "/etc/passwd")]);
    assert!(error(&errors, "dev0").contains("is not a valid device path"));
}

#[test]
fn vmid_below_100_is_refused() {
    let errors = create_errors(&[("vmid", "99")]);
    assert_eq!(error(&errors, "vmid"), "invalid format - value does not look like a valid VM ID\n");
    let errors = create_errors(&[("vmid", "1000000000")]);
    assert!(error(&errors, "vmid").contains("valid VM ID"));
    let errors = create_errors(&[("vmid", "abc")]);
    assert_eq!(error(&errors, "vmid"), "type check ('integer') failed - got 'abc'");
    let errors = invalid("GET", "/nodes/pve/lxc/99/config", &[]);
    assert!(error(&errors, "vmid").contains("valid VM ID"), "path parameters are checked");
}

#[test]
fn a_missing_ostemplate_is_refused() {
    let errors = create_errors(&[("ostemplate", "")]);
    assert_eq!(
        errors,
        BTreeMap::from([("ostemplate".to_owned(), "property is missing and it is not optional".to_owned())])
    );
    let errors = invalid("POST", "/nodes/pve/lxc", &[]);
    assert!(errors.contains_key("vmid") && errors.contains_key("ostemplate"));
}

#[test]
fn types_and_bounds() {
    let errors = create_errors(&[("memory", "abc")]);
    assert_eq!(error(&errors, "memory"), "type check ('integer') failed - got 'abc'");
    let errors = create_errors(&[("memory", "8")]);
    assert_eq!(error(&errors, "memory"), "value must have a minimum value of 16");
    let errors = create_errors(&[("cores", "9000")]);
    assert_eq!(error(&errors, "cores"), "value must have a maximum value of 8192");
    let errors = create_errors(&[("memory", "256.5")]);
    assert!(error(&errors, "memory").starts_with("type check ('integer')"));
    let errors = create_errors(&[("unprivileged", "maybe")]);
    assert_eq!(error(&errors, "unprivileged"), "type check ('boolean') failed - got 'maybe'");
    // Proxmox itself refuses `true` for a top-level boolean: only 1 and 0.
    let errors = create_errors(&[("onboot", "true")]);
    assert_eq!(error(&errors, "onboot"), "type check ('boolean') failed - got 'true'");
    let errors = create_errors(&[("arch", "sparc")]);
    assert_eq!(
        error(&errors, "arch"),
        "value 'sparc' does not have a value in the enumeration 'amd64, i386, arm64, armhf, riscv32, riscv64'"
    );
    let errors = create_errors(&[("description", &"x".repeat(8193))]);
    assert_eq!(error(&errors, "description"), "value may only be 8192 characters long");
    let errors = create_errors(&[("hostname", "bad_host")]);
    assert_eq!(error(&errors, "hostname"), "invalid format - value does not look like a valid DNS name\n");
}

#[test]
fn repeated_keys_are_joined_like_pve() {
    let mut params = create_params();
    params.push(("memory".to_owned(), "512".to_owned()));
    let errors = invalid("POST", "/nodes/pve/lxc", &params);
    assert_eq!(error(&errors, "memory"), "type check ('integer') failed - got '256\x00512'");
    // A list format splits on the NUL.
    let checked = passes("PUT", "/nodes/pve/lxc/100/config", &[("delete", "mp1"), ("delete", "net2")]);
    assert_eq!(checked.params.get("delete").map(String::as_str), Some("mp1\0net2"));
}

#[test]
fn tags() {
    passes("PUT", "/nodes/pve/lxc/100/config", &[("tags", "proximity;lab,ci-1 x.y")]);
    let errors = invalid("PUT", "/nodes/pve/lxc/100/config", &pairs(&[("tags", "proximity,bad!tag")]));
    assert_eq!(error(&errors, "tags"), "invalid format - invalid characters in tag\n");
}

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

#[test]
fn returns_and_parameters_are_exposed() {
    let returns = schema().returns("GET", "/version");
    assert!(returns.and_then(|r| r.get("properties")).is_some_and(|p| p.get("release").is_some()));
    assert!(schema().returns("GET", "/nope").is_none());
    let net1 = schema().parameter("POST", "/nodes/{node}/lxc", "net1");
    let format = net1.and_then(|n| n.get("format")).and_then(Value::as_object);
    let Some(format) = format else { panic!("net[n] has a property-string format") };
    let parsed = property_string::parse(format, "name=eth1,bridge=proximity-lan,firewall=no");
    assert_eq!(
        parsed,
        Ok(BTreeMap::from([
            ("bridge".to_owned(), "proximity-lan".to_owned()),
            ("firewall".to_owned(), "0".to_owned()),
            ("name".to_owned(), "eth1".to_owned()),
        ]))
    );
    assert!(schema().parameter("POST", "/nodes/{node}/lxc", "net32").is_none());
    assert!(schema().method_count() > 600);
}

#[test]
fn loading_errors_are_typed() {
    let missing = Schema::load(std::path::Path::new("/nonexistent/pve-api-schema.json"));
    assert!(matches!(missing, Err(SchemaError::Read { .. })));
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let path = dir.path().join("bad.json");
    if let Err(e) = std::fs::write(&path, "[{") {
        panic!("{e}");
    }
    assert!(matches!(Schema::load(&path), Err(SchemaError::Json { .. })));
    if let Err(e) = std::fs::write(&path, r#"{"path": "/"}"#) {
        panic!("{e}");
    }
    assert!(matches!(Schema::load(&path), Err(SchemaError::Shape(_))));
}

/// Every parameter schema of the official schema, property-string keys and array items too.
fn all_parameter_schemas() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(super::OFFICIAL);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let json: Value = match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(e) => panic!("{e}"),
    };
    fn nodes(node: &Value, out: &mut Vec<Value>) {
        for n in node.as_array().into_iter().flatten() {
            for info in n.get("info").and_then(Value::as_object).into_iter().flat_map(|i| i.values()) {
                let props = info.pointer("/parameters/properties").and_then(Value::as_object);
                for p in props.into_iter().flat_map(|p| p.values()) {
                    params(p, out);
                }
            }
            if let Some(children) = n.get("children") {
                nodes(children, out);
            }
        }
    }
    fn params(p: &Value, out: &mut Vec<Value>) {
        out.push(p.clone());
        if let Some(format) = p.get("format").and_then(Value::as_object) {
            format.values().for_each(|k| params(k, out));
        }
        if let Some(items) = p.get("items") {
            params(items, out);
        }
        for alt in p.get("oneOf").and_then(Value::as_array).into_iter().flatten() {
            params(alt, out);
        }
    }
    let mut out = Vec::new();
    nodes(&json, &mut out);
    out
}

#[test]
fn every_pattern_of_the_schema_compiles() {
    let patterns = Patterns::default();
    let mut seen = BTreeSet::new();
    for p in all_parameter_schemas() {
        if let Some(pattern) = p.get("pattern").and_then(Value::as_str) {
            if seen.insert(pattern.to_owned()) {
                if let Err(e) = patterns.full_match(pattern, "") {
                    panic!("{e}");
                }
            }
        }
    }
    assert!(seen.len() > 50, "{} patterns", seen.len());
}

#[test]
fn every_named_format_is_known() {
    let mut unknown = BTreeSet::new();
    for p in all_parameter_schemas() {
        if let Some(name) = p.get("format").and_then(Value::as_str) {
            let base = ["-list", "-opt"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            if !formats::CHECKED.contains(&base) && !formats::UNCHECKED.contains(&base) {
                unknown.insert(name.to_owned());
            }
        }
    }
    assert!(unknown.is_empty(), "formats neither checked nor listed: {unknown:?}");
    for name in formats::CHECKED {
        assert!(!formats::UNCHECKED.contains(name), "{name} is in both lists");
    }
    assert!(formats::is_checked("pve-tag-list"));
    assert!(!formats::is_checked("pve-qm-ide"));
}
