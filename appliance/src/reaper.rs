//! PID 1's duty to collect orphans, and the processes the appliance waits for itself (`nft`).
//!
//! As PID 1 every orphan of the container is re-parented to us and must be collected, but a
//! plain `waitpid(-1)` would also collect our own children before the code that started them
//! reads their exit status (it would then see "no child"). So the reaper first peeks at an
//! exited child without collecting it (`WNOWAIT`) and leaves the ones registered here to their
//! owner, which runs the reaper again once done with its child.
//!
//! The registry is process-wide because reaping is: a process has one set of children.

use std::collections::BTreeSet;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use tracing::{debug, warn};

/// Pids of children whose owner collects them itself.
static OWN: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
/// Set once the PID 1 reaper runs; before that nobody else collects children.
static REAPING: AtomicBool = AtomicBool::new(false);

fn own() -> MutexGuard<'static, BTreeSet<u32>> {
    OWN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A child whose exit status its owner reads; registered until dropped.
#[derive(Debug)]
pub(crate) struct OwnChild {
    pub(crate) child: tokio::process::Child,
    pid: Option<u32>,
}

/// Spawns `command` so that PID 1's reaper leaves the child to the caller.
pub(crate) fn spawn_own(command: &mut tokio::process::Command) -> io::Result<OwnChild> {
    // Held across the spawn: a child that exits at once is registered before the reaper looks.
    let mut own = own();
    let child = command.spawn()?;
    let pid = child.id();
    if let Some(pid) = pid {
        own.insert(pid);
    }
    Ok(OwnChild { child, pid })
}

impl Drop for OwnChild {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            own().remove(&pid);
        }
        // Orphans that exited while this child was in the way are collected now.
        if REAPING.load(Ordering::Relaxed) {
            reap_orphans();
        }
    }
}

/// Marks this process as the one that collects orphans (PID 1).
pub(crate) fn start_reaping() {
    REAPING.store(true, Ordering::Relaxed);
}

/// Collects every exited child that is not registered, so none stays a zombie.
pub(crate) fn reap_orphans() {
    let own = own();
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::All, flags) {
            Ok(WaitStatus::StillAlive) => return,
            Ok(status) => {
                let Some(pid) = status.pid() else { return };
                if u32::try_from(pid.as_raw()).is_ok_and(|p| own.contains(&p)) {
                    // Its owner collects it and then calls us again for whatever is behind it.
                    return;
                }
                match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(status) => debug!(?status, "reaped child"),
                    Err(Errno::ECHILD) => {}
                    Err(e) => {
                        warn!(error = %e, %pid, "waitpid failed");
                        return;
                    }
                }
            }
            Err(Errno::ECHILD) => return,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                warn!(error = %e, "waitid failed");
                return;
            }
        }
    }
}
