//! What a DHCP client hands to its script, as the lab records it: one line per call, tab-separated
//! `key=value` fields (written by the scripts in [`super::script`]), and the [`Lease`] read from it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// One call of a client's script: `kind` is dhclient's `reason` (`BOUND`, `REBOOT`, ...) or
/// udhcpc's first argument (`bound`, `renew`, `deconfig`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub vars: BTreeMap<String, String>,
}

impl Event {
    /// A variable the client set; empty when it was unset.
    pub fn var(&self, name: &str) -> &str {
        self.vars.get(name).map_or("", String::as_str)
    }
}

/// Reads every recorded event; a missing file means none yet. `kind_key` names the field that
/// holds the kind (`reason` for dhclient, `event` for udhcpc).
pub fn read_events(path: &Path, kind_key: &str) -> Result<Vec<Event>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    // Only complete lines: a script may be writing the next one right now.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    Ok(complete.lines().filter(|l| !l.is_empty()).map(|line| parse_line(line, kind_key)).collect())
}

fn parse_line(line: &str, kind_key: &str) -> Event {
    let vars: BTreeMap<String, String> = line
        .split('\t')
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Event { kind: vars.get(kind_key).cloned().unwrap_or_default(), vars }
}

/// A lease as the client saw it: what a user would find configured on their machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The script call it came from (`BOUND`, `REBOOT`, `bound`, `renew`, ...).
    pub event: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub routers: Vec<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain: String,
    /// Domain search list, without the trailing dot dhclient prints for each name.
    pub search: Vec<String>,
    pub lease_time: Duration,
    pub server_id: Option<Ipv4Addr>,
}

/// The variable names one client uses for each lease field.
#[derive(Debug)]
pub(crate) struct LeaseVars {
    pub ip: &'static str,
    pub routers: &'static str,
    pub dns: &'static str,
    pub domain: &'static str,
    pub search: &'static str,
    pub lease_time: &'static str,
    pub server_id: &'static str,
}

impl Lease {
    /// Reads a lease from a script call; `prefix_len` is worked out by the caller because the two
    /// clients spell the netmask differently.
    pub(crate) fn from_event(event: &Event, names: &LeaseVars, prefix_len: u8) -> Result<Lease> {
        let ip = addr(event.var(names.ip)).with_context(|| format!("{} in {event:?}", names.ip))?;
        let lease_secs: u64 = event
            .var(names.lease_time)
            .parse()
            .with_context(|| format!("{} is not a number of seconds in {event:?}", names.lease_time))?;
        let server_id = match event.var(names.server_id) {
            "" => None,
            id => Some(addr(id).with_context(|| format!("{} in {event:?}", names.server_id))?),
        };
        Ok(Lease {
            event: event.kind.clone(),
            ip,
            prefix_len,
            routers: addrs(event.var(names.routers))
                .with_context(|| format!("{} in {event:?}", names.routers))?,
            dns_servers: addrs(event.var(names.dns))
                .with_context(|| format!("{} in {event:?}", names.dns))?,
            domain: event.var(names.domain).to_owned(),
            search: event
                .var(names.search)
                .split_whitespace()
                .map(|d| d.trim_end_matches('.').to_owned())
                .collect(),
            lease_time: Duration::from_secs(lease_secs),
            server_id,
        })
    }
}

fn addr(text: &str) -> Result<Ipv4Addr> {
    text.parse().with_context(|| format!("{text:?} is not an IPv4 address"))
}

fn addrs(text: &str) -> Result<Vec<Ipv4Addr>> {
    text.split_whitespace().map(addr).collect()
}

/// Prefix length of a dotted netmask (`255.255.255.0` → 24); a non-contiguous mask is an error.
pub fn prefix_of_mask(mask: &str) -> Result<u8> {
    let bits = u32::from(addr(mask)?);
    let len = bits.leading_ones();
    if bits.checked_shl(len).unwrap_or(0) != 0 {
        bail!("{mask} is not a contiguous netmask");
    }
    Ok(u8::try_from(len).unwrap_or(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_partial_lines_wait() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("events");
        std::fs::write(&path, "reason=BOUND\tnew_ip_address=10.20.0.100\t\nreason=RENEW\tnew_ip")?;
        let events = read_events(&path, "reason")?;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "BOUND");
        assert_eq!(events[0].var("new_ip_address"), "10.20.0.100");
        assert_eq!(events[0].var("unset"), "");
        assert!(read_events(&dir.path().join("none"), "reason")?.is_empty());
        Ok(())
    }

    #[test]
    fn netmasks() -> Result<()> {
        assert_eq!(prefix_of_mask("255.255.255.0")?, 24);
        assert_eq!(prefix_of_mask("255.255.255.255")?, 32);
        assert_eq!(prefix_of_mask("0.0.0.0")?, 0);
        assert!(prefix_of_mask("255.0.255.0").is_err());
        Ok(())
    }
}
