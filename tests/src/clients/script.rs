//! The scripts the lab gives dhclient (`-sf`), udhcpc (`-s`) and dhcpcd (`-c`). Each configures the
//! client's interface as the distributions' own scripts do (address, default route via the router;
//! dhcpcd does that itself) and then appends one line recording what the client passed: configure
//! first, record second, so a test that sees the event can rely on the address being there.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, ensure};

/// Where the events file goes in a script.
const EVENTS_PLACEHOLDER: &str = "@EVENTS@";

/// The variables of dhclient-script(8) that a test looks at.
pub const DHCLIENT_VARS: &str = "reason interface new_ip_address new_subnet_mask new_routers \
    new_domain_name_servers new_domain_name new_domain_search new_dhcp_lease_time \
    new_dhcp_server_identifier new_host_name";

const DHCLIENT_SCRIPT: &str = r#"#!/bin/sh
# dhclient script of the Proximity lab: configure like dhclient-script, then record the call.
case "$reason" in
  PREINIT)
    ip link set dev "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    if ! ip -4 -o addr show dev "$interface" | grep -q " inet $new_ip_address/"; then
      ip -4 addr flush dev "$interface"
      ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    fi
    for router in $new_routers; do
      ip route replace default via "$router" dev "$interface"
      break
    done ;;
  EXPIRE|FAIL|RELEASE|STOP)
    ip -4 addr flush dev "$interface" ;;
esac
line=$(for v in @VARS@; do eval "printf '%s=%s\t' \"\$v\" \"\${$v}\""; done)
printf '%s\n' "$line" >> '@EVENTS@'
exit 0
"#;

/// The variables busybox udhcpc exports to its script (`event` is the script's first argument).
pub const UDHCPC_VARS: &str =
    "event interface ip mask subnet router dns domain search lease serverid hostname";

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
# udhcpc script of the Proximity lab: configure like busybox's default.script, then record the call.
event="$1"
case "$event" in
  deconfig)
    ip link set dev "$interface" up
    ip -4 addr flush dev "$interface" ;;
  bound|renew)
    if ! ip -4 -o addr show dev "$interface" | grep -q " inet $ip/"; then
      ip -4 addr flush dev "$interface"
      ip addr add "$ip/$mask" dev "$interface"
    fi
    for r in $router; do
      ip route replace default via "$r" dev "$interface"
      break
    done ;;
esac
line=$(for v in @VARS@; do eval "printf '%s=%s\t' \"\$v\" \"\${$v}\""; done)
printf '%s\n' "$line" >> '@EVENTS@'
exit 0
"#;

/// The variables dhcpcd-run-hooks(8) documents that a test looks at (the same names as
/// dhclient's, plus `new_subnet_cidr`).
pub const DHCPCD_VARS: &str = "reason interface new_ip_address new_subnet_cidr new_subnet_mask \
    new_routers new_domain_name_servers new_domain_name new_domain_search new_dhcp_lease_time \
    new_dhcp_server_identifier new_host_name";

const DHCPCD_SCRIPT: &str = r#"#!/bin/sh
# dhcpcd script of the Proximity lab. dhcpcd configures the interface itself (address, routes)
# before it runs its script; the stock script's hooks only write /etc/resolv.conf, NTP and the
# like, which the lab must not touch. So this one only records the call.
line=$(for v in @VARS@; do eval "printf '%s=%s\t' \"\$v\" \"\${$v}\""; done)
printf '%s\n' "$line" >> '@EVENTS@'
exit 0
"#;

/// Writes the dhclient script to `path`, recording into `events`.
pub fn write_dhclient(path: &Path, events: &Path) -> Result<()> {
    write(path, DHCLIENT_SCRIPT, DHCLIENT_VARS, events)
}

/// Writes the udhcpc script to `path`, recording into `events`.
pub fn write_udhcpc(path: &Path, events: &Path) -> Result<()> {
    write(path, UDHCPC_SCRIPT, UDHCPC_VARS, events)
}

/// Writes the dhcpcd script to `path`, recording into `events`.
pub fn write_dhcpcd(path: &Path, events: &Path) -> Result<()> {
    write(path, DHCPCD_SCRIPT, DHCPCD_VARS, events)
}

fn write(path: &Path, template: &str, vars: &str, events: &Path) -> Result<()> {
    let events = events.to_str().context("events path is not UTF-8")?;
    // The path goes between single quotes in the script.
    ensure!(!events.contains('\''), "events path {events:?} contains a quote");
    let text = template.replace("@VARS@", vars).replace(EVENTS_PLACEHOLDER, events);
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}
