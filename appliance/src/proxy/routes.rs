//! The route table: which app, backends and health check answer for a Host, and [`Routes`], the
//! live table swapped atomically so a change affects only requests that start after it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

/// How often a backend is checked when the route does not say.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// How long a check may take (connect and response headers) before it counts as failed.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// One app as the proxy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The app's name: the label of metrics and logs (never shown to clients).
    pub app: String,
    /// Where the app listens (HTTP/1.1). Requests are spread round robin over the healthy ones.
    pub backends: Vec<SocketAddr>,
    /// Active health checking; `None`: every backend is always considered up.
    pub health_check: Option<HealthCheck>,
}

/// An active health check: `GET path` on each backend every `interval`; 2xx and 3xx are up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Origin-form path (and query) to ask, e.g. `/healthz`.
    pub path: String,
    pub interval: Duration,
    /// Longest wait for the response headers (connect included); a late answer is a failure.
    pub timeout: Duration,
}

impl HealthCheck {
    /// A check of `path` with [`DEFAULT_HEALTH_INTERVAL`] and [`DEFAULT_HEALTH_TIMEOUT`].
    pub fn new(path: impl Into<String>) -> Self {
        HealthCheck { path: path.into(), interval: DEFAULT_HEALTH_INTERVAL, timeout: DEFAULT_HEALTH_TIMEOUT }
    }
}

/// Host name to route, hosts stored normalised (see [`normalise_host`]). Immutable once built:
/// a change is a new table published through [`Routes`].
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    hosts: HashMap<String, Arc<Route>>,
}

impl RouteTable {
    /// A table from `(host, route)` pairs, hosts being full names (`app.prox.local`). A later
    /// pair for the same host replaces an earlier one. Empty is valid: every request is a 404.
    pub fn new(routes: impl IntoIterator<Item = (String, Route)>) -> Self {
        let hosts = routes
            .into_iter()
            .map(|(host, route)| (normalise_host(&host).into_owned(), Arc::new(route)))
            .collect();
        RouteTable { hosts }
    }

    /// The route for a Host header (or `:authority`) value as a client sent it: any case, with
    /// or without a port or a trailing dot, IPv6 literals in brackets.
    pub fn route(&self, host: &str) -> Option<&Route> {
        self.hosts.get(normalise_host(host).as_ref()).map(|r| r.as_ref())
    }

    /// [`RouteTable::route`], as a handle that outlives the table (a request in flight keeps
    /// its route while newer tables are published).
    pub(crate) fn route_shared(&self, host: &str) -> Option<Arc<Route>> {
        self.hosts.get(normalise_host(host).as_ref()).cloned()
    }

    /// Every `(host, route)` pair, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Route)> {
        self.hosts.iter().map(|(host, route)| (host.as_str(), route.as_ref()))
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// The lookup key of a host: port and trailing dot removed, brackets of an IPv6 literal
/// removed, lower case. Borrows when the value already is one (the common case).
pub fn normalise_host(host: &str) -> Cow<'_, str> {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        rest.split_once(']').map_or(rest, |(addr, _)| addr)
    } else {
        match host.rsplit_once(':') {
            // A name or IPv4 address with a port; a bare IPv6 literal has more than one colon.
            Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// The live route table. Requests read it once each (`load`); `publish` replaces it without
/// disturbing requests already routed.
#[derive(Debug)]
pub struct Routes {
    table: ArcSwap<RouteTable>,
    /// Bumped by every publish: wakes the health checker so new routes are checked without
    /// waiting a round.
    changed: watch::Sender<()>,
}

impl Routes {
    pub fn new(table: RouteTable) -> Self {
        Routes { table: ArcSwap::from_pointee(table), changed: watch::Sender::new(()) }
    }

    /// The table in force now. Hold the guard briefly (for one lookup).
    pub fn load(&self) -> Guard<Arc<RouteTable>> {
        self.table.load()
    }

    /// Makes `table` the one later requests see.
    pub fn publish(&self, table: RouteTable) {
        self.table.store(Arc::new(table));
        self.changed.send_replace(());
    }

    /// A receiver that sees every later `publish`.
    pub(crate) fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(app: &str) -> Route {
        Route { app: app.into(), backends: vec![], health_check: None }
    }

    #[test]
    fn host_forms_normalise_to_one_key() {
        for (sent, key) in [
            ("wiki.prox.local", "wiki.prox.local"),
            ("Wiki.PROX.local", "wiki.prox.local"),
            ("wiki.prox.local:8080", "wiki.prox.local"),
            ("wiki.prox.local.", "wiki.prox.local"),
            ("WIKI.prox.local.:443", "wiki.prox.local"),
            ("10.0.0.1:80", "10.0.0.1"),
            ("[fd00::1]:8443", "fd00::1"),
            ("[FD00::1]", "fd00::1"),
            ("fd00::1", "fd00::1"),
            (" wiki.prox.local ", "wiki.prox.local"),
        ] {
            assert_eq!(normalise_host(sent), key, "{sent}");
        }
    }

    #[test]
    fn lookup_ignores_case_port_and_dot() {
        let table = RouteTable::new([("Wiki.Prox.Local".to_string(), route("wiki"))]);
        for host in ["wiki.prox.local", "WIKI.prox.local:80", "wiki.prox.local."] {
            assert_eq!(table.route(host).map(|r| r.app.as_str()), Some("wiki"), "{host}");
        }
        assert!(table.route("other.prox.local").is_none());
        assert!(table.route("").is_none());
    }

    #[test]
    fn publish_replaces_the_table() {
        let routes = Routes::new(RouteTable::default());
        assert!(routes.load().is_empty());
        routes.publish(RouteTable::new([("a.prox.local".to_string(), route("a"))]));
        assert_eq!(routes.load().len(), 1);
    }
}
