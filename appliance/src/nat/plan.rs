//! What the ruleset is built from: the interfaces, the LAN, the WAN address when known, the
//! ports the appliance serves on each side, and the port forwards. Derived from the config and
//! the current forwards and WAN address; equal plans give identical rulesets.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use proximity_config::{Config, PortForward, Protocol, ServedPort, WanMode};

/// The DHCP server's port; served on the LAN only.
pub const DHCP_SERVER_PORT: u16 = 67;
/// Where a DHCP client receives its server's answers: the appliance's own client on the WAN.
pub const DHCP_CLIENT_PORT: u16 = 68;

/// Ports the appliance serves on one side, by protocol, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SidePorts {
    pub tcp: BTreeSet<u16>,
    pub udp: BTreeSet<u16>,
}

impl SidePorts {
    pub fn insert(&mut self, protocol: Protocol, port: u16) {
        match protocol {
            Protocol::Tcp => self.tcp.insert(port),
            Protocol::Udp => self.udp.insert(port),
        };
    }

    pub fn of(&self, protocol: Protocol) -> &BTreeSet<u16> {
        match protocol {
            Protocol::Tcp => &self.tcp,
            Protocol::Udp => &self.udp,
        }
    }
}

/// Everything the ruleset depends on. Built by [`Plan::new`]; the builder is a pure function of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub lan_interface: String,
    /// The gateway address with the LAN prefix (`10.20.0.1/24`).
    pub lan: Ipv4Net,
    pub wan_interface: String,
    /// The appliance's WAN address, for hairpin forwards (LAN clients using the WAN address);
    /// `None` while it is not known, and then there are none.
    pub wan_address: Option<Ipv4Addr>,
    /// Opened to packets arriving on the LAN interface.
    pub lan_ports: SidePorts,
    /// Opened to packets arriving on the WAN interface.
    pub wan_ports: SidePorts,
    /// Whether the appliance runs its own DHCP client on the WAN (its answers must come in).
    pub wan_dhcp_client: bool,
    /// Config and API forwards together, in (protocol, port) order.
    pub forwards: Vec<PortForward>,
}

impl Plan {
    /// The plan for `config` with the forwards and WAN address in force now.
    pub fn new(config: &Config, forwards: &[PortForward], wan_address: Option<Ipv4Addr>) -> Self {
        let (lan_ports, wan_ports) = side_ports(config);
        let mut forwards = forwards.to_vec();
        forwards.sort_by_key(|f| (f.protocol, f.port));
        forwards.dedup_by_key(|f| (f.protocol, f.port));
        Plan {
            lan_interface: config.lan.interface.clone(),
            lan: config.lan.address,
            wan_interface: config.wan.interface.clone(),
            wan_address,
            lan_ports,
            wan_ports,
            wan_dhcp_client: config.wan.mode == WanMode::Dhcp,
            forwards,
        }
    }
}

/// Which side each served port belongs to, from its listen address: a wildcard serves both, an
/// address on the LAN serves the LAN, loopback neither (loopback is always open), any other
/// address is the WAN's. The DHCP server serves the LAN alone, whatever the address.
fn side_ports(config: &Config) -> (SidePorts, SidePorts) {
    let (mut lan, mut wan) = (SidePorts::default(), SidePorts::default());
    if config.dhcp.enabled {
        lan.insert(Protocol::Udp, DHCP_SERVER_PORT);
    }
    for ServedPort { protocol, addr, .. } in config.served_ports() {
        let ip = addr.ip();
        let on_lan = match ip {
            IpAddr::V4(v4) => config.lan.address.contains(&v4),
            IpAddr::V6(_) => false,
        };
        if ip.is_unspecified() {
            lan.insert(protocol, addr.port());
            wan.insert(protocol, addr.port());
        } else if on_lan {
            lan.insert(protocol, addr.port());
        } else if !ip.is_loopback() {
            wan.insert(protocol, addr.port());
        }
    }
    (lan, wan)
}
