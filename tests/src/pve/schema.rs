//! The official Proxmox VE API schema and a validator that checks one request against it as
//! Proxmox does (PVE::RESTHandler finds the method, PVE::JSONSchema validates the parameters),
//! with the same answers: `501 Method 'GET /x' not implemented` for a path or method the schema
//! does not have, `400 Parameter verification failed.` with `{"errors": {param: text}}`
//! otherwise. The test double `pve-sim` runs every request through [`Schema::check`] first.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use proximity_tests::pve::schema::{Rejection, Schema};
//! let schema = Schema::official()?;
//! let params = vec![("memory".to_owned(), "256".to_owned())];
//! let checked = schema.check("PUT", "/nodes/pve/lxc/100/config", &params)?;
//! assert_eq!(checked.template, "/nodes/{node}/lxc/{vmid}/config");
//! assert_eq!(checked.path_params["vmid"], "100");
//!
//! let params = vec![
//!     ("iface".to_owned(), "proximity-lan".to_owned()),
//!     ("type".to_owned(), "bridge".to_owned()),
//! ];
//! let Err(Rejection::Invalid { errors }) = schema.check("POST", "/nodes/pve/network", &params) else {
//!     panic!("pve-iface refuses '-'");
//! };
//! assert_eq!(errors["iface"], "invalid format - invalid network interface name 'proximity-lan'\n");
//! # Ok(()) }
//! ```
//!
//! What is checked, as PVE does: path parameters (`{node}`, `{vmid}`, ...) like any other
//! parameter; unknown parameters (`additionalProperties: 0`); missing required ones; types
//! (top-level booleans must be `1`/`0` exactly, as PVE's `check_type`; inside property strings
//! `yes`/`on`/`true`/... are read by `parse_boolean`); formats, patterns (Perl regexes,
//! translated), `maxLength`/`minLength`, `minimum`/`maximum` (also when written as strings),
//! `enum`, `requires`, `oneOf`; property strings (`net[n]`, `rootfs`, `mp[n]`, ...); indexed
//! parameters (`net0`..`net31`, `mp0`..`mp255`, `unused0`..`unused255`, `dev0`..`dev255`, the
//! VM families with their PVE limits, 0-255 for families not known here). Repeated keys are
//! joined with NUL, as PVE's HTTP server does (lists split on it; an integer fails).
//! Path segments are percent-decoded; a volume id in a path may be sent with its `/` as `%2F`
//! or unencoded, as clients such as go-proxmox send it (a final `{volume}` takes the rest of the
//! path).
//!
//! Named formats checked strictly: see [`formats::CHECKED`] (with their `-list`/`-opt` forms).
//! Accepted without a check (their definitions are Perl code or hashes not in the schema):
//! IPorCIDRorAlias, backup-fleecing, backup-performance, bridge-pair-list, email-list,
//! email-opt, email-or-username(-list), graphite-path, lxc-ip-with-ll-iface-list, mac-prefix,
//! pem-certificate-chain, pem-string, proxmox-remote, prune-backups, pve-acme-alias,
//! pve-acme-domain(-list), pve-calendar-event, pve-command-batch, pve-cpuset,
//! pve-day-of-week-list, pve-dir-override-list, pve-fw-addr-spec, pve-fw-conntrack-helper,
//! pve-fw-dport-spec, pve-fw-icmp-type-spec, pve-fw-protocol-spec, pve-fw-sport-spec,
//! pve-groupid(-list), pve-ha-node-list, pve-ha-resource-id-list, pve-ha-resource-or-vm-id,
//! pve-hotplug-features, pve-poolid, pve-priv-list, pve-qemu-sev-fmt, pve-qemu-tdx-fmt,
//! pve-qm-boot, pve-qm-bootdisk, pve-qm-cicustom, pve-qm-hostpci, pve-qm-ide, pve-qm-ipconfig,
//! pve-qm-rng, pve-qm-smbios1, pve-qm-watchdog, pve-realm, pve-replication-job-id,
//! pve-roleid(-list), pve-sdn-* (bgp-rt-list, controller-id, dhcp-range, dns-id, fabric-id,
//! ipam-id, isis-net, subnet-id, vnet-id, zone-id), pve-storage-options, pve-storage-path,
//! pve-storage-path-in-property-string, pve-storage-portal-dns(-list), pve-storage-server,
//! pve-storage-vgname, pve-tfa-config, pve-tokenid-list, pve-vm-cpu-conf,
//! pve-volume-id-or-qm-path, realm-sync-options, storage-pair-list.
//! (the same as [`formats::UNCHECKED`]; a test asserts that it and [`formats::CHECKED`] cover
//! every format of the schema). `pve-ct-timezone` accepts any value (PVE reads the host's
//! zone.tab).
//!
//! Not checked: what PVE's API code checks after the schema (e.g. that `rootfs` is
//! `STORAGE:SIZE` or an existing volume, permissions, locks); that is the double's job.
//!
//! # Layout
//! - `tree`: loading the schema, path templates, finding the endpoint of a path.
//! - `check`: PVE's `check_prop` / `check_object`.
//! - `types`: integers, numbers, booleans, bounds.
//! - [`formats`]: the named formats.
//! - [`property_string`]: `key=value,...` parameters.
//! - `pattern`: Perl patterns as Rust regexes, compiled lazily and cached.
//! - [`json_body`]: a JSON request body as the string pairs [`Schema::check`] takes.

mod check;
pub mod formats;
pub mod json_body;
mod pattern;
pub mod property_string;
mod tree;
mod types;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use check::{Additional, Checker, Errors};
use pattern::Patterns;
use tree::Tree;

