//! The core of PVE::JSONSchema's validation, re-implemented: `check_prop` (one value against
//! one parameter schema: presence, type, format, pattern, lengths, bounds, enum, `oneOf`) and
//! `check_object` (a set of named values against a `properties` map: unknown keys, `requires`,
//! indexed keys such as `net0` for `net[n]`). Error texts are PVE's.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::pattern::Patterns;
use super::{formats, property_string, types};

/// Errors by parameter path (`net0`, `net0.bridge`), as PVE's `add_error` collects them.
pub(crate) type Errors = BTreeMap<String, String>;

/// Whether keys the schema does not define are errors (`additionalProperties: 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Additional {
    Forbidden,
    Allowed,
}

/// PVE's `add_error`: a second error on one path is appended after a literal `\n` (PVE joins
/// with the two characters backslash and n).
pub(crate) fn add_error(errors: &mut Errors, path: &str, msg: impl Into<String>) {
    let path = if path.is_empty() { "_root" } else { path };
    let msg = msg.into();
    errors
        .entry(path.to_owned())
        .and_modify(|e| {
            e.push_str("\\n");
            e.push_str(&msg);
        })
        .or_insert(msg);
}

/// Highest index + 1 of PVE's indexed options (`net[n]` = `net0` .. `net31` for containers and
/// VMs). Unknown families get 256 (the largest PVE uses).
fn index_limit(family: &str) -> usize {
    match family {
        "net" | "ipconfig" => 32,
        "mp" | "unused" | "dev" => 256,
        "ide" => 4,
        "sata" => 6,
        "scsi" => 31,
        "virtio" | "hostpci" => 16,
        "usb" => 14,
        "serial" => 4,
        "parallel" => 3,
        "numa" => 8,
        "virtiofs" => 10,
        "link" => 8,
        "acmedomain" => 5,
        _ => 256,
    }
}

/// The schema of `key` in `properties`: the key itself, or its indexed family (`net7` ->
/// `net[n]`, within PVE's limit, without leading zeros).
pub(crate) fn lookup<'s>(properties: &'s Map<String, Value>, key: &str) -> Option<&'s Value> {
    if key.ends_with("[n]") {
        // The schema's name for a family is not a parameter name.
        return None;
    }
    if let Some(schema) = properties.get(key) {
        return Some(schema);
    }
    let family = key.trim_end_matches(|c: char| c.is_ascii_digit());
    let index = &key[family.len()..];
    if family.is_empty() || index.is_empty() || (index.len() > 1 && index.starts_with('0')) {
        return None;
    }
    let n: usize = index.parse().ok()?;
    if n >= index_limit(family) {
        return None;
    }
    properties.get(&format!("{family}[n]"))
}

fn flag(schema: &Value, key: &str) -> bool {
    match schema.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(s)) => !s.is_empty() && s != "0",
        _ => false,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// The value of the `type-property` a `oneOf` parameter names (e.g. the `type` of a network).
fn instance_type<'v>(schema: &Value, values: &'v BTreeMap<String, String>) -> Option<&'v str> {
    let property = schema.get("type-property")?.as_str()?;
    values.get(property).map(String::as_str)
}

/// The validation of one request or one property string.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checker<'a> {
    pub(crate) patterns: &'a Patterns,
}

