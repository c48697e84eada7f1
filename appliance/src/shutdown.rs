//! Stopping: what each signal means, and the init duty of reaping children when we are PID 1.
//!
//! - SIGTERM, SIGPWR (what `lxc-stop` and Proxmox send): graceful stop. Sockets close, work in
//!   flight (lease commits) finishes within [`GRACEFUL_DRAIN`].
//! - SIGINT: fast stop. Nothing new is started, in-flight work is abandoned. Nothing acknowledged
//!   is lost either way: a lease is durable before its ACK is sent.
//! - A second stop signal during a graceful stop turns it into a fast one.
//!
//! As PID 1 the reaper collects every child, which would steal the exit status of a command the
//! appliance runs and waits for itself (`nft`, through the nftables crate): such commands run
//! under [`own_children`], and the reaper waits until they are done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, TryLockError};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a graceful stop waits for in-flight work.
pub const GRACEFUL_DRAIN: Duration = Duration::from_secs(5);

/// The one root shutdown signal of the process, and how urgent it is.
#[derive(Debug, Clone)]
pub struct Stop {
    token: CancellationToken,
    fast: Arc<AtomicBool>,
}

impl Stop {
    /// A stop that only fires when asked to (tests, embedding).
    pub fn manual() -> Self {
        Stop { token: CancellationToken::new(), fast: Arc::new(AtomicBool::new(false)) }
    }

    /// Installs the signal handlers (and the child reaper when running as PID 1).
    /// Must be called inside a tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        let stop = Stop::manual();
        let mut term = signal(SignalKind::terminate())?;
        let mut pwr = signal(SignalKind::from_raw(Signal::SIGPWR as i32))?;
        let mut int = signal(SignalKind::interrupt())?;
        let s = stop.clone();
        tokio::spawn(async move {
            loop {
                let (name, fast) = tokio::select! {
                    _ = term.recv() => ("SIGTERM", false),
                    _ = pwr.recv() => ("SIGPWR", false),
                    _ = int.recv() => ("SIGINT", true),
                };
                let fast = fast || s.token.is_cancelled();
                info!(signal = name, mode = if fast { "fast" } else { "graceful" }, "stopping");
                s.request(fast);
            }
        });
        if std::process::id() == 1 {
            let mut chld = signal(SignalKind::child())?;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        got = chld.recv() => if got.is_none() { break },
                        () = REAP_AGAIN.notified() => {}
                    }
                    reap_children();
                }
            });
            info!("running as pid 1: reaping orphaned processes");
        }
        Ok(stop)
    }

    /// Asks everything to stop; `fast` skips draining.
    pub fn request(&self, fast: bool) {
        if fast {
            self.fast.store(true, Ordering::SeqCst);
        }
        self.token.cancel();
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// How long in-flight work may still take once stopping.
    pub fn drain_limit(&self) -> Duration {
        if self.fast.load(Ordering::SeqCst) { Duration::ZERO } else { GRACEFUL_DRAIN }
    }
}

/// Held (shared) while the appliance runs child processes it waits for itself; the reaper
/// only collects children when nobody holds it. Process-wide, like the children it guards.
static OWN_CHILDREN: RwLock<()> = RwLock::new(());
/// Wakes the reaper when the last [`OwnChildren`] goes: orphans that exited meanwhile wait for it.
static REAP_AGAIN: Notify = Notify::const_new();

/// While alive, children the appliance spawns are its own to wait for: the PID-1 reaper leaves
/// them alone. Hold it across spawn and wait (e.g. `Command::output`), on a blocking thread.
#[derive(Debug)]
pub struct OwnChildren(Option<RwLockReadGuard<'static, ()>>);

/// See [`OwnChildren`].
pub fn own_children() -> OwnChildren {
    OwnChildren(Some(OWN_CHILDREN.read().unwrap_or_else(PoisonError::into_inner)))
}

impl Drop for OwnChildren {
    fn drop(&mut self) {
        // Released first, so the reaper it wakes can take the lock.
        drop(self.0.take());
        REAP_AGAIN.notify_one();
    }
}

/// Collects every exited child so none stays a zombie. Only PID 1 does this: orphans of the
/// container are re-parented to it. Skipped while the appliance waits for children of its own
/// (they would be stolen from it); the last of those wakes the reaper again.
fn reap_children() {
    let _quiet = match OWN_CHILDREN.try_write() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return,
            Ok(status) => debug!(?status, "reaped child"),
            Err(nix::errno::Errno::ECHILD) => return,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                warn!(error = %e, "waitpid failed");
                return;
            }
        }
    }
}
