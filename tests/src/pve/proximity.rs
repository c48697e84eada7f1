//! [`Proximity`]: the real `proximity` binary run as a user on a (simulated) node runs it: in the
//! node's namespace, as root, with the Proxmox connection from the environment and the node's
//! certificate pinned by fingerprint, its own `HOME` (token, pinned CA, template cache) and the
//! host bridge's stanza in a scratch directory instead of this machine's
//! `/etc/network/interfaces.d`. Shared by the end-to-end tests and `deploy-demo`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use super::node::Node;

/// The environment variable naming the `proximity` binary (else found next to the caller).
pub const PROXIMITY_BIN_ENV: &str = "PROXIMITY_BIN";

/// `proximity` for one node.
#[derive(Debug)]
pub struct Proximity<'n> {
    node: &'n Node,
    binary: PathBuf,
    home: PathBuf,
}

impl<'n> Proximity<'n> {
    /// The binary from [`Proximity::binary`], with `HOME` in the node's scratch directory.
    pub fn new(node: &'n Node) -> Result<Proximity<'n>> {
        Proximity::with_binary(node, Proximity::binary()?)
    }

    pub fn with_binary(node: &'n Node, binary: PathBuf) -> Result<Proximity<'n>> {
        let home = node.dir().join("home");
        std::fs::create_dir_all(&home).with_context(|| format!("cannot create {}", home.display()))?;
        Ok(Proximity { node, binary, home })
    }

    /// `$PROXIMITY_BIN`, else `proximity` in the caller's `target/<profile>/` (beside it, or
    /// one up for test binaries in `deps/`), else the workspace's `target/debug/` (the test
    /// command builds the workspace first).
    pub fn binary() -> Result<PathBuf> {
        if let Some(path) = std::env::var_os(PROXIMITY_BIN_ENV) {
            return Ok(PathBuf::from(path));
        }
        let exe = std::env::current_exe().ok();
        let dir = exe.as_deref().and_then(Path::parent);
        let candidates =
            [dir.map(|d| d.join("proximity")), dir.and_then(Path::parent).map(|d| d.join("proximity"))];
        let in_workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/proximity");
        candidates.into_iter().flatten().chain([in_workspace]).find(|p| p.is_file()).ok_or_else(|| {
            anyhow!(
                "no proximity binary next to this program nor in target/debug: run `cargo build -p \
                 proximity-provisioner` first, or set {PROXIMITY_BIN_ENV}"
            )
        })
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Where host mode writes the bridge's stanza.
    pub fn interfaces_dir(&self) -> PathBuf {
        self.home.join("interfaces.d")
    }

    /// The provisioner's state file for CT 100 on the node (token, pinned CA, WAN address).
    pub fn state_file(&self) -> PathBuf {
        self.home.join(".config/proximity/pve-100.json")
    }

    /// `proximity --appliance APPLIANCE ARGS` in the node's namespace, not yet run.
    pub fn command(&self, appliance: &Path, args: &[&str]) -> Command {
        self.command_in(self.node.command(&self.binary.to_string_lossy()), appliance, args)
    }

    /// The same in `cmd` (a command for the binary, in another namespace).
    pub fn command_in(&self, mut cmd: Command, appliance: &Path, args: &[&str]) -> Command {
        self.node.proxmox_env(&mut cmd);
        cmd.env("HOME", &self.home)
            .env("PROXIMITY_INTERFACES_DIR", self.interfaces_dir())
            .env("PROXMOX_FINGERPRINT", self.node.fingerprint())
            .arg("--appliance")
            .arg(appliance)
            .args(args);
        cmd
    }

    /// Runs it, whatever the exit status.
    pub fn run(&self, appliance: &Path, args: &[&str]) -> Result<Output> {
        self.command(appliance, args).output().with_context(|| format!("cannot run proximity {args:?}"))
    }

    /// Runs it and requires exit 0; stdout.
    pub fn ok(&self, appliance: &Path, args: &[&str]) -> Result<String> {
        let out = self.run(appliance, args)?;
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            bail!("proximity {args:?} failed ({}):\n{stderr}\n{stdout}", out.status);
        }
        Ok(stdout.into_owned())
    }

    /// [`Proximity::ok`], its stdout as JSON (for `--json` commands).
    pub fn json(&self, appliance: &Path, args: &[&str]) -> Result<Value> {
        let text = self.ok(appliance, args)?;
        serde_json::from_str(&text).with_context(|| format!("proximity {args:?} printed no JSON: {text}"))
    }

    /// The appliance CA pinned in the state file, written to `path` (for curl's `--cacert`).
    pub fn pinned_ca(&self, path: &Path) -> Result<()> {
        let state: Value = serde_json::from_str(&std::fs::read_to_string(self.state_file())?)?;
        let pem = state["ca_pem"].as_str().context("no pinned CA in the state file")?;
        std::fs::write(path, pem).with_context(|| format!("cannot write {}", path.display()))
    }
}
