//! DNS in the lab: asking a server with the real clients a user has (`dig`, `kdig`) from inside a
//! lab host's namespace and reading what they print, and [`Dnsmasq`], a real DNS server run on a
//! lab host (the upstream the appliance forwards to, in the outside namespace).
//!
//! Every query names its server (`@10.20.0.1`), so `/etc/resolv.conf` of the machine is never
//! involved, and has a short timeout and one try, so a server that does not answer fails the
//! test instead of hanging it.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use proximity_tests::dns::{Tool, query};
//! use proximity_tests::{GATEWAY, Lab};
//! let lab = Lab::builder().clients(1).build()?;
//! lab.start_appliance(&lab.config())?;
//! let client = lab.client(0);
//! let _lease = client.udhcpc().hostname("alpha").spawn()?;
//! let reply = query(client, GATEWAY, "alpha.prox.local", "A").tool(Tool::Kdig).tcp().run()?;
//! assert_eq!(reply.status, "NOERROR");
//! assert!(reply.aa(), "{reply}");
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

pub mod dnsmasq;

pub use dnsmasq::{Dnsmasq, DnsmasqBuilder};

use crate::appliance::Appliance;
use crate::process::{self, describe};
use crate::topology::Host;
use crate::wait;

/// The appliance logs this once its DNS/UDP socket is bound.
pub const READY_LINE: &str = "listening for dns/udp";
/// How long a query waits for its reply unless a test sets [`Query::timeout`]: a lab round trip
/// takes a millisecond; a forwarded one at most the upstream timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Slack on top of the client's own timeout before the harness kills it.
const RUN_SLACK: Duration = Duration::from_secs(5);

/// Which client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// BIND's `dig` (Debian `dnsutils`).
    Dig,
    /// Knot's `kdig` (Debian `knot-dnsutils`).
    Kdig,
}

impl Tool {
    pub fn program(self) -> &'static str {
        match self {
            Tool::Dig => "dig",
            Tool::Kdig => "kdig",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Tool::Dig => "dnsutils",
            Tool::Kdig => "knot-dnsutils",
        }
    }
}

/// One question to one server, asked from a lab host.
#[derive(Debug, Clone)]
pub struct Query<'h> {
    host: &'h Host,
    server: Ipv4Addr,
    /// The name, or the address for a reverse (`-x`) query.
    name: String,
    qtype: String,
    reverse: bool,
    tool: Tool,
    tcp: bool,
    timeout: Duration,
    /// More options for the client, as it spells them (`+ignore`, `+noedns`, ...).
    extra: Vec<String>,
}

/// `name`/`qtype` (`A`, `AAAA`, `SOA`, ...) to `server`, asked by `dig` over UDP from `host`.
pub fn query<'h>(host: &'h Host, server: Ipv4Addr, name: &str, qtype: &str) -> Query<'h> {
    Query {
        host,
        server,
        name: name.to_owned(),
        qtype: qtype.to_owned(),
        reverse: false,
        tool: Tool::Dig,
        tcp: false,
        timeout: DEFAULT_TIMEOUT,
        extra: Vec::new(),
    }
}

/// The PTR question for `ip` (`dig -x`), asked by `dig` over UDP from `host`.
pub fn reverse<'h>(host: &'h Host, server: Ipv4Addr, ip: Ipv4Addr) -> Query<'h> {
    Query { reverse: true, ..query(host, server, &ip.to_string(), "PTR") }
}

