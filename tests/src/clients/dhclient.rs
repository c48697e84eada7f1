//! ISC dhclient in a client namespace, as a Debian machine runs it: `dhclient -1` to get a lease
//! (it then forks a daemon that keeps the lease), `-x` to stop that daemon keeping the lease file
//! (a reboot: the next run does INIT-REBOOT), `-r` to release.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use super::event::{Event, Lease, LeaseVars, prefix_of_mask, read_events};
use super::script;
use crate::process::{self, run_logged};
use crate::topology::Host;
use crate::wait;

/// How long `dhclient -1` tries before giving up, unless a test sets [`Dhclient::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Slack on top of dhclient's own timeout before the harness kills it.
const RUN_SLACK: Duration = Duration::from_secs(15);
/// For the daemon to write its pid file after the foreground process exits, or to exit after `-x`/`-r`.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(10);
/// dhclient's exit code when `-1` got no lease.
const EXIT_NO_LEASE: i32 = 2;

const VARS: LeaseVars = LeaseVars {
    ip: "new_ip_address",
    routers: "new_routers",
    dns: "new_domain_name_servers",
    domain: "new_domain_name",
    search: "new_domain_search",
    lease_time: "new_dhcp_lease_time",
    server_id: "new_dhcp_server_identifier",
};

/// dhclient on one lab host. Its files live in the host's directory, so two `Dhclient`s of the
/// same host share the lease file, as two runs on one machine do.
#[derive(Debug)]
pub struct Dhclient<'h> {
    host: &'h Host,
    timeout: Duration,
}

/// A script call that means "this address is now configured".
fn is_lease_event(kind: &str) -> bool {
    matches!(kind, "BOUND" | "RENEW" | "REBIND" | "REBOOT")
}

impl<'h> Dhclient<'h> {
    pub(crate) fn new(host: &'h Host) -> Self {
        Dhclient { host, timeout: DEFAULT_TIMEOUT }
    }

    /// How long `-1` tries (dhclient.conf `timeout`); short in tests that expect no lease.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn file(&self, name: &str) -> PathBuf {
        self.host.dir().join(name)
    }

    fn lease_file(&self) -> PathBuf {
        self.file("dhclient.leases")
    }

    fn pid_file(&self) -> PathBuf {
        self.file("dhclient.pid")
    }

    fn events_file(&self) -> PathBuf {
        self.file("dhclient.events")
    }

    fn log_file(&self) -> PathBuf {
        self.file("dhclient.log")
    }

    /// Every script call so far on this host.
    pub fn events(&self) -> Result<Vec<Event>> {
        read_events(&self.events_file(), "reason")
    }

    /// Writes the script and config (the config carries the timeout, so it is rewritten per run).
    fn prepare(&self) -> Result<()> {
        script::write_dhclient(&self.file("dhclient.sh"), &self.events_file())?;
        // The request list is Debian's default dhclient.conf, so the server sees what a stock
        // client asks for; retry/initial-interval keep a failed first try short.
        let conf = format!(
            "timeout {};\nretry 1;\ninitial-interval 1;\n\
             option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\n\
             request subnet-mask, broadcast-address, time-offset, routers, domain-name, \
             domain-name-servers, domain-search, host-name, netbios-name-servers, netbios-scope, \
             interface-mtu, rfc3442-classless-static-routes, ntp-servers;\n",
            self.timeout.as_secs().max(1)
        );
        std::fs::write(self.file("dhclient.conf"), conf).context("cannot write dhclient.conf")?;
        self.host.logs().register(&format!("{} dhclient", self.host.label()), &self.log_file());
        Ok(())
    }

    fn command(&self, mode: &[&str]) -> Command {
        let mut cmd = self.host.command("dhclient");
        cmd.args(mode)
            .arg("-v")
            .arg("-cf")
            .arg(self.file("dhclient.conf"))
            .arg("-sf")
            .arg(self.file("dhclient.sh"))
            .arg("-lf")
            .arg(self.lease_file())
            .arg("-pf")
            .arg(self.pid_file())
            .arg(self.host.iface());
        cmd
    }

    /// The pid of this host's dhclient daemon, when one runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.pid_file()).ok()?.trim().parse().ok()?;
        process::is_ours(pid, &self.lease_file().to_string_lossy()).then_some(pid)
    }

    /// `dhclient -1`: gets a lease (or fails with both logs), leaving the daemon running.
    pub fn obtain(&self) -> Result<Lease> {
        self.try_obtain()?.ok_or_else(|| {
            anyhow!(
                "dhclient on {} got no lease within {:?}\n{}",
                self.host.label(),
                self.timeout,
                self.host.logs().render()
            )
        })
    }

    /// `dhclient -1`: `None` when no server gave a lease within the timeout.
    pub fn try_obtain(&self) -> Result<Option<Lease>> {
        if let Some(pid) = self.daemon_pid() {
            bail!("dhclient already runs on {} (pid {pid}): stop() or release() it first", self.host.label());
        }
        self.prepare()?;
        let _ = std::fs::remove_file(self.pid_file());
        let seen = self.events()?.len();
        let status = run_logged(&mut self.command(&["-1"]), &self.log_file(), self.timeout + RUN_SLACK)?;
        if status.code() == Some(EXIT_NO_LEASE) {
            return Ok(None);
        }
        if !status.success() {
            bail!("dhclient on {} failed ({status})\n{}", self.host.label(), self.host.logs().render());
        }
        let pid = wait::until(DAEMON_TIMEOUT, "the dhclient daemon's pid file", || Ok(self.daemon_pid()))?;
        self.host.reaper().track(pid, &self.lease_file().to_string_lossy());
        let events = self.events()?;
        let event = events[seen.min(events.len())..]
            .iter()
            .rev()
            .find(|e| is_lease_event(&e.kind))
            .with_context(|| format!("dhclient exited 0 but its script saw no lease: {events:?}"))?;
        let prefix = prefix_of_mask(event.var("new_subnet_mask"))?;
        Lease::from_event(event, &VARS, prefix).map(Some)
    }

    /// `dhclient -x`: stops the daemon without releasing; the lease file keeps the lease, so the
    /// next [`Dhclient::obtain`] starts with INIT-REBOOT (event `REBOOT`), like a rebooted machine.
    pub fn stop(&self) -> Result<()> {
        self.end("-x")
    }

    /// `dhclient -r`: sends DHCPRELEASE and stops the daemon.
    pub fn release(&self) -> Result<()> {
        self.end("-r")?;
        let released = self.events()?.last().is_some_and(|e| e.kind == "RELEASE");
        if !released {
            bail!(
                "dhclient -r on {} did not run its script with RELEASE\n{}",
                self.host.label(),
                self.host.logs().render()
            );
        }
        Ok(())
    }

    fn end(&self, flag: &str) -> Result<()> {
        self.prepare()?;
        let daemon = self.daemon_pid();
        let status = run_logged(&mut self.command(&[flag]), &self.log_file(), DAEMON_TIMEOUT)?;
        if !status.success() {
            bail!(
                "dhclient {flag} on {} failed ({status})\n{}",
                self.host.label(),
                self.host.logs().render()
            );
        }
        if let Some(pid) = daemon {
            let marker = self.lease_file().to_string_lossy().into_owned();
            wait::until(DAEMON_TIMEOUT, &format!("dhclient daemon {pid} to exit"), || {
                Ok((!process::is_ours(pid, &marker)).then_some(()))
            })?;
        }
        Ok(())
    }
}