impl Checker<'_> {
    /// PVE's `check_object`.
    pub(crate) fn check_object(
        &self,
        path: &str,
        properties: &Map<String, Value>,
        values: &BTreeMap<String, String>,
        additional: Additional,
        errors: &mut Errors,
    ) {
        for (key, schema) in properties {
            if key.ends_with("[n]") {
                // Indexed families are optional; their members are checked below.
                continue;
            }
            let value = values.get(key).map(String::as_str);
            let instance = instance_type(schema, values);
            self.check_prop(value, schema, &join(path, key), errors, instance);
        }
        for (key, value) in values {
            let new_path = join(path, key);
            let exact = properties.contains_key(key) && !key.ends_with("[n]");
            if let Some(schema) = lookup(properties, key) {
                if !exact {
                    let instance = instance_type(schema, values);
                    self.check_prop(Some(value), schema, &new_path, errors, instance);
                }
                if let Some(required) = schema.get("requires").and_then(Value::as_str) {
                    if !values.contains_key(required) {
                        add_error(
                            errors,
                            &join(path, required),
                            format!("missing property - '{new_path}' requires this property"),
                        );
                    }
                }
                if self.matches_instance_type(schema, values) {
                    continue;
                }
            }
            if additional == Additional::Forbidden {
                add_error(
                    errors,
                    &new_path,
                    "property is not defined in schema and the schema does not allow additional properties",
                );
            }
        }
    }

    /// For a `oneOf` parameter: whether some alternative applies to the instance's type.
    fn matches_instance_type(&self, schema: &Value, values: &BTreeMap<String, String>) -> bool {
        let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) else {
            return true;
        };
        let instance = instance_type(schema, values);
        alternatives.iter().any(|alt| match alt.get("instance-types").and_then(Value::as_array) {
            Some(types) => types.iter().any(|t| t.as_str().is_some() && t.as_str() == instance),
            None => true,
        })
    }

    /// PVE's `check_prop`: `value` is `None` when the parameter was not sent.
    pub(crate) fn check_prop(
        &self,
        value: Option<&str>,
        schema: &Value,
        path: &str,
        errors: &mut Errors,
        instance: Option<&str>,
    ) {
        if !schema.is_object() {
            add_error(errors, path, "Invalid schema definition.");
            return;
        }
        let mut optional_for_type = false;
        if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
            if schema.get("type-property").is_some() {
                optional_for_type = true;
                for alt in alternatives {
                    let Some(instance) = instance else { break };
                    let Some(types) = alt.get("instance-types").and_then(Value::as_array) else {
                        add_error(errors, path, "missing 'instance-types' in oneOf alternative");
                        return;
                    };
                    if !types.iter().any(|t| t.as_str() == Some(instance)) {
                        continue;
                    }
                    optional_for_type = flag(alt, "optional");
                    self.check_prop(value, alt, path, errors, None);
                }
            } else {
                let mut collected = Errors::new();
                let mut valid = false;
                for (i, alt) in alternatives.iter().enumerate() {
                    let mut inner = Errors::new();
                    self.check_prop(value, alt, &format!("{path}.oneOf[{i}]"), &mut inner, None);
                    if inner.is_empty() {
                        valid = true;
                        break;
                    }
                    for (k, v) in inner {
                        add_error(&mut collected, &k, v);
                    }
                }
                if !valid {
                    for (k, v) in collected {
                        add_error(errors, &k, v);
                    }
                }
            }
        }

        let Some(value) = value else {
            if !flag(schema, "optional") && schema.get("alias").is_none() && !optional_for_type {
                add_error(errors, path, "property is missing and it is not optional");
            }
            return;
        };

        let type_name = schema.get("type").and_then(Value::as_str);
        if type_name == Some("array") {
            // Repeated keys arrive joined with NUL, as PVE's HTTP server joins them.
            if let Some(items) = schema.get("items") {
                for (i, item) in value.split('\0').enumerate() {
                    self.check_prop(Some(item), items, &format!("{path}[{i}]"), errors, None);
                }
            }
            return;
        }
        if let Some(type_name) = type_name {
            if let Err(e) = types::check_type(type_name, value) {
                add_error(errors, path, e);
                return;
            }
        }
        self.check_scalar(value, schema, path, errors);
    }

    /// The checks of `check_prop` after the type, in PVE's order; the first failure wins
    /// (except for `enum`, which PVE checks last).
    fn check_scalar(&self, value: &str, schema: &Value, path: &str, errors: &mut Errors) {
        let format_result = match schema.get("format") {
            Some(Value::String(name)) => formats::check(name, value, self.patterns),
            Some(Value::Object(format)) => property_string::check(self, format, value, path),
            _ => Ok(()),
        };
        if let Err(e) = format_result {
            add_error(errors, path, format!("invalid format - {e}"));
            return;
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            match self.patterns.full_match(pattern, value) {
                Ok(true) => {}
                Ok(false) => {
                    add_error(errors, path, "value does not match the regex pattern");
                    return;
                }
                Err(e) => {
                    add_error(errors, path, e);
                    return;
                }
            }
        }
        let length = value.chars().count() as f64;
        if let Some(max) = schema.get("maxLength") {
            if types::bound(max).is_some_and(|max| length > max) {
                let max = types::display(max);
                add_error(errors, path, format!("value may only be {max} characters long"));
                return;
            }
        }
        if let Some(min) = schema.get("minLength") {
            if types::bound(min).is_some_and(|min| length < min) {
                let min = types::display(min);
                add_error(errors, path, format!("value must be at least {min} characters long"));
                return;
            }
        }
        if let Some(number) = types::is_number(value).then(|| types::numeric(value)).flatten() {
            if let Some(max) = schema.get("maximum") {
                if types::bound(max).is_some_and(|max| number > max) {
                    let max = types::display(max);
                    add_error(errors, path, format!("value must have a maximum value of {max}"));
                    return;
                }
            }
            if let Some(min) = schema.get("minimum") {
                if types::bound(min).is_some_and(|min| number < min) {
                    let min = types::display(min);
                    add_error(errors, path, format!("value must have a minimum value of {min}"));
                    return;
                }
            }
        }
        if let Some(members) = schema.get("enum").and_then(Value::as_array) {
            if !members.iter().any(|m| types::display(m) == value) {
                let list: Vec<String> = members.iter().map(types::display).collect();
                add_error(
                    errors,
                    path,
                    format!("value '{value}' does not have a value in the enumeration '{}'", list.join(", ")),
                );
            }
        }
    }
}
