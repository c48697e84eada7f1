//! Proxmox API failures as messages that say what to do: which token, which privilege on which
//! path, which parameter was refused and why, what a failed task logged.

use std::collections::BTreeMap;
use std::fmt;

use crate::net::http::HttpError;

/// A failed Proxmox API call.
#[derive(Debug, thiserror::Error)]
pub enum PveError {
    #[error(
        "Proxmox refused the API token {token} (401 on {method} {path}): it is wrong, expired or \
         deleted. Check PROXMOX_TOKEN (user@realm!tokenid=secret; Datacenter → Permissions → API Tokens)"
    )]
    Unauthorized { token: String, method: String, path: String },
    #[error(
        "the API token {token} lacks a privilege for {method} {path} ({message}). Grant {privilege}; \
         a privilege-separated token needs its own ACL entry (Datacenter → Permissions → Add → API Token Permission)"
    )]
    Forbidden { token: String, method: String, path: String, privilege: String, message: String },
    #[error("Proxmox refused {method} {path} (400): {}", ParamList(.errors, .message))]
    BadRequest { method: String, path: String, message: String, errors: BTreeMap<String, String> },
    #[error(
        "{method} {path} is not implemented by this Proxmox node (501: {message}); Proximity needs Proxmox VE 9"
    )]
    NotImplemented { method: String, path: String, message: String },
    #[error("Proxmox failed {method} {path} ({status}): {}", ParamList(.errors, .message))]
    Server { method: String, path: String, status: u16, message: String, errors: BTreeMap<String, String> },
    #[error("Proxmox task {upid} failed: {exitstatus}{}", LogTail(.log))]
    TaskFailed { upid: String, exitstatus: String, log: Vec<String> },
    #[error("Proxmox task {upid} still running after {secs} s (raise --timeout){}", LogTail(.log))]
    TaskTimeout { upid: String, secs: u64, log: Vec<String> },
    #[error("unexpected answer to {method} {path}: {reason}")]
    Decode { method: String, path: String, reason: String },
    #[error("cannot reach the Proxmox API")]
    Http(#[from] HttpError),
}

impl PveError {
    /// Whether the failure says the token lacks rights or is refused (exit code 5).
    pub fn is_access_denied(&self) -> bool {
        matches!(self, PveError::Unauthorized { .. } | PveError::Forbidden { .. })
    }

    /// Whether a task or wait ran past its deadline (exit code 4).
    pub fn is_timeout(&self) -> bool {
        matches!(self, PveError::TaskTimeout { .. } | PveError::Http(HttpError::Timeout(..)))
    }
}

struct ParamList<'a>(&'a BTreeMap<String, String>, &'a str);

impl fmt::Display for ParamList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1.trim())?;
        for (name, reason) in self.0 {
            write!(f, "\n  {name}: {}", reason.trim())?;
        }
        Ok(())
    }
}

/// Lines shown of a failed task's log.
pub const LOG_TAIL_LINES: usize = 10;

struct LogTail<'a>(&'a [String]);

impl fmt::Display for LogTail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("\n  task log (last lines):")?;
        let start = self.0.len().saturating_sub(LOG_TAIL_LINES);
        for line in &self.0[start..] {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

/// The privileges a call needs, per the schema's `permissions`, for the 403 message.
pub fn privilege_for(method: &str, path: &str) -> String {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let storage = |i: usize| parts.get(i).copied().unwrap_or("<storage>");
    let vmid = parts.get(3).copied().unwrap_or("<vmid>");
    match (method, parts.as_slice()) {
        (_, ["nodes", node, "network", ..]) if method != "GET" => format!("Sys.Modify on /nodes/{node}"),
        ("POST", ["nodes", _, "storage", _, "upload"]) => {
            format!("Datastore.AllocateTemplate on /storage/{}", storage(3))
        }
        ("DELETE", ["nodes", _, "storage", _, "content", ..]) => {
            format!("Datastore.Allocate on /storage/{}", storage(3))
        }
        (_, ["nodes", _, "storage", ..]) => format!("Datastore.Audit on /storage/{}", storage(3)),
        ("POST", ["nodes", _, "lxc"]) => {
            "VM.Allocate on /vms/<vmid> and Datastore.AllocateSpace on the container storage".to_owned()
        }
        ("DELETE", ["nodes", _, "lxc", _]) => format!("VM.Allocate on /vms/{vmid}"),
        ("POST", ["nodes", _, "lxc", _, "status", _]) => format!("VM.PowerMgmt on /vms/{vmid}"),
        ("POST", ["nodes", _, "lxc", _, "move_volume"]) => format!(
            "VM.Config.Disk on /vms/{vmid} and on the target container, and Datastore.AllocateSpace on the storage"
        ),
        ("PUT", ["nodes", _, "lxc", _, "config"]) => format!("VM.Config.Options on /vms/{vmid}"),
        (_, ["nodes", _, "lxc", ..]) => format!("VM.Audit on /vms/{vmid}"),
        (_, ["nodes", node, "tasks", ..]) => format!("Sys.Audit on /nodes/{node}"),
        _ => "the privilege named in the message".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_privilege_a_call_needs() {
        assert_eq!(privilege_for("POST", "/nodes/pve/network"), "Sys.Modify on /nodes/pve");
        assert_eq!(
            privilege_for("POST", "/nodes/pve/storage/local/upload"),
            "Datastore.AllocateTemplate on /storage/local"
        );
        assert!(privilege_for("POST", "/nodes/pve/lxc").starts_with("VM.Allocate"));
        assert_eq!(privilege_for("DELETE", "/nodes/pve/lxc/100"), "VM.Allocate on /vms/100");
        assert_eq!(privilege_for("POST", "/nodes/pve/lxc/100/status/start"), "VM.PowerMgmt on /vms/100");
        assert!(
            privilege_for("POST", "/nodes/pve/lxc/100/move_volume").starts_with("VM.Config.Disk on /vms/100")
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = PveError::Unauthorized {
            token: "root@pam!p".into(),
            method: "GET".into(),
            path: "/version".into(),
        };
        assert!(e.to_string().contains("PROXMOX_TOKEN"));
        let e = PveError::Forbidden {
            token: "root@pam!p".into(),
            method: "POST".into(),
            path: "/nodes/pve/lxc".into(),
            privilege: privilege_for("POST", "/nodes/pve/lxc"),
            message: "Permission check failed (/vms/100, VM.Allocate)".into(),
        };
        let text = e.to_string();
        assert!(text.contains("VM.Allocate") && text.contains("privilege-separated"), "{text}");
        let errors = BTreeMap::from([
            ("net0".to_owned(), "invalid format - unknown key 'foo'\n".to_owned()),
            ("vmid".to_owned(), "value must be at least 100".to_owned()),
        ]);
        let e = PveError::BadRequest {
            method: "POST".into(),
            path: "/nodes/pve/lxc".into(),
            message: "Parameter verification failed.".into(),
            errors,
        };
        assert_eq!(
            e.to_string(),
            "Proxmox refused POST /nodes/pve/lxc (400): Parameter verification failed.\n  net0: invalid format - unknown key 'foo'\n  vmid: value must be at least 100"
        );
        let log: Vec<String> = (1..=12).map(|i| format!("line {i}")).collect();
        let e = PveError::TaskFailed { upid: "UPID:x".into(), exitstatus: "command failed".into(), log };
        let text = e.to_string();
        assert!(text.contains("line 12") && text.contains("line 3") && !text.contains("line 2\n"), "{text}");
    }
}
