//! Stopping: what each signal means, and the init duty of reaping children when we are PID 1.
//!
//! - SIGTERM, SIGPWR (what `lxc-stop` and Proxmox send): graceful stop. Sockets close, work in
//!   flight (lease commits) finishes within [`GRACEFUL_DRAIN`].
//! - SIGINT: fast stop. Nothing new is started, in-flight work is abandoned. Nothing acknowledged
//!   is lost either way: a lease is durable before its ACK is sent.
//! - A second stop signal during a graceful stop turns it into a fast one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::reaper;

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
            reaper::start_reaping();
            tokio::spawn(async move {
                while chld.recv().await.is_some() {
                    reaper::reap_orphans();
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
