//! dhcpcd (9.x, Debian's `dhcpcd-base`) in a lab host's namespace, as Raspberry Pi OS and many
//! small Debian systems run it: `dhcpcd -4 -1` gets a lease, configures the interface itself
//! (address, prefix route, default route), runs its script and exits.
//!
//! dhcpcd keeps its state in compiled-in paths (`/run/dhcpcd` for pid files and control sockets,
//! `/var/lib/dhcpcd` for leases and the DUID). So each run gets a private mount namespace with the
//! host's own directories bind-mounted over those two: parallel tests never share a lease, DUID or
//! pid file, and the machine's own dhcpcd state is never read or written. Its script is ours
//! (`-c`), not dhcpcd-run-hooks, so /etc/resolv.conf is never written; and it only ever sees the
//! one interface of the host's network namespace.
//!
//! The harness owns the deadline (dhcpcd 9.4's `--timeout` does not end a `--oneshot` that gets
//! no answer): [`Dhcpcd::try_obtain`] stops dhcpcd when [`Dhcpcd::timeout`] passes.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::Signal;

use super::event::{Event, Lease, LeaseVars, read_events};
use super::script;
use crate::process::{self, kill_child, run, spawn_logged, wait_exit};
use crate::topology::Host;
use crate::wait;

/// How long [`Dhcpcd::obtain`] waits for a lease, unless a test sets [`Dhcpcd::timeout`]. dhcpcd
/// probes the offered address with ARP first (RFC 5227), which alone takes about 6 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// dhcpcd's script is run by its privileged helper and may record the lease a moment after the
/// main process has exited.
const SCRIPT_LAG: Duration = Duration::from_secs(5);
/// From SIGTERM to exit before the harness kills dhcpcd.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Compiled-in state directories, each replaced by one of the host's own in dhcpcd's mount namespace.
const RUN_DIR: &str = "/run/dhcpcd";
const DB_DIR: &str = "/var/lib/dhcpcd";

const VARS: LeaseVars = LeaseVars {
    ip: "new_ip_address",
    routers: "new_routers",
    dns: "new_domain_name_servers",
    domain: "new_domain_name",
    search: "new_domain_search",
    lease_time: "new_dhcp_lease_time",
    server_id: "new_dhcp_server_identifier",
};

/// Mounts the host's directories over dhcpcd's (`$1`, `$2`), then becomes dhcpcd with the rest
/// of the arguments. Run under `unshare --mount`, so the mounts are seen by dhcpcd alone.
const MOUNT_AND_EXEC: &str =
    r#"mount --bind "$1" /run/dhcpcd && mount --bind "$2" /var/lib/dhcpcd && shift 2 && exec dhcpcd "$@""#;

/// A script call that means "this address is now configured".
fn is_lease_event(kind: &str) -> bool {
    matches!(kind, "BOUND" | "RENEW" | "REBIND" | "REBOOT")
}

/// dhcpcd on one lab host. Its state lives in the host's directory, so two runs on one host
/// share the lease (the second starts with INIT-REBOOT, event `REBOOT`), as on one machine.
#[derive(Debug, Clone)]
pub struct Dhcpcd<'h> {
    host: &'h Host,
    timeout: Duration,
    hostname: Option<String>,
    arp: bool,
}

impl<'h> Dhcpcd<'h> {
    pub(crate) fn new(host: &'h Host) -> Self {
        Dhcpcd { host, timeout: DEFAULT_TIMEOUT, hostname: None, arp: true }
    }

