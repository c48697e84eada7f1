//! App servers on lab hosts, behind the proxy: `lab-backend` (this crate's binary, see its docs)
//! and `python3 -m http.server`, each run in a client namespace with its output in a log the lab
//! shows on failure, ready once it says it listens, killed on drop or [`Backend::stop`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};

use crate::logs::excerpt;
use crate::process::{kill_child, spawn_logged};
use crate::topology::Host;
use crate::wait;

/// From spawn to the server's listening line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// What `lab-backend` prints once bound.
const LAB_BACKEND_READY: &str = "listening on";
/// What `python3 -u -m http.server` prints once bound.
const PYTHON_READY: &str = "Serving HTTP on";

/// A server process on a lab host.
#[derive(Debug)]
pub struct Backend {
    label: String,
    log: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
}

impl Backend {
    /// `lab-backend` (at `program`, from `env!("CARGO_BIN_EXE_lab-backend")`) on `0.0.0.0:port`
    /// of `host`, answering as `name`; `/healthz` fails while `unhealthy_flag` exists.
    pub fn lab(
        host: &Host,
        program: &str,
        name: &str,
        port: u16,
        unhealthy_flag: Option<&Path>,
    ) -> Result<Backend> {
        let mut cmd = host.command(program);
        cmd.args(["--listen", &format!("0.0.0.0:{port}"), "--name", name]);
        if let Some(flag) = unhealthy_flag {
            cmd.arg("--unhealthy-flag").arg(flag);
        }
        Backend::spawn(host, &format!("backend-{name}"), cmd, port, LAB_BACKEND_READY)
    }

    /// `python3 -m http.server` on `0.0.0.0:port` of `host`, serving the files of `dir`.
    pub fn python(host: &Host, dir: &Path, port: u16) -> Result<Backend> {
        let mut cmd = host.command("python3");
        // -u: unbuffered, so the listening line reaches the log at once.
        cmd.args(["-u", "-m", "http.server", &port.to_string(), "--bind", "0.0.0.0", "--directory"]).arg(dir);
        Backend::spawn(host, "python-http", cmd, port, PYTHON_READY)
    }

    fn spawn(host: &Host, label: &str, mut cmd: Command, port: u16, ready: &str) -> Result<Backend> {
        let label = format!("{} {label}", host.label());
        let log = host.dir().join(format!("{}.log", label.replace(' ', "-")));
        host.logs().register(&label, &log);
        let mut child = spawn_logged(&mut cmd, &log)?;
        let started = wait::until(READY_TIMEOUT, &format!("{label} to listen"), || {
            if std::fs::read_to_string(&log).unwrap_or_default().contains(ready) {
                return Ok(Some(()));
            }
            if let Some(status) = child.try_wait()? {
                bail!("{label} exited ({status})");
            }
            Ok(None)
        });
        if let Err(e) = started {
            kill_child(&mut child);
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(anyhow!("{e:#}\n----- {label} log -----\n{}", excerpt(&text)));
        }
        Ok(Backend { label, log, port, child: Mutex::new(Some(child)) })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything the server printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Kills the server (a stopped app); nothing listens on its port afterwards.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(PoisonError::into_inner).take() {
            kill_child(&mut child);
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}
