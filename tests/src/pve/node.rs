//! [`Node`]: a network namespace playing a Proxmox VE node for the end-to-end tests: the
//! management bridge `vmbr0` with [`NODE_ADDRESS`] and a DHCP server on it (dnsmasq, as the
//! user's network would give the appliance's `eth0` an address), and `pve-sim`, the Proxmox API
//! test double, listening on `https://NODE_ADDRESS:8006` inside. Tests run `proximity` (or curl)
//! there with [`Node::command`]. Dropping the node stops the sim (which stops its containers),
//! kills what is left in the namespace and deletes it.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use proximity_tests::pve::node::Node;
//! // In an integration test: env!("CARGO_BIN_EXE_pve-sim").
//! let node = Node::start(std::path::Path::new("target/debug/pve-sim"))?;
//! let version = format!("{}/api2/json/version", node.url());
//! let auth = format!("Authorization: PVEAPIToken={}", node.token());
//! let out = node.command("curl").arg("--cacert").arg(node.ca_file()).args(["-H", &auth, &version]).output()?;
//! assert!(String::from_utf8_lossy(&out.stdout).contains("pve-sim"));
//! assert_eq!(node.request_log()?.len(), 1);
//! # Ok(()) }
//! ```
//!
//! The namespace is named like the lab's (`pxlab-<tag>-pve`), under a claimed tag, so parallel
//! nodes never meet and the lab's sweep removes one left by a killed test run. Only `vmbr0` is
//! made here; the provisioner makes `proximity-lan` itself. `PROXIMITY_LAB_KEEP=1` keeps the
//! node's directory (the sim's data, its log, the request log, LXC's logs) for a look afterwards.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use nix::sys::signal::Signal;
use proximity_config::MacAddr;
use serde::Deserialize;
use tempfile::TempDir;

use crate::dns::dnsmasq;
use crate::logs::Logs;
use crate::names::{Claim, Names};
use crate::netns::{self, Netns};
use crate::process::{self, Reaper, kill_child, spawn_logged, wait_exit};
use crate::topology::{Host, KEEP_ENV};
use crate::wait;

/// The management bridge, as on a fresh Proxmox install.
pub const BRIDGE: &str = "vmbr0";
/// The node's address on [`BRIDGE`] (the namespace is the node's own: no other lab sees it).
pub const NODE_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 1);
pub const NODE_PREFIX: u8 = 24;
/// The addresses the DHCP server on [`BRIDGE`] hands out.
pub const DHCP_FIRST: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 100);
pub const DHCP_LAST: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 199);
/// Proxmox's API port.
pub const API_PORT: u16 = 8006;
/// The node's name, `{node}` in API paths.
pub const NODE_NAME: &str = "pve";
/// The API user and token id; the secret is random per node.
pub const TOKEN_ID: &str = "root@pam!proximity";
/// From spawn to the sim's fingerprint line, and to dnsmasq's "sockets bound".
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// From SIGTERM to the sim's exit (it stops its containers first).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The bridge's MAC: locally administered, apart from the lab's others.
const BRIDGE_MAC: MacAddr = MacAddr([0x02, 0x70, 0x78, 0xfd, 0x00, 0x01]);
/// Where LXC keeps a lock directory per lxcpath.
const LXC_LOCK_DIR: &str = "/run/lxc/lock";

/// One line of the sim's request log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Entry {
    /// Whether the request could change something (anything but GET).
    pub fn is_mutating(&self) -> bool {
        self.method != "GET"
    }
}

/// A Proxmox node played by a namespace and `pve-sim`.
#[derive(Debug)]
pub struct Node {
    sim: Mutex<Child>,
    /// The sim's binary, for a restart.
    sim_binary: PathBuf,
    dhcp: Mutex<Child>,
    fingerprint: String,
    token: String,
    ca_file: PathBuf,
    request_log: PathBuf,
    data: PathBuf,
    /// The node namespace as a lab host (its interface is [`BRIDGE`]); dropped after the
    /// processes above are stopped, which deletes the namespace.
    host: Host,
    logs: Arc<Logs>,
    reaper: Arc<Reaper>,
    /// The claimed names: the node's namespace and its LAN clients'.
    names: Names,
    _claim: Claim,
    dir: TempDir,
}

