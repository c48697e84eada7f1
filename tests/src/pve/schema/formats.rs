//! PVE's named formats (`"format": "pve-iface"`): the verifiers of PVE::JSONSchema,
//! PVE::Storage, pve-container and pve-access-control, re-implemented strictly for the formats
//! listed in [`CHECKED`], and PVE's `-list` / `-opt` suffixes (`pve-tag-list` = a `split_list`
//! of `pve-tag`).
//!
//! Every other named format of the schema is accepted unchecked ([`UNCHECKED`]);
//! [`is_checked`] tells which is which.
//!
//! An `Err` carries the text PVE dies with (ending in a newline), which the caller prefixes with
//! `invalid format - `.

use std::net::Ipv6Addr;

use super::pattern::Patterns;

/// Base names (without `-list`/`-opt`) this module verifies.
pub const CHECKED: &[&str] = &[
    "string",
    "urlencoded",
    "pve-configid",
    "pve-storage-id",
    "pve-bridge-id",
    "pve-vmid",
    "pve-node",
    "mac-addr",
    "ipv4",
    "ipv6",
    "ip",
    "ipv4mask",
    "CIDRv4",
    "CIDRv6",
    "CIDR",
    "IPorCIDR",
    "pve-ipv4-config",
    "pve-ipv6-config",
    "dns-name",
    "pve-iface",
    "pve-vlan-id-or-range",
    "address",
    "disk-size",
    "pve-startup-order",
    "pve-tag",
    "pve-ct-timezone",
    "pve-storage-content",
    "pve-userid",
    "pve-volume-id",
    "pve-volume-id-or-absolute-path",
    "pve-lxc-mp-string",
    "pve-lxc-dev-string",
    "ldap-simple-attr",
    "pve-task-status-type",
];

/// Base names of the schema's other named formats: accepted without a check (PVE defines them
/// in Perl code or hashes that the schema does not carry). A test keeps this list complete.
pub const UNCHECKED: &[&str] = &[
    "IPorCIDRorAlias",
    "backup-fleecing",
    "backup-performance",
    "bridge-pair",
    "email",
    "email-or-username",
    "graphite-path",
    "lxc-ip-with-ll-iface",
    "mac-prefix",
    "pem-certificate-chain",
    "pem-string",
    "proxmox-remote",
    "prune-backups",
    "pve-acme-alias",
    "pve-acme-domain",
    "pve-calendar-event",
    "pve-command-batch",
    "pve-cpuset",
    "pve-day-of-week",
    "pve-dir-override",
    "pve-fw-addr-spec",
    "pve-fw-conntrack-helper",
    "pve-fw-dport-spec",
    "pve-fw-icmp-type-spec",
    "pve-fw-protocol-spec",
    "pve-fw-sport-spec",
    "pve-groupid",
    "pve-ha-node",
    "pve-ha-resource-id",
    "pve-ha-resource-or-vm-id",
    "pve-hotplug-features",
    "pve-poolid",
    "pve-priv",
    "pve-qemu-sev-fmt",
    "pve-qemu-tdx-fmt",
    "pve-qm-boot",
    "pve-qm-bootdisk",
    "pve-qm-cicustom",
    "pve-qm-hostpci",
    "pve-qm-ide",
    "pve-qm-ipconfig",
    "pve-qm-rng",
    "pve-qm-smbios1",
    "pve-qm-watchdog",
    "pve-realm",
    "pve-replication-job-id",
    "pve-roleid",
    "pve-sdn-bgp-rt",
    "pve-sdn-controller-id",
    "pve-sdn-dhcp-range",
    "pve-sdn-dns-id",
    "pve-sdn-fabric-id",
    "pve-sdn-ipam-id",
    "pve-sdn-isis-net",
    "pve-sdn-subnet-id",
    "pve-sdn-vnet-id",
    "pve-sdn-zone-id",
    "pve-storage-options",
    "pve-storage-path",
    "pve-storage-path-in-property-string",
    "pve-storage-portal-dns",
    "pve-storage-server",
    "pve-storage-vgname",
    "pve-tfa-config",
    "pve-tokenid",
    "pve-vm-cpu-conf",
    "pve-volume-id-or-qm-path",
    "realm-sync-options",
    "storage-pair",
];

/// The content types PVE's `verify_content` accepts (those of a `dir` storage, which has all).
const STORAGE_CONTENT: &[&str] =
    &["images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"];

