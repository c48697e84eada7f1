//! The real `proximity-appliance` in the lab: finding the binary, starting it inside the appliance
//! namespace with a config the test wrote, waiting for its ready line, stopping it (SIGTERM),
//! crashing it (SIGKILL), starting it again on the same state, and reading its log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::Signal;
use proximity_config::RawConfig;

use crate::logs::{Logs, excerpt};
use crate::process::{self, kill_child, spawn_logged, wait_exit};
use crate::wait;

/// Overrides where the binary is looked for.
pub const BIN_ENV: &str = "PROXIMITY_APPLIANCE_BIN";
/// The appliance logs this once its DHCP socket is bound: from then on clients get answers.
pub const READY_LINE: &str = "listening for dhcp";
/// From spawn to [`READY_LINE`]; a debug build starts in well under a second.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// From SIGTERM to exit; a graceful stop that takes longer is a bug worth failing on.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The `proximity-appliance` binary: `$PROXIMITY_APPLIANCE_BIN`, else next to the running test
/// binary's directory (`target/<profile>/`, which also honours `CARGO_TARGET_DIR`), else
/// `target/debug/` of the workspace. Cargo does not build another crate's binary for our tests,
/// so the test command builds it first (`cargo build --workspace`).
pub fn binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(BIN_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{BIN_ENV}={} is not a file", path.display());
        }
        return Ok(path);
    }
    let beside_tests = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("proximity-appliance")));
    let in_workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/proximity-appliance");
    for candidate in beside_tests.into_iter().chain([in_workspace]) {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "proximity-appliance binary not found next to the test binary nor in target/debug: \
         run `cargo build -p proximity-appliance` first, or set {BIN_ENV}"
    )
}

/// The appliance process of one lab. Methods take `&self` so a test can restart it while it
/// holds references to the lab's clients.
#[derive(Debug)]
pub struct Appliance {
    netns: String,
    config_path: PathBuf,
    log_path: PathBuf,
    running: Mutex<Option<Child>>,
    /// Set in the appliance's environment at every start (see [`Appliance::set_env`]).
    env: Mutex<Vec<(String, String)>>,
}

impl Appliance {
    pub(crate) fn new(netns: &str, dir: &Path, logs: &Logs) -> Appliance {
        let log_path = dir.join("appliance.log");
        logs.register("appliance", &log_path);
        Appliance {
            netns: netns.to_owned(),
            config_path: dir.join("proximity.toml"),
            log_path,
            running: Mutex::new(None),
            env: Mutex::new(Vec::new()),
        }
    }

    /// Sets `key=value` in the environment of the appliance's next starts (e.g. where it finds
    /// `nft`), without touching the test process's own environment, which parallel tests share.
    pub fn set_env(&self, key: &str, value: &str) {
        let mut env = self.env.lock().unwrap_or_else(PoisonError::into_inner);
        env.retain(|(k, _)| k != key);
        env.push((key.to_owned(), value.to_owned()));
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `config`, creates its state directory, starts the appliance and waits for it to
    /// listen. Fails, with the log, if it exits first or is not ready within [`READY_TIMEOUT`].
    pub fn start(&self, config: &RawConfig) -> Result<()> {
        std::fs::create_dir_all(&config.state.dir)
            .with_context(|| format!("cannot create state dir {}", config.state.dir))?;
        let text = config.to_toml().context("cannot serialise the config")?;
        std::fs::write(&self.config_path, text)
            .with_context(|| format!("cannot write {}", self.config_path.display()))?;
        self.start_again()
    }

    /// Starts the appliance again with the config and state of the last [`Appliance::start`]
    /// (after [`Appliance::kill9`] or [`Appliance::stop`]).
    pub fn start_again(&self) -> Result<()> {
        let mut slot = self.child();
        if let Some(child) = slot.as_mut() {
            if child.try_wait()?.is_none() {
                bail!("the appliance is already running (pid {})", child.id());
            }
        }
        let bin = binary()?;
        let offset = std::fs::metadata(&self.log_path).map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns]).arg(&bin).arg("--config").arg(&self.config_path);
        cmd.envs(self.env.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned());
        let child = slot.insert(spawn_logged(&mut cmd, &self.log_path)?);
        let ready = wait::until(READY_TIMEOUT, &format!("{READY_LINE:?} in the appliance log"), || {
            if self.log_since(offset).contains(READY_LINE) {
                return Ok(Some(()));
            }
            if let Some(status) = child.try_wait()? {
                bail!("the appliance exited ({status}) before {READY_LINE:?}");
            }
            Ok(None)
        });
        ready.map_err(|e| anyhow!("{e:#}\n----- appliance log -----\n{}", excerpt(&self.log())))
    }

    /// SIGTERM, then waits up to [`STOP_TIMEOUT`] for the exit; returns the exit status so a test
    /// can check that a graceful stop is clean.
    pub fn stop(&self) -> Result<ExitStatus> {
        let mut slot = self.child();
        let child = slot.as_mut().context("the appliance is not running")?;
        if let Some(status) = child.try_wait()? {
            bail!("the appliance had already exited ({status}); log:\n{}", excerpt(&self.log()));
        }
        process::signal(child.id(), Signal::SIGTERM)?;
        match wait_exit(child, STOP_TIMEOUT)? {
            Some(status) => Ok(status),
            None => {
                kill_child(child);
                bail!(
                    "the appliance did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    excerpt(&self.log())
                )
            }
        }
    }

    /// SIGKILL, as a crash or power loss would end it; no chance to flush anything.
    pub fn kill9(&self) -> Result<()> {
        let mut slot = self.child();
        let child = slot.as_mut().context("the appliance is not running")?;
        if let Some(status) = child.try_wait()? {
            bail!("the appliance had already exited ({status}); log:\n{}", excerpt(&self.log()));
        }
        kill_child(child);
        Ok(())
    }

    /// [`Appliance::stop`], then [`Appliance::start_again`] on the same config and state.
    pub fn restart(&self) -> Result<ExitStatus> {
        let status = self.stop()?;
        self.start_again()?;
        Ok(status)
    }

    /// The pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        let mut slot = self.child();
        let child = slot.as_mut()?;
        matches!(child.try_wait(), Ok(None)).then(|| child.id())
    }

    /// How the appliance ended, once it has exited (`None` while it runs or before any start).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.child().as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    /// Everything the appliance wrote to stderr (and stdout), over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn log_since(&self, offset: u64) -> String {
        let log = self.log();
        log.get(usize::try_from(offset).unwrap_or(usize::MAX)..).unwrap_or_default().to_owned()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Some(child) = self.child().as_mut() {
            kill_child(child);
        }
    }
}
