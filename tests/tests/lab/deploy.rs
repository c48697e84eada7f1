//! The deploy, end to end, through the Proxmox API: `pve-sim` plays the node, the real
//! `proximity` binary runs in the node's namespace as a user runs it on a node (root, host-mode
//! bridge `proximity-lan`), with the node's certificate pinned by fingerprint. `up` from nothing
//! builds and uploads the template, creates CT 100 and starts it: the appliance takes a WAN
//! address on `vmbr0` by DHCP, proves its CA, answers health and DNS. An app added with
//! `proximity apps add` resolves from the WAN side. A second `up` makes no mutating call (the
//! sim's request log) and says so. A new appliance build upgrades in place and the app is still
//! there (state volume kept). `down` leaves no container, template, bridge, stanza or state file,
//! and a second `down` finds nothing.
//!
//! Not covered here (yet): a LAN client's lease, NAT to the outside and HTTP through the proxy
//! from both sides, which the other lab tests check against the appliance directly.

use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, Result, anyhow, bail, ensure};
use proximity_tests::lxc::static_binary;
use proximity_tests::pve::node::Node;
use serde_json::Value;

use crate::pve_api::PVE_SIM;

/// The environment variable naming the `proximity` binary (else found next to the tests).
const PROXIMITY_BIN_ENV: &str = "PROXIMITY_BIN";
/// The app registered in the test.
const APP: &str = "web";
/// Its backend (nothing needs to listen there for DNS).
const APP_BACKEND: &str = "10.20.0.50";

/// The `proximity` binary: `$PROXIMITY_BIN`, else `target/<profile>/proximity` beside the test
/// binary, else the workspace's `target/debug/` (the test command builds the workspace first).
fn proximity_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(PROXIMITY_BIN_ENV) {
        return Ok(PathBuf::from(path));
    }
    let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.join("proximity")));
    let in_workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/proximity");
    beside.into_iter().chain([in_workspace]).find(|p| p.is_file()).ok_or_else(|| {
        anyhow!("no proximity binary next to the tests nor in target/debug: run `cargo build -p proximity-provisioner` first, or set {PROXIMITY_BIN_ENV}")
    })
}

/// The provisioner as a user on the node runs it: its own HOME (state and template cache), the
/// stanza directory in the node's scratch directory.
struct Proximity<'n> {
    node: &'n Node,
    binary: PathBuf,
    home: PathBuf,
}

impl Proximity<'_> {
    fn interfaces_dir(&self) -> PathBuf {
        self.home.join("interfaces.d")
    }

    fn state_file(&self) -> PathBuf {
        self.home.join(".config/proximity/pve-100.json")
    }

    fn run(&self, appliance: &Path, args: &[&str]) -> Result<Output> {
        let mut cmd = self.node.command(&self.binary.to_string_lossy());
        self.node.proxmox_env(&mut cmd);
        cmd.env("HOME", &self.home)
            .env("PROXIMITY_INTERFACES_DIR", self.interfaces_dir())
            .env("PROXMOX_FINGERPRINT", self.node.fingerprint())
            .arg("--appliance")
            .arg(appliance)
            .args(["--timeout", "3m"])
            .args(args);
        cmd.output().with_context(|| format!("cannot run proximity {args:?}"))
    }

    /// Runs and requires exit 0; stdout.
    fn ok(&self, appliance: &Path, args: &[&str]) -> Result<String> {
        let out = self.run(appliance, args)?;
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            bail!("proximity {args:?} failed ({}):\n{stderr}\n{stdout}", out.status);
        }
        Ok(stdout.into_owned())
    }

    fn json(&self, appliance: &Path, args: &[&str]) -> Result<Value> {
        let text = self.ok(appliance, args)?;
        serde_json::from_str(&text).with_context(|| format!("proximity {args:?} printed no JSON: {text}"))
    }
}

