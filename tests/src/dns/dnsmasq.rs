//! [`Dnsmasq`]: a real DNS server (dnsmasq, no DHCP) on a lab host, the upstream the appliance
//! forwards to in the forwarding tests, with the queries it received read back from its log.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::Signal;

use super::query;
use crate::process::{self, children_of, kill_child, spawn_logged};
use crate::topology::Host;
use crate::wait;

/// From spawn to the first answer of a [`Dnsmasq`].
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A dnsmasq DNS server (no DHCP) on a lab host, serving a few records of its own and nothing
/// else (`--no-resolv --no-hosts`: it never asks anyone), logging every query it gets. Killed on
/// drop.
#[derive(Debug)]
pub struct Dnsmasq<'h> {
    host: &'h Host,
    listen: Ipv4Addr,
    child: Mutex<Child>,
    log: PathBuf,
    /// Log bytes already there when this server started (the log file is the host's, appended).
    offset: usize,
}

/// What a [`Dnsmasq`] serves.
#[derive(Debug, Clone)]
pub struct DnsmasqBuilder<'h> {
    host: &'h Host,
    listen: Ipv4Addr,
    ttl: u32,
    args: Vec<String>,
}

impl<'h> Dnsmasq<'h> {
    /// A server on `host`, answering on `listen` port 53 (an address of the host).
    pub fn builder(host: &'h Host, listen: Ipv4Addr) -> DnsmasqBuilder<'h> {
        DnsmasqBuilder { host, listen, ttl: 60, args: Vec::new() }
    }

    /// Where it answers.
    pub fn listen(&self) -> Ipv4Addr {
        self.listen
    }

    /// The host it runs on.
    pub fn host(&self) -> &Host {
        self.host
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(PoisonError::into_inner).id()
    }

    /// The queries it received so far, as (type, name, client address) from its log.
    pub fn queries(&self) -> Vec<(String, String, String)> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let ours = log.get(self.offset..).unwrap_or_default();
        ours.lines()
            .filter_map(|line| {
                // `dnsmasq: query[A] www.example.test from 10.99.0.2`
                let rest = &line[line.find("query[")? + "query[".len()..];
                let (qtype, rest) = rest.split_once("] ")?;
                let (name, from) = rest.split_once(" from ")?;
                Some((qtype.to_owned(), name.to_ascii_lowercase(), from.trim().to_owned()))
            })
            .collect()
    }

    /// How many queries for `name` (any type) it received.
    pub fn queries_for(&self, name: &str) -> usize {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.queries().iter().filter(|(_, n, _)| *n == name).count()
    }

    /// Kills it (SIGKILL) with the children it forked for TCP clients: its port is closed from
    /// now on, so queries to it are refused (ICMP).
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        for pid in children_of(child.id()) {
            let _ = process::signal(pid, Signal::SIGKILL);
        }
        kill_child(&mut child);
    }

    /// Freezes it (SIGSTOP): its socket stays open and takes queries in, but nobody answers
    /// them, as with a server that hangs or a network that drops packets.
    pub fn freeze(&self) -> Result<()> {
        process::signal(self.pid(), Signal::SIGSTOP)
    }
}

impl Drop for Dnsmasq<'_> {
    fn drop(&mut self) {
        self.kill();
    }
}

impl<'h> DnsmasqBuilder<'h> {
    /// Every name in `domain` (and `domain` itself) has the address `ip` (`--address`).
    pub fn address(mut self, domain: &str, ip: Ipv4Addr) -> Self {
        self.args.push(format!("--address=/{domain}/{ip}"));
        self
    }

    /// `name` has the address `ip` (`--host-record`), and its PTR.
    pub fn host_record(mut self, name: &str, ip: Ipv4Addr) -> Self {
        self.args.push(format!("--host-record={name},{ip}"));
        self
    }

    /// `name` has a TXT record of these strings (`--txt-record`; each up to 255 bytes, without
    /// commas or quotes: the argument reaches dnsmasq as it is, no shell unquotes it).
    pub fn txt_record(mut self, name: &str, strings: &[&str]) -> Self {
        self.args.push(format!("--txt-record={name},{}", strings.join(",")));
        self
    }

    /// Names in `domain` that it has no record for are NXDOMAIN (`--local`).
    pub fn local(mut self, domain: &str) -> Self {
        self.args.push(format!("--local=/{domain}/"));
        self
    }

    /// TTL of its records (`--local-ttl`; dnsmasq's default is 0, which nobody may cache).
    pub fn ttl(mut self, secs: u32) -> Self {
        self.ttl = secs;
        self
    }

    /// Starts it and waits until it answers.
    pub fn start(self) -> Result<Dnsmasq<'h>> {
        // Not --no-daemon, which also serves TCP inline without forking, so one idle TCP client
        // (a forwarder keeps its connection open) stops it answering anyone.
        let pid_file = self.host.dir().join("dnsmasq.pid");
        let mut args = vec!["--no-resolv".to_owned(), "--no-hosts".to_owned(), "--port=53".to_owned()];
        args.push("--log-queries".to_owned());
        args.push(format!("--pid-file={}", pid_file.display()));
        args.push(format!("--listen-address={}", self.listen));
        args.push(format!("--local-ttl={}", self.ttl));
        args.extend(self.args.iter().cloned());
        let (child, log, offset) = spawn(self.host, "dnsmasq", &args)?;
        let server = Dnsmasq { host: self.host, listen: self.listen, child: Mutex::new(child), log, offset };
        // Any reply means it serves; one with no record of its own is REFUSED (it has no upstream).
        let probe =
            query(self.host, self.listen, "ready.dnsmasq.invalid", "A").timeout(Duration::from_secs(1));
        let ready = wait::until(READY_TIMEOUT, "dnsmasq to answer", || {
            if let Some(status) = server.child.lock().unwrap_or_else(PoisonError::into_inner).try_wait()? {
                bail!("dnsmasq exited ({status})");
            }
            Ok(probe.run().ok())
        });
        ready.map_err(|e| anyhow!("{e:#}\n{}", self.host.logs().render()))?;
        Ok(server)
    }
}

/// Starts dnsmasq on `host` in the foreground with `args`, logging to `<name>.log` in the host's
/// directory (registered with the lab's logs): the child, the log, and where this run's lines
/// start in it. --keep-in-foreground: it stays our child. --log-facility=-: its log goes to
/// stderr, which is the log file.
pub(crate) fn spawn(host: &Host, name: &str, args: &[String]) -> Result<(Child, PathBuf, usize)> {
    let log = host.dir().join(format!("{name}.log"));
    host.logs().register(&format!("{} {name}", host.label()), &log);
    let offset = std::fs::metadata(&log).map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX));
    let mut cmd = host.command("dnsmasq");
    cmd.args(["--keep-in-foreground", "--conf-file=/dev/null", "--bind-interfaces", "--log-facility=-"])
        .args(args);
    let child =
        spawn_logged(&mut cmd, &log).context("cannot start dnsmasq (apt-get install dnsmasq-base)")?;
    Ok((child, log, offset))
}
