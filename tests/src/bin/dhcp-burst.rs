//! `dhcp-burst`: many DHCP clients at once, speaking as a relay agent, for crash and load tests.
//!
//! Run inside a namespace that has `--giaddr` configured on the LAN. It binds `giaddr:67` (where
//! the server answers relayed messages) and runs `--clients` DORA exchanges with `--concurrency`
//! in flight, each with its own MAC (`02:<prefix>:<n>`) and xid. Every outcome is printed as a
//! line on stdout, flushed at once, so a test can kill the server mid-burst and know exactly
//! which leases were acknowledged:
//!
//! ```text
//! ack 02:b0:00:00:00:07 10.20.1.7
//! nak 02:b0:00:00:00:08 10.20.1.9
//! fail 02:b0:00:00:00:09 no offer
//! ```
//!
//! `--reboot FILE` instead sends each `ack MAC IP` line of FILE as an INIT-REBOOT request for
//! that address and prints the answer, so a test can check that a restarted server still knows
//! every lease it acknowledged.
//!
//! `--hostile N` first sends N malformed or hostile datagrams (random bytes, truncated and
//! mutated messages, impossible lengths); `--flood N` sends N DISCOVERs from random MACs and
//! never completes them. Both print one line (`hostile N sent`, `flood N sent`) and then run
//! the clients as usual (`--clients 0` for none).
//!
//! `--rate N` starts N clients a second instead of all at once, so a test can act mid-burst.
//!
//! Retries: each step is retransmitted every `--retry-ms` up to `--tries` times, as real clients
//! do, so a server that is down for a moment is waited out.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use dhcproto::v4::{Decodable, DhcpOption, Encodable, Message, MessageType, Opcode};
use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, mpsc};

#[derive(Debug, Clone)]
struct Args {
    server: Ipv4Addr,
    giaddr: Ipv4Addr,
    clients: u32,
    concurrency: usize,
    prefix: u8,
    retry: Duration,
    tries: u32,
    /// Clients started per second; 0 starts them all at once (bounded by `concurrency`).
    rate: u32,
    reboot: Option<String>,
    hostile: u32,
    flood: u32,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        server: Ipv4Addr::new(10, 20, 0, 1),
        giaddr: Ipv4Addr::new(10, 20, 0, 2),
        clients: 200,
        concurrency: 50,
        prefix: 0xb0,
        retry: Duration::from_millis(500),
        tries: 20,
        rate: 0,
        reboot: None,
        hostile: 0,
        flood: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => args.server = value()?.parse()?,
            "--giaddr" => args.giaddr = value()?.parse()?,
            "--clients" => args.clients = value()?.parse()?,
            "--concurrency" => args.concurrency = value()?.parse()?,
            "--prefix" => args.prefix = u8::from_str_radix(&value()?, 16)?,
            "--retry-ms" => args.retry = Duration::from_millis(value()?.parse()?),
            "--tries" => args.tries = value()?.parse()?,
            "--rate" => args.rate = value()?.parse()?,
            "--reboot" => args.reboot = Some(value()?),
            "--hostile" => args.hostile = value()?.parse()?,
            "--flood" => args.flood = value()?.parse()?,
            other => bail!("unknown argument {other:?} (see the source header for usage)"),
        }
    }
    if args.concurrency == 0 || args.clients > 0x00ff_ffff {
        bail!("--concurrency must be > 0 and --clients below 2^24");
    }
    Ok(args)
}

/// How often a client starts over after a NAK before it reports the NAK.
const NAK_RESTARTS: u32 = 3;

/// Client number, and for `--reboot` the lease it confirms.
type Job = (u32, Option<([u8; 6], Ipv4Addr)>);

/// Replies routed to the client task waiting for that xid.
type Waiters = Arc<Mutex<HashMap<u32, mpsc::UnboundedSender<Message>>>>;

struct Client {
    socket: Arc<UdpSocket>,
    waiters: Waiters,
    server: SocketAddrV4,
    giaddr: Ipv4Addr,
    retry: Duration,
    tries: u32,
}

