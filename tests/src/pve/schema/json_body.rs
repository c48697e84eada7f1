//! Requests with a JSON body (`Content-Type: application/json`), which Proxmox accepts as well
//! as form bodies: the body's members as the string pairs [`super::Schema::check`] takes.
//!
//! As PVE reads them: a JSON boolean counts as `1`/`0` (PVE's `check_type` accepts JSON
//! booleans for boolean parameters), numbers as their decimal text, an array as the key
//! repeated (joined with NUL by `check`, as PVE's array parameters), `null` as absent.
//! An object member is passed on as its JSON text (PVE refuses it; so will the schema check
//! of almost every parameter). Known gap: PVE refuses a JSON boolean for a non-boolean
//! parameter, here it reaches the check as `1`/`0`.

use serde_json::{Map, Value};

/// The members of a JSON object body as request parameters.
pub fn params_from_json(body: &Map<String, Value>) -> Vec<(String, String)> {
    let mut params = Vec::new();
    for (key, value) in body {
        match value {
            Value::Null => {}
            Value::Array(items) => {
                params.extend(items.iter().filter_map(scalar).map(|v| (key.clone(), v)));
            }
            other => {
                if let Some(v) = scalar(other) {
                    params.push((key.clone(), v));
                }
            }
        }
    }
    params
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_become_pairs() {
        let body = json!({
            "vmid": 100, "onboot": true, "swap": 0, "hostname": "proximity",
            "delete": ["mp1", "net2"], "description": null, "rate": 1.5
        });
        let Some(body) = body.as_object() else { panic!("an object") };
        let mut params = params_from_json(body);
        params.sort();
        let expected: Vec<(String, String)> = [
            ("delete", "mp1"),
            ("delete", "net2"),
            ("hostname", "proximity"),
            ("onboot", "1"),
            ("rate", "1.5"),
            ("swap", "0"),
            ("vmid", "100"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(params, expected);
    }
}
