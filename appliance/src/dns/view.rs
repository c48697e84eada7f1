//! Split horizon: which view of our names a client gets, decided by its source address alone.
//!
//! The LAN view (the app LAN, and the appliance itself over loopback) sees host names and gets
//! recursion. Everyone else gets the WAN view: authoritative-only, host names hidden, nothing
//! forwarded, so the appliance is never an open resolver.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// What a client may see and ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// Clients on the app LAN and the appliance itself: host names, recursion.
    Lan,
    /// Everyone else (the management network, the user's workstation): app names only, no recursion.
    Wan,
}

impl View {
    /// Whether this view is offered recursion (forwarding); also the RA bit of every answer.
    pub fn recursion(self) -> bool {
        self == View::Lan
    }

    pub fn as_str(self) -> &'static str {
        match self {
            View::Lan => "lan",
            View::Wan => "wan",
        }
    }
}

/// The classifier: the source networks that get the LAN view; every other source gets the WAN view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Views {
    lan: Vec<IpNet>,
}

impl Views {
    /// Exactly these source networks get the LAN view. Tests use this to see the WAN view from
    /// loopback (a LAN of `10.20.0.0/24` only).
    pub fn new(lan: impl IntoIterator<Item = IpNet>) -> Self {
        Views { lan: lan.into_iter().collect() }
    }

    /// The appliance's own policy: the LAN subnet of `lan.address`, and loopback (the appliance
    /// asking itself).
    pub fn for_lan(lan: Ipv4Net) -> Self {
        let loopback_v4 = Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or_default();
        let loopback_v6 = Ipv6Net::new(Ipv6Addr::LOCALHOST, 128).unwrap_or_default();
        Views::new([IpNet::V4(lan.trunc()), IpNet::V4(loopback_v4), IpNet::V6(loopback_v6)])
    }

    /// The view of a client at `source`. IPv4-mapped IPv6 sources (a dual-stack socket) count
    /// as the IPv4 address they carry.
    pub fn classify(&self, source: IpAddr) -> View {
        let source = source.to_canonical();
        if self.lan.iter().any(|net| net.contains(&source)) { View::Lan } else { View::Wan }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn lan_subnet_and_loopback_are_lan_everything_else_wan() {
        let views = Views::for_lan("10.20.0.1/24".parse().unwrap_or_default());
        for lan in
            ["10.20.0.1", "10.20.0.77", "10.20.0.255", "127.0.0.1", "127.8.9.10", "::1", "::ffff:10.20.0.9"]
        {
            assert_eq!(views.classify(ip(lan)), View::Lan, "{lan}");
        }
        for wan in
            ["10.20.1.1", "192.168.1.20", "10.19.255.255", "2001:db8::1", "::ffff:192.0.2.1", "fe80::1"]
        {
            assert_eq!(views.classify(ip(wan)), View::Wan, "{wan}");
        }
    }

    #[test]
    fn an_explicit_classifier_can_leave_loopback_out() {
        let views = Views::new(["10.20.0.0/24".parse().unwrap_or(IpNet::V4(Ipv4Net::default()))]);
        assert_eq!(views.classify(ip("127.0.0.1")), View::Wan);
        assert_eq!(views.classify(ip("10.20.0.5")), View::Lan);
    }
}
