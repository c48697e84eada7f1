//! [`DhcpServer`]: dnsmasq as the DHCP server of the WAN side (what a user's router or Proxmox's
//! `vmbr0` network gives the appliance's `eth0`), on the outside host, for the appliance's own
//! DHCP client to talk to. DNS is off in it (`--port=0`; [`crate::dns::Dnsmasq`] serves names);
//! every DHCP message it handles is read back from its log.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use proximity_tests::dhcp_server::DhcpServer;
//! use proximity_tests::{Lab, WAN_UPSTREAM};
//! let lab = Lab::builder().wan(true).wan_address_by_harness(false).build()?;
//! let server = DhcpServer::builder(lab.wan(), [10, 99, 0, 50].into(), [10, 99, 0, 60].into())
//!     .dns(&[WAN_UPSTREAM])
//!     .start()?;
//! # Ok(()) }
//! ```

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use crate::dns::dnsmasq;
use crate::process::kill_child;
use crate::topology::Host;
use crate::wait;

/// From spawn to its "DHCP, sockets bound" log line.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// dnsmasq's shortest lease; it refuses less.
pub const MIN_LEASE: &str = "2m";

/// Numbers the lease files of the servers a process starts, so each server starts with none.
static STARTED: AtomicU32 = AtomicU32::new(0);

/// One DHCP message dnsmasq logged: `DHCPDISCOVER`, `DHCPOFFER`, `DHCPREQUEST`, `DHCPACK`,
/// `DHCPNAK`..., and the address it was about, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub kind: String,
    pub ip: Option<Ipv4Addr>,
}

/// A running dnsmasq DHCP server on a lab host, killed on drop.
#[derive(Debug)]
pub struct DhcpServer<'h> {
    host: &'h Host,
    child: Mutex<Child>,
    log: PathBuf,
    /// Log bytes already there when this server started (the log file is the host's, appended).
    offset: usize,
}

/// What a [`DhcpServer`] hands out.
#[derive(Debug, Clone)]
pub struct DhcpServerBuilder<'h> {
    host: &'h Host,
    first: Ipv4Addr,
    last: Ipv4Addr,
    lease: String,
    args: Vec<String>,
}

impl<'h> DhcpServer<'h> {
    /// A server on `host`'s interface handing out `first`..=`last` for [`MIN_LEASE`], with
    /// `host`'s address as router (dnsmasq's default: the address it serves from).
    pub fn builder(host: &'h Host, first: Ipv4Addr, last: Ipv4Addr) -> DhcpServerBuilder<'h> {
        DhcpServerBuilder { host, first, last, lease: MIN_LEASE.to_owned(), args: Vec::new() }
    }

    /// The DHCP messages it handled so far, in order.
    pub fn logged(&self) -> Vec<Logged> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let ours = log.get(self.offset..).unwrap_or_default();
        ours.lines()
            .filter_map(|line| {
                // `dnsmasq-dhcp[42]: 1234 DHCPACK(o0) 10.99.0.51 02:...` (the xid only with
                // --log-dhcp), `DHCPDISCOVER(o0) 02:...`.
                let at = line.find(" DHCP")? + 1;
                let (kind, rest) = line[at..].split_once('(')?;
                let ip = rest.split_once(") ")?.1.split_whitespace().next()?.parse().ok();
                Some(Logged { kind: kind.to_owned(), ip })
            })
            .collect()
    }

    /// Kills it (SIGKILL): the WAN has no DHCP server from now on.
    pub fn kill(&self) {
        kill_child(&mut self.child.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl Drop for DhcpServer<'_> {
    fn drop(&mut self) {
        self.kill();
    }
}

impl<'h> DhcpServerBuilder<'h> {
    /// The lease time, as dnsmasq writes it (`2m`, `1h`; at least [`MIN_LEASE`]).
    pub fn lease(mut self, lease: &str) -> Self {
        self.lease = lease.to_owned();
        self
    }

    /// Renewal (T1) and rebinding (T2) times in seconds, far shorter than dnsmasq's shortest
    /// lease allows, so a test sees renewals within seconds.
    pub fn renew_after(mut self, t1: u32, t2: u32) -> Self {
        self.args.push(format!("--dhcp-option=option:T1,{t1}"));
        self.args.push(format!("--dhcp-option=option:T2,{t2}"));
        self
    }

    /// The router option (default: the server's own address).
    pub fn router(mut self, router: Ipv4Addr) -> Self {
        self.args.push(format!("--dhcp-option=option:router,{router}"));
        self
    }

    /// The DNS servers option.
    pub fn dns(mut self, servers: &[Ipv4Addr]) -> Self {
        let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
        self.args.push(format!("--dhcp-option=option:dns-server,{}", list.join(",")));
        self
    }

    /// NAKs requests for addresses it does not know (`--dhcp-authoritative`), as the only
    /// server of a network does: a restarted server with another range then refuses the old
    /// address at the client's next renewal.
    pub fn authoritative(mut self) -> Self {
        self.args.push("--dhcp-authoritative".to_owned());
        self
    }

    /// Starts it (with no leases) and waits until it serves.
    pub fn start(self) -> Result<DhcpServer<'h>> {
        let host = self.host;
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let leases = host.dir().join(format!("dnsmasq-dhcp-{n}.leases"));
        let pid_file = host.dir().join(format!("dnsmasq-dhcp-{n}.pid"));
        // --port=0: no DNS. --no-ping: offers at once rather than after a 3 s probe of the address.
        let mut args = vec!["--port=0".to_owned(), "--no-ping".to_owned(), "--log-dhcp".to_owned()];
        args.push(format!("--interface={}", host.iface()));
        args.push(format!("--dhcp-range={},{},{}", self.first, self.last, self.lease));
        args.push(format!("--dhcp-leasefile={}", leases.display()));
        args.push(format!("--pid-file={}", pid_file.display()));
        args.extend(self.args.iter().cloned());
        let (child, log, offset) = dnsmasq::spawn(host, "dnsmasq-dhcp", &args)?;
        let server = DhcpServer { host, child: Mutex::new(child), log, offset };
        let ready = wait::until(READY_TIMEOUT, "dnsmasq to serve DHCP", || {
            if let Some(status) = server.child.lock().unwrap_or_else(PoisonError::into_inner).try_wait()? {
                bail!("dnsmasq exited ({status})");
            }
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            Ok(log.get(server.offset..).unwrap_or_default().contains("DHCP, sockets bound").then_some(()))
        });
        ready.map_err(|e| anyhow!("{e:#}\n{}", server.host.logs().render()))?;
        Ok(server)
    }
}
