//! Waiting for Proxmox tasks (UPIDs): poll the status until `stopped`, with a deadline; a task
//! that ends in anything but `OK` (or `WARNINGS: n`) is an error carrying its log's last lines.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::client::{Pve, encode};
use super::error::{LOG_TAIL_LINES, PveError};

/// Time between two status polls.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Log lines fetched from a failed task (Proxmox's `limit`).
const LOG_FETCH_LINES: usize = 200;

#[derive(Debug, Deserialize)]
struct TaskStatus {
    status: String,
    #[serde(default)]
    exitstatus: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LogLine {
    #[serde(default)]
    t: String,
}

/// Whether a task's exit status counts as success.
pub fn exit_ok(exitstatus: &str) -> bool {
    exitstatus == "OK" || exitstatus.starts_with("WARNINGS")
}

/// A UPID from a call's `data`; `None` when the call finished synchronously (`null`).
pub fn upid_of(data: &Value) -> Option<String> {
    data.as_str().filter(|s| s.starts_with("UPID:")).map(str::to_owned)
}

impl Pve {
    /// Waits for `upid` on `node` to stop, within `timeout`.
    pub async fn wait_task(&self, node: &str, upid: &str, timeout: Duration) -> Result<(), PveError> {
        let path = format!("/nodes/{}/tasks/{}/status", encode(node), encode(upid));
        let deadline = Instant::now() + timeout;
        loop {
            let status: TaskStatus = self.get(&path, &[]).await?;
            if status.status == "stopped" {
                let exitstatus = status.exitstatus.unwrap_or_else(|| "unknown".to_owned());
                if exit_ok(&exitstatus) {
                    return Ok(());
                }
                let log = self.task_log(node, upid).await;
                return Err(PveError::TaskFailed { upid: upid.to_owned(), exitstatus, log });
            }
            if Instant::now() >= deadline {
                let log = self.task_log(node, upid).await;
                return Err(PveError::TaskTimeout { upid: upid.to_owned(), secs: timeout.as_secs(), log });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits for the task in `data` if there is one.
    pub async fn wait_data(&self, node: &str, data: &Value, timeout: Duration) -> Result<(), PveError> {
        match upid_of(data) {
            Some(upid) => self.wait_task(node, &upid, timeout).await,
            None => Ok(()),
        }
    }

    /// The last lines of a task's log; empty when it cannot be read (the error at hand matters more).
    async fn task_log(&self, node: &str, upid: &str) -> Vec<String> {
        let path = format!("/nodes/{}/tasks/{}/log", encode(node), encode(upid));
        let lines: Vec<LogLine> =
            self.get(&path, &[("limit", LOG_FETCH_LINES.to_string())]).await.unwrap_or_default();
        let texts: Vec<String> = lines.into_iter().map(|l| l.t).filter(|t| !t.is_empty()).collect();
        let start = texts.len().saturating_sub(LOG_TAIL_LINES);
        texts[start..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exit_statuses_and_upids() {
        assert!(exit_ok("OK"));
        assert!(exit_ok("WARNINGS: 2"));
        assert!(!exit_ok("unable to create CT 100 - storage 'x' does not exist"));
        let upid = "UPID:pve:0000A1B2:00C3D4E5:65F00000:vzcreate:100:root@pam!p:";
        assert_eq!(upid_of(&Value::from(upid)).as_deref(), Some(upid));
        assert_eq!(upid_of(&Value::Null), None);
    }
}