impl Query<'_> {
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tool = tool;
        self
    }

    /// Over TCP (`+tcp`).
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// How long the client waits for the reply (`+time`, one try).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// One more option for the client, in its own spelling (`+ignore` for dig, `+ignoretc` for kdig).
    pub fn arg(mut self, option: &str) -> Self {
        self.extra.push(option.to_owned());
        self
    }

    fn command(&self) -> Command {
        let mut cmd = self.host.command(self.tool.program());
        let secs = self.timeout.as_secs().max(1);
        cmd.arg(format!("@{}", self.server));
        match self.tool {
            Tool::Dig => cmd.args(["+tries=1".to_owned(), format!("+time={secs}")]),
            Tool::Kdig => cmd.args(["+retry=0".to_owned(), format!("+time={secs}")]),
        };
        if self.tcp {
            cmd.arg("+tcp");
        }
        cmd.args(&self.extra);
        if self.reverse {
            cmd.arg("-x").arg(&self.name);
        } else {
            cmd.arg(&self.name).arg(&self.qtype);
        }
        cmd
    }

    /// Asks once; an error when no reply came (timeout, connection refused) or the client failed.
    pub fn run(&self) -> Result<Reply> {
        let mut cmd = self.command();
        let line = describe(&cmd);
        let started = Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run `{line}` (apt-get install {})", self.tool.package()))?;
        // The client keeps its own deadline; this one only guards against a client that hangs.
        // A channel, not polling: the reply time is measured to the millisecond.
        let pid = child.id();
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || done.send(child.wait_with_output()));
        let output = match finished.recv_timeout(self.timeout + RUN_SLACK) {
            Ok(output) => output.with_context(|| format!("cannot read the output of `{line}`"))?,
            Err(_) => {
                // Still unreaped (its waiter holds it), so the pid is still this client's.
                let _ = process::signal(pid, Signal::SIGKILL);
                bail!("`{line}` still running after {:?}; killed it", self.timeout + RUN_SLACK);
            }
        };
        let elapsed = started.elapsed();
        let text =
            String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        let mut reply = parse(&text).with_context(|| {
            format!(
                "`{line}` on {} got no reply after {elapsed:.2?} ({}):\n{text}",
                self.host.label(),
                output.status
            )
        })?;
        reply.elapsed = elapsed;
        Ok(reply)
    }

    /// Asks again and again until `accept` takes a reply or `timeout` passes; returns that reply
    /// and the time from the call to the end of its query. Failed queries count as not accepted;
    /// the last reply (or error) is in the timeout's message.
    pub fn until(
        &self,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&Reply) -> bool,
    ) -> Result<(Reply, Duration)> {
        let started = Instant::now();
        let mut last = String::from("(no query finished)");
        let found = wait::until(timeout, what, || match self.run() {
            Ok(reply) if accept(&reply) => Ok(Some(reply)),
            Ok(reply) => {
                last = reply.output.clone();
                Ok(None)
            }
            Err(e) => {
                last = format!("{e:#}");
                Ok(None)
            }
        });
        let reply = found.with_context(|| format!("last reply:\n{last}"))?;
        Ok((reply, started.elapsed()))
    }
}

/// One resource record as the client printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, lower-cased, with the trailing dot.
    pub name: String,
    pub ttl: u32,
    /// Upper-case type (`A`, `SOA`, `PTR`, ...).
    pub rtype: String,
    /// The data fields, joined by single spaces.
    pub data: String,
}

/// What a client saw: the header and the sections it printed.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// RCODE as the client names it: `NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`, ...
    pub status: String,
    /// Header flags, lower-case (`qr`, `aa`, `tc`, `rd`, `ra`, `ad`, `cd`).
    pub flags: Vec<String>,
    pub answer: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    /// From starting the client to its exit.
    pub elapsed: Duration,
    /// Everything the client printed, for messages.
    pub output: String,
}

impl Reply {
    pub fn flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Authoritative answer.
    pub fn aa(&self) -> bool {
        self.flag("aa")
    }

    /// Recursion available.
    pub fn ra(&self) -> bool {
        self.flag("ra")
    }

    /// The addresses of the answer's A records, in order.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        self.answer.iter().filter(|r| r.rtype == "A").filter_map(|r| r.data.parse().ok()).collect()
    }

    /// The targets of the answer's PTR records, lower-cased, with the trailing dot.
    pub fn ptr_names(&self) -> Vec<String> {
        self.answer.iter().filter(|r| r.rtype == "PTR").map(|r| r.data.to_ascii_lowercase()).collect()
    }

    /// The owner of the SOA in the authority section (a negative answer's zone), if there is one.
    pub fn authority_soa(&self) -> Option<&str> {
        self.authority.iter().find(|r| r.rtype == "SOA").map(|r| r.name.as_str())
    }

    /// NOERROR with the addresses `ips` and nothing else in the answer.
    pub fn is_answer(&self, ips: &[Ipv4Addr]) -> bool {
        self.status == "NOERROR" && self.addresses() == ips && self.answer.len() == ips.len()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} flags [{}] after {:.0?}:\n{}",
            self.status,
            self.flags.join(" "),
            self.elapsed,
            self.output
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Other,
    Answer,
    Authority,
    Additional,
}

/// Reads the output of `dig` or `kdig` (their default, commented layout); an error when it holds
/// no reply header (the query timed out or was refused). The two differ in separators: `dig`
/// writes `status: NOERROR, id: 1` and `flags: qr aa; QUERY: 1, ANSWER: 1`, `kdig` writes
/// `status: NOERROR; id: 1` and `Flags: qr aa; QUERY: 1; ANSWER: 1`.
pub fn parse(output: &str) -> Result<Reply> {
    let mut reply = Reply { output: output.to_owned(), ..Reply::default() };
    let mut section = Section::Other;
    let mut header = false;
    for line in output.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix(";; ->>HEADER<<-") {
            let status = rest.split_once("status:").map(|(_, s)| s).context("a header without status")?;
            let status = status.split([',', ';']).next().unwrap_or_default().trim();
            reply.status = status.to_owned();
            header = true;
            continue;
        }
        let lower = trimmed.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix(";; flags:") {
            let flags = rest.split(';').next().unwrap_or_default();
            reply.flags = flags.split_whitespace().map(str::to_owned).collect();
            continue;
        }
        if trimmed.starts_with(';') {
            section = match trimmed {
                ";; ANSWER SECTION:" => Section::Answer,
                ";; AUTHORITY SECTION:" => Section::Authority,
                ";; ADDITIONAL SECTION:" => Section::Additional,
                _ if trimmed.ends_with("SECTION:") || trimmed.ends_with("PSEUDOSECTION:") => Section::Other,
                _ => section,
            };
            continue;
        }
        if trimmed.is_empty() {
            section = Section::Other;
            continue;
        }
        let target = match section {
            Section::Answer => &mut reply.answer,
            Section::Authority => &mut reply.authority,
            Section::Additional => &mut reply.additional,
            Section::Other => continue,
        };
        target.push(record(trimmed).with_context(|| format!("unreadable record line {line:?}"))?);
    }
    if !header {
        bail!("no reply header in the output");
    }
    Ok(reply)
}

