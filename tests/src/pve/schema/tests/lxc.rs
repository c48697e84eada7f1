//! `POST /nodes/{node}/lxc` (the container the provisioner creates) and `PUT .../config`:
//! parameters, types, bounds, property strings (`net[n]`, `rootfs`, `mp[n]`), indexed names.

use std::collections::BTreeMap;

use super::*;

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
fn the_upgrade_calls_pass() {
    // An upgrade creates CT 100 anew without the state volume, and a staging container for it.
    for params in [owned(spec().create_params(false)), owned(spec().staging_params(101))] {
        if let Err(e) = schema().check("POST", "/nodes/pve/lxc", &params) {
            panic!("{e}: {params:?}");
        }
    }
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