impl Node {
    /// Starts a node with the sim binary `sim`, runs `test` on it, and on failure adds the
    /// node's diagnostics (the sim's log, LXC's, the containers' consoles) to the error.
    pub fn with<T>(sim: &Path, test: impl FnOnce(&Node) -> Result<T>) -> Result<T> {
        let node = Node::start(sim)?;
        test(&node).map_err(|e| anyhow!("{e:#}\n{}", node.diagnostics()))
    }

    /// Builds the namespace, the bridge and its DHCP server, and starts `pve-sim` (the binary at
    /// `sim`, from `env!("CARGO_BIN_EXE_pve-sim")`); returns once the sim serves.
    pub fn start(sim: &Path) -> Result<Node> {
        ensure!(nix::unistd::geteuid().is_root(), "a pve-sim node needs root (namespaces, bridges, LXC)");
        netns::remove_stale();
        crate::lxc::ensure_subids()?;
        let (names, claim) = Names::claim()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}.", names.netns("pve")))
            .tempdir()
            .context("cannot create the node's directory")?;
        // The containers' root (uid 100000) passes through to its rootfs below.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
        let logs = Arc::new(Logs::default());
        let reaper = Arc::new(Reaper::default());
        let ns = Netns::create(&names.netns("pve"))?;
        let cidr = format!("{NODE_ADDRESS}/{NODE_PREFIX}");
        ns.ip(&["link", "add", BRIDGE, "address", &BRIDGE_MAC.to_string(), "type", "bridge"])?;
        ns.ip(&["addr", "add", &cidr, "dev", BRIDGE])?;
        ns.ip(&["link", "set", BRIDGE, "up"])?;
        let host = Host::new("node", ns, BRIDGE.to_owned(), BRIDGE_MAC, dir.path(), &logs, &reaper)?;
        let dhcp = start_dhcp(&host)?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        let mut secret = [0u8; 16];
        getrandom::fill(&mut secret).map_err(|e| anyhow!("no randomness: {e}"))?;
        let token = format!("{TOKEN_ID}={}", secret.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let ca_file = dir.path().join("pve-sim.pem");
        let request_log = dir.path().join("requests.jsonl");
        let sim_log = dir.path().join("pve-sim.log");
        logs.register("pve-sim", &sim_log);
        let mut cmd = sim_command(&host, sim, &data, &token, &ca_file, &request_log);
        let child = spawn_logged(&mut cmd, &sim_log)?;
        let mut node = Node {
            sim: Mutex::new(child),
            sim_binary: sim.to_owned(),
            dhcp: Mutex::new(dhcp),
            fingerprint: String::new(),
            token,
            ca_file,
            request_log,
            data,
            host,
            logs,
            reaper,
            names,
            _claim: claim,
            dir,
        };
        node.fingerprint = node.await_fingerprint(0)?;
        Ok(node)
    }

    /// The `n`-th (from 0) fingerprint line of the sim's log, once it is there: the sim serves.
    fn await_fingerprint(&self, n: usize) -> Result<String> {
        let sim_log = self.dir.path().join("pve-sim.log");
        wait::until(READY_TIMEOUT, "pve-sim's fingerprint line", || {
            if let Some(status) = self.sim.lock().unwrap_or_else(PoisonError::into_inner).try_wait()? {
                bail!("pve-sim exited ({status})\n{}", self.logs.render());
            }
            let log = std::fs::read_to_string(&sim_log).unwrap_or_default();
            Ok(log.lines().filter_map(|l| l.strip_prefix("fingerprint ")).nth(n).map(str::to_owned))
        })
    }

    /// The node reboots: the sim stops (and with it every container, as a node's shutdown
    /// does) and starts again over the same data, starting the containers marked `onboot`. Its
    /// certificate is the same afterwards, as a node's `pve-ssl.pem` is.
    pub fn reboot(&self) -> Result<()> {
        let status = self.stop_sim()?;
        ensure!(status.success(), "pve-sim stopped with {status}");
        let mut cmd = sim_command(
            &self.host,
            &self.sim_binary,
            &self.data,
            &self.token,
            &self.ca_file,
            &self.request_log,
        );
        let child = spawn_logged(&mut cmd, &self.dir.path().join("pve-sim.log"))?;
        *self.sim.lock().unwrap_or_else(PoisonError::into_inner) = child;
        let fingerprint = self.await_fingerprint(1)?;
        ensure!(fingerprint == self.fingerprint, "the sim's certificate changed across the reboot");
        Ok(())
    }

