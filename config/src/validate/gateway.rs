//! The `[wan]` and `[nat]` sections: how the WAN interface gets its address, and what the
//! appliance lets through between WAN and LAN (masquerade out, port forwards in).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;

use super::{Problems, check_interface_name};
use crate::forward::{PortForward, Protocol};
use crate::raw::{RawConfig, RawNat, RawWan};

/// How the WAN interface gets its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WanMode {
    /// The appliance's own DHCP client: address, default route, and upstream DNS servers when
    /// `dns.upstreams` is empty.
    Dhcp,
    /// A fixed address, and a default route when a gateway is given.
    Static { address: Ipv4Net, gateway: Option<Ipv4Addr> },
    /// Set from outside (Proxmox `host-managed`, or by hand): the appliance only follows it.
    Host,
}

impl WanMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            WanMode::Dhcp => "dhcp",
            WanMode::Static { .. } => "static",
            WanMode::Host => "host",
        }
    }
}

/// The WAN side, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanConfig {
    pub interface: String,
    pub mode: WanMode,
}

/// NAT and the firewall, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConfig {
    pub enabled: bool,
    /// Forwards from the file; those added over the admin API live in the store.
    pub forwards: Vec<PortForward>,
}

pub(super) fn check_wan(raw: &RawWan, lan: &RawConfig, p: &mut Problems) -> Option<WanConfig> {
    let before = p.0.len();
    if let Err(why) = check_interface_name(&raw.interface) {
        p.add("wan.interface", why);
    } else if raw.interface == lan.lan.interface {
        p.add("wan.interface", format!("{:?} is also lan.interface; the WAN needs its own", raw.interface));
    }
    let address = raw.address.as_deref().and_then(|text| {
        let parsed = text
            .parse::<Ipv4Net>()
            .map_err(|_| format!("{text:?} is not an address with prefix, like \"192.0.2.10/24\""));
        p.check("wan.address", parsed)
    });
    let gateway = raw.gateway.as_deref().and_then(|text| {
        p.check(
            "wan.gateway",
            text.parse::<Ipv4Addr>().map_err(|_| format!("{text:?} is not an IPv4 address")),
        )
    });
    let mode = match raw.mode.as_str() {
        "dhcp" | "host" => {
            for (field, given) in
                [("wan.address", raw.address.is_some()), ("wan.gateway", raw.gateway.is_some())]
            {
                if given {
                    p.add(field, format!("is only for mode = \"static\" (mode is {:?})", raw.mode));
                }
            }
            if raw.mode == "dhcp" { WanMode::Dhcp } else { WanMode::Host }
        }
        "static" => {
            if raw.address.is_none() {
                p.add("wan.address", "is required with mode = \"static\"");
            }
            if let (Some(address), Some(gateway)) = (address, gateway) {
                if !address.contains(&gateway) || gateway == address.addr() {
                    p.add("wan.gateway", format!("{gateway} is not another host of wan.address {address}"));
                }
            }
            if let (Some(address), Ok(lan)) = (address, lan.lan.address.parse::<Ipv4Net>()) {
                if address.contains(&lan.addr()) || lan.contains(&address.addr()) {
                    p.add("wan.address", format!("{address} overlaps lan.address {lan}"));
                }
            }
            match address {
                Some(address) => WanMode::Static { address, gateway },
                None => WanMode::Host,
            }
        }
        other => {
            p.add("wan.mode", format!("{other:?} is not a mode; use \"dhcp\", \"static\" or \"host\""));
            WanMode::Host
        }
    };
    (p.0.len() == before).then(|| WanConfig { interface: raw.interface.clone(), mode })
}

/// A port the appliance serves itself: what a port forward may not take, and what the firewall
/// opens (on the side of `addr`: a wildcard address is served on both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedPort {
    pub protocol: Protocol,
    pub addr: SocketAddr,
    /// The service and its config key, for messages: `DNS server (dns.listen)`.
    pub what: &'static str,
}

/// The listeners of the enabled services (`None`: disabled), one entry per protocol served.
fn served(
    dns: Option<&[SocketAddr]>,
    http: Option<&[SocketAddr]>,
    https: Option<&[SocketAddr]>,
    admin: Option<&[SocketAddr]>,
) -> Vec<ServedPort> {
    let mut out = Vec::new();
    let mut add = |list: Option<&[SocketAddr]>, protocols: &[Protocol], what: &'static str| {
        for &addr in list.unwrap_or_default() {
            out.extend(protocols.iter().map(|&protocol| ServedPort { protocol, addr, what }));
        }
    };
    add(dns, &Protocol::ALL, "DNS server (dns.listen)");
    add(http, &[Protocol::Tcp], "proxy (proxy.http_listen)");
    add(https, &[Protocol::Tcp], "proxy (proxy.https_listen)");
    add(admin, &[Protocol::Tcp], "admin API (admin.listen)");
    out
}

