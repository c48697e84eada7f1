//! The validator against the official schema: the provisioner's requests pass, and what
//! Proxmox refuses is refused with Proxmox's texts. Shared helpers here; the cases in
//! `lxc`, `requests` and `coverage`.

mod coverage;
mod lxc;
mod requests;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proximity_provisioner::deploy::spec::Spec;

use super::{Checked, Rejection, Schema};

const TEMPLATE: &str = "local:vztmpl/proximity-appliance_0.1.0-0123456789ab_amd64.tar.zst";
const UPID: &str = "UPID:pve:0000ABCD:0001E240:6745A1B2:vzcreate:100:root@pam!ci:";

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| match Schema::official() {
        Ok(schema) => schema,
        Err(e) => panic!("the vendored schema loads: {e}"),
    })
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The container as the provisioner describes it (its own `Spec`, so these tests check the
/// calls it really makes).
fn spec() -> Spec {
    Spec {
        vmid: 100,
        template: TEMPLATE.to_owned(),
        storage: "local-lvm".to_owned(),
        wan_bridge: "vmbr0".to_owned(),
        lan_bridge: "proximity-lan".to_owned(),
    }
}

fn owned(params: Vec<(&str, String)>) -> Vec<(String, String)> {
    params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The container the provisioner creates (a first deployment, with the state volume).
fn create_params() -> Vec<(String, String)> {
    owned(spec().create_params(true))
}

/// `params` = the create call with `changes` applied (an empty value removes the key).
fn create_with(changes: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params = create_params();
    for (key, value) in changes {
        params.retain(|(k, _)| k != key);
        if !value.is_empty() {
            params.push(((*key).to_owned(), (*value).to_owned()));
        }
    }
    params
}

/// The errors of a request that must be refused with 400.
fn invalid(method: &str, path: &str, params: &[(String, String)]) -> BTreeMap<String, String> {
    match schema().check(method, path, params) {
        Err(Rejection::Invalid { errors }) => errors,
        other => panic!("{method} {path} {params:?}: expected a 400, got {other:?}"),
    }
}

fn create_errors(changes: &[(&str, &str)]) -> BTreeMap<String, String> {
    invalid("POST", "/nodes/pve/lxc", &create_with(changes))
}

fn error<'e>(errors: &'e BTreeMap<String, String>, key: &str) -> &'e str {
    match errors.get(key) {
        Some(e) => e,
        None => panic!("no error for {key}: {errors:?}"),
    }
}

fn passes(method: &str, path: &str, params: &[(&str, &str)]) -> Checked {
    match schema().check(method, path, &pairs(params)) {
        Ok(checked) => checked,
        Err(e) => panic!("{method} {path} {params:?}: {e}"),
    }
}
