//! `net.ipv4.ip_forward`: the kernel routes between the appliance's interfaces only with it on.
//! It is per network namespace, so this turns it on for the appliance's alone (the container's,
//! not the Proxmox host's).

use super::error::NatError;

/// The switch, in the appliance's own namespace.
pub(super) const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Turns IPv4 forwarding on and checks that it took (a read-only /proc/sys accepts nothing).
pub(super) async fn enable_ip_forward() -> Result<(), NatError> {
    let io_err = |source| NatError::IpForward { path: IP_FORWARD, source };
    let current = tokio::fs::read_to_string(IP_FORWARD).await.map_err(io_err)?;
    if current.trim() == "1" {
        return Ok(());
    }
    tokio::fs::write(IP_FORWARD, b"1\n").await.map_err(io_err)?;
    let found = tokio::fs::read_to_string(IP_FORWARD).await.map_err(io_err)?;
    if found.trim() == "1" {
        Ok(())
    } else {
        Err(NatError::IpForwardOff { path: IP_FORWARD, found: found.trim().to_owned() })
    }
}
