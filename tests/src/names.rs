//! Unique names for one lab: namespaces and interfaces, so labs of parallel tests (threads of one
//! `cargo test`, processes under nextest, other checkouts on the same machine) never collide.
//!
//! A lab's tag is the pid in hex and a per-process counter (`1f2a003`). Pids alone are not enough
//! (another pid namespace can reuse ours), so a lab *claims* its tag: it holds an exclusive `flock`
//! on `/run/pxlab/<tag>.lock` for its whole life. A tag whose lock is held belongs to a live lab; a
//! namespace whose tag's lock can be taken was left behind by a lab that died before its cleanup
//! ran, and is removed (see [`crate::netns::remove_stale`]). Interface names live inside the lab's
//! own namespaces and must fit IFNAMSIZ (15 characters): `c1f2a003n0`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail, ensure};
use nix::fcntl::{Flock, FlockArg};

/// Prefix of every namespace the lab creates; nothing else on the machine may use it.
pub const NETNS_PREFIX: &str = "pxlab-";

/// Longest interface name Linux accepts (IFNAMSIZ minus the terminating NUL).
pub const IFNAME_MAX: usize = 15;

/// Where the tag locks live: tmpfs, emptied at boot like `/run/netns`.
pub const LOCK_DIR: &str = "/run/pxlab";

/// Labs per process; the counter is three hex digits wide.
const MAX_LABS_PER_PROCESS: u32 = 0xfff;

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// The names of one lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    tag: String,
}

impl Names {
    /// Claims a tag no live lab holds and returns its names with the claim, which must outlive
    /// every namespace made from them.
    pub fn claim() -> Result<(Names, Claim)> {
        loop {
            let counter = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
            if counter > MAX_LABS_PER_PROCESS {
                bail!(
                    "more than {MAX_LABS_PER_PROCESS} labs in one process: names would no longer be unique"
                );
            }
            // Fixed width for the counter, so two (pid, counter) pairs never give the same tag.
            let tag = format!("{:x}{counter:03x}", std::process::id());
            if let Some(claim) = Claim::try_take(&tag)? {
                return Ok((Names { tag }, claim));
            }
        }
    }

    /// Short tag for logs and names.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The namespace playing `role` (`sw`, `ap`, `c0`, ...).
    pub fn netns(&self, role: &str) -> String {
        format!("{NETNS_PREFIX}{}-{role}", self.tag)
    }

    /// The lab's LXC container (also its host name inside): `pxlab-<tag>-ct`.
    pub fn container(&self) -> String {
        self.netns("ct")
    }

    /// An interface name: `prefix` + tag + `suffix`, checked against IFNAMSIZ.
    pub fn ifname(&self, prefix: &str, suffix: &str) -> Result<String> {
        let name = format!("{prefix}{}{suffix}", self.tag);
        ensure!(name.len() <= IFNAME_MAX, "interface name {name:?} is longer than {IFNAME_MAX} characters");
        Ok(name)
    }
}

/// The tag of a lab namespace, read back from its name.
pub fn tag_of(netns: &str) -> Option<&str> {
    let rest = netns.strip_prefix(NETNS_PREFIX)?;
    let (tag, _role) = rest.split_once('-')?;
    (!tag.is_empty() && tag.bytes().all(|b| b.is_ascii_hexdigit())).then_some(tag)
}

/// An exclusive hold on a tag; released (and its lock file removed) on drop.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    _lock: Flock<File>,
}

impl Claim {
    /// Takes `tag` if no live lab holds it; `None` when one does.
    pub fn try_take(tag: &str) -> Result<Option<Claim>> {
        std::fs::create_dir_all(LOCK_DIR).with_context(|| format!("cannot create {LOCK_DIR}"))?;
        let path = PathBuf::from(format!("{LOCK_DIR}/{tag}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else { return Ok(None) };
        // A holder that was just releasing removed the file after we opened it: our lock is on a
        // file nobody else will look at, and someone may lock the new one. Treat the tag as taken.
        let same_file = std::fs::metadata(&path)
            .ok()
            .zip(lock.metadata().ok())
            .is_some_and(|(now, ours)| now.dev() == ours.dev() && now.ino() == ours.ino());
        Ok(same_file.then_some(Claim { path, _lock: lock }))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Removed while still locked, so nobody can lock this file and believe it current.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_fit_ifnamsiz() -> Result<()> {
        let (a, _claim_a) = Names::claim()?;
        let (b, _claim_b) = Names::claim()?;
        assert_ne!(a.tag(), b.tag());
        assert_ne!(a.netns("sw"), b.netns("sw"));
        // Largest pid (2^22) and counter.
        let worst = Names { tag: format!("{:x}{:03x}", 4_194_304, MAX_LABS_PER_PROCESS) };
        assert!(worst.ifname("c", "n199")?.len() <= IFNAME_MAX);
        assert!(worst.ifname("s", "c199")?.len() <= IFNAME_MAX);
        assert_eq!(tag_of(&worst.netns("c7")), Some(worst.tag()));
        assert_eq!(tag_of("pxbt-s"), None);
        assert_eq!(tag_of("pxlab-zz-sw"), None);
        Ok(())
    }

    #[test]
    fn a_claimed_tag_cannot_be_taken_twice() -> Result<()> {
        let (names, claim) = Names::claim()?;
        assert!(Claim::try_take(names.tag())?.is_none(), "a held tag was handed out again");
        drop(claim);
        assert!(Claim::try_take(names.tag())?.is_some(), "a released tag stays blocked");
        Ok(())
    }
}
