//! An app: a name under the domain that the proxy serves, pointing at a backend on the LAN.

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{parse_host_mac, parse_lan_host};
use crate::types::{MAX_NAME_LEN, MacAddr, NameError, check_label, is_reserved_label};
use crate::validate::{ConfigErrors, Problems, parse_duration};

/// How often a backend is probed when the request gives no interval.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// Most frequent probing accepted; more only loads the backend.
pub const MIN_HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// Least frequent probing accepted; slower would leave a dead backend in rotation too long.
pub const MAX_HEALTH_INTERVAL: Duration = Duration::from_secs(3600);
/// Longest health check path accepted; it goes into a request line.
pub const MAX_HEALTH_PATH_LEN: usize = 1024;

/// An app as `POST /v1/apps` and `PUT /v1/apps/{name}` accept it; check it with [`App::validate`].
///
/// Missing fields are reported by validation with the rest, not by the JSON parser. Unknown
/// fields are refused, except the read-only fields of an [`AppView`](super::AppView) (`urls`,
/// `backend_address`, `live`), which are ignored so that what GET returns can be PUT back.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "RawAppFields")]
pub struct RawApp {
    pub name: String,
    pub backend: RawBackend,
    /// Any JSON, so that `70000` or `"80"` is reported as a problem with `port` rather than as a
    /// parse error of the whole body.
    pub port: Value,
    pub health_check: Option<RawHealthCheck>,
}

/// The fields [`RawApp`] accepts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    backend: RawBackend,
    #[serde(default)]
    port: Value,
    #[serde(default)]
    health_check: Option<RawHealthCheck>,
    #[serde(default, rename = "urls")]
    _urls: Option<IgnoredAny>,
    #[serde(default, rename = "backend_address")]
    _backend_address: Option<IgnoredAny>,
    #[serde(default, rename = "live")]
    _live: Option<IgnoredAny>,
}

impl From<RawAppFields> for RawApp {
    fn from(f: RawAppFields) -> Self {
        RawApp { name: f.name, backend: f.backend, port: f.port, health_check: f.health_check }
    }
}

/// Where an app's requests go: exactly one of the three.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    #[serde(default)]
    pub path: String,
    /// Absent: [`DEFAULT_HEALTH_INTERVAL`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// A validated app; also the form stored and returned, in the shape [`RawApp`] accepts:
/// `{"name":"web","backend":{"ip":"10.20.0.5"},"port":8080,"health_check":null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Lower-case DNS label; the app is served as `<name>.<domain>`.
    pub name: String,
    pub backend: Backend,
    pub port: u16,
    pub health_check: Option<HealthCheck>,
}

/// Where an app's requests go. A MAC or host name follows the backend's DHCP lease, so an app
/// keeps working when its container gets another address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A fixed address on the LAN.
    Ip(Ipv4Addr),
    /// The address currently leased to this hardware address.
    Mac(MacAddr),
    /// The address of the lease holding this host label (lower-case).
    Hostname(String),
}

/// A probe of the backend: `GET <path>` every `interval`; a backend that fails it is not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub path: String,
    /// Written like `"10s"`.
    #[serde(with = "duration_text", default = "default_interval")]
    pub interval: Duration,
}

fn default_interval() -> Duration {
    DEFAULT_HEALTH_INTERVAL
}

/// A [`Duration`] as humantime text (`"10s"`, `"1m 30s"`).
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

impl App {
    /// Checks a request against the LAN (`lan.address`, the gateway with its prefix) and the
    /// domain, reporting every problem with its field path.
    pub fn validate(raw: RawApp, lan: &Ipv4Net, domain: &str) -> Result<App, ConfigErrors> {
        let mut p = Problems::default();
        let name = check_name(&raw.name, domain, &mut p);
        let backend = check_backend(&raw.backend, lan, domain, &mut p);
        let port = check_port(&raw.port, &mut p);
        let health_check = match &raw.health_check {
            None => Some(None),
            Some(h) => check_health_check(h, &mut p).map(Some),
        };
        let app = match (name, backend, port, health_check) {
            (Some(name), Some(backend), Some(port), Some(health_check)) => {
                Some(App { name, backend, port, health_check })
            }
            _ => None,
        };
        p.finish(app)
    }

    /// The name clients use: `<name>.<domain>`.
    pub fn host(&self, domain: &str) -> String {
        format!("{}.{}", self.name, domain.trim_end_matches('.'))
    }

    /// `http://<name>.<domain>/` and `https://<name>.<domain>/`.
    pub fn urls(&self, domain: &str) -> [String; 2] {
        let host = self.host(domain);
        [format!("http://{host}/"), format!("https://{host}/")]
    }
}

