//! [`ApiError`]: an error as Proxmox reports it: an HTTP status, a message (the status line's
//! reason and the body's `message`), and for parameter errors the `errors` object.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The reason Proxmox gives for a 400 with parameter errors.
pub const PARAM_FAILED: &str = "Parameter verification failed.";

/// One failed request or task.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub errors: Option<BTreeMap<String, String>>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), errors: None }
    }

    /// A 500, what Proxmox answers for every `die` in a handler.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, message)
    }

    /// A 400 for one parameter, as `raise_param_exc` gives it.
    pub fn param(name: &str, reason: impl Into<String>) -> ApiError {
        let errors = BTreeMap::from([(name.to_owned(), reason.into())]);
        ApiError { status: 400, message: PARAM_FAILED.to_owned(), errors: Some(errors) }
    }

    /// The JSON body: `{"data": null, "message": ..., "errors": {...}}`.
    pub fn body(&self) -> Value {
        let mut body = json!({ "data": null, "message": format!("{}\n", self.message) });
        if let Some(errors) = &self.errors {
            body["errors"] = json!(errors);
        }
        body
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

/// Adds context to an I/O error, as `die "cannot ...: $!"` does.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, ApiError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, ApiError> {
        self.map_err(|e| ApiError::internal(format!("{}: {e}", what())))
    }
}