/// Where the vendored official schema lives, relative to this crate.
const OFFICIAL: &str = "pve-api/pve-api-schema.json";

/// Loading the schema failed.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read the API schema {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the API schema {path} is not JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the API schema is malformed: {0}")]
    Shape(String),
}

/// The Proxmox VE API: every path template with its methods and their parameter schemas.
#[derive(Debug)]
pub struct Schema {
    tree: Tree,
    /// Patterns compiled on first use; a schema has ~60 distinct ones, most never used.
    patterns: Patterns,
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The schema path that matched, e.g. `/nodes/{node}/lxc/{vmid}/config`.
    pub template: String,
    /// The path's parameters by name (`node` -> `pve`), percent-decoded.
    pub path_params: BTreeMap<String, String>,
    /// The query (GET/DELETE) or body (POST/PUT) parameters as sent; a repeated key's values
    /// joined with NUL. Path parameters are not repeated here.
    pub params: BTreeMap<String, String>,
}

/// Why Proxmox would refuse a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No such path, or the path has no such method: `501`.
    NotImplemented { method: String, path: String },
    /// Parameter verification failed: `400`, with one error text per parameter path.
    Invalid { errors: BTreeMap<String, String> },
}

impl Rejection {
    /// The HTTP status Proxmox answers with.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::NotImplemented { .. } => 501,
            Rejection::Invalid { .. } => 400,
        }
    }

    /// The status message (HTTP reason phrase) Proxmox answers with.
    pub fn message(&self) -> String {
        match self {
            Rejection::NotImplemented { method, path } => {
                format!("Method '{method} {path}' not implemented")
            }
            Rejection::Invalid { .. } => "Parameter verification failed.".to_owned(),
        }
    }

    /// The JSON body Proxmox answers with.
    pub fn body(&self) -> Value {
        match self {
            Rejection::NotImplemented { .. } => json!({ "data": null }),
            Rejection::Invalid { errors } => json!({ "data": null, "errors": errors }),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status(), self.message())?;
        if let Rejection::Invalid { errors } = self {
            for (param, error) in errors {
                write!(f, "\n{param}: {}", error.trim_end())?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Rejection {}

impl Schema {
    /// Loads a schema file (the `apiSchema` array of the API viewer, as JSON).
    pub fn load(path: &Path) -> Result<Schema, SchemaError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SchemaError::Read { path: path.to_owned(), source })?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|source| SchemaError::Json { path: path.to_owned(), source })?;
        Schema::from_json(&json)
    }

    /// The vendored official schema (tests/pve-api/pve-api-schema.json, found via
    /// `env!("CARGO_MANIFEST_DIR")`).
    pub fn official() -> Result<Schema, SchemaError> {
        Schema::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(OFFICIAL))
    }

    /// A schema from its JSON (the top-level array of nodes).
    pub fn from_json(json: &Value) -> Result<Schema, SchemaError> {
        Ok(Schema { tree: Tree::from_json(json)?, patterns: Patterns::default() })
    }

    /// Validate one request. `path` is below /api2/json, e.g. "/nodes/pve/lxc/100/config";
    /// `params` are the query (GET/DELETE) or form body (POST/PUT) pairs as sent, strings,
    /// repeated keys allowed.
    pub fn check(&self, method: &str, path: &str, params: &[(String, String)]) -> Result<Checked, Rejection> {
        let not_implemented =
            || Rejection::NotImplemented { method: method.to_owned(), path: path.to_owned() };
        let (endpoint, path_params) = self.tree.find(path).ok_or_else(not_implemented)?;
        let info = endpoint.methods.get(&method.to_ascii_uppercase()).ok_or_else(not_implemented)?;

        let mut sent: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in params {
            sent.entry(key.clone())
                .and_modify(|v| {
                    v.push('\0');
                    v.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        sent.retain(|key, _| !path_params.contains_key(key));
        let mut all = sent.clone();
        all.extend(path_params.iter().map(|(k, v)| (k.clone(), v.clone())));

        let parameters = info.get("parameters");
        let empty = Map::new();
        let properties =
            parameters.and_then(|p| p.get("properties")).and_then(Value::as_object).unwrap_or(&empty);
        let additional = match parameters.and_then(|p| p.get("additionalProperties")) {
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Additional::Forbidden,
            Some(Value::Bool(false)) => Additional::Forbidden,
            _ => Additional::Allowed,
        };
        let mut errors = Errors::new();
        let checker = Checker { patterns: &self.patterns };
        checker.check_object("", properties, &all, additional, &mut errors);
        if !errors.is_empty() {
            return Err(Rejection::Invalid { errors });
        }
        Ok(Checked { template: endpoint.template.clone(), path_params, params: sent })
    }

    /// The `returns` schema of a method (`"GET"`, `"/nodes/{node}/lxc"`).
    pub fn returns(&self, method: &str, template: &str) -> Option<&Value> {
        self.method(method, template)?.get("returns")
    }

    /// The schema of one parameter of a method, indexed names resolved (`net1` -> `net[n]`).
    /// With [`property_string::parse`] and its `format`, the double reads `net0` as PVE does.
    pub fn parameter(&self, method: &str, template: &str, name: &str) -> Option<&Value> {
        let properties = self.method(method, template)?.get("parameters")?.get("properties")?.as_object()?;
        check::lookup(properties, name)
    }

    /// How many (path, method) pairs the schema describes.
    pub fn method_count(&self) -> usize {
        self.tree.methods()
    }

    fn method(&self, method: &str, template: &str) -> Option<&Value> {
        self.tree.endpoint(template)?.methods.get(&method.to_ascii_uppercase())
    }
}
