//! busybox udhcpc in a client namespace: one-shot (`-n -q`: get a lease or fail, then exit) and
//! daemon (`-f`: keeps the lease; SIGUSR1 renews, SIGUSR2 releases), as small systems and
//! containers run it.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use nix::sys::signal::Signal;

use super::event::{Event, Lease, LeaseVars, read_events};
use crate::process::{self, kill_child, run_logged, spawn_logged};
use crate::topology::Host;
use crate::wait;

/// DISCOVERs sent before a one-shot gives up, and seconds between them, unless a test sets
/// [`Udhcpc::attempts`].
pub const DEFAULT_ATTEMPTS: (u32, u32) = (5, 2);
/// How long a daemon may take to get its first lease, or to answer a signal.
pub const DAEMON_TIMEOUT: Duration = Duration::from_secs(20);
/// Slack on top of the one-shot's own attempts before the harness kills it.
const RUN_SLACK: Duration = Duration::from_secs(10);

const VARS: LeaseVars = LeaseVars {
    ip: "ip",
    routers: "router",
    dns: "dns",
    domain: "domain",
    search: "search",
    lease_time: "lease",
    server_id: "serverid",
};

/// udhcpc on one lab host.
#[derive(Debug, Clone)]
pub struct Udhcpc<'h> {
    host: &'h Host,
    hostname: Option<String>,
    attempts: (u32, u32),
    broadcast: bool,
    requested: Option<std::net::Ipv4Addr>,
}

fn lease_of(event: &Event) -> Result<Lease> {
    // udhcpc passes the prefix length in `mask` (and the dotted mask in `subnet`).
    let prefix = event.var("mask").parse().map_err(|_| anyhow!("udhcpc gave no prefix length: {event:?}"))?;
    Lease::from_event(event, &VARS, prefix)
}

impl<'h> Udhcpc<'h> {
    pub(crate) fn new(host: &'h Host) -> Self {
        Udhcpc { host, hostname: None, attempts: DEFAULT_ATTEMPTS, broadcast: false, requested: None }
    }

    /// Sends option 12 (`-x hostname:NAME`).
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = Some(name.to_owned());
        self
    }

    /// `-B`: sets the broadcast flag, asking the server to broadcast its replies.
    pub fn broadcast(mut self) -> Self {
        self.broadcast = true;
        self
    }

    /// `-r IP`: asks for this address (option 50) in its DISCOVER.
    pub fn requested(mut self, ip: std::net::Ipv4Addr) -> Self {
        self.requested = Some(ip);
        self
    }

    /// `-t COUNT -T SECS`: DISCOVERs before giving up and the pause between them.
    pub fn attempts(mut self, count: u32, secs: u32) -> Self {
        self.attempts = (count, secs);
        self
    }

    fn file(&self, name: &str) -> PathBuf {
        self.host.dir().join(name)
    }

    fn events_file(&self) -> PathBuf {
        self.file("udhcpc.events")
    }

    fn log_file(&self) -> PathBuf {
        self.file("udhcpc.log")
    }

    /// Every script call so far on this host (one-shots and daemons alike).
    pub fn events(&self) -> Result<Vec<Event>> {
        read_events(&self.events_file(), "event")
    }

    fn command(&self, extra: &[&str]) -> Result<Command> {
        super::script::write_udhcpc(&self.file("udhcpc.sh"), &self.events_file())?;
        self.host.logs().register(&format!("{} udhcpc", self.host.label()), &self.log_file());
        let mut cmd = self.host.command("udhcpc");
        cmd.arg("-f").arg("-i").arg(self.host.iface()).arg("-s").arg(self.file("udhcpc.sh"));
        // Option 119 is not in busybox's default request list; a stock /etc/udhcpc config asks for it.
        cmd.args(["-O", "search"]);
        cmd.arg("-t").arg(self.attempts.0.to_string()).arg("-T").arg(self.attempts.1.to_string());
        if let Some(name) = &self.hostname {
            cmd.arg("-x").arg(format!("hostname:{name}"));
        }
        if self.broadcast {
            cmd.arg("-B");
        }
        if let Some(ip) = self.requested {
            cmd.arg("-r").arg(ip.to_string());
        }
        cmd.args(extra);
        Ok(cmd)
    }

    fn failure(&self, what: &str) -> anyhow::Error {
        anyhow!("udhcpc on {}: {what}\n{}", self.host.label(), self.host.logs().render())
    }

    /// `udhcpc -n -q`: a lease, or an error with the logs.
    pub fn obtain(&self) -> Result<Lease> {
        self.try_obtain()?.ok_or_else(|| self.failure("got no lease"))
    }

    /// `udhcpc -n -q`: `None` when no server gave a lease within the attempts.
    pub fn try_obtain(&self) -> Result<Option<Lease>> {
        let seen = self.events()?.len();
        let (count, secs) = self.attempts;
        let budget = Duration::from_secs(u64::from(count) * u64::from(secs.max(1))) + RUN_SLACK;
        let status = run_logged(&mut self.command(&["-n", "-q"])?, &self.log_file(), budget)?;
        let events = self.events()?;
        let new = &events[seen.min(events.len())..];
        let bound = new.iter().rev().find(|e| e.kind == "bound");
        match (status.success(), bound) {
            (true, Some(event)) => lease_of(event).map(Some),
            (false, None) => Ok(None),
            (ok, _) => {
                Err(self.failure(&format!("exit {status} (success: {ok}) does not match its events {new:?}")))
            }
        }
    }

    /// `udhcpc -f` in the background; returns once its script has seen the first lease.
    pub fn spawn(&self) -> Result<UdhcpcDaemon<'h>> {
        let seen = self.events()?.len();
        let child = spawn_logged(&mut self.command(&[])?, &self.log_file())?;
        let daemon = UdhcpcDaemon { client: self.clone(), child: Mutex::new(child), seen: Mutex::new(seen) };
        let lease = daemon.next_event("its first lease", |kind| matches!(kind, "bound"))?;
        lease_of(&lease)?;
        Ok(daemon)
    }
}