impl From<&App> for RawApp {
    /// The request that recreates `app`.
    fn from(app: &App) -> Self {
        let backend = match &app.backend {
            Backend::Ip(ip) => RawBackend { ip: Some(ip.to_string()), ..RawBackend::default() },
            Backend::Mac(mac) => RawBackend { mac: Some(mac.to_string()), ..RawBackend::default() },
            Backend::Hostname(h) => RawBackend { hostname: Some(h.clone()), ..RawBackend::default() },
        };
        RawApp {
            name: app.name.clone(),
            backend,
            port: Value::from(app.port),
            health_check: app.health_check.as_ref().map(|h| RawHealthCheck {
                path: h.path.clone(),
                interval: Some(humantime::format_duration(h.interval).to_string()),
            }),
        }
    }
}

/// A lower-case label that is not the appliance's own, and short enough under the domain.
fn check_label_field(path: &str, raw: &str, p: &mut Problems) -> Option<String> {
    let label = raw.to_ascii_lowercase();
    match check_label(&label) {
        Err(NameError::Empty) => p.add(path, "is missing"),
        Err(e) => p.add(path, format!("{raw:?} is not a valid DNS label: {e}")),
        Ok(()) if is_reserved_label(&label) => {
            p.add(path, format!("{label:?} is the appliance's own name server; choose another name"))
        }
        Ok(()) => return Some(label),
    }
    None
}

fn check_name(raw: &str, domain: &str, p: &mut Problems) -> Option<String> {
    let name = check_label_field("name", raw, p)?;
    let domain = domain.trim_end_matches('.');
    if name.len() + 1 + domain.len() > MAX_NAME_LEN {
        p.add("name", format!("{name}.{domain} is longer than {MAX_NAME_LEN} characters"));
        return None;
    }
    Some(name)
}

fn check_backend(raw: &RawBackend, lan: &Ipv4Net, domain: &str, p: &mut Problems) -> Option<Backend> {
    let given: Vec<&str> =
        [("ip", raw.ip.is_some()), ("mac", raw.mac.is_some()), ("hostname", raw.hostname.is_some())]
            .into_iter()
            .filter_map(|(field, is_given)| is_given.then_some(field))
            .collect();
    match given.len() {
        0 => p.add("backend", "gives none of ip, mac and hostname; give exactly one"),
        1 => {}
        _ => p.add("backend", format!("gives {}; give exactly one", given.join(" and "))),
    }
    // Each given field is checked even when several are given, so every problem shows at once.
    let ip = raw.ip.as_ref().and_then(|t| p.check("backend.ip", parse_lan_host(t, lan)));
    let mac = raw.mac.as_ref().and_then(|t| p.check("backend.mac", parse_host_mac(t)));
    let hostname = raw.hostname.as_ref().and_then(|t| {
        let suffix = format!(".{}", domain.trim_end_matches('.'));
        match t.to_ascii_lowercase().strip_suffix(&suffix) {
            Some(label) => {
                p.add("backend.hostname", format!("{t:?}: give the host label alone ({label:?})"));
                None
            }
            None => check_label_field("backend.hostname", t, p),
        }
    });
    if given.len() != 1 {
        return None;
    }
    ip.map(Backend::Ip).or(mac.map(Backend::Mac)).or(hostname.map(Backend::Hostname))
}

fn check_port(raw: &Value, p: &mut Problems) -> Option<u16> {
    let out_of_range = |n: &dyn std::fmt::Display| format!("{n} is out of range 1-65535");
    let port = match raw {
        Value::Null => Err("is missing; give the backend's TCP port (1-65535)".to_owned()),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => u16::try_from(i).ok().filter(|&port| port != 0).ok_or_else(|| out_of_range(&i)),
            (None, Some(u)) => Err(out_of_range(&u)),
            (None, None) => Err(format!("{n} is not an integer")),
        },
        other => Err(format!("{other} is not an integer")),
    };
    p.check("port", port)
}

fn check_health_check(raw: &RawHealthCheck, p: &mut Problems) -> Option<HealthCheck> {
    let path = &raw.path;
    let path_ok = if !path.starts_with('/') {
        p.add("health_check.path", format!("{path:?} must start with '/'"));
        false
    } else if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.add("health_check.path", format!("{path:?} may not contain spaces or control characters"));
        false
    } else if path.len() > MAX_HEALTH_PATH_LEN {
        p.add("health_check.path", format!("is longer than {MAX_HEALTH_PATH_LEN} characters"));
        false
    } else {
        true
    };
    let interval = match &raw.interval {
        None => Some(DEFAULT_HEALTH_INTERVAL),
        Some(text) => p.check("health_check.interval", parse_duration(text)).and_then(|d| {
            if (MIN_HEALTH_INTERVAL..=MAX_HEALTH_INTERVAL).contains(&d) {
                return Some(d);
            }
            let (min, max) = (
                humantime::format_duration(MIN_HEALTH_INTERVAL),
                humantime::format_duration(MAX_HEALTH_INTERVAL),
            );
            p.add("health_check.interval", format!("{text:?} must be between {min} and {max}"));
            None
        }),
    };
    Some(HealthCheck { path: path_ok.then(|| path.clone())?, interval: interval? })
}