/// The port the appliance's own DHCP client receives its server's answers on (wan.mode =
/// "dhcp"): forwarding it would take the WAN's renewals away from the appliance.
const DHCP_CLIENT: (Protocol, u16, &str) = (Protocol::Udp, 68, "DHCP client (wan.mode = \"dhcp\")");

/// `(protocol, port, what)` of each served port, the form [`PortForward::takes_own_port`] takes,
/// and the WAN DHCP client's port when it runs.
fn as_own(served: Vec<ServedPort>, dhcp_client: bool) -> Vec<(Protocol, u16, &'static str)> {
    let mut own: Vec<_> = served.into_iter().map(|s| (s.protocol, s.addr.port(), s.what)).collect();
    if dhcp_client {
        own.push(DHCP_CLIENT);
    }
    own
}

/// The (protocol, port) pairs the appliance serves itself (every listener of an enabled
/// service, and its WAN DHCP client's port), which a forward may not take.
pub fn own_ports(raw: &RawConfig) -> Vec<(Protocol, u16, &'static str)> {
    let parse = |on: bool, list: &[String]| -> Option<Vec<SocketAddr>> {
        on.then(|| list.iter().filter_map(|t| t.parse::<SocketAddr>().ok()).collect())
    };
    let dns = parse(raw.dns.enabled, &raw.dns.listen);
    let http = parse(raw.proxy.enabled, &raw.proxy.http_listen);
    let https = parse(raw.proxy.enabled, &raw.proxy.https_listen);
    let admin = parse(raw.admin.enabled, &raw.admin.listen);
    as_own(
        served(dns.as_deref(), http.as_deref(), https.as_deref(), admin.as_deref()),
        raw.wan.mode == "dhcp",
    )
}

impl super::Config {
    /// Every listener of the enabled DNS server, proxy and admin API, per protocol.
    pub fn served_ports(&self) -> Vec<ServedPort> {
        let (dns, proxy, admin) = (&self.dns, &self.proxy, &self.admin);
        served(
            dns.enabled.then_some(dns.listen.as_slice()),
            proxy.enabled.then_some(proxy.http_listen.as_slice()),
            proxy.enabled.then_some(proxy.https_listen.as_slice()),
            admin.enabled.then_some(admin.listen.as_slice()),
        )
    }

    /// [`own_ports`] of a validated config: what a forward added at run time may not take.
    pub fn own_ports(&self) -> Vec<(Protocol, u16, &'static str)> {
        as_own(self.served_ports(), self.wan.mode == WanMode::Dhcp)
    }
}