impl Client {
    fn message(&self, kind: MessageType, mac: [u8; 6], xid: u32) -> Message {
        let mut m = Message::default();
        m.set_opcode(Opcode::BootRequest).set_chaddr(&mac).set_xid(xid).set_giaddr(self.giaddr).set_hops(1);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        m
    }

    /// Sends `msg` until a reply of one of `kinds` arrives or the tries run out.
    async fn exchange(&self, msg: &Message, kinds: &[MessageType]) -> anyhow::Result<Option<Message>> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner).insert(msg.xid(), tx);
        let bytes = msg.to_vec()?;
        let mut answer = None;
        'tries: for _ in 0..self.tries {
            self.socket.send_to(&bytes, self.server).await?;
            let deadline = tokio::time::sleep(self.retry);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = &mut deadline => break,
                    Some(reply) = rx.recv() => {
                        if reply.opts().msg_type().is_some_and(|k| kinds.contains(&k)) {
                            answer = Some(reply);
                            break 'tries;
                        }
                    }
                }
            }
        }
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner).remove(&msg.xid());
        Ok(answer)
    }

    /// DISCOVER, OFFER, REQUEST, ACK; after a NAK the client starts over, as RFC 2131 3.1
    /// says (the offered address went to a faster client), up to [`NAK_RESTARTS`] times.
    async fn dora(&self, n: u32, prefix: u8) -> anyhow::Result<String> {
        let mac = mac_for(prefix, n);
        let xid = (u32::from(prefix) << 24) | n;
        let mut outcome = String::new();
        for _ in 0..=NAK_RESTARTS {
            let discover = self.message(MessageType::Discover, mac, xid);
            let Some(offer) = self.exchange(&discover, &[MessageType::Offer]).await? else {
                return Ok(format!("fail {} no offer", fmt_mac(mac)));
            };
            let mut request = self.message(MessageType::Request, mac, xid);
            request.opts_mut().insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
            let server_id = match offer.opts().get(dhcproto::v4::OptionCode::ServerIdentifier) {
                Some(DhcpOption::ServerIdentifier(ip)) => *ip,
                _ => self.server.ip().to_owned(),
            };
            request.opts_mut().insert(DhcpOption::ServerIdentifier(server_id));
            outcome = self.finish(&request, mac, offer.yiaddr()).await?;
            if !outcome.starts_with("nak") {
                break;
            }
        }
        Ok(outcome)
    }

    async fn reboot(&self, n: u32, mac: [u8; 6], ip: Ipv4Addr) -> anyhow::Result<String> {
        let mut request = self.message(MessageType::Request, mac, 0x7f00_0000 | n);
        request.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        self.finish(&request, mac, ip).await
    }

    async fn finish(&self, request: &Message, mac: [u8; 6], ip: Ipv4Addr) -> anyhow::Result<String> {
        Ok(match self.exchange(request, &[MessageType::Ack, MessageType::Nak]).await? {
            Some(r) if r.opts().msg_type() == Some(MessageType::Ack) => {
                format!("ack {} {}", fmt_mac(mac), r.yiaddr())
            }
            Some(_) => format!("nak {} {ip}", fmt_mac(mac)),
            None => format!("fail {} no answer to request for {ip}", fmt_mac(mac)),
        })
    }
}

fn mac_for(prefix: u8, n: u32) -> [u8; 6] {
    let [_, a, b, c] = n.to_be_bytes();
    [0x02, prefix, 0, a, b, c]
}

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = text.split(':').map(|p| u8::from_str_radix(p, 16)).collect::<Result<_, _>>().ok()?;
    parts.try_into().ok()
}

/// A small deterministic generator: the same hostile datagrams on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

/// Datagrams a broken or hostile client might send.
fn hostile_datagram(rng: &mut XorShift, valid: &[u8]) -> Vec<u8> {
    let mut bytes = valid.to_vec();
    match rng.below(6) {
        0 => (0..rng.below(700)).map(|_| rng.byte()).collect(),
        1 => {
            bytes.truncate(rng.below(valid.len()));
            bytes
        }
        2 => {
            bytes[2] = 255; // hlen beyond chaddr
            bytes
        }
        3 => {
            // An option claiming more bytes than the datagram has, or an impossible FQDN.
            let end = bytes.len().saturating_sub(1);
            let code = [81u8, 12, 55, 61, 82, 119][rng.below(6)];
            bytes.splice(end..end, [code, rng.byte()]);
            bytes
        }
        4 => {
            for _ in 0..8 {
                let at = rng.below(bytes.len());
                bytes[at] = rng.byte();
            }
            bytes
        }
        _ => {
            bytes[0] = 2; // a BOOTREPLY sent to the server
            bytes
        }
    }
}