/// `dig +short @server name` from the node.
fn dig(node: &Node, server: &str, name: &str) -> Result<String> {
    let out =
        node.command("dig").args(["+short", "+time=2", "+tries=2", &format!("@{server}"), name]).output()?;
    ensure!(out.status.success(), "dig failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn proximity_deploys_upgrades_and_removes_the_appliance_through_the_proxmox_api() -> Result<()> {
    let node = Node::start(Path::new(PVE_SIM))?;
    let result = journey(&node);
    result.map_err(|e| anyhow!("{e:#}\n{}", node.diagnostics()))
}

fn journey(node: &Node) -> Result<()> {
    let home = node.dir().join("home");
    std::fs::create_dir_all(&home)?;
    let proximity = Proximity { node, binary: proximity_binary()?, home };
    let first = static_binary()?;

    // From nothing.
    let out = proximity.ok(&first, &["up"])?;
    ensure!(out.contains("WAN address") && !out.contains("no change"), "first up: {out}");
    let status = proximity.json(&first, &["status", "--json"])?;
    ensure!(status["container"] == "running", "status: {status}");
    ensure!(status["spec_match"] == true, "status: {status}");
    ensure!(status["health"].as_str().is_some_and(|h| h == "ok" || h == "degraded"), "status: {status}");
    let wan = status["wan_address"].as_str().context("no WAN address in status")?.to_owned();
    ensure!(wan.starts_with("192.168.100."), "WAN address {wan} is not from vmbr0's DHCP");
    let link = node.netns().ip(&["-j", "link", "show", "proximity-lan"])?;
    ensure!(link.contains("\"UP\""), "proximity-lan is not up: {link}");
    let stanza = std::fs::read_to_string(proximity.interfaces_dir().join("proximity-lan"))?;
    ensure!(stanza.contains("managed by proximity") && stanza.contains("iface proximity-lan inet manual"));
    let mode = std::fs::metadata(proximity.state_file())?.permissions();
    ensure!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777 == 0o600, "state file mode {mode:?}");

    // The admin API through the pinned CA: an app, visible from the WAN side's DNS.
    proximity.ok(&first, &["apps", "add", APP, "--ip", APP_BACKEND, "--port", "8080"])?;
    let apps = proximity.json(&first, &["apps", "list", "--json"])?;
    ensure!(apps.as_array().is_some_and(|a| a.iter().any(|x| x["name"] == APP)), "apps: {apps}");
    ensure!(dig(node, &wan, "web.prox.local")? == wan, "web.prox.local from the WAN side");
    proximity.json(&first, &["leases", "--json"])?;

    // Nothing changed: no mutating call, and it says so.
    let before = node.request_log()?.len();
    let out = proximity.ok(&first, &["up"])?;
    ensure!(out.contains("no change"), "second up: {out}");
    let mutating: Vec<_> = node.request_log()?.into_iter().skip(before).filter(|e| e.is_mutating()).collect();
    ensure!(mutating.is_empty(), "a second up made mutating calls: {mutating:?}");

    // A new build upgrades in place; the state volume (the app) is kept.
    let second = node.dir().join("proximity-appliance");
    std::fs::copy(&first, &second)?;
    let mut bytes = std::fs::read(&second)?;
    bytes.extend_from_slice(b"\0a new build");
    std::fs::write(&second, bytes)?;
    let out = proximity.ok(&second, &["up"])?;
    ensure!(!out.contains("no change"), "upgrade: {out}");
    let status = proximity.json(&second, &["status", "--json"])?;
    ensure!(status["container"] == "running" && status["spec_match"] == true, "after the upgrade: {status}");
    let apps = proximity.json(&second, &["apps", "list", "--json"])?;
    ensure!(
        apps.as_array().is_some_and(|a| a.iter().any(|x| x["name"] == APP)),
        "the upgrade lost the app: {apps}"
    );
    let cts = node.request_log()?;
    ensure!(
        cts.iter().any(|e| e.method == "POST" && e.path.ends_with("/move_volume")),
        "no move_volume in {cts:?}"
    );

    // Down leaves nothing of ours.
    let out = proximity.ok(&second, &["down"])?;
    ensure!(out.contains("removed"), "down: {out}");
    let status = proximity.json(&second, &["status", "--json"])?;
    ensure!(status["container"] == "absent", "after down: {status}");
    ensure!(node.netns().ip(&["link", "show", "proximity-lan"]).is_err(), "proximity-lan is still there");
    ensure!(!proximity.interfaces_dir().join("proximity-lan").exists(), "the stanza is still there");
    ensure!(!proximity.state_file().exists(), "the state file is still there");
    let templates: Vec<_> = std::fs::read_dir(node.data_dir().join("storage/local/template/cache"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    ensure!(templates.is_empty(), "templates left: {templates:?}");
    let lxc: Vec<_> = std::fs::read_dir(node.data_dir().join("lxc"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    ensure!(lxc.is_empty(), "containers left: {lxc:?}");
    let out = proximity.ok(&second, &["down"])?;
    ensure!(out.contains("nothing to remove"), "second down: {out}");
    Ok(())
}
