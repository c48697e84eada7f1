//! Processes the lab starts: running a command for its output, spawning one with its output in a
//! log file, waiting with a deadline, signalling by pid, finding a process's children, and the
//! [`Reaper`] that kills daemons which detach from us (dhclient forks into the background) when the
//! lab is dropped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::wait;

/// The command line, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// Runs `cmd` to completion and returns its stdout; a non-zero exit is an error carrying stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let line = describe(cmd);
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run `{line}`"))?;
    if !out.status.success() {
        bail!("`{line}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Opens `log` for appending and writes a header naming the command, so one log can hold several runs.
fn open_log(log: &Path, line: &str) -> Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    writeln!(file, "--- {line}").with_context(|| format!("cannot write log {}", log.display()))?;
    Ok(file)
}

/// Starts `cmd` with stdout and stderr appended to `log`. A file, not a pipe: a daemon that forks
/// keeps its output open, and nobody would be left to drain a pipe.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    let line = describe(cmd);
    let out = open_log(log, &line)?;
    let err = out.try_clone().context("cannot duplicate the log file handle")?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().with_context(|| format!("cannot start `{line}`"))
}

/// Waits for `child` to exit; `None` when it is still running after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    match wait::until(timeout, "process exit", || Ok(child.try_wait()?)) {
        Ok(status) => Ok(Some(status)),
        // Timed out (or try_wait failed, which the second look reports).
        Err(_) => Ok(child.try_wait()?),
    }
}

/// Runs `cmd` with its output appended to `log` and waits at most `timeout`; a command still
/// running then is killed and reported as an error.
pub fn run_logged(cmd: &mut Command, log: &Path, timeout: Duration) -> Result<ExitStatus> {
    let line = describe(cmd);
    let mut child = spawn_logged(cmd, log)?;
    match wait_exit(&mut child, timeout)? {
        Some(status) => Ok(status),
        None => {
            kill_child(&mut child);
            bail!("`{line}` still running after {timeout:?}; killed it")
        }
    }
}

/// SIGKILLs a child we spawned and reaps it. Safe against pid reuse: an unreaped child keeps its pid.
pub fn kill_child(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: Signal) -> Result<()> {
    let raw = i32::try_from(pid).context("pid out of range")?;
    kill(Pid::from_raw(raw), signal).with_context(|| format!("cannot send {signal} to pid {pid}"))
}

/// Whether `pid` is a live process (a zombie counts as gone).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether `pid` is alive and its command line contains `marker`: how we make sure a pid read from
/// a pid file still names our process and not one that reused the number.
pub fn is_ours(pid: u32, marker: &str) -> bool {
    is_alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).replace('\0', " ").contains(marker))
}

/// Processes whose parent is `parent`, zombies included (a child its parent has not reaped yet).
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`; comm may hold spaces, so read after its last `)`.
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
                == Some(parent)
        })
        .collect()
}

/// Daemons that detached from the process that started them (so no [`Child`] owns them), each
/// with a marker from its command line. [`Reaper::kill_all`] SIGKILLs those still running.
#[derive(Debug, Default)]
pub struct Reaper {
    tracked: Mutex<Vec<(u32, String)>>,
}

impl Reaper {
    pub fn track(&self, pid: u32, marker: &str) {
        self.tracked.lock().unwrap_or_else(PoisonError::into_inner).push((pid, marker.to_owned()));
    }

    pub fn kill_all(&self) {
        let tracked = std::mem::take(&mut *self.tracked.lock().unwrap_or_else(PoisonError::into_inner));
        for (pid, marker) in tracked {
            if is_ours(pid, &marker) {
                let _ = signal(pid, Signal::SIGKILL);
            }
        }
    }
}
