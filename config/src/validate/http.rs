//! The `[proxy]` and `[admin]` sections: the HTTP servers' listeners and limits, and the checks
//! that keep their sockets from colliding with each other and with DNS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Problems, parse_duration};
use crate::raw::{RawAdmin, RawDns, RawProxy};

/// Most proxy connections a config may allow; each costs buffers and a file descriptor.
pub const MAX_PROXY_CONNECTIONS: u32 = 1_000_000;
/// Smallest header limit accepted: below it ordinary browsers' requests (cookies) fail.
pub const MIN_HEADER_BYTES: u32 = 1024;
/// Largest header limit accepted: the whole block is buffered per connection.
pub const MAX_HEADER_BYTES: u32 = 1024 * 1024;
/// Longest proxy timeout accepted; longer ones only keep dead connections around.
pub const MAX_HTTP_TIMEOUT: Duration = Duration::from_secs(3600);
/// The token file's name in `state.dir` when `admin.token_file` is not given.
pub const DEFAULT_TOKEN_FILE: &str = "admin.token";
/// Bytes of a SHA-256 digest; `admin.token_sha256` is twice as many hex digits.
pub const TOKEN_SHA256_BYTES: usize = 32;

/// The reverse proxy, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub enabled: bool,
    /// Empty: no plain HTTP listener.
    pub http_listen: Vec<SocketAddr>,
    /// Empty: no HTTPS listener.
    pub https_listen: Vec<SocketAddr>,
    pub max_connections: u32,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_header_bytes: u32,
}

/// The admin API, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub enabled: bool,
    pub listen: Vec<SocketAddr>,
    /// Absolute; `<state.dir>/admin.token` unless the file names another. Unused (never
    /// created or read) when `token_sha256` is set.
    pub token_file: PathBuf,
    /// The SHA-256 of the token, when the config gives it: the appliance then checks a
    /// presented token against this and keeps no token of its own.
    pub token_sha256: Option<[u8; TOKEN_SHA256_BYTES]>,
    /// `false` only for debugging: the bearer token then crosses the network in clear text.
    pub tls: bool,
}

/// Whether two listeners would fight for one port: the same port and family, and the same
/// address or a wildcard on either side (a wildcard takes the port on every address).
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Why `a` (at its path) cannot sit beside `b` (at `b_path`).
fn collision(a: SocketAddr, b: SocketAddr, b_path: &str) -> String {
    if a == b {
        format!("{a} is also in {b_path}")
    } else {
        format!("{a} collides with {b_path} {b}: a wildcard address takes port {} on every address", a.port())
    }
}

/// Listeners with their index in the file's list, which is what paths name: entries that did
/// not parse are absent.
type Listeners = Vec<(usize, SocketAddr)>;

/// The addresses of a list that parse; the others are reported by the list's own check.
fn parse_quietly(raw: &[String]) -> Listeners {
    raw.iter().enumerate().filter_map(|(i, text)| Some((i, text.parse().ok()?))).collect()
}

/// Parses a list of `ip:port`, reporting bad entries and entries that collide with an earlier one
/// of the same list or of `others` (lists of other fields, with their paths).
fn check_listen(path: &str, raw: &[String], others: &[(&str, &Listeners)], p: &mut Problems) -> Listeners {
    let mut out: Listeners = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let parsed = text
            .parse::<SocketAddr>()
            .map_err(|_| format!("{text:?} is not an address:port like \"0.0.0.0:80\""));
        let Some(addr) = p.check(&at, parsed) else { continue };
        let mut earlier = std::iter::once((path, &out))
            .chain(others.iter().copied())
            .flat_map(|(q, list)| list.iter().map(move |(j, b)| (q, *j, *b)));
        if let Some((q, j, b)) = earlier.find(|(_, _, b)| collide(addr, *b)) {
            p.add(&at, collision(addr, b, &format!("{q}[{j}]")));
        }
        out.push((i, addr));
    }
    out
}

fn addresses(list: Listeners) -> Vec<SocketAddr> {
    list.into_iter().map(|(_, addr)| addr).collect()
}

