//! Running the `nft` binary: one JSON batch in (`nft -j -f -`, one transaction), our table's
//! listing out (`nft -j list table inet proximity`). Its failures are told apart by what they
//! ask of the operator: install nftables, grant CAP_NET_ADMIN, load nf_tables.
//!
//! The process is run here rather than through the `nftables` crate's helper, which lets nft's
//! stderr through to ours (the error would not say why) and panics on an unwritable pipe.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tracing::debug;

use super::error::NftError;
use super::ruleset::TABLE;
use crate::reaper;

/// How long one nft run may take; it takes milliseconds, a hang is a broken system.
pub const NFT_TIMEOUT: Duration = Duration::from_secs(10);
/// Overrides where `nft` is looked for (an image that keeps it elsewhere, tests).
pub const NFT_ENV: &str = "PROXIMITY_NFT";
/// Where nft lives when PATH does not say: as PID 1 of a container PATH may be unset, and
/// execvp's default PATH has no sbin.
const SBIN_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The `nft` program the appliance runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nft {
    program: PathBuf,
}

impl Nft {
    /// Finds `nft`: `$PROXIMITY_NFT`, else in PATH, else in the usual sbin directories.
    pub fn locate() -> Result<Nft, NftError> {
        if let Some(path) = std::env::var_os(NFT_ENV) {
            let program = PathBuf::from(path);
            return if program.is_file() {
                Ok(Nft { program })
            } else {
                Err(NftError::Missing { searched: format!("{NFT_ENV}={}", program.display()) })
            };
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs: Vec<PathBuf> =
            std::env::split_paths(&path).chain(SBIN_DIRS.iter().map(PathBuf::from)).collect();
        match dirs.iter().map(|d| d.join("nft")).find(|p| p.is_file()) {
            Some(program) => Ok(Nft { program }),
            None => {
                let mut searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                searched.dedup();
                Err(NftError::Missing { searched: searched.join(":") })
            }
        }
    }

    /// The program at `path`, unchecked (tests).
    pub fn at(path: &Path) -> Nft {
        Nft { program: path.to_owned() }
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Applies `batch` (nftables JSON) as one transaction.
    pub async fn apply(&self, batch: &str) -> Result<(), NftError> {
        self.run("apply the ruleset", &["-j", "-f", "-"], Some(batch)).await.map(drop)
    }

    /// The JSON listing of our table, as `nft -j list table inet proximity` prints it.
    pub async fn list_table(&self) -> Result<String, NftError> {
        self.run("read the ruleset back", &["-j", "list", "table", "inet", TABLE], None).await
    }

    async fn run(
        &self,
        action: &'static str,
        args: &[&str],
        input: Option<&str>,
    ) -> Result<String, NftError> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawn_err = |source| NftError::Spawn { program: self.program.clone(), source };
        let mut own = reaper::spawn_own(&mut command).map_err(spawn_err)?;
        let (stdin, stdout, stderr) =
            (own.child.stdin.take(), own.child.stdout.take(), own.child.stderr.take());
        let exchange = async {
            if let (Some(text), Some(mut stdin)) = (input, stdin) {
                // A write error means nft exited early; its status and stderr say why.
                let _ = stdin.write_all(text.as_bytes()).await;
            }
            tokio::try_join!(read_all(stdout), read_all(stderr), own.child.wait())
        };
        let (stdout, stderr, status) = tokio::time::timeout(NFT_TIMEOUT, exchange)
            .await
            .map_err(|_| NftError::Timeout { action, after: NFT_TIMEOUT })?
            .map_err(|source| NftError::Wait { action, source })?;
        let stderr = String::from_utf8_lossy(&stderr).trim().to_owned();
        debug!(program = %self.program.display(), ?args, %status, "nft ran");
        if !status.success() {
            return Err(NftError::classify(action, status, stderr));
        }
        String::from_utf8(stdout).map_err(|_| NftError::Output { action, why: "it is not UTF-8".into() })
    }
}

/// Everything a pipe of the child carries until it closes.
async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut bytes).await?;
    }
    Ok(bytes)
}