    /// How long [`Dhcpcd::try_obtain`] waits for a lease; short in tests that expect none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends option 12 (`hostname NAME` in dhcpcd.conf).
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = Some(name.to_owned());
        self
    }

    /// Skips the ARP probe of the offered address (`noarp`), which costs about 6 seconds a lease.
    pub fn no_arp(mut self) -> Self {
        self.arp = false;
        self
    }

    fn file(&self, name: &str) -> PathBuf {
        self.host.dir().join(name)
    }

    fn events_file(&self) -> PathBuf {
        self.file("dhcpcd.events")
    }

    fn log_file(&self) -> PathBuf {
        self.file("dhcpcd.log")
    }

    /// Every script call so far on this host.
    pub fn events(&self) -> Result<Vec<Event>> {
        read_events(&self.events_file(), "reason")
    }

    /// Writes the script and dhcpcd.conf, makes the state directories, and returns the command.
    fn command(&self) -> Result<Command> {
        // Fails with the package's name when dhcpcd is missing, rather than with a mount error.
        run(Command::new("dhcpcd").arg("--version"))
            .context("the dhcpcd tests need dhcpcd (apt-get install --no-install-recommends dhcpcd-base)")?;
        script::write_dhcpcd(&self.file("dhcpcd.sh"), &self.events_file())?;
        std::fs::write(self.file("dhcpcd.conf"), self.conf()).context("cannot write dhcpcd.conf")?;
        let (run_dir, db_dir) = (self.file("dhcpcd-run"), self.file("dhcpcd-db"));
        // Mount points for the bind mounts: dhcpcd's own run dir (it would create it itself) and
        // the package's state dir.
        for dir in [&run_dir, &db_dir, &PathBuf::from(RUN_DIR), &PathBuf::from(DB_DIR)] {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        self.host.logs().register(&format!("{} dhcpcd", self.host.label()), &self.log_file());

        let mut cmd = self.host.command("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", MOUNT_AND_EXEC, "sh"])
            .arg(&run_dir)
            .arg(&db_dir)
            // -B: stay in the foreground, so the child is dhcpcd; -t 0: no timeout of its own
            // (the harness keeps the deadline).
            .args(["-4", "-1", "-B", "-t", "0", "-f"])
            .arg(self.file("dhcpcd.conf"))
            .arg("-c")
            .arg(self.file("dhcpcd.sh"))
            .arg(self.host.iface());
        Ok(cmd)
    }

    /// Debian's stock /etc/dhcpcd.conf (what a Debian machine asks for), IPv4 only, without the
    /// IPv4LL fallback: a test that expects no lease must not get a 169.254 address instead.
    fn conf(&self) -> String {
        let mut conf = String::from(
            "# dhcpcd.conf of the Proximity lab: Debian's stock options, IPv4 only.\n\
             duid\npersistent\nvendorclassid\n\
             option domain_name_servers, domain_name, domain_search\n\
             option classless_static_routes\noption interface_mtu\noption host_name\n\
             option rapid_commit\nrequire dhcp_server_identifier\n\
             ipv4only\nnoipv4ll\n",
        );
        if !self.arp {
            conf.push_str("noarp\n");
        }
        if let Some(name) = &self.hostname {
            conf.push_str(&format!("hostname {name}\n"));
        }
        conf
    }

    fn failure(&self, what: &str) -> anyhow::Error {
        anyhow!("dhcpcd on {}: {what}\n{}", self.host.label(), self.host.logs().render())
    }

    /// `dhcpcd -4 -1`: a lease, or an error with the logs.
    pub fn obtain(&self) -> Result<Lease> {
        self.try_obtain()?.ok_or_else(|| self.failure(&format!("got no lease within {:?}", self.timeout)))
    }

    /// `dhcpcd -4 -1`: `None` when no server gave a lease within the timeout.
    pub fn try_obtain(&self) -> Result<Option<Lease>> {
        let seen = self.events()?.len();
        let mut child = spawn_logged(&mut self.command()?, &self.log_file())?;
        let outcome = self.await_lease(&mut child, seen);
        stop(&mut child);
        let Some(event) = outcome? else { return Ok(None) };
        let prefix = event
            .var("new_subnet_cidr")
            .parse()
            .map_err(|_| self.failure(&format!("no prefix length (new_subnet_cidr) in {event:?}")))?;
        Lease::from_event(&event, &VARS, prefix).map(Some)
    }

    /// The first new lease event; `None` once the timeout passed without one.
    fn await_lease(&self, child: &mut Child, seen: usize) -> Result<Option<Event>> {
        let deadline = Instant::now() + self.timeout;
        let mut exited: Option<Instant> = None;
        let waited = wait::until(self.timeout + SCRIPT_LAG, "dhcpcd to get a lease or time out", || {
            let events = self.events()?;
            if let Some(event) = events.iter().skip(seen).find(|e| is_lease_event(&e.kind)) {
                return Ok(Some(Some(event.clone())));
            }
            if exited.is_none() {
                if let Some(status) = child.try_wait()? {
                    if !status.success() {
                        bail!("exited ({status}) without a lease");
                    }
                    exited = Some(Instant::now());
                }
            }
            match exited {
                Some(at) if at.elapsed() > SCRIPT_LAG => {
                    bail!("exited 0, but its script saw no lease: {:?}", &events[seen.min(events.len())..])
                }
                // Exited with a lease: its script is about to record it.
                Some(_) => Ok(None),
                None if Instant::now() >= deadline => Ok(Some(None)),
                None => Ok(None),
            }
        });
        waited.map_err(|e| self.failure(&format!("{e:#}")))
    }
}

/// SIGTERM (dhcpcd then stops its helpers), SIGKILL if it lingers; a no-op once it has exited.
fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = process::signal(child.id(), Signal::SIGTERM);
        if !matches!(wait_exit(child, STOP_TIMEOUT), Ok(Some(_))) {
            kill_child(child);
        }
    }
}
