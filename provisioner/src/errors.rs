//! Failures that scripts tell apart by exit code (see [`crate::cli::EXIT_CODES`]), and the mapping
//! of an error chain to its code.

use crate::pve::PveError;

/// Exit code of success.
pub const EXIT_OK: u8 = 0;
/// Exit code of any other failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error (clap's own).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of a refusal (not ours, pending changes).
pub const EXIT_REFUSED: u8 = 3;
/// Exit code of a deadline passed.
pub const EXIT_TIMEOUT: u8 = 4;
/// Exit code of Proxmox refusing the token or a privilege.
pub const EXIT_DENIED: u8 = 5;

/// The provisioner would not act, on purpose.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refused(pub String);

/// A wait past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {secs} s: {what} (raise --timeout)")]
pub struct TimedOut {
    pub what: String,
    pub secs: u64,
}

/// The exit code for `error`, from the first cause in its chain that has one.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<Refused>() || cause.is::<crate::bridge::api::ApiBridgeError>() && is_refusal(cause) {
            return EXIT_REFUSED;
        }
        if cause.is::<TimedOut>() {
            return EXIT_TIMEOUT;
        }
        if let Some(e) = cause.downcast_ref::<PveError>() {
            if e.is_access_denied() {
                return EXIT_DENIED;
            }
            if e.is_timeout() {
                return EXIT_TIMEOUT;
            }
        }
    }
    EXIT_FAILURE
}

fn is_refusal(cause: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        cause.downcast_ref::<crate::bridge::api::ApiBridgeError>(),
        Some(
            crate::bridge::api::ApiBridgeError::PendingChanges { .. }
                | crate::bridge::api::ApiBridgeError::NotABridge { .. }
        )
    )
}

/// `error` and its sources, `: `-separated.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn maps_errors_to_exit_codes() {
        let refused = anyhow::Error::new(Refused("VMID 100 is not ours".into())).context("deploying");
        assert_eq!(exit_code(&refused), EXIT_REFUSED);
        let pending =
            anyhow::Error::new(crate::bridge::api::ApiBridgeError::PendingChanges { node: "pve".into() });
        assert_eq!(exit_code(&pending), EXIT_REFUSED);
        let timeout: anyhow::Result<()> = Err(TimedOut { what: "WAN address".into(), secs: 300 }.into());
        assert_eq!(
            exit_code(&timeout.context("up").err().unwrap_or_else(|| anyhow::anyhow!("none"))),
            EXIT_TIMEOUT
        );
        let denied = anyhow::Error::new(PveError::Unauthorized {
            token: "root@pam!p".into(),
            method: "GET".into(),
            path: "/version".into(),
        });
        assert_eq!(exit_code(&denied), EXIT_DENIED);
        let task = anyhow::Error::new(PveError::TaskTimeout { upid: "UPID:x".into(), secs: 1, log: vec![] });
        assert_eq!(exit_code(&task), EXIT_TIMEOUT);
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), EXIT_FAILURE);
    }
}
