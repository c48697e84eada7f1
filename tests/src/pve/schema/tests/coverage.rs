//! The whole official schema: every pattern compiles, every named format is known, loading
//! errors are typed, `returns` and parameter schemas are exposed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;
use crate::pve::schema::pattern::Patterns;
use crate::pve::schema::{SchemaError, formats, property_string};

#[test]
fn returns_and_parameters_are_exposed() {
    let returns = schema().returns("GET", "/version");
    assert!(returns.and_then(|r| r.get("properties")).is_some_and(|p| p.get("release").is_some()));
    assert!(schema().returns("GET", "/nope").is_none());
    let net1 = schema().parameter("POST", "/nodes/{node}/lxc", "net1");
    let format = net1.and_then(|n| n.get("format")).and_then(Value::as_object);
    let Some(format) = format else { panic!("net[n] has a property-string format") };
    let parsed = property_string::parse(format, "name=eth1,bridge=proximity-lan,firewall=no");
    assert_eq!(
        parsed,
        Ok(BTreeMap::from([
            ("bridge".to_owned(), "proximity-lan".to_owned()),
            ("firewall".to_owned(), "0".to_owned()),
            ("name".to_owned(), "eth1".to_owned()),
        ]))
    );
    assert!(schema().parameter("POST", "/nodes/{node}/lxc", "net32").is_none());
    assert!(schema().method_count() > 600);
}

#[test]
fn loading_errors_are_typed() {
    let missing = Schema::load(std::path::Path::new("/nonexistent/pve-api-schema.json"));
    assert!(matches!(missing, Err(SchemaError::Read { .. })));
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let path = dir.path().join("bad.json");
    if let Err(e) = std::fs::write(&path, "[{") {
        panic!("{e}");
    }
    assert!(matches!(Schema::load(&path), Err(SchemaError::Json { .. })));
    if let Err(e) = std::fs::write(&path, r#"{"path": "/"}"#) {
        panic!("{e}");
    }
    assert!(matches!(Schema::load(&path), Err(SchemaError::Shape(_))));
}

/// The official schema as JSON.
fn official_json() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(crate::pve::schema::OFFICIAL);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(e) => panic!("{e}"),
    }
}

/// Every (template, method) of the official schema.
fn all_methods() -> Vec<(String, String)> {
    fn nodes(node: &Value, out: &mut Vec<(String, String)>) {
        for n in node.as_array().into_iter().flatten() {
            let template = n.get("path").and_then(Value::as_str).unwrap_or_default();
            for method in n.get("info").and_then(Value::as_object).into_iter().flat_map(|i| i.keys()) {
                out.push((template.to_owned(), method.clone()));
            }
            if let Some(children) = n.get("children") {
                nodes(children, out);
            }
        }
    }
    let mut out = Vec::new();
    nodes(&official_json(), &mut out);
    out
}

#[test]
fn every_path_of_the_schema_is_served() {
    let methods = all_methods();
    assert_eq!(methods.len(), schema().method_count());
    for (template, method) in methods {
        let path: Vec<&str> = template
            .split('/')
            .map(|segment| match segment {
                "{node}" => "pve",
                "{vmid}" => "100",
                s if s.starts_with('{') => "x1",
                s => s,
            })
            .collect();
        let path = path.join("/");
        match schema().check(&method, &path, &[]) {
            Ok(checked) => assert_eq!(checked.template, template, "{method} {path}"),
            Err(Rejection::Invalid { errors }) => assert!(!errors.is_empty()),
            Err(e) => panic!("{method} {path} ({template}): {e}"),
        }
    }
}

#[test]
fn the_schema_can_be_shared_between_handlers() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Schema>();
    let schema = std::sync::Arc::new(schema());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let schema = schema.clone();
            std::thread::spawn(move || {
                let params =
                    vec![("iface".to_owned(), format!("vmbr{i}")), ("type".to_owned(), "bridge".to_owned())];
                schema.check("POST", "/nodes/pve/network", &params).is_ok()
            })
        })
        .collect();
    for handle in handles {
        assert!(matches!(handle.join(), Ok(true)));
    }
}

/// Every parameter schema of the official schema, property-string keys and array items too.
fn all_parameter_schemas() -> Vec<Value> {
    let json = official_json();
    fn nodes(node: &Value, out: &mut Vec<Value>) {
        for n in node.as_array().into_iter().flatten() {
            for info in n.get("info").and_then(Value::as_object).into_iter().flat_map(|i| i.values()) {
                let props = info.pointer("/parameters/properties").and_then(Value::as_object);
                for p in props.into_iter().flat_map(|p| p.values()) {
                    params(p, out);
                }
            }
            if let Some(children) = n.get("children") {
                nodes(children, out);
            }
        }
    }
    fn params(p: &Value, out: &mut Vec<Value>) {
        out.push(p.clone());
        if let Some(format) = p.get("format").and_then(Value::as_object) {
            format.values().for_each(|k| params(k, out));
        }
        if let Some(items) = p.get("items") {
            params(items, out);
        }
        for alt in p.get("oneOf").and_then(Value::as_array).into_iter().flatten() {
            params(alt, out);
        }
    }
    let mut out = Vec::new();
    nodes(&json, &mut out);
    out
}

#[test]
fn every_pattern_of_the_schema_compiles() {
    let patterns = Patterns::default();
    let mut seen = BTreeSet::new();
    for p in all_parameter_schemas() {
        if let Some(pattern) = p.get("pattern").and_then(Value::as_str) {
            if seen.insert(pattern.to_owned()) {
                if let Err(e) = patterns.full_match(pattern, "") {
                    panic!("{e}");
                }
            }
        }
    }
    assert!(seen.len() > 50, "{} patterns", seen.len());
}

#[test]
fn every_named_format_is_known() {
    let mut unknown = BTreeSet::new();
    for p in all_parameter_schemas() {
        if let Some(name) = p.get("format").and_then(Value::as_str) {
            let base = ["-list", "-opt"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            if !formats::CHECKED.contains(&base) && !formats::UNCHECKED.contains(&base) {
                unknown.insert(name.to_owned());
            }
        }
    }
    assert!(unknown.is_empty(), "formats neither checked nor listed: {unknown:?}");
    for name in formats::CHECKED {
        assert!(!formats::UNCHECKED.contains(name), "{name} is in both lists");
    }
    assert!(formats::is_checked("pve-tag-list"));
    assert!(!formats::is_checked("pve-qm-ide"));
}
