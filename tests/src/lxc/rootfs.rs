//! What an appliance container is made of on disk: the static appliance binary (found and checked
//! to be static), the rootfs around it, which is the template's tree exactly
//! ([`proximity_image::write_rootfs`]: the appliance as `/sbin/init`, its config, `nft` with its
//! libraries, the empty dirs) owner-shifted to the container's id range, and root's sub-id range
//! in `/etc/subuid` and `/etc/subgid`.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use nix::fcntl::{Flock, FlockArg};
use proximity_config::RawConfig;

use super::{ID_BASE, ID_COUNT};
use crate::names::LOCK_DIR;
use crate::process::run;

/// Overrides where the static appliance binary is looked for.
pub const STATIC_BIN_ENV: &str = "PROXIMITY_APPLIANCE_STATIC_BIN";
/// The target the static binary is built for; cargo puts it in `target/<this>/<profile>/`.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";
/// How to build it (scripts/test.sh does). `--target` keeps the flag off build scripts and
/// proc macros, and keeps this build apart from the ordinary `target/debug/`.
pub const STATIC_BUILD: &str = "RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build -p proximity-appliance --target x86_64-unknown-linux-gnu";
/// The files that hand out sub-ids, where Proxmox has `root:100000:65536`.
pub const SUBID_FILES: [&str; 2] = ["/etc/subuid", "/etc/subgid"];
/// The template's version in a lab container (it names nothing there).
const LAB_VERSION: &str = "lab";

/// The static `proximity-appliance`: `$PROXIMITY_APPLIANCE_STATIC_BIN`, else the build of the
/// running test binary's profile (`target/<profile>/deps/<test>` -> `target/<triple>/<profile>/`,
/// which also honours `CARGO_TARGET_DIR`), else `target/<triple>/debug/` of the workspace.
/// Missing or dynamically linked is an error saying how to build it.
pub fn static_binary() -> Result<PathBuf> {
    let path = match std::env::var_os(STATIC_BIN_ENV) {
        Some(path) => {
            let path = PathBuf::from(path);
            ensure!(path.is_file(), "{STATIC_BIN_ENV}={} is not a file", path.display());
            path
        }
        None => {
            let beside_tests = std::env::current_exe().ok().and_then(|exe| {
                let profile_dir = exe.parent()?.parent()?;
                let target_dir = profile_dir.parent()?;
                Some(
                    target_dir.join(STATIC_TARGET).join(profile_dir.file_name()?).join("proximity-appliance"),
                )
            });
            let in_workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target")
                .join(STATIC_TARGET)
                .join("debug/proximity-appliance");
            let found = beside_tests.into_iter().chain([in_workspace]).find(|c| c.is_file());
            found.with_context(|| {
                format!(
                    "the static proximity-appliance (target/{STATIC_TARGET}/debug/) is missing; the \
                     container test needs it, as its rootfs has no libc: build it with `{STATIC_BUILD}` \
                     (scripts/test.sh does), or set {STATIC_BIN_ENV}"
                )
            })?
        }
    };
    ensure!(
        is_static(&path)?,
        "{} is dynamically linked and cannot run in a rootfs without libc: build it with `{STATIC_BUILD}`",
        path.display()
    );
    Ok(path)
}

/// Whether the ELF executable at `path` runs without a dynamic loader (no `PT_INTERP`); an
/// error when it is no x86_64 executable.
pub fn is_static(path: &Path) -> Result<bool> {
    let executable = proximity_image::elf::check(path)
        .with_context(|| format!("{} is no x86_64 executable", path.display()))?;
    Ok(executable.interp.is_none())
}

/// Makes sure root may hand out the container's ids, as on a Proxmox host: adds
/// `root:100000:65536` to [`SUBID_FILES`] where it is missing, never twice, never touching
/// other lines. Under a lock, so parallel labs (threads or processes) do not both add it.
pub fn ensure_subids() -> Result<()> {
    std::fs::create_dir_all(LOCK_DIR).with_context(|| format!("cannot create {LOCK_DIR}"))?;
    let lock_path = format!("{LOCK_DIR}/subid.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {lock_path}"))?;
    let _lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("cannot lock {lock_path}"))?;
    let line = format!("root:{ID_BASE}:{ID_COUNT}");
    for path in SUBID_FILES {
        add_line(Path::new(path), &line)?;
    }
    Ok(())
}

/// Appends `line` to the file at `path` (created if missing) unless a line equal to it is there.
fn add_line(path: &Path, line: &str) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if text.lines().any(|l| l.trim() == line) {
        return Ok(());
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // A last line without its newline would otherwise be joined with ours.
    let sep = if text.is_empty() || text.ends_with('\n') { "" } else { "\n" };
    writeln!(file, "{sep}{line}").with_context(|| format!("cannot append to {}", path.display()))
}

/// `inside` (an absolute path in the container) as a path under `rootfs`.
pub fn host_path(rootfs: &Path, inside: &str) -> Result<PathBuf> {
    let path = Path::new(inside);
    ensure!(path.is_absolute(), "{inside:?} is not an absolute path");
    let mut out = rootfs.to_path_buf();
    for part in path.components() {
        match part {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => out.push(name),
            Component::ParentDir | Component::Prefix(_) => bail!("{inside:?} leaves the rootfs"),
        }
    }
    Ok(out)
}

/// Builds the rootfs at `rootfs` (which must not exist): the template's tree for `binary` and
/// `config` ([`proximity_image::write_rootfs`]), then everything owned by the container's root
/// (host uid and gid [`ID_BASE`]), as Proxmox unpacks a template for `unprivileged=1`.
pub fn build(rootfs: &Path, binary: &Path, config: &RawConfig) -> Result<()> {
    let inputs = proximity_image::Inputs {
        appliance: binary.to_owned(),
        config: config.to_toml().context("cannot serialise the config")?,
        version: LAB_VERSION.to_owned(),
    };
    proximity_image::write_rootfs(&inputs, rootfs)
        .with_context(|| format!("cannot build the container's rootfs in {}", rootfs.display()))?;
    let owner = format!("{ID_BASE}:{ID_BASE}");
    run(Command::new("chown").args(["-R", "--no-dereference", &owner]).arg(rootfs))
        .with_context(|| format!("cannot shift the owner of {} to {owner}", rootfs.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subid_line_is_added_once_and_others_stay() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("subuid");
        let line = "root:100000:65536";
        add_line(&path, line)?;
        add_line(&path, line)?;
        assert_eq!(std::fs::read_to_string(&path)?, "root:100000:65536\n");
        std::fs::write(&path, "alice:165536:65536")?;
        add_line(&path, line)?;
        add_line(&path, line)?;
        assert_eq!(std::fs::read_to_string(&path)?, "alice:165536:65536\nroot:100000:65536\n");
        Ok(())
    }

    #[test]
    fn paths_stay_inside_the_rootfs() -> Result<()> {
        let root = Path::new("/tmp/r");
        assert_eq!(host_path(root, "/var/lib/proximity")?, Path::new("/tmp/r/var/lib/proximity"));
        assert!(host_path(root, "/var/../../etc").is_err());
        assert!(host_path(root, "relative").is_err());
        Ok(())
    }

    #[test]
    fn a_dynamic_executable_is_not_static() -> Result<()> {
        // The test binary itself is linked against the machine's libc.
        assert!(!is_static(&std::env::current_exe()?)?);
        let dir = tempfile::tempdir()?;
        let text = dir.path().join("text");
        std::fs::write(&text, "#!/bin/sh\n")?;
        assert!(is_static(&text).is_err(), "a script is no ELF file");
        Ok(())
    }
}
