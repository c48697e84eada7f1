//! Tests of the whole-file validation: defaults, the shipped example, and problems by field path.

use super::*;
use crate::{EXAMPLE_TOML, from_toml_str};

#[test]
fn empty_file_is_the_design_default() {
    let c = from_toml_str("").expect("defaults are valid");
    assert_eq!(c.lan.interface, "eth1");
    assert_eq!(c.lan.address.to_string(), "10.20.0.1/24");
    assert_eq!(c.dhcp.range.to_string(), "10.20.0.100-10.20.0.250");
    assert_eq!(c.dhcp.reserved.to_string(), "10.20.0.2-10.20.0.99");
    assert_eq!(c.dhcp.lease_time, Duration::from_secs(12 * 3600));
    assert_eq!(c.dns.domain, "prox.local");
    let addr = |s: &str| s.parse::<SocketAddr>().expect("addr");
    assert!(c.proxy.enabled);
    assert_eq!(c.proxy.http_listen, [addr("0.0.0.0:80")]);
    assert_eq!(c.proxy.https_listen, [addr("0.0.0.0:443")]);
    assert_eq!(c.proxy.max_connections, 4096);
    assert_eq!(c.proxy.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.proxy.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.proxy.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.proxy.response_timeout, Duration::from_secs(60));
    assert_eq!(c.proxy.max_header_bytes, 65536);
    assert!(c.admin.enabled);
    assert_eq!(c.admin.listen, [addr("0.0.0.0:9090")]);
    assert_eq!(c.admin.token_file, PathBuf::from("/var/lib/proximity/admin.token"));
    assert!(c.admin.tls);
}

#[test]
fn example_file_loads_and_matches_defaults_except_its_reservation() {
    let c = from_toml_str(EXAMPLE_TOML).expect("the shipped example is valid");
    let d = from_toml_str("").expect("defaults are valid");
    assert_eq!(c.lan, d.lan);
    assert_eq!(c.dns, d.dns);
    assert_eq!(c.proxy, d.proxy);
    assert_eq!(c.admin, d.admin);
    assert_eq!(c.state, d.state);
    assert_eq!(c.dhcp.range, d.dhcp.range);
    assert_eq!(c.dhcp.lease_time, d.dhcp.lease_time);
    assert_eq!(c.dhcp.reservations.len(), 1);
}

#[test]
fn defaults_round_trip_through_toml() {
    let text = RawConfig::default().to_toml().expect("serialises");
    assert_eq!(from_toml_str(&text), from_toml_str(""));
}

#[test]
fn unknown_keys_are_errors() {
    let e = from_toml_str("[dhcp]\nrange_typo = \"x\"\n").expect_err("unknown key");
    assert!(e.to_string().contains("range_typo"), "{e}");
    assert!(from_toml_str("[nonsense]\n").is_err());
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let text = r#"
        [lan]
        interface = "a/b"
        address = "10.20.0.1/24"
        [dhcp]
        range = "10.20.1.5-10.20.0.250"
        reserved = "10.20.0.1-10.20.0.120"
        lease_time = "soon"
        offer_hold = "1h"
        [[dhcp.reservations]]
        mac = "52:54:00:00:00:01"
        ip = "10.20.0.150"
        name = "Web_1"
        [[dhcp.reservations]]
        mac = "52:54:00:00:00:01"
        ip = "10.20.0.10"
        [[dhcp.reservations]]
        mac = "nope"
        ip = "10.20.0.10"
        [dns]
        domain = "bad..domain"
        [proxy]
        max_connections = 0
        [admin]
        listen = ["0.0.0.0:443"]
        token_file = "admin.token"
    "#;
    let e = from_toml_str(text).expect_err("invalid");
    let got: Vec<String> = e.iter().map(ToString::to_string).collect();
    let expect = [
        "lan.interface: ",
        "dhcp.range: range 10.20.1.5-10.20.0.250 is empty",
        "dhcp.reserved: 10.20.0.1-10.20.0.120 includes the gateway 10.20.0.1",
        "dhcp.lease_time: \"soon\" is not a duration",
        "dhcp.offer_hold: \"1h\" must be between",
        "dhcp.reservations[0].name: \"web_1\" is not a valid host name",
        "dhcp.reservations[1].mac: 52:54:00:00:00:01 is already reserved by dhcp.reservations[0]",
        "dhcp.reservations[2].mac: \"nope\" is not a MAC address",
        "dhcp.reservations[2].ip: 10.20.0.10 is already reserved by dhcp.reservations[1]",
        "dns.domain: ",
        "proxy.max_connections: 0 must be between",
        "admin.listen[0]: 0.0.0.0:443 is also in proxy.https_listen[0]",
        "admin.token_file: \"admin.token\" is relative",
    ];
    for want in expect {
        assert!(got.iter().any(|g| g.starts_with(want)), "missing {want:?} in {got:#?}");
    }
}

