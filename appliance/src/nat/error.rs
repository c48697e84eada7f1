//! What can go wrong with NAT, each case saying what the operator can do about it.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use super::readback::Mismatch;

/// A failure to run `nft` or of what it was asked to do.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(
        "the nft program is missing (looked in {searched}): install nftables; the appliance's \
         image must contain /usr/sbin/nft"
    )]
    Missing { searched: String },

    #[error("cannot run {}", .program.display())]
    Spawn { program: PathBuf, source: std::io::Error },

    #[error(
        "nft cannot {action}: permission denied; the appliance needs CAP_NET_ADMIN in its network \
         namespace (the container must not drop it). nft said: {stderr}"
    )]
    PermissionDenied { action: &'static str, stderr: String },

    #[error(
        "nft cannot {action}: the kernel has no nf_tables (load the nf_tables and nft_chain_nat \
         modules on the host, or use a kernel built with them). nft said: {stderr}"
    )]
    NoNfTables { action: &'static str, stderr: String },

    #[error("nft cannot {action} ({status}). nft said: {stderr}")]
    Failed { action: &'static str, status: ExitStatus, stderr: String },

    #[error("nft did not {action} within {after:?}")]
    Timeout { action: &'static str, after: Duration },

    #[error("lost track of nft while trying to {action}")]
    Wait { action: &'static str, source: std::io::Error },

    #[error("nft's answer when asked to {action} is unusable: {why}")]
    Output { action: &'static str, why: String },
}

impl NftError {
    /// The error for an nft run that exited with `status`, from what it wrote to stderr.
    pub(crate) fn classify(action: &'static str, status: ExitStatus, stderr: String) -> NftError {
        if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
            NftError::PermissionDenied { action, stderr }
        } else if stderr.contains("Protocol not supported") || stderr.contains("Address family not supported")
        {
            // What netlink answers when the kernel has no nf_tables.
            NftError::NoNfTables { action, stderr }
        } else {
            NftError::Failed { action, status, stderr }
        }
    }
}

/// Why the ruleset is not (or not exactly) in force.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    #[error(transparent)]
    Nft(#[from] NftError),

    #[error("cannot encode the ruleset as nftables JSON")]
    Encode(#[source] serde_json::Error),

    #[error("nft's listing of table inet proximity is not nftables JSON")]
    Listing(#[source] serde_json::Error),

    #[error("the ruleset read back differs from the one applied: {0}")]
    Mismatch(Mismatch),

    #[error("cannot enable IPv4 forwarding ({path})")]
    IpForward { path: &'static str, source: std::io::Error },

    #[error("IPv4 forwarding did not stay enabled: {path} reads {found:?} after writing 1")]
    IpForwardOff { path: &'static str, found: String },
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    /// What nft 1.0 prints in each case (the first two seen here with CAP_NET_ADMIN dropped).
    #[test]
    fn nft_failures_say_what_to_do() {
        let status = ExitStatus::from_raw(1 << 8);
        let cases = [
            ("netlink: Error: cache initialization failed: Operation not permitted", "CAP_NET_ADMIN"),
            ("internal:0:0-0: Error: Could not process rule: Operation not permitted", "CAP_NET_ADMIN"),
            ("netlink: Error: cache initialization failed: Protocol not supported", "no nf_tables"),
            (
                "internal:0:0-0: Error: Could not process rule: No such file or directory",
                "nft said: internal",
            ),
        ];
        for (stderr, expected) in cases {
            let message = NftError::classify("apply the ruleset", status, stderr.into()).to_string();
            assert!(message.contains(expected) && message.contains(stderr), "{stderr}: {message}");
        }
        let missing = NftError::Missing { searched: "/usr/sbin:/sbin".into() }.to_string();
        assert!(missing.contains("install nftables"), "{missing}");
    }
}
