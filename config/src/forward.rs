//! Port forwards: a port of the appliance's WAN address handed to a host on the LAN. One value
//! type for the config file (`[[nat.forwards]]`), the admin API (`/v1/forwards`) and the store,
//! and the one check all three use.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A transport protocol a forward carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Tcp, Protocol::Udp];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(format!("{s:?} is not a protocol; use \"tcp\" or \"udp\"")),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `protocol` `port` on the WAN address goes to `to` on the LAN. A forward is known by its
/// protocol and port: one WAN port goes to one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortForward {
    pub protocol: Protocol,
    pub port: u16,
    pub to: SocketAddrV4,
}

/// A problem with one field of a forward: the field's name (`protocol`, `port`, `to`) and why.
pub type ForwardProblem = (&'static str, String);

impl PortForward {
    /// Checks a forward as written (file or API) against the LAN it must point into. Every
    /// problem is returned, each with its field.
    pub fn check(protocol: &str, port: u32, to: &str, lan: Ipv4Net) -> Result<Self, Vec<ForwardProblem>> {
        let mut problems = Vec::new();
        let protocol = protocol.parse::<Protocol>().map_err(|e| problems.push(("protocol", e))).ok();
        let port = match u16::try_from(port) {
            Ok(p) if p != 0 => Some(p),
            _ => {
                problems.push(("port", format!("{port} is not a port (1 to 65535)")));
                None
            }
        };
        let to = match to.parse::<SocketAddrV4>() {
            Err(_) => {
                problems.push(("to", format!("{to:?} is not a LAN address:port like \"10.20.0.50:22\"")));
                None
            }
            Ok(addr) => match lan_host_problem(*addr.ip(), lan) {
                Some(why) => {
                    problems.push(("to", why));
                    None
                }
                None if addr.port() == 0 => {
                    problems.push(("to", format!("{addr}: port 0 is not a port")));
                    None
                }
                None => Some(addr),
            },
        };
        match (protocol, port, to) {
            (Some(protocol), Some(port), Some(to)) if problems.is_empty() => {
                Ok(PortForward { protocol, port, to })
            }
            _ => Err(problems),
        }
    }

    /// Why this forward would take a port the appliance serves itself on its WAN address, if it
    /// would: `own` lists those (protocol, port) pairs with what serves them.
    pub fn takes_own_port(&self, own: &[(Protocol, u16, &str)]) -> Option<String> {
        own.iter().find(|(proto, port, _)| *proto == self.protocol && *port == self.port).map(
            |(_, _, what)| {
                format!(
                    "{} port {} is the appliance's own {what}; choose another port",
                    self.protocol, self.port
                )
            },
        )
    }
}

impl fmt::Display for PortForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} -> {}", self.protocol, self.port, self.to)
    }
}

/// Why `ip` cannot receive forwarded traffic on `lan`, if it cannot: outside the subnet, or its
/// network, broadcast or gateway address.
fn lan_host_problem(ip: Ipv4Addr, lan: Ipv4Net) -> Option<String> {
    if !lan.contains(&ip) {
        Some(format!("{ip} is outside the LAN {}", lan.trunc()))
    } else if ip == lan.network() || ip == lan.broadcast() {
        Some(format!("{ip} is the network or broadcast address of {}", lan.trunc()))
    } else if ip == lan.addr() {
        Some(format!("{ip} is the appliance itself"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lan() -> Ipv4Net {
        "10.20.0.1/24".parse().expect("net")
    }

    #[test]
    fn a_good_forward_parses_and_prints() {
        let f = PortForward::check("TCP", 2222, "10.20.0.50:22", lan()).expect("valid");
        assert_eq!(f.protocol, Protocol::Tcp);
        assert_eq!(f.port, 2222);
        assert_eq!(f.to.to_string(), "10.20.0.50:22");
        assert_eq!(f.to_string(), "tcp/2222 -> 10.20.0.50:22");
    }

    #[test]
    fn every_problem_is_named_with_its_field() {
        let got = PortForward::check("icmp", 70000, "10.30.0.5:22", lan()).expect_err("invalid");
        assert_eq!(
            got,
            vec![
                ("protocol", "\"icmp\" is not a protocol; use \"tcp\" or \"udp\"".to_owned()),
                ("port", "70000 is not a port (1 to 65535)".to_owned()),
                ("to", "10.30.0.5 is outside the LAN 10.20.0.0/24".to_owned()),
            ]
        );
        for (to, why) in [
            ("10.20.0.1:22", "is the appliance itself"),
            ("10.20.0.255:22", "broadcast"),
            ("10.20.0.0:22", "network"),
            ("10.20.0.9:0", "port 0"),
            ("10.20.0.9", "is not a LAN address:port"),
        ] {
            let got = PortForward::check("udp", 53, to, lan()).expect_err(to);
            assert!(got[0].0 == "to" && got[0].1.contains(why), "{to}: {got:?}");
        }
        assert_eq!(PortForward::check("tcp", 0, "10.20.0.9:1", lan()).expect_err("0")[0].0, "port");
    }

    #[test]
    fn a_forward_may_not_take_the_appliances_own_ports() {
        let own = [(Protocol::Tcp, 80, "proxy (proxy.http_listen)"), (Protocol::Udp, 53, "DNS (dns.listen)")];
        let f = PortForward::check("tcp", 80, "10.20.0.9:8080", lan()).expect("valid");
        assert!(f.takes_own_port(&own).is_some_and(|w| w.contains("proxy")));
        let f = PortForward::check("tcp", 53, "10.20.0.9:53", lan()).expect("valid");
        assert_eq!(f.takes_own_port(&own), None);
    }

    #[test]
    fn forwards_round_trip_through_json() {
        let f = PortForward::check("udp", 51820, "10.20.0.7:51820", lan()).expect("valid");
        let text = serde_json::to_string(&f).expect("json");
        assert_eq!(text, r#"{"protocol":"udp","port":51820,"to":"10.20.0.7:51820"}"#);
        assert_eq!(serde_json::from_str::<PortForward>(&text).expect("back"), f);
    }
}