/// Whether `format` (with or without a `-list`/`-opt` suffix) is verified here.
pub fn is_checked(format: &str) -> bool {
    CHECKED.contains(&split_suffix(format).0)
}

/// PVE's `check_format` for a named format.
pub(crate) fn check(format: &str, value: &str, patterns: &Patterns) -> Result<(), String> {
    let (base, suffix) = split_suffix(format);
    match suffix {
        Some("list") => split_list(value).into_iter().try_for_each(|item| verify(base, item, patterns)),
        // `-opt`: Perl's truthiness; an empty value (or "0") is not checked.
        Some(_) if value.is_empty() || value == "0" => Ok(()),
        _ => verify(base, value, patterns),
    }
}

/// `name-list` -> (`name`, `list`), as PVE's `m/^(.*?)(?:-(list|opt))?$/`.
fn split_suffix(format: &str) -> (&str, Option<&str>) {
    for suffix in ["list", "opt"] {
        if let Some(base) = format.strip_suffix(suffix).and_then(|b| b.strip_suffix('-')) {
            return (base, Some(suffix));
        }
    }
    (format, None)
}

/// PVE::Tools::split_list: NUL-separated when it has NULs, else on commas, semicolons and
/// white space; empty items dropped.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    if value.contains('\0') {
        return value.split('\0').collect();
    }
    value.split(|c: char| c == ',' || c == ';' || c.is_whitespace()).filter(|s| !s.is_empty()).collect()
}

fn verify(base: &str, v: &str, p: &Patterns) -> Result<(), String> {
    let m = |re: &str| p.full_match(re, v).unwrap_or(false);
    let fail = |msg: String| Err(msg + "\n");
    match base {
        "string" | "pve-ct-timezone" => Ok(()),
        "urlencoded" if !m(r"[-%a-zA-Z0-9_.!~*'()]*") => fail(format!("invalid urlencoded string: {v}")),
        "pve-configid" if !m(r"(?i:[a-z][a-z0-9_-]+)") => fail(format!("invalid configuration ID '{v}'")),
        "pve-storage-id" if !is_id(v, p) => fail(format!("storage ID '{v}' contains illegal characters")),
        "pve-bridge-id" if !m(r"[-_.\w\d]+") => fail(format!("invalid bridge ID '{v}'")),
        "pve-vmid" if !m(r"[1-9][0-9]{2,8}") => fail("value does not look like a valid VM ID".into()),
        "pve-node" if !m(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?") => {
            fail("value does not look like a valid node name".into())
        }
        "mac-addr" if !m(r"(?i:[a-f0-9][02468ace](?::[a-f0-9]{2}){5})") => {
            fail("value does not look like a valid unicast MAC address".into())
        }
        "ipv4" if !is_ipv4(v) => fail("value does not look like a valid IPv4 address".into()),
        "ipv6" if !is_ipv6(v) => fail("value does not look like a valid IPv6 address".into()),
        "ip" if !is_ipv4(v) && !is_ipv6(v) => fail("value does not look like a valid IP address".into()),
        "ipv4mask" if !is_ipv4_mask(v) => fail("value does not look like a valid IP netmask".into()),
        "CIDRv4" if !is_cidr_v4(v) => fail("value does not look like a valid IPv4 CIDR network".into()),
        "CIDRv6" if !is_cidr_v6(v) => fail("value does not look like a valid IPv6 CIDR network".into()),
        "CIDR" if !is_cidr_v4(v) && !is_cidr_v6(v) => {
            fail("value does not look like a valid CIDR network".into())
        }
        "IPorCIDR" if !is_ipv4(v) && !is_ipv6(v) && !is_cidr_v4(v) && !is_cidr_v6(v) => {
            fail("value does not look like a valid IP address or CIDR network".into())
        }
        "pve-ipv4-config" if !matches!(v, "dhcp" | "manual") && !is_cidr_v4(v) => {
            fail("value does not look like a valid ipv4 network configuration".into())
        }
        "pve-ipv6-config" if !matches!(v, "auto" | "dhcp" | "manual") && !is_cidr_v6(v) => {
            fail("value does not look like a valid ipv6 network configuration".into())
        }
        "dns-name" if !is_dns_name(v, p) => fail("value does not look like a valid DNS name".into()),
        "pve-iface" if !m(r"(?i:[a-z][a-z0-9_]{1,20}([:\.]\d+)?)") => {
            fail(format!("invalid network interface name '{v}'"))
        }
        "pve-vlan-id-or-range" => verify_vlan_range(v),
        "address" if !is_ipv4(v) && !is_ipv6(v) && !is_dns_name(v, p) => {
            fail(format!("value does not look like a valid address: {v}"))
        }
        "disk-size" if !m(r"\d+(\.\d+)?[KMGT]?") => {
            fail(format!("value does not look like a valid disk size: {v}"))
        }
        "pve-startup-order" if !is_startup_order(v) => fail("unable to parse startup options".into()),
        "pve-tag" if !m(r"(?i:[a-z0-9_][a-z0-9_\-\+\.]*)") => fail("invalid characters in tag".into()),
        "pve-storage-content" if !STORAGE_CONTENT.contains(&v) => fail(format!("invalid content type '{v}'")),
        "pve-userid" => verify_userid(v, p),
        "pve-volume-id" if !is_volume_id(v, p) => fail(format!("unable to parse volume ID '{v}'")),
        "pve-volume-id-or-absolute-path" if !v.starts_with('/') && !is_volume_id(v, p) => {
            fail(format!("unable to parse volume ID '{v}'"))
        }
        "pve-lxc-mp-string" if has_dot_segment(v) || v.starts_with("../") => {
            fail(format!("{v} contains illegal character sequences"))
        }
        "pve-lxc-dev-string" if has_dot_segment(v) || !v.starts_with("/dev/") => {
            fail(format!("{v} is not a valid device path"))
        }
        "ldap-simple-attr" if !m(r"[a-zA-Z0-9]+") => {
            fail(format!("value '{v}' does not look like a simple ldap attribute name"))
        }
        "pve-task-status-type" if !m(r"(?i:ok|error|warning|unknown)") => {
            fail(format!("invalid status '{v}'"))
        }
        _ => Ok(()),
    }
}

