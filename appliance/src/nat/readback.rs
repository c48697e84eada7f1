//! Reading back: what `nft -j list table inet proximity` shows, without what nft adds (the
//! `metainfo` header, handles), compared with what was built. A difference names the chain and
//! the rule, in nft's syntax, so the log says what the kernel holds that we did not intend.

use std::fmt;

use serde_json::Value;

use super::render;

/// Most differences listed in one error; the rest are counted.
const MAX_SHOWN: usize = 6;

/// The table as it was built or found: its objects (table, chains, rules) in listing order,
/// handles removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing(pub Vec<Value>);

impl Listing {
    /// The listing of the objects of a built ruleset.
    pub fn of<T: serde::Serialize>(objects: &[T]) -> Result<Listing, serde_json::Error> {
        objects.iter().map(serde_json::to_value).collect::<Result<Vec<_>, _>>().map(normalized)
    }

    /// The listing in an answer of `nft -j list ...`.
    pub fn parse(text: &str) -> Result<Listing, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Answer {
            nftables: Vec<Value>,
        }
        let answer: Answer = serde_json::from_str(text)?;
        Ok(normalized(answer.nftables))
    }

    /// As nft prints it.
    pub fn render(&self) -> String {
        render::table(&self.0)
    }

    /// `Ok` when `found` holds exactly what `self` does; else every difference.
    pub fn compare(&self, found: &Listing) -> Result<(), Mismatch> {
        let mut differences = Vec::new();
        let (ours, theirs) = (split(&self.0), split(&found.0));
        if ours.tables != theirs.tables {
            differences.push(format!("table: intended {:?}, found {:?}", ours.tables, theirs.tables));
        }
        for (name, chain) in &ours.chains {
            match theirs.chains.iter().find(|(n, _)| n == name) {
                None => differences.push(format!("chain {name} is missing")),
                Some((_, found)) if found != chain => {
                    differences.push(format!("chain {name}: intended {chain}, found {found}"))
                }
                Some(_) => {}
            }
            let (want, have) = (ours.rules_of(name), theirs.rules_of(name));
            for i in 0..want.len().max(have.len()) {
                match (want.get(i), have.get(i)) {
                    (Some(w), Some(h)) if w != h => differences.push(format!(
                        "chain {name} rule {}: intended `{}`, found `{}`",
                        i + 1,
                        render::rule(w),
                        render::rule(h)
                    )),
                    (Some(w), None) => {
                        differences.push(format!("chain {name}: rule `{}` is missing", render::rule(w)))
                    }
                    (None, Some(h)) => {
                        differences.push(format!("chain {name}: unexpected rule `{}`", render::rule(h)))
                    }
                    _ => {}
                }
            }
        }
        for (name, _) in theirs.chains.iter().filter(|(n, _)| !ours.chains.iter().any(|(o, _)| o == n)) {
            differences.push(format!("unexpected chain {name}"));
        }
        differences.extend(theirs.other.iter().map(|o| format!("unexpected object {o}")));
        if differences.is_empty() { Ok(()) } else { Err(Mismatch(differences)) }
    }
}

/// What differs between the intended table and the one read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Mismatch(pub Vec<String>);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<&str> = self.0.iter().take(MAX_SHOWN).map(String::as_str).collect();
        write!(f, "{}", shown.join("; "))?;
        if self.0.len() > MAX_SHOWN {
            write!(f, "; and {} more", self.0.len() - MAX_SHOWN)?;
        }
        Ok(())
    }
}

/// Drops the metainfo header and every object's handle: nft assigns handles as it pleases.
fn normalized(objects: Vec<Value>) -> Listing {
    let objects = objects
        .into_iter()
        .filter(|o| o.get("metainfo").is_none())
        .map(|mut o| {
            if let Some(body) =
                o.as_object_mut().and_then(|m| m.values_mut().next()).and_then(Value::as_object_mut)
            {
                body.remove("handle");
            }
            o
        })
        .collect();
    Listing(objects)
}

/// A listing by kind of object.
struct Parts<'a> {
    tables: Vec<&'a Value>,
    /// Name and the chain's header as nft prints it.
    chains: Vec<(String, String)>,
    rules: Vec<&'a Value>,
    other: Vec<&'a Value>,
}

impl Parts<'_> {
    fn rules_of(&self, chain: &str) -> Vec<&Value> {
        self.rules.iter().copied().filter(|r| r["chain"].as_str() == Some(chain)).collect()
    }
}

fn split(objects: &[Value]) -> Parts<'_> {
    let mut parts = Parts { tables: Vec::new(), chains: Vec::new(), rules: Vec::new(), other: Vec::new() };
    for o in objects {
        if let Some(table) = o.get("table") {
            parts.tables.push(table);
        } else if let Some(chain) = o.get("chain") {
            let name = chain["name"].as_str().unwrap_or_default().to_owned();
            let mut header = chain.clone();
            if let Some(h) = header.as_object_mut() {
                h.remove("name");
            }
            parts.chains.push((name, header.to_string()));
        } else if let Some(rule) = o.get("rule") {
            parts.rules.push(rule);
        } else {
            parts.other.push(o);
        }
    }
    parts
}
