//! The server sockets: UDP and TCP on each `dns.listen` address, bound by the caller (run.rs)
//! and handed to [`super::serve`]; and UDP I/O that answers from the address a query was sent to.
//!
//! A socket on `0.0.0.0:53` receives queries for every address of the appliance, but a plain
//! `send_to` leaves the reply's source to the routing table: a LAN client asking the WAN address
//! would get its reply from the gateway address and drop it as a stranger's. So UDP sockets ask
//! for the destination of each datagram (IP_PKTINFO / IPV6_RECVPKTINFO) and replies are sent from
//! it.
//!
//! Datagrams are received and sent in batches (`recvmmsg`, `sendmmsg`): under load one pair of
//! system calls serves many queries, which is most of what a query costs besides the kernel's
//! own UDP work.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, RecvMsg, SockaddrStorage, recvmmsg,
    sendmmsg, sendmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
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

/// One datagram of a batch: where it is in its buffer, who sent it, and where it was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    pub local: Option<Local>,
}

/// Receives up to one datagram per buffer of `bufs` with one `recvmmsg`: waits for the first as
/// long as the socket's receive timeout allows, then takes what is already queued without
/// waiting. `got[i]` describes `bufs[i]`; a datagram without a usable source address is skipped
/// (its buffer is left unused).
pub fn recv_batch(
    fd: BorrowedFd<'_>,
    bufs: &mut [Vec<u8>],
    got: &mut Vec<(usize, Received)>,
) -> io::Result<()> {
    got.clear();
    // Fresh headers every call: the kernel shrinks each header's name and control lengths to what
    // it wrote, and nix offers no way to reset them.
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(bufs.len(), Some(control_buffer()));
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs.iter_mut().map(|buf| [IoSliceMut::new(buf)]).collect();
    let results = recvmmsg(fd.as_raw_fd(), &mut headers, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None)?;
    for (i, msg) in results.enumerate() {
        let Some(from) = msg.address.as_ref().and_then(socket_addr) else { continue };
        got.push((i, Received { len: msg.bytes, from, local: local_of(&msg) }));
    }
    Ok(())
}

/// A reply waiting in a batch.
#[derive(Debug)]
pub struct Outgoing {
    pub bytes: Vec<u8>,
    pub to: SocketAddr,
    pub from: Option<Local>,
}

/// Sends `replies` with as few `sendmmsg` calls as their source addresses allow (one for each
/// run of replies from the same local address). Returns the replies that could not be sent,
/// with the last error; the others went out.
pub fn send_batch(fd: BorrowedFd<'_>, replies: &[Outgoing]) -> (usize, Option<io::Error>) {
    let (mut failed, mut last) = (0, None);
    let mut rest = replies;
    while let Some(first) = rest.first() {
        let run = rest.iter().take_while(|r| r.from == first.from).count();
        let (group, tail) = rest.split_at(run);
        let mut pending = group;
        while !pending.is_empty() {
            match send_group(fd, pending) {
                Ok(0) => {
                    failed += pending.len();
                    break;
                }
                Ok(sent) => pending = pending.get(sent..).unwrap_or_default(),
                // The error belongs to the first unsent reply: drop it, go on with the next.
                Err(e) => {
                    failed += 1;
                    last = Some(e);
                    pending = pending.get(1..).unwrap_or_default();
                }
            }
        }
        rest = tail;
    }
    (failed, last)
}

/// One `sendmmsg` of replies that all come from the same local address.
fn send_group(fd: BorrowedFd<'_>, group: &[Outgoing]) -> io::Result<usize> {
    let Some(first) = group.first() else { return Ok(0) };
    let iovs: Vec<[IoSlice<'_>; 1]> = group.iter().map(|r| [IoSlice::new(&r.bytes)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> =
        group.iter().map(|r| Some(SockaddrStorage::from(r.to))).collect();
    let sent = match first.from {
        Some(Local::V4(addr)) => {
            let info = v4_pktinfo(addr);
            let mut headers =
                MultiHeaders::preallocate(group.len(), Some(nix::cmsg_space!(libc::in_pktinfo)));
            sendmmsg(
                fd.as_raw_fd(),
                &mut headers,
                &iovs,
                &addrs,
                [ControlMessage::Ipv4PacketInfo(&info)],
                MsgFlags::empty(),
            )?
            .count()
        }
        Some(Local::V6 { addr, ifindex }) => {
            let info = v6_pktinfo(addr, ifindex);
            let mut headers =
                MultiHeaders::preallocate(group.len(), Some(nix::cmsg_space!(libc::in6_pktinfo)));
            sendmmsg(
                fd.as_raw_fd(),
                &mut headers,
                &iovs,
                &addrs,
                [ControlMessage::Ipv6PacketInfo(&info)],
                MsgFlags::empty(),
            )?
            .count()
        }
        None => {
            let mut headers = MultiHeaders::preallocate(group.len(), None);
            sendmmsg(fd.as_raw_fd(), &mut headers, &iovs, &addrs, [], MsgFlags::empty())?.count()
        }
    };
    Ok(sent)
}

fn v4_pktinfo(addr: Ipv4Addr) -> libc::in_pktinfo {
    libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: libc::in_addr { s_addr: u32::from_ne_bytes(addr.octets()) },
        ipi_addr: libc::in_addr { s_addr: 0 },
    }
}

