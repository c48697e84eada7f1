//! Property strings (`net0=name=eth0,bridge=vmbr0,ip=dhcp`): a parameter whose `format` is an
//! object of keys. PVE's `parse_property_string`: `key=value` parts separated by commas, a bare
//! value goes to the key marked `default_key`, `alias` keys store under their target (and
//! `keyAlias` records the key used), booleans are read with `parse_boolean`; then every key is
//! checked like a parameter (paths `net0.bridge`), unknown keys and missing required keys fail.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::check::{Additional, Checker, Errors};
use super::types;

/// Splits `data` by the property-string `format` into its keys (aliases resolved, booleans as
/// `1`/`0`) without checking the values. `Err` is PVE's text (ending in a newline).
pub fn parse(format: &Map<String, Value>, data: &str) -> Result<BTreeMap<String, String>, String> {
    let mut parsed = BTreeMap::new();
    let mut default_key: Option<&str> = None;
    for part in data.split(',') {
        if part.trim().is_empty() {
            continue;
        }
        match part.split_once('=') {
            Some((key, value)) if !key.is_empty() && !value.is_empty() => {
                if parsed.contains_key(key) {
                    return Err(format!("duplicate key in comma-separated list property: {key}\n"));
                }
                let mut key = key.to_owned();
                let mut schema = format.get(&key);
                if let Some(alias) = schema.and_then(|s| s.get("alias")).and_then(Value::as_str) {
                    let key_alias = schema.and_then(|s| s.get("keyAlias")).and_then(Value::as_str);
                    if let Some(key_alias) = key_alias {
                        if parsed.contains_key(key_alias) {
                            return Err(format!("key alias '{key_alias}' is already defined\n"));
                        }
                        parsed.insert(key_alias.to_owned(), key.clone());
                    }
                    key = alias.to_owned();
                    schema = format.get(alias);
                }
                let Some(schema) = schema else {
                    return Err(format!("invalid key in comma-separated list property: {key}\n"));
                };
                let value = match schema.get("type").and_then(Value::as_str) {
                    Some("boolean") => match types::parse_boolean(value) {
                        Some(true) => "1".to_owned(),
                        Some(false) => "0".to_owned(),
                        None => value.to_owned(),
                    },
                    _ => value.to_owned(),
                };
                parsed.insert(key, value);
            }
            None => {
                if let Some(key) = default_key {
                    return Err(format!("duplicate key in comma-separated list property: {key}\n"));
                }
                let Some(key) =
                    format.iter().find(|(_, schema)| is_default_key(schema)).map(|(key, _)| key.as_str())
                else {
                    return Err("value without key, but schema does not define a default key\n".to_owned());
                };
                default_key = Some(key);
                if parsed.get(key).is_some_and(|v| !v.is_empty() && v != "0") {
                    return Err(format!("duplicate key in comma-separated list property: {key}\n"));
                }
                parsed.insert(key.to_owned(), part.to_owned());
            }
            Some(_) => return Err("missing key in comma-separated list property\n".to_owned()),
        }
    }
    Ok(parsed)
}

fn is_default_key(schema: &Value) -> bool {
    matches!(schema.get("default_key"), Some(Value::Number(n)) if n.as_u64() == Some(1))
        || schema.get("default_key") == Some(&Value::Bool(true))
}

/// PVE's `check_format` for a property string: parse, then check every key. `Err` is the text
/// after `invalid format - `: a parse error, or `format error` and one line per key.
pub(crate) fn check(
    checker: &Checker<'_>,
    format: &Map<String, Value>,
    data: &str,
    path: &str,
) -> Result<(), String> {
    let parsed = parse(format, data)?;
    let mut errors = Errors::new();
    checker.check_object(path, format, &parsed, Additional::Forbidden, &mut errors);
    if errors.is_empty() {
        return Ok(());
    }
    let mut message = "format error\n".to_owned();
    for (key, error) in errors {
        message.push_str(&format!("{key}: {error}\n"));
    }
    Err(message)
}
