//! The server sockets: UDP and TCP on each `dns.listen` address, bound by the caller (run.rs)
//! and handed to [`super::serve`]; and UDP I/O that answers from the address a query was sent to.
//!
//! A socket on `0.0.0.0:53` receives queries for every address of the appliance, but a plain
//! `send_to` leaves the reply's source to the routing table: a LAN client asking the WAN address
//! would get its reply from the gateway address and drop it as a stranger's. So UDP sockets ask
//! for the destination of each datagram (IP_PKTINFO / IPV6_RECVPKTINFO) and replies are sent from
//! it.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, sendmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::{TcpListener, UdpSocket};

/// Kernel receive buffer asked for, so a burst of queries waits in the kernel rather than
/// being dropped (the kernel caps it at net.core.rmem_max).
const RECV_BUFFER: usize = 4 << 20;
/// Pending TCP connections the kernel keeps while every connection slot is busy.
const TCP_BACKLOG: i32 = 1024;

/// A UDP socket on `addr` that reports each datagram's destination. An IPv6 address serves
/// IPv6 only, so `[::]:53` and `0.0.0.0:53` can both be listed.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket(addr, Type::DGRAM, Protocol::UDP)?;
    // Best effort: the kernel caps it.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    if addr.is_ipv6() {
        setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?;
    } else {
        setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?;
    }
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

/// The local end a datagram arrived at: where its reply must come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    V4(Ipv4Addr),
    V6 { addr: Ipv6Addr, ifindex: u32 },
}

/// Buffer for the control message of one received datagram (reused across receives).
pub fn control_buffer() -> Vec<u8> {
    nix::cmsg_space!(libc::in6_pktinfo)
}

/// One datagram into `buf`: its length, its sender, and the local address it was sent to
/// (`None` if the kernel did not say, as on a socket not made by [`bind_udp`]).
pub async fn recv(
    socket: &UdpSocket,
    buf: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<Local>)> {
    let fd = socket.as_raw_fd();
    socket
        .async_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut *control), MsgFlags::empty())?;
            let from = msg.address.as_ref().and_then(socket_addr).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "datagram without a usable source address")
            })?;
            let local = msg.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::Ipv4PacketInfo(info) => {
                        Some(Local::V4(Ipv4Addr::from(info.ipi_spec_dst.s_addr.to_ne_bytes())))
                    }
                    ControlMessageOwned::Ipv6PacketInfo(info) => Some(Local::V6 {
                        addr: Ipv6Addr::from(info.ipi6_addr.s6_addr),
                        ifindex: info.ipi6_ifindex,
                    }),
                    _ => None,
                })
            });
            Ok((msg.bytes, from, local))
        })
        .await
}

/// Sends `buf` to `to`, from `local` when given.
pub async fn send(socket: &UdpSocket, buf: &[u8], to: SocketAddr, local: Option<Local>) -> io::Result<usize> {
    let fd = socket.as_raw_fd();
    let dest = SockaddrStorage::from(to);
    socket
        .async_io(Interest::WRITABLE, || {
            let iov = [IoSlice::new(buf)];
            let sent = match local {
                Some(Local::V4(addr)) => {
                    let info = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr { s_addr: u32::from_ne_bytes(addr.octets()) },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    sendmsg(
                        fd,
                        &iov,
                        &[ControlMessage::Ipv4PacketInfo(&info)],
                        MsgFlags::empty(),
                        Some(&dest),
                    )
                }
                Some(Local::V6 { addr, ifindex }) => {
                    let info = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr { s6_addr: addr.octets() },
                        ipi6_ifindex: ifindex,
                    };
                    sendmsg(
                        fd,
                        &iov,
                        &[ControlMessage::Ipv6PacketInfo(&info)],
                        MsgFlags::empty(),
                        Some(&dest),
                    )
                }
                None => sendmsg(fd, &iov, &[], MsgFlags::empty(), Some(&dest)),
            };
            Ok(sent?)
        })
        .await
}

fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_report_the_address_they_were_sent_to() {
        let server = bind_udp("0.0.0.0:0".parse().unwrap()).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"ping", ("127.0.0.3", port)).await.unwrap();
        let (mut buf, mut control) = (vec![0u8; 64], control_buffer());
        let (len, from, local) = recv(&server, &mut buf, &mut control).await.unwrap();
        assert_eq!((&buf[..len], from), (&b"ping"[..], client.local_addr().unwrap()));
        assert_eq!(local, Some(Local::V4(Ipv4Addr::new(127, 0, 0, 3))));
        send(&server, b"pong", from, local).await.unwrap();
        let (len, replier) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"pong");
        assert_eq!(
            replier,
            SocketAddr::from(([127, 0, 0, 3], port)),
            "the reply comes from the address asked"
        );
    }
}