pub(super) fn check_nat(
    raw: &RawNat,
    config: &RawConfig,
    lan: Option<Ipv4Net>,
    p: &mut Problems,
) -> NatConfig {
    let own = own_ports(config);
    let mut seen: HashMap<(Protocol, u16), usize> = HashMap::new();
    let mut forwards = Vec::with_capacity(raw.forwards.len());
    for (i, f) in raw.forwards.iter().enumerate() {
        let at = |field: &str| format!("nat.forwards[{i}].{field}");
        // Without a LAN there is nothing to check `to` against; lan.address has its own error.
        let Some(lan) = lan else { continue };
        match PortForward::check(&f.protocol, f.port, &f.to, lan) {
            Err(problems) => problems.into_iter().for_each(|(field, why)| p.add(at(field), why)),
            Ok(forward) => {
                if let Some(why) = forward.takes_own_port(&own) {
                    p.add(at("port"), why);
                } else if let Some(j) = seen.insert((forward.protocol, forward.port), i) {
                    p.add(
                        at("port"),
                        format!(
                            "{} port {} is already forwarded by nat.forwards[{j}]",
                            forward.protocol, forward.port
                        ),
                    );
                } else {
                    forwards.push(forward);
                }
            }
        }
    }
    NatConfig { enabled: raw.enabled, forwards }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::from_toml_str;

    fn problems(text: &str) -> Vec<String> {
        from_toml_str(text).expect_err("invalid").iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_defaults_are_dhcp_on_eth0_with_nat() {
        let c = from_toml_str("").expect("valid");
        assert_eq!(c.wan, WanConfig { interface: "eth0".into(), mode: WanMode::Dhcp });
        assert!(c.nat.enabled && c.nat.forwards.is_empty());
    }

    #[test]
    fn a_static_wan_needs_an_address_and_a_gateway_inside_it() {
        let c =
            from_toml_str("[wan]\nmode = \"static\"\naddress = \"192.0.2.10/24\"\ngateway = \"192.0.2.1\"\n")
                .expect("valid");
        let WanMode::Static { address, gateway } = c.wan.mode else { panic!("{:?}", c.wan.mode) };
        assert_eq!(
            (address.to_string(), gateway),
            ("192.0.2.10/24".into(), Some(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(
            problems("[wan]\nmode = \"static\"\n"),
            ["wan.address: is required with mode = \"static\""]
        );
        assert_eq!(
            problems("[wan]\nmode = \"static\"\naddress = \"192.0.2.10/24\"\ngateway = \"198.51.100.1\"\n"),
            ["wan.gateway: 198.51.100.1 is not another host of wan.address 192.0.2.10/24"]
        );
        assert_eq!(
            problems("[wan]\nmode = \"static\"\naddress = \"10.20.0.7/16\"\n"),
            ["wan.address: 10.20.0.7/16 overlaps lan.address 10.20.0.1/24"]
        );
    }

    #[test]
    fn wan_problems_are_named() {
        let got = problems("[wan]\ninterface = \"eth1\"\nmode = \"pppoe\"\n");
        assert_eq!(
            got,
            [
                "wan.interface: \"eth1\" is also lan.interface; the WAN needs its own",
                "wan.mode: \"pppoe\" is not a mode; use \"dhcp\", \"static\" or \"host\"",
            ]
        );
        assert_eq!(
            problems("[wan]\nmode = \"host\"\naddress = \"192.0.2.10/24\"\n"),
            ["wan.address: is only for mode = \"static\" (mode is \"host\")"]
        );
        assert_eq!(
            problems("[wan]\nmode = \"static\"\naddress = \"192.0.2.300/24\"\n"),
            ["wan.address: \"192.0.2.300/24\" is not an address with prefix, like \"192.0.2.10/24\""]
        );
    }

    #[test]
    fn forwards_are_checked_against_the_lan_each_other_and_our_own_ports() {
        let got = problems(
            r#"
            [[nat.forwards]]
            protocol = "tcp"
            port = 2222
            to = "10.20.0.50:22"
            [[nat.forwards]]
            protocol = "tcp"
            port = 2222
            to = "10.20.0.51:22"
            [[nat.forwards]]
            protocol = "tcp"
            port = 443
            to = "10.20.0.52:443"
            [[nat.forwards]]
            protocol = "sctp"
            port = 0
            to = "192.0.2.1:22"
            "#,
        );
        assert_eq!(
            got,
            [
                "nat.forwards[1].port: tcp port 2222 is already forwarded by nat.forwards[0]",
                "nat.forwards[2].port: tcp port 443 is the appliance's own proxy (proxy.https_listen); choose \
                 another port",
                "nat.forwards[3].protocol: \"sctp\" is not a protocol; use \"tcp\" or \"udp\"",
                "nat.forwards[3].port: 0 is not a port (1 to 65535)",
                "nat.forwards[3].to: 192.0.2.1 is outside the LAN 10.20.0.0/24",
            ]
        );
        // The same port over the other protocol, and a port of a disabled service, are free.
        let c = from_toml_str(
            "[proxy]\nenabled = false\n[[nat.forwards]]\nprotocol = \"udp\"\nport = 443\nto = \"10.20.0.5:443\"\n\
             [[nat.forwards]]\nprotocol = \"tcp\"\nport = 443\nto = \"10.20.0.5:8443\"\n",
        )
        .expect("valid");
        assert_eq!(c.nat.forwards.len(), 2);
    }

    #[test]
    fn a_validated_config_serves_the_ports_its_file_does() {
        let text = "[admin]\nlisten = [\"10.20.0.1:9443\"]\n[proxy]\nhttps_listen = []\n";
        let raw: RawConfig = toml::from_str(text).expect("toml");
        let config = from_toml_str(text).expect("valid");
        assert_eq!(config.own_ports(), own_ports(&raw));
        assert!(config.own_ports().contains(&DHCP_CLIENT), "the default WAN mode runs a DHCP client");
        let served: Vec<String> =
            config.served_ports().iter().map(|s| format!("{}/{}", s.protocol, s.addr)).collect();
        assert_eq!(served, ["tcp/0.0.0.0:53", "udp/0.0.0.0:53", "tcp/0.0.0.0:80", "tcp/10.20.0.1:9443"]);
    }
}
