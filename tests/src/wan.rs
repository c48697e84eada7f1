//! The lab's WAN side: an "outside" namespace standing for the user's management network (the
//! Proxmox `vmbr0` side), wired by a veth straight to the appliance namespace's second interface
//! (its `eth0`), or, in a lab without an appliance namespace, to a WAN bridge in the switch
//! namespace where an appliance container plugs its `eth0` (see [`crate::lxc`]). The outside host
//! is an ordinary [`Host`]: tests run a workstation's clients there, and later the appliance's
//! upstreams (a DNS server to forward to, a WAN DHCP server, the far end of NAT).
//!
//! Addresses are private test addresses that only exist inside the lab's namespaces, apart from the
//! LAN (`10.20.0.0/16` and below, as tests widen it): the outside host is the upstream router at
//! [`WAN_UPSTREAM`]; the appliance is [`WAN_ADDRESS`] with a default route via the upstream, as a
//! DHCP server on `vmbr0` would configure it.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use proximity_tests::{Lab, WAN_ADDRESS};
//! let lab = Lab::builder().clients(1).wan(true).build()?;
//! lab.start_appliance(&lab.config())?;
//! let outside = lab.wan(); // a Host: command(), iface(), ping(), udhcpc(), dhclient(), dhcpcd()
//! outside.ping(WAN_ADDRESS)?; // the appliance's eth0, named lab.wan_iface() in its namespace
//! assert!(outside.udhcpc().attempts(2, 1).try_obtain()?.is_none());
//! # Ok(()) }
//! ```

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use proximity_config::MacAddr;

use crate::logs::Logs;
use crate::names::Names;
use crate::netns::Netns;
use crate::process::Reaper;
use crate::topology::Host;

/// The outside host's address: the upstream router, DNS server and WAN DHCP server of later tests.
pub const WAN_UPSTREAM: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// The appliance's WAN address, put on [`crate::Lab::wan_iface`] by the harness (unless the lab is
/// built with `wan_address_by_harness(false)`).
pub const WAN_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// Prefix length of the WAN.
pub const WAN_PREFIX: u8 = 24;
/// The outside host's MAC: locally administered, apart from the clients' `02:70:78:00:..`.
pub const OUTSIDE_MAC: MacAddr = MacAddr([0x02, 0x70, 0x78, 0xff, 0x00, 0x01]);
/// The outside host's label in messages and its directory's name.
pub const OUTSIDE_LABEL: &str = "out";

/// Where the outside host's wire ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Uplink<'a> {
    /// On the lab's appliance namespace, as its second interface.
    Appliance(&'a Netns),
    /// On a WAN bridge made in this (the switch) namespace, for an appliance container's `eth0`,
    /// as Proxmox plugs the appliance into `vmbr0`.
    Bridge(&'a Netns),
}

/// The WAN of one lab: the outside host and the appliance's end of the wire.
#[derive(Debug)]
pub(crate) struct Wan {
    pub(crate) outside: Host,
    /// The appliance's WAN interface, inside the appliance namespace ([`Uplink::Appliance`]).
    pub(crate) iface: Option<String>,
    /// The WAN bridge inside the switch namespace ([`Uplink::Bridge`]).
    pub(crate) bridge: Option<String>,
    /// Whether the appliance's WAN address is the harness's job: done here for the appliance
    /// namespace; an appliance container gets it from its LXC config.
    pub(crate) addressed: bool,
}

/// Creates the outside namespace and wires it to `uplink`. With `addressed`, the harness plays
/// the WAN DHCP server: [`WAN_ADDRESS`] and a default route via [`WAN_UPSTREAM`] on the
/// appliance. The outside host always has [`WAN_UPSTREAM`], because it serves on it.
pub(crate) fn build(
    names: &Names,
    uplink: Uplink<'_>,
    addressed: bool,
    lab_dir: &Path,
    logs: &Arc<Logs>,
    reaper: &Arc<Reaper>,
) -> Result<Wan> {
    // Owned at once, so a failure below deletes it again.
    let netns = Netns::create(&names.netns(OUTSIDE_LABEL))?;
    let outside_iface = names.ifname("o", "")?;
    let (near_ns, near) = match uplink {
        Uplink::Appliance(ns) => (ns, names.ifname("w", "")?),
        Uplink::Bridge(ns) => (ns, names.ifname("m", "o")?),
    };
    // Made inside the near namespace with the peer put straight into the outside one, so the
    // names never appear in the machine's own namespace; the MAC is set before the link is up.
    let mac = OUTSIDE_MAC.to_string();
    near_ns.ip(&[
        "link",
        "add",
        &near,
        "type",
        "veth",
        "peer",
        "name",
        &outside_iface,
        "address",
        &mac,
        "netns",
        netns.name(),
    ])?;
    near_ns.ip(&["link", "set", &near, "up"])?;
    netns.ip(&["link", "set", &outside_iface, "up"])?;
    netns.ip(&["addr", "add", &format!("{WAN_UPSTREAM}/{WAN_PREFIX}"), "dev", &outside_iface])?;
    let (iface, bridge) = match uplink {
        Uplink::Appliance(ns) => {
            if addressed {
                ns.ip(&["addr", "add", &format!("{WAN_ADDRESS}/{WAN_PREFIX}"), "dev", &near])?;
                ns.ip(&["route", "add", "default", "via", &WAN_UPSTREAM.to_string(), "dev", &near])?;
            }
            (Some(near), None)
        }
        Uplink::Bridge(switch) => {
            let bridge = names.ifname("m", "")?;
            switch.ip(&["link", "add", &bridge, "type", "bridge"])?;
            switch.ip(&["link", "set", &bridge, "up"])?;
            switch.ip(&["link", "set", &near, "master", &bridge])?;
            (None, Some(bridge))
        }
    };
    let outside = Host::new(OUTSIDE_LABEL, netns, outside_iface, OUTSIDE_MAC, lab_dir, logs, reaper)?;
    Ok(Wan { outside, iface, bridge, addressed })
}
