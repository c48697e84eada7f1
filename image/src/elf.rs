//! Just enough ELF reading to accept the appliance binary: an x86_64 executable (not a library,
//! not a script, not another machine's), and whether it needs a dynamic loader (`PT_INTERP`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// `e_machine` of x86_64 (`EM_X86_64`): the template is `arch=amd64`.
const EM_X86_64: u16 = 62;
/// `e_type` of a fixed-address executable, and of a position-independent one (or a library).
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
/// Program header type of the dynamic loader's path: in every dynamically linked executable,
/// absent from a static(-pie) one.
const PT_INTERP: u32 = 3;
/// Size of the ELF64 file header.
const HEADER_LEN: usize = 64;
/// Most program headers we read; real executables have about a dozen.
const MAX_PROGRAM_HEADERS: usize = 256;
/// Longest loader path we accept (`/lib64/ld-linux-x86-64.so.2` is 27 bytes).
const MAX_INTERP_LEN: u64 = 4096;

/// What the image needs to know about an executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    /// The dynamic loader it names, `None` for a static binary.
    pub interp: Option<PathBuf>,
}

/// Why a file is not an x86_64 executable, or could not be read as one.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Reads the ELF header and program headers of `path` and checks it is an x86_64 executable.
pub fn check(path: &Path) -> Result<Executable, ElfError> {
    let file = File::open(path)?;
    let read = |offset: u64, len: usize| -> Result<Vec<u8>, ElfError> {
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => ElfError::Invalid("too short for an ELF file".into()),
            _ => ElfError::Io(e),
        })?;
        Ok(buf)
    };
    let len = file.metadata()?.len();
    if len < HEADER_LEN as u64 {
        return Err(ElfError::Invalid("too short for an ELF file".into()));
    }
    let header = read(0, HEADER_LEN)?;
    if !header.starts_with(b"\x7fELF") {
        return Err(ElfError::Invalid("no ELF magic (a script or data?)".into()));
    }
    if header[4] != 2 || header[5] != 1 {
        return Err(ElfError::Invalid("not a 64-bit little-endian ELF file".into()));
    }
    let u16_at = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
    let u64_at = |at: usize| {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let machine = u16_at(0x12);
    if machine != EM_X86_64 {
        return Err(ElfError::Invalid(format!("built for machine {machine}, not x86_64 ({EM_X86_64})")));
    }
    let kind = u16_at(0x10);
    // A library is ET_DYN too, but has no entry point to run (glibc's libc.so.6 has one and is
    // runnable, which is no harm).
    if !(kind == ET_EXEC || kind == ET_DYN) || u64_at(0x18) == 0 {
        return Err(ElfError::Invalid(format!("ELF type {kind} with no entry point is not an executable")));
    }
    let (entry_size, count) = (usize::from(u16_at(0x36)), usize::from(u16_at(0x38)));
    if entry_size < 56 || count > MAX_PROGRAM_HEADERS {
        return Err(ElfError::Invalid(format!(
            "bad program header table ({count} entries of {entry_size} bytes)"
        )));
    }
    let table = read(u64_at(0x20), entry_size * count)?;
    let interp =
        table.chunks(entry_size).find(|ph| u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == PT_INTERP);
    let interp = match interp {
        None => None,
        Some(ph) => {
            let field = |at: usize| {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(&ph[at..at + 8]);
                u64::from_le_bytes(bytes)
            };
            let (offset, size) = (field(8), field(32));
            if size == 0 || size > MAX_INTERP_LEN {
                return Err(ElfError::Invalid(format!("loader path of {size} bytes")));
            }
            let raw = read(offset, size as usize)?;
            let text = raw.split(|b| *b == 0).next().unwrap_or_default();
            let text = std::str::from_utf8(text)
                .map_err(|_| ElfError::Invalid("the loader path is not UTF-8".into()))?;
            Some(PathBuf::from(text))
        }
    };
    Ok(Executable { interp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_names_its_loader() -> Result<(), ElfError> {
        // The test binary itself is linked against the machine's libc.
        let exe = check(&std::env::current_exe()?)?;
        let interp = exe.interp.ok_or_else(|| ElfError::Invalid("no loader".into()))?;
        assert!(interp.to_string_lossy().contains("ld-linux-x86-64"), "{}", interp.display());
        Ok(())
    }

    #[test]
    fn scripts_libraries_and_short_files_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let script = dir.path().join("script");
        std::fs::write(&script, format!("#!/bin/sh\n{}", " ".repeat(100)))?;
        assert!(matches!(check(&script), Err(ElfError::Invalid(_))));
        let short = dir.path().join("short");
        std::fs::write(&short, b"\x7fELF")?;
        assert!(matches!(check(&short), Err(ElfError::Invalid(_))));
        // An ELF header of another machine (aarch64 = 183), otherwise plausible.
        let mut header = std::fs::read(std::env::current_exe()?)?;
        header[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
        let other = dir.path().join("other");
        std::fs::write(&other, &header)?;
        let err = check(&other).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("machine 183"), "{err}");
        Ok(())
    }
}