    /// The API's base URL, `https://192.168.100.1:8006` (paths go below `/api2/json`).
    pub fn url(&self) -> String {
        format!("https://{NODE_ADDRESS}:{API_PORT}")
    }

    /// The API token, `user@realm!tokenid=secret`.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// SHA-256 of the sim's certificate, `AA:BB:...`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// PEM file with the sim's certificate and its CA, for `--cacert` or a CA file option.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The node's name in API paths.
    pub fn name(&self) -> &str {
        NODE_NAME
    }

    /// The sim's `--data` directory (storages under `storage/`, configs under `pve/lxc/`).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The node as a lab host on [`BRIDGE`] (the outside, as the appliance's LAN sees it): to
    /// run a server there that NAT'd LAN clients reach.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The namespace playing the node.
    pub fn netns(&self) -> &Netns {
        self.host.netns()
    }

    /// A scratch directory of the node's, removed with it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sets the provisioner's connection environment on `cmd`: `PROXMOX_URL`, `PROXMOX_TOKEN`,
    /// `PROXMOX_NODE` (TLS trust, a CA file or the fingerprint, is the caller's flag to add).
    pub fn proxmox_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("PROXMOX_URL", self.url()).env("PROXMOX_TOKEN", &self.token).env("PROXMOX_NODE", NODE_NAME)
    }

    /// `program` run inside the node's namespace.
    pub fn command(&self, program: &str) -> Command {
        self.host.command(program)
    }

    /// Every request the sim served so far.
    pub fn request_log(&self) -> Result<Vec<Entry>> {
        let text = std::fs::read_to_string(&self.request_log).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("bad request log line {l:?}")))
            .collect()
    }

    /// The sim's and dnsmasq's logs, and LXC's and the console's of each container the sim
    /// has (destroyed ones take theirs with them), for an error message.
    pub fn diagnostics(&self) -> String {
        let mut out = self.logs.render();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.data.join("lxc"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        dirs.sort();
        for dir in dirs {
            if let Some(name) = dir.file_name() {
                let mut info = self.command("lxc-info");
                info.arg("-P").arg(self.data.join("lxc")).arg("-n").arg(name);
                if let Ok(o) = info.output() {
                    let text = format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    );
                    out.push_str(&format!("----- lxc-info {} -----\n{text}\n", name.to_string_lossy()));
                }
            }
            for file in ["lxc-start.log", "console.log"] {
                let path = dir.join(file);
                if let Ok(text) = std::fs::read_to_string(&path) {
                    out.push_str(&format!(
                        "----- {} -----\n{}\n",
                        path.display(),
                        crate::logs::excerpt(&text)
                    ));
                }
            }
        }
        out
    }

    /// Stops the sim with SIGTERM, as a user would; it stops its containers first. Its exit
    /// status, or an error when it had already exited or was still running after
    /// [`STOP_TIMEOUT`] (then it is killed). The namespace stays until the node is dropped.
    pub fn stop_sim(&self) -> Result<std::process::ExitStatus> {
        let mut sim = self.sim.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(status) = sim.try_wait()? {
            bail!("pve-sim had already exited ({status})");
        }
        process::signal(sim.id(), Signal::SIGTERM)?;
        match wait_exit(&mut sim, STOP_TIMEOUT)? {
            Some(status) => Ok(status),
            None => {
                kill_child(&mut sim);
                bail!("pve-sim was still running {STOP_TIMEOUT:?} after SIGTERM; killed it")
            }
        }
    }

    /// A client host on the node's bridge `bridge` (the LAN bridge the provisioner made): a
    /// namespace of its own (`pxlab-<tag>-<label>`) whose `eth0` (MAC `mac`) is a veth pair with
    /// its peer in the node's namespace on `bridge`. Dropping the host deletes its namespace,
    /// which takes the pair with it. `label` is short (the peer is `v<label>`, 15 bytes at most).
    pub fn lan_client(&self, label: &str, bridge: &str, mac: MacAddr) -> Result<Host> {
        let ns = Netns::create(&self.names.netns(label))?;
        let peer = format!("v{label}");
        ns.ip(&[
            "link",
            "add",
            "eth0",
            "address",
            &mac.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            self.host.netns().name(),
        ])?;
        self.host.netns().ip(&["link", "set", &peer, "master", bridge, "up"])?;
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        Host::new(label, ns, "eth0".to_owned(), mac, self.dir.path(), &self.logs, &self.reaper)
    }

    /// `lxc-TOOL -P <the sim's lxcpath> -n <vmid>` in the node's namespace (where LXC's command
    /// socket is).
    pub fn lxc(&self, tool: &str, vmid: u32) -> Command {
        let mut cmd = self.command(&format!("lxc-{tool}"));
        cmd.arg("-P").arg(self.data.join("lxc")).arg("-n").arg(vmid.to_string());
        cmd
    }

    /// The pid of container `vmid`'s init as this machine sees it (`lxc-info -p`).
    pub fn init_pid(&self, vmid: u32) -> Result<u32> {
        let out = self.lxc("info", vmid).args(["-p", "-H"]).output().context("cannot run lxc-info")?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().with_context(|| format!("lxc-info gave no pid for CT {vmid}: {text:?}"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop_sim();
        // Containers a killed sim could not stop: stop them, so LXC removes their cgroups.
        let lxcpath = self.data.join("lxc");
        for entry in std::fs::read_dir(&lxcpath).into_iter().flatten().flatten() {
            let mut stop = self.command("lxc-stop");
            stop.arg("-P").arg(&lxcpath).arg("-n").arg(entry.file_name()).arg("-k");
            let _ = stop.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        kill_child(&mut self.dhcp.lock().unwrap_or_else(PoisonError::into_inner));
        // LXC's lock directories mirror the lxcpath under LXC_LOCK_DIR; the node's directory is
        // unique, so everything under its mirror is ours.
        let dir = self.dir.path();
        let _ = std::fs::remove_dir_all(Path::new(LXC_LOCK_DIR).join(dir.strip_prefix("/").unwrap_or(dir)));
        if std::env::var_os(KEEP_ENV).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("pve node: kept {} ({KEEP_ENV} is set)", self.dir.path().display());
        }
        // `host` (the namespace, killing what is left in it), the claim and the directory go next.
    }
}

/// dnsmasq serving DHCP on the bridge (no DNS), the node itself as router; waits until bound.
/// `pve-sim` for this node, in its namespace.
fn sim_command(
    host: &Host,
    sim: &Path,
    data: &Path,
    token: &str,
    ca_file: &Path,
    request_log: &Path,
) -> Command {
    let mut cmd = host.command(&sim.to_string_lossy());
    cmd.arg("--listen")
        .arg(format!("{NODE_ADDRESS}:{API_PORT}"))
        .arg("--data")
        .arg(data)
        .args(["--node", NODE_NAME, "--token", token])
        .arg("--cert-out")
        .arg(ca_file)
        .arg("--request-log")
        .arg(request_log);
    cmd
}

fn start_dhcp(host: &Host) -> Result<Child> {
    let leases = host.dir().join("dnsmasq-dhcp.leases");
    let args = vec![
        "--port=0".to_owned(),
        "--no-ping".to_owned(),
        "--log-dhcp".to_owned(),
        format!("--interface={BRIDGE}"),
        format!("--dhcp-range={DHCP_FIRST},{DHCP_LAST},12h"),
        format!("--dhcp-leasefile={}", leases.display()),
        format!("--pid-file={}", host.dir().join("dnsmasq-dhcp.pid").display()),
    ];
    let (mut child, log, offset) = dnsmasq::spawn(host, "dnsmasq-dhcp", &args)?;
    let ready = wait::until(READY_TIMEOUT, "dnsmasq to serve DHCP on vmbr0", || {
        if let Some(status) = child.try_wait()? {
            bail!("dnsmasq exited ({status})");
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        Ok(text.get(offset..).unwrap_or_default().contains("DHCP, sockets bound").then_some(()))
    });
    if let Err(e) = ready {
        kill_child(&mut child);
        return Err(anyhow!("{e:#}\n{}", host.logs().render()));
    }
    Ok(child)
}
