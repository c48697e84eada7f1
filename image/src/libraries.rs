//! The shared libraries a dynamically linked program loads, and its loader, as `ldd` lists them.
//!
//! `ldd` rather than walking `DT_NEEDED` ourselves: it applies the machine's own search rules
//! (`ld.so.cache`, `RUNPATH`, multiarch directories) and follows indirect needs, which a
//! re-implementation would get subtly wrong. It runs only on the build machine's own binaries
//! (`nft`, the appliance we just built), never on input from elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A library or the loader, at its path on this machine (which is its path in the rootfs too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Library {
    pub(crate) path: PathBuf,
    /// The dynamic loader (`/lib64/ld-linux-x86-64.so.2`), which is executed, not mapped.
    pub(crate) loader: bool,
}

/// Runs `ldd program` and returns what it names; an error says what went wrong.
pub(crate) fn of(program: &Path) -> Result<Vec<Library>, String> {
    let output = Command::new("ldd").arg(program).output().map_err(|e| format!("cannot run ldd: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("ldd failed ({}): {}{}", output.status, stdout.trim(), stderr.trim()));
    }
    let libraries = parse(&stdout)?;
    if libraries.is_empty() {
        return Err(format!("ldd named no libraries:\n{stdout}"));
    }
    Ok(libraries)
}

/// The library paths in `ldd` output: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and
/// the loader's `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file. A library that
/// was not found is an error: the template would not run.
fn parse(ldd: &str) -> Result<Vec<Library>, String> {
    let mut libraries = Vec::new();
    for line in ldd.lines() {
        if line.contains("=> not found") {
            return Err(format!("a library is missing: {}", line.trim()));
        }
        let Some(path) = line.split_whitespace().find(|word| word.starts_with('/')) else { continue };
        libraries.push(Library { path: PathBuf::from(path), loader: !line.contains("=>") });
    }
    Ok(libraries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader() -> Result<(), String> {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibnftables.so.1 => /lib/x86_64-linux-gnu/libnftables.so.1 (0x00007fa6)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007fa6)\n";
        let got = parse(out)?;
        assert_eq!(
            got,
            [
                Library { path: "/lib/x86_64-linux-gnu/libnftables.so.1".into(), loader: false },
                Library { path: "/lib64/ld-linux-x86-64.so.2".into(), loader: true },
            ]
        );
        Ok(())
    }

    #[test]
    fn a_missing_library_is_an_error() {
        let out = "\tlibgone.so.3 => not found\n\t/lib64/ld-linux-x86-64.so.2 (0x00007fa6)\n";
        assert!(parse(out).is_err_and(|e| e.contains("libgone.so.3")));
    }
}
