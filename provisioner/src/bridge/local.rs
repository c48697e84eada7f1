//! Whether `proximity` runs on the Proxmox node it talks to: the API's address (the URL's host,
//! resolved) is one of this machine's own addresses, or loopback. Host mode makes a bridge and
//! writes `/etc/network/interfaces.d` *here*, so it must refuse on any other machine (a user's
//! workstation with `sudo`) rather than put the node's bridge on the wrong host.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;

/// Why the check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot resolve the Proxmox host {host}")]
    Resolve { host: String, source: io::Error },
    #[error("cannot list this machine's addresses")]
    Addresses(#[source] nix::Error),
}

/// The addresses `host` (a name or an address literal, IPv6 with or without brackets) resolves to.
pub async fn resolve(host: &str, port: u16) -> Result<BTreeSet<IpAddr>, LocalError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(BTreeSet::from([ip]));
    }
    let addrs = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|source| LocalError::Resolve { host: host.to_owned(), source })?;
    Ok(addrs.map(|a| a.ip()).collect())
}

/// This machine's addresses (every interface of the network namespace it runs in).
pub fn own_addresses() -> Result<BTreeSet<IpAddr>, LocalError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(LocalError::Addresses)?;
    Ok(addrs
        .filter_map(|a| {
            let addr = a.address?;
            if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect())
}

/// Whether any of `api` is loopback or one of `own`.
pub fn is_local(api: &BTreeSet<IpAddr>, own: &BTreeSet<IpAddr>) -> bool {
    api.iter().any(|ip| ip.is_loopback() || own.contains(ip))
}

/// Whether the node at `host` is this machine.
pub async fn on_the_node(host: &str, port: u16) -> Result<bool, LocalError> {
    Ok(is_local(&resolve(host, port).await?, &own_addresses()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_and_own_addresses_are_local_others_not() -> Result<(), LocalError> {
        assert!(on_the_node("127.0.0.1", 8006).await?);
        assert!(on_the_node("[::1]", 8006).await?);
        assert!(on_the_node("localhost", 8006).await?);
        // TEST-NET-1 (RFC 5737) is never a local address.
        assert!(!on_the_node("192.0.2.7", 8006).await?);
        let own = BTreeSet::from(["10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))]);
        assert!(is_local(&BTreeSet::from([IpAddr::from([10, 1, 2, 3])]), &own));
        assert!(!is_local(&BTreeSet::from([IpAddr::from([10, 1, 2, 4])]), &own));
        Ok(())
    }
}