async fn send_hostile(client: &Client, count: u32) -> anyhow::Result<()> {
    let valid = client.message(MessageType::Discover, [2, 0xee, 0, 0, 0, 1], 1).to_vec()?;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..count {
        client.socket.send_to(&hostile_datagram(&mut rng, &valid), client.server).await?;
    }
    Ok(())
}

async fn send_flood(client: &Client, count: u32, rate: u32) -> anyhow::Result<()> {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut pace = (rate > 0).then(|| tokio::time::interval(Duration::from_secs(1) / rate));
    for _ in 0..count {
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        let mac = [0x02, 0xf1, rng.byte(), rng.byte(), rng.byte(), rng.byte()];
        let xid = u32::try_from(rng.next() >> 32).unwrap_or(0);
        client
            .socket
            .send_to(&client.message(MessageType::Discover, mac, xid).to_vec()?, client.server)
            .await?;
    }
    Ok(())
}

async fn receive(socket: Arc<UdpSocket>, waiters: Waiters) {
    let mut buf = vec![0u8; 2048];
    loop {
        let Ok((len, _)) = socket.recv_from(&mut buf).await else { continue };
        let Some(Ok(msg)) = buf.get(..len).map(Message::from_bytes) else { continue };
        if let Some(tx) = waiters.lock().unwrap_or_else(PoisonError::into_inner).get(&msg.xid()) {
            let _ = tx.send(msg);
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let socket = UdpSocket::bind(SocketAddr::from((args.giaddr, 67)))
        .await
        .with_context(|| format!("cannot bind {}:67 (run inside the lab namespace, as root)", args.giaddr))?;
    let socket = Arc::new(socket);
    let waiters: Waiters = Arc::default();
    tokio::spawn(receive(socket.clone(), waiters.clone()));
    let client = Arc::new(Client {
        socket,
        waiters,
        server: SocketAddrV4::new(args.server, 67),
        giaddr: args.giaddr,
        retry: args.retry,
        tries: args.tries,
    });

    if args.hostile > 0 {
        send_hostile(&client, args.hostile).await?;
        println!("hostile {} sent", args.hostile);
    }
    if args.flood > 0 {
        send_flood(&client, args.flood, args.rate).await?;
        println!("flood {} sent", args.flood);
    }

    let jobs: Vec<Job> = match &args.reboot {
        None => (0..args.clients).map(|n| (n, None)).collect(),
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {file}"))?
            .lines()
            .filter_map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                ["ack", mac, ip] => Some((parse_mac(mac)?, ip.parse().ok()?)),
                _ => None,
            })
            .enumerate()
            .map(|(n, pair)| (u32::try_from(n).unwrap_or(u32::MAX), Some(pair)))
            .collect(),
    };

    let limit = Arc::new(Semaphore::new(args.concurrency));
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    // Clients are started by their own task so outcomes are printed while others still start.
    let pace = (args.rate > 0).then(|| Duration::from_secs(1) / args.rate);
    let prefix = args.prefix;
    tokio::spawn(async move {
        let mut pace = pace.map(tokio::time::interval);
        for (n, lease) in jobs {
            if let Some(pace) = pace.as_mut() {
                pace.tick().await;
            }
            let (client, limit, out) = (client.clone(), limit.clone(), out_tx.clone());
            tokio::spawn(async move {
                let Ok(_permit) = limit.acquire().await else { return };
                let line = match lease {
                    None => client.dora(n, prefix).await,
                    Some((mac, ip)) => client.reboot(n, mac, ip).await,
                };
                let _ = out.send(line.unwrap_or_else(|e| format!("fail client {n}: {e:#}")));
            });
        }
    });
    let mut stdout = std::io::stdout().lock();
    while let Some(line) = out_rx.recv().await {
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
    }
    Ok(())
}
