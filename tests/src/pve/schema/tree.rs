//! The API tree of the schema: loading the `apiSchema` array (nodes with `path`, `info` per
//! method and `children`) into a trie of path segments, and finding the endpoint of a request
//! path (`/nodes/pve/lxc/100/config` -> `/nodes/{node}/lxc/{vmid}/config` with `node=pve`,
//! `vmid=100`). Literal segments win over `{param}` segments, as in PVE's router; a final
//! `{volume}` takes the rest of the path (volume ids contain `/`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::SchemaError;

/// One path template and its methods (`GET` -> the method's `info` object).
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) template: String,
    pub(crate) methods: BTreeMap<String, Value>,
}

#[derive(Debug, Default)]
struct Node {
    literal: BTreeMap<String, Node>,
    /// `{name}` children; PVE has at most one per level, more are tolerated.
    params: Vec<(String, Node)>,
    endpoint: Option<Endpoint>,
}

/// All endpoints of the schema.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    root: Node,
    endpoints: usize,
}

impl Tree {
    /// Reads the schema's top-level array.
    pub(crate) fn from_json(json: &Value) -> Result<Tree, SchemaError> {
        let nodes = json
            .as_array()
            .ok_or_else(|| SchemaError::Shape("the schema is not an array of nodes".into()))?;
        let mut tree = Tree::default();
        for node in nodes {
            tree.add(node)?;
        }
        if tree.endpoints == 0 {
            return Err(SchemaError::Shape("the schema has no methods".into()));
        }
        Ok(tree)
    }

    fn add(&mut self, node: &Value) -> Result<(), SchemaError> {
        let template = node
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| SchemaError::Shape("a node has no \"path\"".into()))?;
        if let Some(info) = node.get("info") {
            let info = info
                .as_object()
                .ok_or_else(|| SchemaError::Shape(format!("the \"info\" of {template} is not an object")))?;
            let methods: BTreeMap<String, Value> = info.iter().map(|(m, i)| (m.clone(), i.clone())).collect();
            if !methods.is_empty() {
                let count = methods.len();
                let slot = self.slot(template);
                if slot.endpoint.is_some() {
                    return Err(SchemaError::Shape(format!("{template} appears twice")));
                }
                slot.endpoint = Some(Endpoint { template: template.to_owned(), methods });
                self.endpoints += count;
            }
        }
        if let Some(children) = node.get("children") {
            let children = children.as_array().ok_or_else(|| {
                SchemaError::Shape(format!("the \"children\" of {template} is not an array"))
            })?;
            for child in children {
                self.add(child)?;
            }
        }
        Ok(())
    }

    /// The trie node of `template`, created on the way.
    fn slot(&mut self, template: &str) -> &mut Node {
        let mut node = &mut self.root;
        for segment in template.split('/').filter(|s| !s.is_empty()) {
            node = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let at = match node.params.iter().position(|(n, _)| n == name) {
                        Some(at) => at,
                        None => {
                            node.params.push((name.to_owned(), Node::default()));
                            node.params.len() - 1
                        }
                    };
                    &mut node.params[at].1
                }
                None => node.literal.entry(segment.to_owned()).or_default(),
            };
        }
        node
    }

    /// The endpoint of a request path and its path parameters (percent-decoded). Empty
    /// segments are skipped, as PVE does.
    pub(crate) fn find(&self, path: &str) -> Option<(&Endpoint, BTreeMap<String, String>)> {
        let segments: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
        let mut params = BTreeMap::new();
        let endpoint = find_in(&self.root, &segments, &mut params)?;
        Some((endpoint, params))
    }

    /// The endpoint of a template (`/nodes/{node}/lxc`).
    pub(crate) fn endpoint(&self, template: &str) -> Option<&Endpoint> {
        let mut node = &self.root;
        for segment in template.split('/').filter(|s| !s.is_empty()) {
            node = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => &node.params.iter().find(|(n, _)| n == name)?.1,
                None => node.literal.get(segment)?,
            };
        }
        node.endpoint.as_ref()
    }

    /// How many (path, method) pairs the schema has.
    pub(crate) fn methods(&self) -> usize {
        self.endpoints
    }
}

fn find_in<'t>(
    node: &'t Node,
    segments: &[String],
    params: &mut BTreeMap<String, String>,
) -> Option<&'t Endpoint> {
    let Some((first, rest)) = segments.split_first() else {
        return node.endpoint.as_ref();
    };
    if let Some(found) = node.literal.get(first).and_then(|child| find_in(child, rest, params)) {
        return Some(found);
    }
    for (name, child) in &node.params {
        if let Some(found) = find_in(child, rest, params) {
            params.insert(name.clone(), first.clone());
            return Some(found);
        }
    }
    // A volume id (`local:vztmpl/x.tar.zst`) may be sent with its `/` unencoded, as clients
    // such as go-proxmox do and Proxmox accepts: a final `{volume}` takes the rest of the path.
    for (name, child) in &node.params {
        if GREEDY.contains(&name.as_str()) && !rest.is_empty() {
            if let Some(endpoint) = &child.endpoint {
                params.insert(name.clone(), segments.join("/"));
                return Some(endpoint);
            }
        }
    }
    None
}

/// Path parameters that, as the last segment of a template, take the rest of the path.
const GREEDY: &[&str] = &["volume"];

/// `%XX` escapes of a path segment decoded (`local%3Avztmpl%2Fx.tar.zst`); invalid escapes are
/// kept as they are, invalid UTF-8 is replaced.
pub(crate) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(byte) = hex {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("local%3Avztmpl%2Fx.tar.zst"), "local:vztmpl/x.tar.zst");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%zzb"), "a%zzb");
        assert_eq!(percent_decode("UPID:pve:1!x"), "UPID:pve:1!x");
    }

    #[test]
    fn literal_wins_over_parameter() {
        let json = serde_json::json!([
            {"path": "/a", "children": [
                {"path": "/a/{id}", "info": {"GET": {}}},
                {"path": "/a/list", "info": {"GET": {}}}
            ]}
        ]);
        let tree = Tree::from_json(&json).expect("tree");
        let (e, params) = tree.find("/a/list").expect("found");
        assert_eq!(e.template, "/a/list");
        assert!(params.is_empty());
        let (e, params) = tree.find("//a/7/").expect("found");
        assert_eq!(e.template, "/a/{id}");
        assert_eq!(params.get("id").map(String::as_str), Some("7"));
        assert!(tree.find("/a").is_none(), "a node without methods is not an endpoint");
        assert!(tree.find("/a/7/x").is_none());
        assert_eq!(tree.methods(), 2);
        let json = serde_json::json!([{"path": "/c/{volume}", "info": {"DELETE": {}}}]);
        let tree = Tree::from_json(&json).expect("tree");
        let (_, params) = tree.find("/c/local:vztmpl/x.tar.zst").expect("found");
        assert_eq!(params.get("volume").map(String::as_str), Some("local:vztmpl/x.tar.zst"));
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(Tree::from_json(&serde_json::json!({})).is_err());
        assert!(Tree::from_json(&serde_json::json!([{"info": {}}])).is_err());
        assert!(Tree::from_json(&serde_json::json!([])).is_err());
    }
}
