//! What an appliance container is made of on disk: the static appliance binary (found and checked
//! to be static, since the rootfs has no libc for a dynamic one), the minimal rootfs around it
//! (its config, an empty state dir, mount points, `nft` with its shared libraries and loader),
//! owner-shifted to the container's id range, and root's sub-id range in `/etc/subuid` and
//! `/etc/subgid`.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use nix::fcntl::{Flock, FlockArg};
use proximity_config::RawConfig;

use super::{CONFIG, ID_BASE, ID_COUNT, INIT, NFT};
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
/// Directories every container gets: mount points for LXC (`/dev` is its tmpfs, `/proc` and
/// `/sys` its `lxc.mount.auto`) and homes for the files below.
/// `/etc/protocols` in the rootfs: the protocols the appliance's ruleset names, as netbase has them.
const PROTOCOLS: &str = "icmp\t1\tICMP\ntcp\t6\tTCP\nudp\t17\tUDP\nipv6-icmp\t58\tIPv6-ICMP\n";

const ROOTFS_DIRS: [&str; 5] = ["dev", "proc", "sys", "sbin", "etc"];
/// ELF program header type of the dynamic loader's path: present in every dynamically linked
/// executable, absent from a static(-pie) one.
const PT_INTERP: u32 = 3;

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

/// Whether the ELF executable at `path` runs without a dynamic loader (no `PT_INTERP`).
pub fn is_static(path: &Path) -> Result<bool> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let read = |offset: u64, len: usize| -> Result<Vec<u8>> {
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset)
            .with_context(|| format!("{} is too short for an ELF file", path.display()))?;
        Ok(buf)
    };
    let header = read(0, 64)?;
    // 64-bit (class 2), little-endian (data 1): what the static build for x86_64 is.
    ensure!(
        header.starts_with(b"\x7fELF") && header[4] == 2 && header[5] == 1,
        "{} is not a 64-bit little-endian ELF file",
        path.display()
    );
    let u16_at = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
    let mut phoff = [0; 8];
    phoff.copy_from_slice(&header[0x20..0x28]);
    let (entry_size, count) = (usize::from(u16_at(0x36)), usize::from(u16_at(0x38)));
    ensure!(entry_size >= 4, "{}: bad ELF program header size {entry_size}", path.display());
    let table = read(u64::from_le_bytes(phoff), entry_size * count)?;
    Ok(!table.chunks(entry_size).any(|ph| u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == PT_INTERP))
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

/// Builds the rootfs at `rootfs` (which must not exist): `binary` as [`INIT`], `config` as
/// [`CONFIG`], its state dir empty, [`NFT`] with its libraries; everything owned by the
/// container's root (host uid and gid [`ID_BASE`]).
pub fn build(rootfs: &Path, binary: &Path, config: &RawConfig) -> Result<()> {
    std::fs::create_dir_all(rootfs).with_context(|| format!("cannot create {}", rootfs.display()))?;
    for dir in ROOTFS_DIRS {
        mkdir(&rootfs.join(dir))?;
    }
    let init = host_path(rootfs, INIT)?;
    std::fs::copy(binary, &init)
        .with_context(|| format!("cannot copy {} to {}", binary.display(), init.display()))?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    let text = config.to_toml().context("cannot serialise the config")?;
    let config_path = host_path(rootfs, CONFIG)?;
    std::fs::write(&config_path, text).with_context(|| format!("cannot write {}", config_path.display()))?;
    mkdir(&host_path(rootfs, &config.state.dir)?)?;
    copy_with_libraries(rootfs, NFT)
        .context("the container needs nft, which NAT drives (apt-get install nftables)")?;
    // nft resolves protocol names (`meta l4proto icmp`) through libc: without the file it
    // refuses the ruleset ("Could not resolve protocol name"). The template will carry it too.
    let protocols = host_path(rootfs, "/etc/protocols")?;
    std::fs::write(&protocols, PROTOCOLS).with_context(|| format!("cannot write {}", protocols.display()))?;
    let owner = format!("{ID_BASE}:{ID_BASE}");
    run(Command::new("chown").args(["-R", "--no-dereference", &owner]).arg(rootfs))
        .with_context(|| format!("cannot shift the owner of {} to {owner}", rootfs.display()))?;
    Ok(())
}

fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Copies the program at `program` into `rootfs` at the same path, with every shared library
/// `ldd` names and the dynamic loader, each at its own path (symlinks followed).
fn copy_with_libraries(rootfs: &Path, program: &str) -> Result<()> {
    ensure!(Path::new(program).is_file(), "{program} does not exist");
    let listing = run(Command::new("ldd").arg(program))?;
    let mut files = vec![program.to_owned()];
    files.extend(libraries(&listing));
    ensure!(files.len() > 1, "`ldd {program}` named no libraries:\n{listing}");
    for file in files {
        let to = host_path(rootfs, &file)?;
        if let Some(dir) = to.parent() {
            mkdir(dir)?;
        }
        std::fs::copy(&file, &to).with_context(|| format!("cannot copy {file} to {}", to.display()))?;
    }
    Ok(())
}

/// The library paths in `ldd` output: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and
/// the loader's `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file.
fn libraries(ldd: &str) -> Vec<String> {
    ldd.lines()
        .filter_map(|line| line.split_whitespace().find(|word| word.starts_with('/')))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibnftables.so.1 => /lib/x86_64-linux-gnu/libnftables.so.1 (0x00007fa6)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007fa6)\n";
        assert_eq!(libraries(out), ["/lib/x86_64-linux-gnu/libnftables.so.1", "/lib64/ld-linux-x86-64.so.2"]);
    }

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
