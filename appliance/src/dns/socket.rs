//! The server sockets: UDP and TCP on each `dns.listen` address. Bound by the caller (run.rs)
//! and handed to [`super::serve`].

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

/// Kernel receive buffer asked for, so a burst of queries waits in the kernel rather than
/// being dropped (the kernel caps it at net.core.rmem_max).
const RECV_BUFFER: usize = 4 << 20;
/// Pending TCP connections the kernel keeps while every connection slot is busy.
const TCP_BACKLOG: i32 = 1024;

/// A UDP socket on `addr`. An IPv6 address serves IPv6 only, so `[::]:53` and `0.0.0.0:53`
/// can both be listed.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket(addr, Type::DGRAM, Protocol::UDP)?;
    // Best effort: the kernel caps it.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A TCP listener on `addr` (SO_REUSEADDR, so a restart is not refused while old connections
/// linger in TIME_WAIT).
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket(addr, Type::STREAM, Protocol::TCP)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

fn socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}