fn v6_pktinfo(addr: Ipv6Addr, ifindex: u32) -> libc::in6_pktinfo {
    libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: addr.octets() }, ipi6_ifindex: ifindex }
}

/// The local address a received datagram was sent to, from its packet-info control message.
fn local_of<S>(msg: &RecvMsg<'_, '_, S>) -> Option<Local> {
    msg.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                Some(Local::V4(Ipv4Addr::from(info.ipi_spec_dst.s_addr.to_ne_bytes())))
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                Some(Local::V6 { addr: Ipv6Addr::from(info.ipi6_addr.s6_addr), ifindex: info.ipi6_ifindex })
            }
            _ => None,
        })
    })
}

/// Sends `buf` to `to`, from `local` when given. `flags` may say `MSG_DONTWAIT` to fail with
/// `WouldBlock` rather than wait for room in a blocking socket's send buffer.
pub fn send(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    to: SocketAddr,
    local: Option<Local>,
    flags: MsgFlags,
) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    let dest = SockaddrStorage::from(to);
    let iov = [IoSlice::new(buf)];
    let sent = match local {
        Some(Local::V4(addr)) => {
            let info = v4_pktinfo(addr);
            sendmsg(fd, &iov, &[ControlMessage::Ipv4PacketInfo(&info)], flags, Some(&dest))
        }
        Some(Local::V6 { addr, ifindex }) => {
            let info = v6_pktinfo(addr, ifindex);
            sendmsg(fd, &iov, &[ControlMessage::Ipv6PacketInfo(&info)], flags, Some(&dest))
        }
        None => sendmsg(fd, &iov, &[], flags, Some(&dest)),
    };
    Ok(sent?)
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
    use std::os::fd::AsFd;

    fn server() -> (std::net::UdpSocket, u16) {
        let server = bind_udp("0.0.0.0:0".parse().unwrap()).unwrap().into_std().unwrap();
        server.set_nonblocking(false).unwrap();
        server.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let port = server.local_addr().unwrap().port();
        (server, port)
    }

    #[tokio::test]
    async fn datagrams_report_the_address_they_were_sent_to_and_replies_come_from_it() {
        let (server, port) = server();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        // Two local addresses in one batch: the replies go out in two groups.
        for (n, to) in [(1u8, "127.0.0.3"), (2, "127.0.0.3"), (3, "127.0.0.4")] {
            client.send_to(&[n], (to, port)).unwrap();
        }
        let mut bufs = vec![vec![0u8; 64]; 8];
        let mut got = Vec::new();
        let mut replies = Vec::new();
        while replies.len() < 3 {
            recv_batch(server.as_fd(), &mut bufs, &mut got).unwrap();
            for &(i, r) in &got {
                assert_eq!((r.len, r.from), (1, client.local_addr().unwrap()));
                replies.push(Outgoing { bytes: vec![bufs[i][0] + 100], to: r.from, from: r.local });
            }
        }
        let locals: Vec<_> = replies.iter().map(|r| r.from).collect();
        let (a, b) = (Local::V4(Ipv4Addr::new(127, 0, 0, 3)), Local::V4(Ipv4Addr::new(127, 0, 0, 4)));
        assert_eq!(locals, [Some(a), Some(a), Some(b)]);
        assert_eq!(send_batch(server.as_fd(), &replies).0, 0);
        let mut buf = [0u8; 8];
        for (n, from) in [(101u8, "127.0.0.3"), (102, "127.0.0.3"), (103, "127.0.0.4")] {
            let (len, replier) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], [n]);
            assert_eq!(
                replier,
                format!("{from}:{port}").parse().unwrap(),
                "the reply comes from the address asked"
            );
        }
        send(server.as_fd(), b"pong", client.local_addr().unwrap(), Some(a), MsgFlags::MSG_DONTWAIT).unwrap();
        let (len, replier) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..len], replier.ip()), (&b"pong"[..], "127.0.0.3".parse().unwrap()));
    }
}
