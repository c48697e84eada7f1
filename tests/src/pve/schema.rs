//! PLACEHOLDER for the request validator against the Proxmox API schema: it knows the path
//! templates pve-sim serves and accepts every parameter. The real validator (same API, checking
//! types, patterns, enums and property strings against `pve-api-schema.json`) replaces this file
//! at merge.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

/// The path templates (below `/api2/json`) and methods the placeholder knows.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/version"),
    ("GET", "/cluster/nextid"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{node}/network"),
    ("POST", "/nodes/{node}/network"),
    ("PUT", "/nodes/{node}/network"),
    ("GET", "/nodes/{node}/network/{iface}"),
    ("DELETE", "/nodes/{node}/network/{iface}"),
    ("GET", "/nodes/{node}/storage"),
    ("GET", "/nodes/{node}/storage/{storage}/content"),
    ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"),
    ("POST", "/nodes/{node}/storage/{storage}/upload"),
    ("GET", "/nodes/{node}/lxc"),
    ("POST", "/nodes/{node}/lxc"),
    ("GET", "/nodes/{node}/lxc/{vmid}/config"),
    ("PUT", "/nodes/{node}/lxc/{vmid}/config"),
    ("DELETE", "/nodes/{node}/lxc/{vmid}"),
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/start"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/stop"),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown"),
    ("POST", "/nodes/{node}/lxc/{vmid}/move_volume"),
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"),
    ("GET", "/nodes/{node}/tasks/{upid}/status"),
    ("GET", "/nodes/{node}/tasks/{upid}/log"),
];

/// Why the schema could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
}

/// The API schema (placeholder: the route list above).
#[derive(Debug)]
pub struct Schema;

/// A request the schema accepts.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The path template it matched, e.g. `/nodes/{node}/lxc/{vmid}/config`.
    pub template: String,
    pub path_params: BTreeMap<String, String>,
    pub params: BTreeMap<String, String>,
}

/// A request the schema refuses, as Proxmox refuses it.
#[derive(Debug, Clone)]
pub enum Rejection {
    NotImplemented { method: String, path: String },
    Invalid { errors: BTreeMap<String, String> },
}

impl Rejection {
    pub fn status(&self) -> u16 {
        match self {
            Rejection::NotImplemented { .. } => 501,
            Rejection::Invalid { .. } => 400,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Rejection::NotImplemented { method, path } => format!("Method '{method} {path}' not implemented"),
            Rejection::Invalid { .. } => "Parameter verification failed.".to_owned(),
        }
    }

    pub fn body(&self) -> Value {
        match self {
            Rejection::NotImplemented { .. } => json!({ "data": null }),
            Rejection::Invalid { errors } => json!({ "data": null, "errors": errors }),
        }
    }
}

impl Schema {
    pub fn load(path: &Path) -> Result<Schema, SchemaError> {
        std::fs::metadata(path)
            .map_err(|source| SchemaError::Read { path: path.display().to_string(), source })?;
        Ok(Schema)
    }

    pub fn official() -> Result<Schema, SchemaError> {
        Ok(Schema)
    }

    pub fn check(&self, method: &str, path: &str, params: &[(String, String)]) -> Result<Checked, Rejection> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        for (m, template) in ROUTES {
            if *m != method {
                continue;
            }
            let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut path_params = BTreeMap::new();
            let matched = parts.iter().zip(&segments).all(|(part, seg)| {
                match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => {
                        path_params.insert(name.to_owned(), (*seg).to_owned());
                        !seg.is_empty()
                    }
                    None => part == seg,
                }
            });
            if matched {
                let params = params.iter().cloned().collect();
                return Ok(Checked { template: (*template).to_owned(), path_params, params });
            }
        }
        Err(Rejection::NotImplemented { method: method.to_owned(), path: path.to_owned() })
    }
}
