//! Network namespaces the lab creates: `ip netns add`, commands inside one, and removal that first
//! kills every process still inside (all started by the lab), even when a test panicked.

use std::process::Command;
use std::sync::Once;

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use nix::sys::signal::Signal;

use crate::names::{Claim, NETNS_PREFIX, tag_of};
use crate::process::{self, run};

/// Where iproute2 keeps the named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings its loopback up.
    pub fn create(name: &str) -> Result<Netns> {
        run(Command::new("ip").args(["netns", "add", name]))
            .with_context(|| format!("cannot create network namespace {name}"))?;
        let ns = Netns { name: name.to_owned() };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...` and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command that runs `program` inside the namespace (`ip netns exec` execs it, so the pid
    /// of the spawned child is the program's own).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// IPv4 addresses on `iface`, with prefix lengths, in the kernel's order (primary first).
    pub fn ipv4_addrs(&self, iface: &str) -> Result<Vec<(Ipv4Addr, u8)>> {
        let out = self.ip(&["-4", "-o", "addr", "show", "dev", iface])?;
        // Lines look like `2: c1f0n0    inet 10.20.0.100/24 brd ... scope global c1f0n0\ ...`.
        let mut addrs = Vec::new();
        for line in out.lines() {
            let mut words = line.split_whitespace();
            if words.any(|w| w == "inet") {
                let cidr = words.next().context("`inet` without an address")?;
                let (ip, len) = cidr.split_once('/').with_context(|| format!("{cidr:?} has no prefix"))?;
                addrs.push((ip.parse()?, len.parse()?));
            }
        }
        Ok(addrs)
    }

    /// The default route's gateway, if there is one.
    pub fn default_gateway(&self) -> Result<Option<Ipv4Addr>> {
        let out = self.ip(&["-4", "route", "show", "default"])?;
        let via = out.split_whitespace().skip_while(|w| *w != "via").nth(1);
        via.map(|ip| ip.parse().with_context(|| format!("bad route: {out}"))).transpose()
    }

    /// Pids of the processes inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        pids_in(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        destroy(&self.name);
    }
}

fn pids_in(name: &str) -> Vec<u32> {
    let out = Command::new("ip").args(["netns", "pids", name]).output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect()
    })
    .unwrap_or_default()
}

/// Kills what runs inside `name` (only the lab starts processes there) and deletes it. Best
/// effort: it runs from `Drop`, where there is nobody to report to.
fn destroy(name: &str) {
    for pid in pids_in(name) {
        let _ = process::signal(pid, Signal::SIGKILL);
    }
    let _ = Command::new("ip").args(["netns", "del", name]).output();
}

/// Names of the lab namespaces that exist now.
fn lab_namespaces() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else { return Vec::new() };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(NETNS_PREFIX))
        .collect()
}

/// Deletes every namespace of `tag`. The caller holds the tag's [`Claim`], so none is in use.
pub fn remove_tagged(tag: &str, _claim: &Claim) {
    for name in lab_namespaces() {
        if tag_of(&name) == Some(tag) {
            destroy(&name);
        }
    }
}

/// Deletes lab namespaces left by labs that died before their cleanup ran (a test run killed
/// with SIGKILL): those whose tag nobody holds. Runs once per process.
pub fn remove_stale() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut tags: Vec<String> =
            lab_namespaces().iter().filter_map(|n| tag_of(n)).map(str::to_owned).collect();
        tags.sort();
        tags.dedup();
        for tag in tags {
            if let Ok(Some(claim)) = Claim::try_take(&tag) {
                remove_tagged(&tag, &claim);
            }
        }
    });
}
