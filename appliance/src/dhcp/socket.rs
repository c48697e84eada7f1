//! The server socket: UDP port 67 on the LAN interface only, able to broadcast, and its
//! replacement when the LAN interface is replaced.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};

/// Kernel receive buffer we ask for, so a burst of requests waits in the kernel rather than
/// being dropped while commits are in flight.
const RECV_BUFFER: usize = 4 << 20;

/// Binds `0.0.0.0:port` to `interface` (SO_BINDTODEVICE): clients without an address send
/// to 255.255.255.255, so binding an address would not see them, and the device binding keeps
/// the server off every other interface (the WAN side above all).
pub fn bind(interface: &str, port: u16) -> io::Result<tokio::net::UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket
        .bind_device(Some(interface.as_bytes()))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind to interface {interface:?}: {e}")))?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into()).map_err(|e| {
        io::Error::new(e.kind(), format!("cannot bind udp port {port} on {interface:?}: {e}"))
    })?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// A socket bound to a replaced LAN interface, for a running server to serve on instead of its
/// old one (bound to an interface that is gone, it would hear nothing).
#[derive(Debug)]
pub struct Rebind {
    pub socket: tokio::net::UdpSocket,
    /// The new interface's index, for the neighbour entries of unicast replies.
    pub index: u32,
}