fn check_timeout(path: &str, text: &str, p: &mut Problems) -> Option<Duration> {
    let d = p.check(path, parse_duration(text))?;
    if d.is_zero() || d > MAX_HTTP_TIMEOUT {
        p.add(
            path,
            format!(
                "{text:?} must be more than 0 and at most {}",
                humantime::format_duration(MAX_HTTP_TIMEOUT)
            ),
        );
        return None;
    }
    Some(d)
}

/// Checks `[proxy]`; while both are enabled, its listeners must not take the DNS server's ports.
pub(super) fn check_proxy(raw: &RawProxy, dns: &RawDns, p: &mut Problems) -> Option<ProxyConfig> {
    let before = p.0.len();
    // A disabled section binds nothing, so its ports are free for the others.
    let dns_listen = if raw.enabled && dns.enabled { parse_quietly(&dns.listen) } else { Vec::new() };
    let dns = ("dns.listen", &dns_listen);
    let http_listen = check_listen("proxy.http_listen", &raw.http_listen, &[dns], p);
    let https_listen =
        check_listen("proxy.https_listen", &raw.https_listen, &[("proxy.http_listen", &http_listen), dns], p);
    if raw.max_connections == 0 || raw.max_connections > MAX_PROXY_CONNECTIONS {
        p.add(
            "proxy.max_connections",
            format!("{} must be between 1 and {MAX_PROXY_CONNECTIONS}", raw.max_connections),
        );
    }
    let header_read_timeout = check_timeout("proxy.header_read_timeout", &raw.header_read_timeout, p);
    let idle_timeout = check_timeout("proxy.idle_timeout", &raw.idle_timeout, p);
    let connect_timeout = check_timeout("proxy.connect_timeout", &raw.connect_timeout, p);
    let response_timeout = check_timeout("proxy.response_timeout", &raw.response_timeout, p);
    if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&raw.max_header_bytes) {
        p.add(
            "proxy.max_header_bytes",
            format!(
                "{} must be between {MIN_HEADER_BYTES} (1 KiB) and {MAX_HEADER_BYTES} (1 MiB)",
                raw.max_header_bytes
            ),
        );
    }
    (p.0.len() == before).then_some(ProxyConfig {
        enabled: raw.enabled,
        http_listen: addresses(http_listen),
        https_listen: addresses(https_listen),
        max_connections: raw.max_connections,
        header_read_timeout: header_read_timeout?,
        idle_timeout: idle_timeout?,
        connect_timeout: connect_timeout?,
        response_timeout: response_timeout?,
        max_header_bytes: raw.max_header_bytes,
    })
}

/// Checks `[admin]`; while enabled, its listeners must not take the enabled proxy's or DNS
/// server's ports.
pub(super) fn check_admin(
    raw: &RawAdmin,
    state_dir: &Path,
    proxy: &RawProxy,
    dns: &RawDns,
    p: &mut Problems,
) -> Option<AdminConfig> {
    let before = p.0.len();
    let quietly =
        |on: bool, list: &[String]| if raw.enabled && on { parse_quietly(list) } else { Vec::new() };
    let http = quietly(proxy.enabled, &proxy.http_listen);
    let https = quietly(proxy.enabled, &proxy.https_listen);
    let dns_listen = quietly(dns.enabled, &dns.listen);
    let others = [("proxy.http_listen", &http), ("proxy.https_listen", &https), ("dns.listen", &dns_listen)];
    let listen = addresses(check_listen("admin.listen", &raw.listen, &others, p));
    let token_file = match &raw.token_file {
        None => state_dir.join(DEFAULT_TOKEN_FILE),
        Some(f) if f.trim().is_empty() => {
            p.add("admin.token_file", "is empty; leave it out for admin.token in state.dir");
            PathBuf::new()
        }
        Some(f) if !Path::new(f).is_absolute() => {
            p.add("admin.token_file", format!("{f:?} is relative; give an absolute path"));
            PathBuf::new()
        }
        Some(f) => PathBuf::from(f),
    };
    let token_sha256 = raw.token_sha256.as_deref().and_then(|hex| match parse_sha256(hex) {
        Some(digest) => Some(digest),
        None => {
            p.add(
                "admin.token_sha256",
                format!(
                    "{hex:?} is not a SHA-256 digest: give exactly {} hex digits",
                    2 * TOKEN_SHA256_BYTES
                ),
            );
            None
        }
    });
    if raw.token_sha256.is_some() && raw.token_file.is_some() {
        p.add("admin.token_sha256", "is set together with admin.token_file; give one of the two");
    }
    (p.0.len() == before).then_some(AdminConfig {
        enabled: raw.enabled,
        listen,
        token_file,
        token_sha256,
        tls: raw.tls,
    })
}

