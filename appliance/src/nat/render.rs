//! A ruleset in nft's own syntax, as `nft list table inet proximity` prints it: for the log, the
//! tests, and read-back differences a person can read. Works on the JSON form, so it shows what
//! was built and what was read back alike; a statement it does not know stays JSON.

use serde_json::Value;

/// `objects` (the JSON of a table, its chains and rules) as nft prints the table.
pub fn table(objects: &[Value]) -> String {
    let mut out = String::new();
    for table in objects.iter().filter_map(|o| o.get("table")) {
        out.push_str(&format!("table {} {} {{\n", word(&table["family"]), word(&table["name"])));
    }
    let chains: Vec<&Value> = objects.iter().filter_map(|o| o.get("chain")).collect();
    for (i, chain) in chains.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let name = word(&chain["name"]);
        out.push_str(&format!("\tchain {name} {{\n"));
        if chain.get("hook").is_some() {
            out.push_str(&format!(
                "\t\ttype {} hook {} priority {}; policy {};\n",
                word(&chain["type"]),
                word(&chain["hook"]),
                priority(&chain["prio"]),
                word(&chain["policy"]),
            ));
        }
        let rules = objects.iter().filter_map(|o| o.get("rule")).filter(|r| word(&r["chain"]) == name);
        for r in rules {
            out.push_str(&format!("\t\t{}\n", rule(r)));
        }
        out.push_str("\t}\n");
    }
    out.push_str("}\n");
    out
}

/// One rule's statements, as nft prints them.
pub fn rule(rule: &Value) -> String {
    let statements = rule["expr"].as_array().map(Vec::as_slice).unwrap_or_default();
    statements.iter().map(statement).collect::<Vec<_>>().join(" ")
}

fn statement(s: &Value) -> String {
    let Some((kind, body)) = s.as_object().and_then(|o| o.iter().next()) else { return s.to_string() };
    match kind.as_str() {
        "accept" | "drop" | "masquerade" if body.is_null() => kind.clone(),
        "match" => {
            let left = operand(&body["left"]);
            let quoted = left == "iifname" || left == "oifname";
            let op = match body["op"].as_str() {
                Some("==" | "in") | None => String::new(),
                Some(op) => format!("{op} "),
            };
            format!("{left} {op}{}", value(&body["right"], quoted))
        }
        "dnat" | "snat" => {
            let family = body["family"].as_str().map(|f| format!("{f} ")).unwrap_or_default();
            let port = body.get("port").map(|p| format!(":{p}")).unwrap_or_default();
            format!("{kind} {family}to {}{port}", value(&body["addr"], false))
        }
        _ => s.to_string(),
    }
}

/// The left side of a match.
fn operand(e: &Value) -> String {
    if let Some(key) = e.pointer("/meta/key").and_then(Value::as_str) {
        // nft prints these without `meta`.
        return if matches!(key, "iifname" | "oifname") { key.to_owned() } else { format!("meta {key}") };
    }
    if let Some(p) = e.get("payload") {
        return format!("{} {}", word(&p["protocol"]), word(&p["field"]));
    }
    if let Some(key) = e.pointer("/ct/key") {
        return format!("ct {}", word(key));
    }
    if let Some(fib) = e.get("fib") {
        let flags: Vec<String> = match &fib["flags"] {
            Value::Array(flags) => flags.iter().map(word).collect(),
            one => vec![word(one)],
        };
        return format!("fib {} {}", flags.join(" . "), word(&fib["result"]));
    }
    e.to_string()
}

/// The right side of a match (or a NAT address).
fn value(e: &Value, quoted: bool) -> String {
    match e {
        Value::String(s) if quoted => format!("{s:?}"),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(|i| value(i, quoted)).collect::<Vec<_>>().join(","),
        Value::Object(o) if o.contains_key("set") => {
            let items = o["set"].as_array().map(Vec::as_slice).unwrap_or_default();
            format!("{{ {} }}", items.iter().map(|i| value(i, quoted)).collect::<Vec<_>>().join(", "))
        }
        Value::Object(o) if o.contains_key("prefix") => {
            format!("{}/{}", value(&o["prefix"]["addr"], false), o["prefix"]["len"])
        }
        other => other.to_string(),
    }
}

fn word(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// nft prints the standard priorities by name.
fn priority(prio: &Value) -> String {
    match prio.as_i64() {
        Some(0) => "filter".into(),
        Some(-100) => "dstnat".into(),
        Some(100) => "srcnat".into(),
        _ => word(prio),
    }
}
