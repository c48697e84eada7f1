//! A container's config as pve-container keeps it in `/etc/pve/lxc/<vmid>.conf`: the
//! description as leading `#` lines, then `key: value` lines in key order; and the property
//! strings of its values (`net0: name=eth0,bridge=vmbr0,...`, `mp0: vol,mp=/x,...`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Keys whose values the API returns as numbers.
const NUMERIC_KEYS: &[&str] = &[
    "memory",
    "swap",
    "cores",
    "cpuunits",
    "onboot",
    "unprivileged",
    "protection",
    "template",
    "tty",
    "console",
];

/// One container's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub description: Option<String>,
    pub keys: BTreeMap<String, String>,
}

impl Config {
    /// Parses the file's text (snapshot sections, `[name]`, end the current config).
    pub fn parse(text: &str) -> Config {
        let mut config = Config::default();
        let mut description: Vec<&str> = Vec::new();
        for line in text.lines() {
            if line.starts_with('[') {
                break;
            }
            if let Some(comment) = line.strip_prefix('#') {
                description.push(comment);
            } else if let Some((key, value)) = line.split_once(':') {
                config.keys.insert(key.trim().to_owned(), value.trim().to_owned());
            }
        }
        // As pve-container reads it: each comment line and a newline (so a description set
        // with or without a final newline reads back with one).
        if !description.is_empty() {
            config.description = Some(description.iter().map(|line| format!("{line}\n")).collect());
        }
        config
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(description) = &self.description {
            for line in description.lines() {
                out.push('#');
                out.push_str(line);
                out.push('\n');
            }
        }
        for (key, value) in &self.keys {
            out.push_str(&format!("{key}: {value}\n"));
        }
        out
    }

    /// SHA-1 of the file's text, the `digest` Proxmox returns with a config.
    pub fn digest(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, self.render().as_bytes());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The config as `GET .../config` returns it.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (key, value) in &self.keys {
            let v = match (NUMERIC_KEYS.contains(&key.as_str()), value.parse::<i64>()) {
                (true, Ok(n)) => json!(n),
                _ => json!(value),
            };
            out.insert(key.clone(), v);
        }
        if let Some(d) = &self.description {
            out.insert("description".to_owned(), json!(d));
        }
        out.insert("digest".to_owned(), json!(self.digest()));
        Value::Object(out)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(String::as_str)
    }

    /// Keys `mp0`, `mp1`, ... present, in order.
    pub fn mount_points(&self) -> Vec<String> {
        let mut keys: Vec<(u32, String)> =
            self.keys.keys().filter_map(|k| Some((k.strip_prefix("mp")?.parse().ok()?, k.clone()))).collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect()
    }

    /// Keys `net0`, `net1`, ... present, with their index, in order.
    pub fn nets(&self) -> Vec<(u32, String)> {
        let mut keys: Vec<(u32, String)> = self
            .keys
            .keys()
            .filter_map(|k| Some((k.strip_prefix("net")?.parse().ok()?, k.clone())))
            .collect();
        keys.sort();
        keys
    }

    /// The volume ids of rootfs and the mount points (and unused volumes).
    pub fn volumes(&self) -> Vec<(String, String)> {
        self.keys
            .iter()
            .filter(|(k, _)| *k == "rootfs" || k.starts_with("mp") || k.starts_with("unused"))
            .filter_map(|(k, v)| {
                Some((k.clone(), Property::parse(v, Some("volume")).get("volume")?.to_owned()))
            })
            .collect()
    }
}

/// A property string: `key=value` pairs separated by commas, the first one possibly without a
/// key (then it is the default key's, `volume` for rootfs and mount points). Order kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Property {
    pub pairs: Vec<(String, String)>,
}

impl Property {
    pub fn parse(text: &str, default_key: Option<&str>) -> Property {
        let pairs = text
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (default_key.unwrap_or_default().to_owned(), p.to_owned()),
            })
            .collect();
        Property { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Sets `key` (in place if present, else appended; `volume` goes first).
    pub fn set(&mut self, key: &str, value: &str) {
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(pair) => pair.1 = value.to_owned(),
            None if key == "volume" => self.pairs.insert(0, (key.to_owned(), value.to_owned())),
            None => self.pairs.push((key.to_owned(), value.to_owned())),
        }
    }

    /// The text, with the `volume` key written bare as Proxmox writes it.
    pub fn render(&self) -> String {
        self.pairs
            .iter()
            .map(|(k, v)| if k == "volume" { v.clone() } else { format!("{k}={v}") })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_round_trips_like_pve_container_writes_it() {
        let text = "#proximity-spec: abc\n#proximity-template: local:vztmpl/x.tar.zst\n\
                    arch: amd64\nmemory: 256\nmp0: local-lvm:subvol-100-disk-1,mp=/var/lib/proximity,backup=1,size=1G\n\
                    net0: name=eth0,bridge=vmbr0,ip=dhcp\nrootfs: local-lvm:subvol-100-disk-0,size=1G\n";
        let config = Config::parse(text);
        assert_eq!(config.render(), text);
        assert_eq!(
            config.description.as_deref(),
            Some("proximity-spec: abc\nproximity-template: local:vztmpl/x.tar.zst\n")
        );
        let json = config.to_json();
        assert_eq!(json["memory"], 256);
        assert_eq!(json["arch"], "amd64");
        assert_eq!(json["digest"].as_str().map(str::len), Some(40));
        assert_eq!(config.mount_points(), ["mp0"]);
        assert_eq!(
            config.volumes(),
            [
                ("mp0".to_owned(), "local-lvm:subvol-100-disk-1".to_owned()),
                ("rootfs".to_owned(), "local-lvm:subvol-100-disk-0".to_owned())
            ]
        );
    }

    #[test]
    fn property_strings_keep_order_and_the_bare_volume() {
        let mut mp = Property::parse("local-lvm:1,mp=/var/lib/proximity,backup=1", Some("volume"));
        assert_eq!(mp.get("volume"), Some("local-lvm:1"));
        mp.set("volume", "local-lvm:subvol-100-disk-1");
        mp.set("size", "1G");
        assert_eq!(mp.render(), "local-lvm:subvol-100-disk-1,mp=/var/lib/proximity,backup=1,size=1G");
        let net = Property::parse("name=eth0,bridge=vmbr0,ip=dhcp,firewall=0", None);
        assert_eq!(net.get("bridge"), Some("vmbr0"));
        assert_eq!(net.get("hwaddr"), None);
    }
}
