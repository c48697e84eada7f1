//! Proxmox tasks: a long operation gets a UPID at once and runs on a blocking thread; its status
//! (`running`, then `stopped` with `exitstatus` `OK` or the error text) and its log lines
//! (ending in `TASK OK` or `TASK ERROR: <text>`, as Proxmox's task log does) are served by the
//! task endpoints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio_util::task::TaskTracker;

use super::error::ApiError;

/// Lines a log request returns when it names no `limit` (Proxmox's default).
pub const DEFAULT_LOG_LIMIT: usize = 50;

/// One task's record.
#[derive(Debug)]
struct Task {
    kind: String,
    id: String,
    user: String,
    pid: u32,
    pstart: u32,
    starttime: u64,
    /// `None` while running, then `OK` or the error text.
    exitstatus: Option<String>,
    log: Vec<String>,
}

/// Every task of the sim since it started.
#[derive(Debug)]
pub struct Tasks {
    node: String,
    tasks: Mutex<HashMap<String, Task>>,
    /// Stands for the worker's process start time: unique per task, so UPIDs never repeat.
    next_pstart: AtomicU32,
    /// The running workers, awaited (with a limit) when the sim stops.
    tracker: TaskTracker,
}

/// Where a task writes its log lines.
#[derive(Debug, Clone)]
pub struct TaskLog {
    tasks: Arc<Tasks>,
    upid: String,
}

impl TaskLog {
    pub fn line(&self, text: impl Into<String>) {
        let text = text.into();
        tracing::info!(upid = %self.upid, "{text}");
        if let Some(task) = self.tasks.lock().get_mut(&self.upid) {
            task.log.push(text);
        }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Tasks {
    pub fn new(node: &str) -> Tasks {
        let seed = u32::try_from(now() & 0x00ff_ffff).unwrap_or(0) << 4;
        Tasks {
            node: node.to_owned(),
            tasks: Mutex::new(HashMap::new()),
            next_pstart: AtomicU32::new(seed),
            tracker: TaskTracker::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Task>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `work` as a task of type `kind` about `id` (a vmid, a storage, ...) for `user`;
    /// returns its UPID at once. An `Err` from `work` becomes the task's exit status.
    pub fn spawn<F>(self: &Arc<Self>, kind: &str, id: &str, user: &str, work: F) -> String
    where
        F: FnOnce(&TaskLog) -> Result<(), ApiError> + Send + 'static,
    {
        let pid = std::process::id();
        let pstart = self.next_pstart.fetch_add(1, Ordering::Relaxed);
        let starttime = now();
        let upid = format!("UPID:{}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{user}:", self.node);
        let task = Task {
            kind: kind.to_owned(),
            id: id.to_owned(),
            user: user.to_owned(),
            pid,
            pstart,
            starttime,
            exitstatus: None,
            log: Vec::new(),
        };
        self.lock().insert(upid.clone(), task);
        let log = TaskLog { tasks: Arc::clone(self), upid: upid.clone() };
        self.tracker.spawn_blocking(move || {
            let result = work(&log);
            let (status, last) = match result {
                Ok(()) => ("OK".to_owned(), "TASK OK".to_owned()),
                Err(e) => {
                    tracing::warn!(upid = %log.upid, error = %e.message, "task failed");
                    (e.message.clone(), format!("TASK ERROR: {}", e.message))
                }
            };
            if let Some(task) = log.tasks.lock().get_mut(&log.upid) {
                task.log.push(last);
                task.exitstatus = Some(status);
            }
        });
        upid
    }

    /// Waits for the running tasks (the caller bounds the wait).
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// `GET /nodes/{node}/tasks/{upid}/status`.
    pub fn status(&self, upid: &str) -> Result<Value, ApiError> {
        let tasks = self.lock();
        let task = tasks.get(upid).ok_or_else(|| no_such_task(upid))?;
        let mut status = json!({
            "upid": upid,
            "node": self.node,
            "pid": task.pid,
            "pstart": task.pstart,
            "starttime": task.starttime,
            "type": task.kind,
            "id": task.id,
            "user": task.user,
            "status": if task.exitstatus.is_some() { "stopped" } else { "running" },
        });
        if let Some(exit) = &task.exitstatus {
            status["exitstatus"] = json!(exit);
        }
        Ok(status)
    }

    /// `GET /nodes/{node}/tasks/{upid}/log`: lines `start..start+limit` as `{n, t}` (n counts
    /// from 1), and the total.
    pub fn log(&self, upid: &str, start: usize, limit: usize) -> Result<(Value, usize), ApiError> {
        let tasks = self.lock();
        let task = tasks.get(upid).ok_or_else(|| no_such_task(upid))?;
        let lines: Vec<Value> = task
            .log
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, t)| json!({ "n": i + 1, "t": t }))
            .collect();
        Ok((Value::Array(lines), task.log.len()))
    }
}

/// What Proxmox says for a UPID it has no log for.
fn no_such_task(upid: &str) -> ApiError {
    ApiError::internal(format!("unable to open file - No such file or directory (task {upid})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_runs_and_reports_like_proxmox() -> anyhow::Result<()> {
        let tasks = Arc::new(Tasks::new("pve"));
        let ok = tasks.spawn("vzstart", "100", "root@pam!t", |log| {
            log.line("starting");
            Ok(())
        });
        let failed =
            tasks.spawn("vzstop", "100", "root@pam!t", |_| Err(ApiError::internal("CT 100 not running")));
        assert!(ok.starts_with("UPID:pve:") && ok.ends_with(":vzstart:100:root@pam!t:"), "{ok}");
        assert_ne!(ok, failed);
        let t = Arc::clone(&tasks);
        let done = tokio::task::spawn_blocking(move || {
            wait::until(Duration::from_secs(5), "tasks", || {
                let a = t.status(&ok)?;
                let b = t.status(&failed)?;
                Ok((a["status"] == "stopped" && b["status"] == "stopped").then_some((a, b, ok.clone())))
            })
        });
        let (a, b, ok) = done.await??;
        assert_eq!(a["exitstatus"], "OK");
        assert_eq!(b["exitstatus"], "CT 100 not running");
        let (lines, total) = tasks.log(&ok, 0, DEFAULT_LOG_LIMIT)?;
        assert_eq!(total, 2);
        assert_eq!(lines, json!([{ "n": 1, "t": "starting" }, { "n": 2, "t": "TASK OK" }]));
        assert!(tasks.status("UPID:pve:nope").is_err());
        Ok(())
    }
}
