//! Binding the services' sockets before they start, so a port in use or an address the
//! appliance does not have fails the start with the address named.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tracing::info;

use crate::dns;

/// A TCP listener on every address of `what` (SO_REUSEADDR, a deep backlog).
pub(super) fn tcp(what: &str, listen: &[SocketAddr]) -> anyhow::Result<Vec<TcpListener>> {
    listen
        .iter()
        .map(|&addr| {
            let listener =
                dns::socket::bind_tcp(addr).with_context(|| format!("cannot bind {what} on {addr}"))?;
            info!(addr = %listener.local_addr()?, "listening for {what}");
            Ok(listener)
        })
        .collect()
}

/// UDP and TCP on every DNS listen address.
pub(super) fn dns(listen: &[SocketAddr]) -> anyhow::Result<(Vec<UdpSocket>, Vec<TcpListener>)> {
    let (mut udp, mut tcp) = (Vec::new(), Vec::new());
    for &addr in listen {
        let socket = dns::socket::bind_udp(addr).with_context(|| format!("cannot bind dns/udp on {addr}"))?;
        info!(addr = %socket.local_addr()?, "listening for dns/udp");
        udp.push(socket);
        let listener =
            dns::socket::bind_tcp(addr).with_context(|| format!("cannot bind dns/tcp on {addr}"))?;
        info!(addr = %listener.local_addr()?, "listening for dns/tcp");
        tcp.push(listener);
    }
    Ok((udp, tcp))
}