/// `name TTL CLASS TYPE DATA...`.
fn record(line: &str) -> Result<Record> {
    let mut words = line.split_whitespace();
    let name = words.next().context("no owner name")?.to_ascii_lowercase();
    let ttl = words.next().context("no TTL")?.parse().context("TTL is not a number")?;
    let _class = words.next().context("no class")?;
    let rtype = words.next().context("no type")?.to_ascii_uppercase();
    let data = words.collect::<Vec<_>>().join(" ");
    Ok(Record { name, ttl, rtype, data })
}

/// Fails unless the appliance has logged that it serves DNS (it binds DNS before DHCP, so once
/// [`crate::Lab::start_appliance`] returns this holds at once).
pub fn wait_ready(appliance: &Appliance) -> Result<()> {
    wait::until(Duration::from_secs(10), &format!("{READY_LINE:?} in the appliance log"), || {
        Ok(appliance.log().contains(READY_LINE).then_some(()))
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIG: &str = "
; <<>> DiG 9.18.49-1~deb12u3-Debian <<>> @10.20.0.1 +tries=1 +time=3 alpha.prox.local AAAA
; (1 server found)
;; global options: +cmd
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 4242
;; flags: qr aa rd ra; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
;; QUESTION SECTION:
;alpha.prox.local.		IN	AAAA

;; AUTHORITY SECTION:
prox.local.		30	IN	SOA	ns.prox.local. hostmaster.prox.local. 1764096000 3600 600 604800 30

;; Query time: 0 msec
;; SERVER: 10.20.0.1#53(10.20.0.1) (UDP)
";

    const KDIG: &str = "
;; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 10557
;; Flags: qr aa rd ra; QUERY: 1; ANSWER: 1; AUTHORITY: 0; ADDITIONAL: 0

;; QUESTION SECTION:
;; 100.0.20.10.in-addr.arpa.   		IN	PTR

;; ANSWER SECTION:
100.0.20.10.in-addr.arpa.   	30	IN	PTR	Alpha.prox.local.

;; Received 50 B
;; From 10.20.0.1@53(TCP) in 1.1 ms
";

    #[test]
    fn dig_output_parses() -> Result<()> {
        let reply = parse(DIG)?;
        assert_eq!(reply.status, "NOERROR");
        assert_eq!(reply.flags, ["qr", "aa", "rd", "ra"]);
        assert!(reply.aa() && reply.ra());
        assert!(reply.answer.is_empty());
        assert_eq!(reply.authority_soa(), Some("prox.local."));
        assert_eq!(reply.authority[0].ttl, 30);
        Ok(())
    }

    #[test]
    fn kdig_output_parses() -> Result<()> {
        let reply = parse(KDIG)?;
        assert_eq!(reply.status, "NOERROR");
        assert!(reply.aa() && !reply.flag("tc"));
        assert_eq!(reply.ptr_names(), ["alpha.prox.local."]);
        assert!(reply.authority.is_empty());
        Ok(())
    }

    #[test]
    fn no_reply_is_an_error() {
        let timed_out =
            ";; communications error to 10.20.0.1#53: timed out\n;; no servers could be reached\n";
        assert!(parse(timed_out).is_err());
        assert!(parse(";; WARNING: failed to query server 10.20.0.1@53(UDP)\n").is_err());
    }

    #[test]
    fn addresses_and_answers() -> Result<()> {
        let reply = parse(
            ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n;; flags: qr rd ra; QUERY: 1, ANSWER: 1\n\
             ;; ANSWER SECTION:\nwww.example.test. 60 IN A 198.51.100.7\n",
        )?;
        let ip = Ipv4Addr::new(198, 51, 100, 7);
        assert_eq!(reply.addresses(), [ip]);
        assert!(reply.is_answer(&[ip]));
        assert!(!reply.is_answer(&[]));
        assert!(!reply.aa() && reply.ra());
        Ok(())
    }
}
