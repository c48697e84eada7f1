//! Value types used in the config and across the appliance: MAC addresses, IPv4 ranges, DNS labels.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ethernet hardware address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// Why a MAC address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (expected six hex pairs like 52:54:00:12:34:56)")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_owned());
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An inclusive range of IPv4 addresses, written `first-last`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Range {
    first: Ipv4Addr,
    last: Ipv4Addr,
}

/// Why an address range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeParseError {
    #[error("{0:?} is not a range (expected FIRST-LAST, like 10.20.0.100-10.20.0.250)")]
    Syntax(String),
    #[error("{0:?} is not an IPv4 address")]
    Address(String),
    #[error("range {first}-{last} is empty: the first address is above the last")]
    Reversed { first: Ipv4Addr, last: Ipv4Addr },
}

impl Ipv4Range {
    /// A range from `first` to `last` inclusive; `None` when `first > last`.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Option<Self> {
        (first <= last).then_some(Ipv4Range { first, last })
    }

    pub fn first(&self) -> Ipv4Addr {
        self.first
    }

    pub fn last(&self) -> Ipv4Addr {
        self.last
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }

    pub fn overlaps(&self, other: &Ipv4Range) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// Number of addresses in the range.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last) - u32::from(self.first)) + 1
    }

    /// A range always holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every address of the range, in order.
    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        (u32::from(self.first)..=u32::from(self.last)).map(Ipv4Addr::from)
    }
}

impl FromStr for Ipv4Range {
    type Err = RangeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.split_once('-').ok_or_else(|| RangeParseError::Syntax(s.to_owned()))?;
        let parse =
            |p: &str| p.trim().parse::<Ipv4Addr>().map_err(|_| RangeParseError::Address(p.trim().to_owned()));
        let (first, last) = (parse(a)?, parse(b)?);
        Ipv4Range::new(first, last).ok_or(RangeParseError::Reversed { first, last })
    }
}

impl fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl fmt::Debug for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Longest DNS label (RFC 1035 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest DNS name in presentation form, without the final dot.
pub const MAX_NAME_LEN: usize = 253;

/// The label of the appliance's own name server (`ns.<domain>`): no host may take it.
pub const NS_LABEL: &str = "ns";

/// Labels the appliance keeps for itself under its domain.
pub fn is_reserved_label(label: &str) -> bool {
    label.eq_ignore_ascii_case(NS_LABEL)
}

/// Why a DNS label or name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("{0:?} is longer than 63 characters")]
    LabelTooLong(String),
    #[error("{0:?} is longer than 253 characters")]
    NameTooLong(String),
    #[error("{0:?} may only hold letters, digits and '-', and may not start or end with '-'")]
    BadLabel(String),
}

/// Checks a single host label (letters, digits, hyphen; no leading or trailing hyphen).
pub fn check_label(label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::Empty);
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong(label.to_owned()));
    }
    let ok = label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if ok { Ok(()) } else { Err(NameError::BadLabel(label.to_owned())) }
}

/// Checks a dotted domain name such as `prox.local` (a trailing dot is allowed).
pub fn check_domain(name: &str) -> Result<(), NameError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::NameTooLong(name.to_owned()));
    }
    name.split('.').try_for_each(check_label)
}

/// Turns whatever a client calls itself into a valid lower-case DNS label, or `None` when
/// nothing usable is left. Only the first label of a dotted name is kept; characters outside
/// `[a-z0-9-]` become `-`, runs of `-` collapse, and leading/trailing `-` are trimmed.
pub fn sanitize_label(raw: &str) -> Option<String> {
    let first = raw.split('.').next().unwrap_or_default();
    let mut out = String::with_capacity(first.len().min(MAX_LABEL_LEN));
    for c in first.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
        if out.len() == MAX_LABEL_LEN {
            break;
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_and_rejects_garbage() {
        let mac: MacAddr = "52:54:00:AB:cd:0f".parse().expect("valid");
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!("52-54-00-ab-cd-0f".parse::<MacAddr>(), Ok(mac));
        for bad in ["", "52:54:00:ab:cd", "52:54:00:ab:cd:0f:11", "5:54:00:ab:cd:0f", "zz:54:00:ab:cd:0f"] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn range_parses_and_measures() {
        let r: Ipv4Range = "10.20.0.100-10.20.0.250".parse().expect("valid");
        assert_eq!(r.len(), 151);
        assert!(r.contains(Ipv4Addr::new(10, 20, 0, 100)));
        assert!(!r.contains(Ipv4Addr::new(10, 20, 0, 251)));
        assert!(matches!("10.20.0.9-10.20.0.2".parse::<Ipv4Range>(), Err(RangeParseError::Reversed { .. })));
        assert!("10.20.0.9".parse::<Ipv4Range>().is_err());
    }

    #[test]
    fn labels_are_sanitised() {
        assert_eq!(sanitize_label("My_Laptop.lan").as_deref(), Some("my-laptop"));
        assert_eq!(sanitize_label("--x--").as_deref(), Some("x"));
        assert_eq!(sanitize_label("über"), Some("ber".to_owned()));
        assert_eq!(sanitize_label("..."), None);
        assert_eq!(sanitize_label(&"a".repeat(100)).map(|s| s.len()), Some(63));
        assert!(check_label("web-1").is_ok());
        assert!(check_label("-web").is_err());
        assert!(check_domain("prox.local.").is_ok());
        assert!(check_domain("prox..local").is_err());
    }
}