/// `/./` or `/../` inside, or `/.` or `/..` at the end (pve-container's path checks).
fn has_dot_segment(v: &str) -> bool {
    v.contains("/./") || v.contains("/../") || v.ends_with("/.") || v.ends_with("/..")
}

/// PVE's `parse_id` (storage, ACME plugin ids).
fn is_id(v: &str, p: &Patterns) -> bool {
    p.full_match(r"(?i:[a-z][a-z0-9\-\_\.]*[a-z0-9])", v).unwrap_or(false)
}

/// PVE::Storage `parse_volume_id`: `STORAGE:NAME`.
fn is_volume_id(v: &str, p: &Patterns) -> bool {
    p.full_match(r"(?i:[a-z][a-z0-9\-\_\.]*[a-z0-9]):(.+)", v).unwrap_or(false)
}

fn is_dns_name(v: &str, p: &Patterns) -> bool {
    let label = r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)";
    p.full_match(&format!(r"({label}\.)*{label}"), v).unwrap_or(false)
}

/// PVE's `$IPV4RE`: four decimal octets 0-255, no leading zeros.
fn is_ipv4(v: &str) -> bool {
    let v = v.strip_suffix('\n').unwrap_or(v);
    let octets: Vec<&str> = v.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|o| {
            !o.is_empty()
                && o.len() <= 3
                && o.bytes().all(|b| b.is_ascii_digit())
                && (o.len() == 1 || !o.starts_with('0'))
                && o.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// PVE's `$IPV6RE` (all RFC 4291 text forms, including an embedded IPv4 tail).
fn is_ipv6(v: &str) -> bool {
    let v = v.strip_suffix('\n').unwrap_or(v);
    v.contains(':') && v.parse::<Ipv6Addr>().is_ok()
}

fn prefix_len(v: &str, is_addr: fn(&str) -> bool) -> Option<u32> {
    let (addr, len) = v.split_once('/')?;
    let len = len.strip_suffix('\n').unwrap_or(len);
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || !is_addr(addr) {
        return None;
    }
    len.parse().ok()
}

/// `ADDR/LEN` with 8 <= LEN <= 32, as PVE's `pve_verify_cidrv4`.
fn is_cidr_v4(v: &str) -> bool {
    prefix_len(v, is_ipv4).is_some_and(|n| (8..=32).contains(&n))
}

/// `ADDR/LEN` with 8 <= LEN <= 128, as PVE's `pve_verify_cidrv6`.
fn is_cidr_v6(v: &str) -> bool {
    prefix_len(v, is_ipv6).is_some_and(|n| (8..=128).contains(&n))
}

/// A dotted netmask of contiguous ones (`255.255.255.0`), as PVE's mask table.
fn is_ipv4_mask(v: &str) -> bool {
    if !is_ipv4(v) {
        return false;
    }
    let bits =
        v.split('.').filter_map(|o| o.parse::<u8>().ok()).fold(0u32, |acc, o| (acc << 8) | u32::from(o));
    bits.leading_ones() + bits.trailing_zeros() == 32
}

/// PVE's `pve_parse_startup_order`: `[order=]N`, `up=N`, `down=N`, comma-separated.
fn is_startup_order(v: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    !v.is_empty()
        && v != "0"
        && v.split(',').all(|part| {
            part.trim().is_empty()
                || digits(part.strip_prefix("order=").unwrap_or(part))
                || part.strip_prefix("up=").is_some_and(digits)
                || part.strip_prefix("down=").is_some_and(digits)
        })
}

/// pve-access-control's `verify_username`: `USER@REALM`, 3 to 64 characters.
fn verify_userid(v: &str, p: &Patterns) -> Result<(), String> {
    let len = v.chars().count();
    if len < 3 {
        return Err(format!("user name '{v}' is too short\n"));
    }
    if len > 64 {
        return Err(format!("user name '{v}' is too long ({len} > 64)\n"));
    }
    if p.full_match(r"[^\s:/]+@[A-Za-z][A-Za-z\.\-_]+", v).unwrap_or(false) {
        Ok(())
    } else {
        Err(format!("value '{v}' does not look like a valid user name\n"))
    }
}

/// PVE's `pve_verify_vlan_id_or_range`: `N` or `N-M`, tags 2 to 4094, ascending.
fn verify_vlan_range(v: &str) -> Result<(), String> {
    let invalid = || Err(format!("invalid VLAN configuration '{v}'\n"));
    let (start, end) = match v.split_once('-') {
        Some((s, e)) => (s, Some(e)),
        None => (v, None),
    };
    let tag = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse().ok() }
    };
    let Some(start) = tag(start) else { return invalid() };
    let end = match end.map(tag) {
        Some(None) => return invalid(),
        Some(Some(e)) => Some(e),
        None => None,
    };
    for t in std::iter::once(start).chain(end) {
        if !(2..=4094).contains(&t) {
            return Err(format!("invalid VLAN tag '{t}'\n"));
        }
    }
    if end.is_some_and(|e| start >= e) {
        return Err(format!("VLAN range must go from lower to higher tag '{v}'\n"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(format: &str, value: &str) -> bool {
        check(format, value, &Patterns::default()).is_ok()
    }

    #[test]
    fn addresses() {
        for v in ["10.20.0.1", "0.0.0.0", "255.255.255.255"] {
            assert!(ok("ipv4", v), "{v}");
        }
        for v in ["10.20.0", "10.20.0.256", "10.020.0.1", "1.2.3.4.5", "a.b.c.d", ""] {
            assert!(!ok("ipv4", v), "{v}");
        }
        assert!(ok("ipv6", "fe80::1") && ok("ipv6", "::ffff:10.0.0.1"));
        assert!(!ok("ipv6", "10.0.0.1") && !ok("ipv6", "fe80::1%eth0"));
        assert!(ok("ip", "10.0.0.1") && ok("ip", "::1") && !ok("ip", "host"));
        assert!(ok("CIDRv4", "10.0.0.0/8") && !ok("CIDRv4", "10.0.0.0/7"));
        assert!(!ok("CIDRv4", "10.0.0.0") && !ok("CIDRv4", "10.0.0.0/"));
        assert!(ok("CIDRv6", "fd00::/64") && !ok("CIDRv6", "fd00::/129"));
        assert!(ok("CIDR", "fd00::/64") && ok("CIDR", "10.0.0.0/24"));
        assert!(ok("ipv4mask", "255.255.255.0") && ok("ipv4mask", "0.0.0.0"));
        assert!(!ok("ipv4mask", "255.0.255.0") && !ok("ipv4mask", "24"));
        assert!(ok("address", "pve.example.com") && ok("address", "10.0.0.1"));
        assert!(!ok("address", "bad_name"));
        assert!(ok("dns-name", "a-b.c") && !ok("dns-name", "-a") && !ok("dns-name", "a."));
        assert!(ok("mac-addr", "bc:24:11:00:00:01") && !ok("mac-addr", "bd:24:11:00:00:01"));
        assert!(ok("pve-ipv6-config", "auto") && ok("pve-ipv6-config", "fd00::1/64"));
        assert!(!ok("pve-ipv6-config", "fd00::1"));
    }

    #[test]
    fn ids() {
        assert!(ok("pve-iface", "vmbr0") && ok("pve-iface", "eth0.100") && ok("pve-iface", "BOND0:1"));
        assert_eq!(
            check("pve-iface", "proximity-lan", &Patterns::default()),
            Err("invalid network interface name 'proximity-lan'\n".to_owned())
        );
        assert!(!ok("pve-iface", "v") && !ok("pve-iface", "0vmbr"));
        assert!(ok("pve-bridge-id", "proximity-lan") && !ok("pve-bridge-id", "a b"));
        assert!(ok("pve-storage-id", "local-lvm") && !ok("pve-storage-id", "local-"));
        assert!(ok("pve-node", "pve-1") && !ok("pve-node", "pve_1") && !ok("pve-node", "-pve"));
        assert!(ok("pve-vmid", "100") && ok("pve-vmid", "999999999"));
        assert!(!ok("pve-vmid", "99") && !ok("pve-vmid", "0100"));
        assert!(ok("pve-configid", "mp0") && !ok("pve-configid", "0mp"));
        assert!(ok("pve-configid-list", "mp0,net1;unused2 tags") && !ok("pve-configid-list", "a,!"));
        assert!(ok("pve-configid-list", ""), "PVE allows empty lists");
        assert!(ok("pve-userid", "root@pam") && ok("pve-userid", "ci@pve"));
        assert!(!ok("pve-userid", "root") && !ok("pve-userid", "a@1x") && !ok("pve-userid", "r:t@pam"));
        assert!(ok("pve-volume-id", TEST_VOLUME) && !ok("pve-volume-id", "noid"));
        assert!(ok("pve-volume-id-or-absolute-path", "/var/lib/vz/x.tar.zst"));
        assert!(!ok("pve-volume-id-or-absolute-path", "relative/x"));
        assert!(ok("pve-storage-content-list", "vztmpl,iso") && !ok("pve-storage-content", "x"));
        assert!(ok("urlencoded", "a%20b") && !ok("urlencoded", "a b"));
    }

    const TEST_VOLUME: &str = "local:vztmpl/x.tar.zst";

    #[test]
    fn others() {
        assert!(ok("disk-size", "8G") && ok("disk-size", "0.5T") && !ok("disk-size", "8GB"));
        assert!(ok("pve-startup-order", "order=1,up=30,down=60") && ok("pve-startup-order", "2"));
        assert!(!ok("pve-startup-order", "first") && !ok("pve-startup-order", ""));
        assert!(ok("pve-vlan-id-or-range", "2-4094") && ok("pve-vlan-id-or-range", "100"));
        assert!(!ok("pve-vlan-id-or-range", "1") && !ok("pve-vlan-id-or-range", "20-10"));
        assert!(ok("pve-lxc-dev-string", "/dev/net/tun") && !ok("pve-lxc-dev-string", "/dev/../etc"));
        assert!(ok("pve-ct-timezone", "Europe/Vienna") && ok("pve-ct-timezone", "anything"));
        assert!(ok("string-list", "anything, at all"));
        assert!(ok("email-opt", ""), "unchecked formats accept");
        assert!(ok("pve-tag-list", "a;b,c") && !ok("pve-tag-list", "a,-b"));
    }

    #[test]
    fn suffixes() {
        assert_eq!(split_suffix("pve-tag-list"), ("pve-tag", Some("list")));
        assert_eq!(split_suffix("email-opt"), ("email", Some("opt")));
        assert_eq!(split_suffix("pve-ipv4-config"), ("pve-ipv4-config", None));
        assert_eq!(split_list("a, b;c\td"), ["a", "b", "c", "d"]);
        assert_eq!(split_list("a b\0c"), ["a b", "c"]);
    }
}