#[test]
fn range_checks_against_the_lan() {
    let e = from_toml_str("[dhcp]\nrange = \"10.20.0.200-10.20.1.5\"\n").expect_err("outside");
    assert!(e.to_string().contains("dhcp.range: 10.20.1.5 is outside lan.address 10.20.0.1/24"), "{e}");
    let e = from_toml_str("[dhcp]\nrange = \"10.20.0.50-10.20.0.150\"\n").expect_err("overlap");
    assert!(e.to_string().contains("overlaps dhcp.reserved"), "{e}");
    let e = from_toml_str("[dhcp]\nrange = \"10.20.0.100-10.20.0.255\"\n").expect_err("broadcast");
    assert!(e.to_string().contains("broadcast"), "{e}");
    let e = from_toml_str("[[dhcp.reservations]]\nmac = \"52:54:00:00:00:01\"\nip = \"10.20.0.120\"\n")
        .expect_err("reservation in the pool");
    assert!(e.to_string().contains("dhcp.reservations[0].ip: 10.20.0.120 is outside dhcp.reserved"), "{e}");
}

#[test]
fn the_name_server_label_is_kept_for_the_appliance() {
    let e = from_toml_str(
        "[[dhcp.reservations]]\nmac = \"52:54:00:00:00:01\"\nip = \"10.20.0.10\"\nname = \"NS\"\n",
    )
    .expect_err("ns is reserved");
    assert!(
        e.to_string().contains("dhcp.reservations[0].name: \"ns\" is the appliance's own name server"),
        "{e}"
    );
}

#[test]
fn dns_settings_are_checked() {
    let c = from_toml_str("[dns]\nupstreams = [\"192.0.2.53\", \"192.0.2.54:5353\"]\n").expect("valid");
    let ups: Vec<String> = c.dns.upstreams.iter().map(ToString::to_string).collect();
    assert_eq!(ups, ["192.0.2.53:53", "192.0.2.54:5353"]);
    assert_eq!(c.dns.listen, vec!["0.0.0.0:53".parse::<SocketAddr>().expect("addr")]);
    let e = from_toml_str("[dns]\nupstreams = [\"dns.google\"]\nlisten = [\"53\"]\nttl = \"2d\"\n")
        .expect_err("invalid");
    let text = e.to_string();
    for want in ["dns.upstreams[0]: \"dns.google\"", "dns.listen[0]: \"53\"", "dns.ttl: \"2d\" is longer"] {
        assert!(text.contains(want), "missing {want:?} in {text}");
    }
}

#[test]
fn lan_address_must_leave_room() {
    for bad in ["10.20.0.0/24", "10.20.0.1/31", "10.20.0.1", "ten"] {
        let text = format!("[lan]\naddress = \"{bad}\"\n");
        let e = from_toml_str(&text).expect_err(bad);
        assert!(e.to_string().contains("lan.address"), "{e}");
    }
}

#[test]
fn the_token_hash_is_64_hex_digits_and_excludes_a_token_file() {
    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let c = from_toml_str(&format!("[admin]\ntoken_sha256 = \"{hash}\"\n")).expect("valid");
    let digest = c.admin.token_sha256.expect("given");
    assert_eq!(digest[0], 0x9f);
    assert_eq!(digest[31], 0x08);
    let upper =
        from_toml_str(&format!("[admin]\ntoken_sha256 = \"{}\"\n", hash.to_uppercase())).expect("valid");
    assert_eq!(upper.admin.token_sha256, Some(digest));
    assert_eq!(from_toml_str("").expect("defaults").admin.token_sha256, None);

    let short = &hash[..63];
    let plus = format!("+{}", &hash[1..]);
    let not_hex = format!("{}g", &hash[..63]);
    let long = format!("{hash}0");
    for bad in [short, &plus, &not_hex, &long, ""] {
        let e = from_toml_str(&format!("[admin]\ntoken_sha256 = \"{bad}\"\n")).expect_err(bad);
        assert!(e.to_string().contains("admin.token_sha256: "), "{bad}: {e}");
        assert!(e.to_string().contains("64 hex digits"), "{bad}: {e}");
    }
    let both = format!("[admin]\ntoken_sha256 = \"{hash}\"\ntoken_file = \"/etc/token\"\n");
    let e = from_toml_str(&both).expect_err("both");
    assert!(e.to_string().contains("admin.token_sha256: is set together with admin.token_file"), "{e}");
    // It round-trips through the raw form the provisioner writes.
    let mut raw = RawConfig::default();
    raw.admin.token_sha256 = Some(hash.to_owned());
    let text = raw.to_toml().expect("serialises");
    assert_eq!(from_toml_str(&text).expect("valid").admin.token_sha256, Some(digest));
}