/// A running `udhcpc -f`, killed (SIGKILL: no release) on drop.
#[derive(Debug)]
pub struct UdhcpcDaemon<'h> {
    client: Udhcpc<'h>,
    child: Mutex<Child>,
    /// Events already returned, so each wait looks only at what came after.
    seen: Mutex<usize>,
}

impl UdhcpcDaemon<'_> {
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(PoisonError::into_inner).id()
    }

    /// The lease from the most recent `bound` or `renew`.
    pub fn lease(&self) -> Result<Lease> {
        let events = self.client.events()?;
        let last = events.iter().rev().find(|e| matches!(e.kind.as_str(), "bound" | "renew"));
        lease_of(last.ok_or_else(|| self.client.failure("has no lease"))?)
    }

    /// Waits for the first new event whose kind `wanted` accepts; a `nak` or the daemon's exit
    /// first is an error.
    fn next_event(&self, what: &str, wanted: impl Fn(&str) -> bool) -> Result<Event> {
        let found = wait::until(DAEMON_TIMEOUT, what, || {
            let events = self.client.events()?;
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            for event in events.iter().skip(*seen) {
                *seen += 1;
                if wanted(&event.kind) {
                    return Ok(Some(event.clone()));
                }
                if event.kind == "nak" {
                    bail!("got a DHCPNAK: {event:?}");
                }
            }
            if let Some(status) = self.child.lock().unwrap_or_else(PoisonError::into_inner).try_wait()? {
                bail!("udhcpc exited ({status})");
            }
            Ok(None)
        });
        found.map_err(|e| self.client.failure(&format!("waiting for {what}: {e:#}")))
    }

    /// SIGUSR1: renews now (unicast REQUEST to the server); returns the lease from the script's
    /// next `renew` or `bound` call.
    pub fn renew(&self) -> Result<Lease> {
        process::signal(self.pid(), Signal::SIGUSR1)?;
        let event = self.next_event("a renewed lease", |kind| matches!(kind, "renew" | "bound"))?;
        lease_of(&event)
    }

    /// SIGUSR2: sends DHCPRELEASE and deconfigures; returns once the script saw `deconfig` (the
    /// release has been sent by then). The daemon then idles until [`UdhcpcDaemon::renew`].
    pub fn release(&self) -> Result<()> {
        process::signal(self.pid(), Signal::SIGUSR2)?;
        self.next_event("deconfig after release", |kind| kind == "deconfig").map(drop)
    }
}

impl Drop for UdhcpcDaemon<'_> {
    fn drop(&mut self) {
        kill_child(self.child.get_mut().unwrap_or_else(PoisonError::into_inner));
    }
}