/// The 32 bytes written as `hex` (64 hex digits, either case), or `None`.
fn parse_sha256(hex: &str) -> Option<[u8; TOKEN_SHA256_BYTES]> {
    let digits = hex.as_bytes();
    if digits.len() != 2 * TOKEN_SHA256_BYTES {
        return None;
    }
    let mut out = [0u8; TOKEN_SHA256_BYTES];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        // from_str_radix takes a sign; a pair of hex digits has none.
        if !pair.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::from_toml_str;
    use crate::raw::RawConfig;

    /// Every reported problem as `path: message`, for a config that must be invalid.
    fn problems(text: &str) -> Vec<String> {
        let e = from_toml_str(text).expect_err("invalid");
        e.iter().map(ToString::to_string).collect()
    }

    fn assert_reported(got: &[String], wants: &[&str]) {
        for want in wants {
            assert!(got.iter().any(|g| g.starts_with(want)), "missing {want:?} in {got:#?}");
        }
    }

    #[test]
    fn every_proxy_problem_is_reported_with_its_path() {
        let got = problems(
            r#"
            [proxy]
            http_listen = ["0.0.0.0:80", "80", "0.0.0.0:80", "10.20.0.1:8080", "0.0.0.0:8080"]
            https_listen = ["10.20.0.1:80", "0.0.0.0:8443"]
            max_connections = 0
            header_read_timeout = "0s"
            idle_timeout = "2h"
            connect_timeout = "soon"
            response_timeout = "61m"
            max_header_bytes = 512
            "#,
        );
        assert_reported(
            &got,
            &[
                "proxy.http_listen[1]: \"80\" is not an address:port",
                "proxy.http_listen[2]: 0.0.0.0:80 is also in proxy.http_listen[0]",
                "proxy.http_listen[4]: 0.0.0.0:8080 collides with proxy.http_listen[3] 10.20.0.1:8080",
                "proxy.https_listen[0]: 10.20.0.1:80 collides with proxy.http_listen[0] 0.0.0.0:80",
                "proxy.max_connections: 0 must be between 1 and 1000000",
                "proxy.header_read_timeout: \"0s\" must be more than 0 and at most 1h",
                "proxy.idle_timeout: \"2h\" must be more than 0",
                "proxy.connect_timeout: \"soon\" is not a duration",
                "proxy.response_timeout: \"61m\" must be more than 0",
                "proxy.max_header_bytes: 512 must be between 1024 (1 KiB) and 1048576 (1 MiB)",
            ],
        );
        assert_eq!(got.len(), 10, "{got:#?}");
        let got = problems("[proxy]\nmax_connections = 1000001\nmax_header_bytes = 1048577\n");
        assert_reported(&got, &["proxy.max_connections: 1000001", "proxy.max_header_bytes: 1048577"]);
    }

    #[test]
    fn the_same_address_in_http_and_https_is_an_error() {
        let got = problems("[proxy]\nhttp_listen = [\"0.0.0.0:8000\"]\nhttps_listen = [\"0.0.0.0:8000\"]\n");
        assert_eq!(got, ["proxy.https_listen[0]: 0.0.0.0:8000 is also in proxy.http_listen[0]"]);
    }

    #[test]
    fn empty_listener_lists_turn_a_listener_off() {
        let c = from_toml_str("[proxy]\nhttp_listen = []\nhttps_listen = []\n[admin]\nlisten = []\n")
            .expect("valid");
        assert!(c.proxy.http_listen.is_empty() && c.proxy.https_listen.is_empty());
        assert!(c.admin.listen.is_empty());
    }

    #[test]
    fn other_families_and_ports_do_not_collide() {
        let c = from_toml_str(
            "[proxy]\nhttp_listen = [\"0.0.0.0:80\", \"[::]:80\"]\n\
             https_listen = [\"10.20.0.1:443\", \"192.0.2.1:443\"]\n",
        )
        .expect("valid");
        assert_eq!(c.proxy.http_listen.len(), 2);
        assert_eq!(c.proxy.https_listen.len(), 2);
    }

    #[test]
    fn admin_listeners_may_not_collide_with_proxy_or_dns() {
        let got = problems(
            r#"
            [admin]
            listen = ["10.20.0.1:80", "0.0.0.0:443", "10.20.0.1:53", "0.0.0.0:9090"]
            "#,
        );
        assert_eq!(
            got,
            [
                "admin.listen[0]: 10.20.0.1:80 collides with proxy.http_listen[0] 0.0.0.0:80: a wildcard \
                 address takes port 80 on every address",
                "admin.listen[1]: 0.0.0.0:443 is also in proxy.https_listen[0]",
                "admin.listen[2]: 10.20.0.1:53 collides with dns.listen[0] 0.0.0.0:53: a wildcard address \
                 takes port 53 on every address",
            ]
        );
    }

    #[test]
    fn a_disabled_section_leaves_its_ports_free() {
        let text = "[proxy]\nenabled = false\n[admin]\nlisten = [\"0.0.0.0:80\"]\n";
        assert_eq!(from_toml_str(text).expect("proxy off").admin.listen[0].port(), 80);
        let text = "[admin]\nenabled = false\nlisten = [\"0.0.0.0:80\"]\n";
        assert!(!from_toml_str(text).expect("admin off").admin.enabled);
    }

    #[test]
    fn the_proxy_may_not_take_the_dns_port() {
        let got = problems("[proxy]\nhttp_listen = [\"10.20.0.1:53\"]\n");
        assert_reported(&got, &["proxy.http_listen[0]: 10.20.0.1:53 collides with dns.listen[0] 0.0.0.0:53"]);
    }

    #[test]
    fn the_token_file_defaults_into_the_state_dir_and_must_be_absolute() {
        let c = from_toml_str("[state]\ndir = \"/srv/px\"\n").expect("valid");
        assert_eq!(c.admin.token_file, PathBuf::from("/srv/px/admin.token"));
        let c = from_toml_str("[admin]\ntoken_file = \"/etc/px/token\"\ntls = false\n").expect("valid");
        assert_eq!(c.admin.token_file, PathBuf::from("/etc/px/token"));
        assert!(!c.admin.tls);
        let got = problems("[admin]\ntoken_file = \"token\"\n");
        assert_eq!(got, ["admin.token_file: \"token\" is relative; give an absolute path"]);
        assert_reported(&problems("[admin]\ntoken_file = \"\"\n"), &["admin.token_file: is empty"]);
    }

    #[test]
    fn unknown_proxy_and_admin_keys_are_errors() {
        let e = from_toml_str("[proxy]\nmax_conections = 5\n").expect_err("typo");
        assert!(e.to_string().contains("max_conections"), "{e}");
        let e = from_toml_str("[admin]\ntoken = \"x\"\n").expect_err("typo");
        assert!(e.to_string().contains("token"), "{e}");
    }

    #[test]
    fn a_token_file_round_trips_through_toml() {
        let mut raw = RawConfig::default();
        raw.admin.token_file = Some("/etc/px/token".into());
        let text = raw.to_toml().expect("serialises");
        assert_eq!(toml::from_str::<RawConfig>(&text).expect("reads back"), raw);
    }
}
