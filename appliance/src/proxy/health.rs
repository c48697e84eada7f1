//! Active health checks: a task that asks `GET <path>` of every backend of every route with a
//! health check, each at its route's interval, and [`Health`], the result the request path
//! reads without a lock. 2xx and 3xx are up; any other status, a failure or a late answer is
//! down. One check decides (no hysteresis); a backend is up until its first failed check.
//! Routes without a health check are never looked at, here or on the request path.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HOST, HeaderValue, USER_AGENT};
use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::routes::{HealthCheck, Routes};

/// Longest the checker sleeps without looking at the route table (a publish wakes it anyway).
const MAX_NAP: Duration = Duration::from_secs(60);
const CHECK_USER_AGENT: &str = "proximity-health-check";
/// Shortest interval honoured, so a zero in a route cannot make the checker spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Which backends are down, by app. Only apps with a failing backend have an entry.
#[derive(Debug, Default)]
pub struct Health {
    down: ArcSwap<HashMap<String, HashSet<SocketAddr>>>,
}

impl Health {
    /// Whether `backend` of `app` passed its last check (or has not been checked yet).
    pub fn is_up(&self, app: &str, backend: SocketAddr) -> bool {
        self.down.load().get(app).is_none_or(|down| !down.contains(&backend))
    }

    /// Every backend down now, as `(app, backend)`.
    pub fn down(&self) -> Vec<(String, SocketAddr)> {
        let down = self.down.load();
        down.iter().flat_map(|(app, set)| set.iter().map(|b| (app.clone(), *b))).collect()
    }

    fn set(&self, app: &str, backend: SocketAddr, up: bool) {
        self.down.rcu(|down| {
            let mut down = HashMap::clone(down);
            if up {
                if let Some(set) = down.get_mut(app) {
                    set.remove(&backend);
                    if set.is_empty() {
                        down.remove(app);
                    }
                }
            } else {
                down.entry(app.to_string()).or_default().insert(backend);
            }
            down
        });
    }

    /// Forgets backends no longer routed to, so a backend that comes back starts up.
    fn retain(&self, checked: &HashMap<Target, Scheduled>) {
        let stale = self.down.load().iter().any(|(app, set)| {
            set.iter().any(|b| !checked.contains_key(&Target { app: app.clone(), backend: *b }))
        });
        if stale {
            self.down.rcu(|down| {
                let mut down = HashMap::clone(down);
                for (app, set) in &mut down {
                    set.retain(|b| checked.contains_key(&Target { app: app.clone(), backend: *b }));
                }
                down.retain(|_, set| !set.is_empty());
                down
            });
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Target {
    app: String,
    backend: SocketAddr,
}

#[derive(Debug)]
struct Scheduled {
    due: Instant,
    running: bool,
}

/// Checks backends until `cancel` fires.
pub(crate) async fn run(routes: Arc<Routes>, health: Arc<Health>, cancel: CancellationToken) {
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        // Each check is a fresh connection: it tests that the backend still accepts them.
        .pool_max_idle_per_host(0)
        .build(HttpConnector::new());
    let mut published = routes.subscribe();
    let mut schedule: HashMap<Target, Scheduled> = HashMap::new();
    let mut checks: JoinSet<(Target, bool)> = JoinSet::new();
    loop {
        let now = Instant::now();
        let mut wake = now + MAX_NAP;
        let mut seen = HashSet::new();
        {
            let table = routes.load();
            for (host, route) in table.iter() {
                let Some(check) = &route.health_check else { continue };
                for &backend in &route.backends {
                    let target = Target { app: route.app.clone(), backend };
                    if !seen.insert(target.clone()) {
                        continue;
                    }
                    let scheduled =
                        schedule.entry(target.clone()).or_insert(Scheduled { due: now, running: false });
                    if scheduled.running {
                        continue;
                    }
                    if scheduled.due <= now {
                        scheduled.running = true;
                        scheduled.due = now + check.interval.max(MIN_INTERVAL);
                        let (client, check, host) = (client.clone(), check.clone(), host.to_string());
                        checks.spawn(async move {
                            let up = probe(&client, backend, &host, &check).await;
                            (target, up)
                        });
                    }
                    wake = wake.min(scheduled.due);
                }
            }
        }
        schedule.retain(|target, _| seen.contains(target));
        health.retain(&schedule);
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep_until(wake) => {}
            changed = published.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(done) = checks.join_next() => {
                let Ok((target, up)) = done else { continue };
                if let Some(scheduled) = schedule.get_mut(&target) {
                    scheduled.running = false;
                    if health.is_up(&target.app, target.backend) != up {
                        info!(app = %target.app, backend = %target.backend, up, "backend health changed");
                        health.set(&target.app, target.backend, up);
                    }
                }
            }
        }
    }
    checks.abort_all();
}

/// One check of `backend`: up when it answers 2xx or 3xx within the check's timeout.
async fn probe(
    client: &Client<HttpConnector, Empty<Bytes>>,
    backend: SocketAddr,
    host: &str,
    check: &HealthCheck,
) -> bool {
    let path = if check.path.starts_with('/') { check.path.clone() } else { format!("/{}", check.path) };
    let Ok(uri) = format!("http://{backend}{path}").parse::<Uri>() else {
        debug!(%backend, path = %check.path, "health check path is not a valid URI path");
        return false;
    };
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri;
    if let Ok(host) = HeaderValue::from_str(host) {
        request.headers_mut().insert(HOST, host);
    }
    request.headers_mut().insert(USER_AGENT, HeaderValue::from_static(CHECK_USER_AGENT));
    match tokio::time::timeout(check.timeout, client.request(request)).await {
        Ok(Ok(response)) => {
            let status = response.status();
            let up = status.is_success() || status.is_redirection();
            if !up {
                debug!(%backend, %status, "health check failed");
            }
            up
        }
        Ok(Err(e)) => {
            debug!(%backend, error = %e, "health check failed");
            false
        }
        Err(_) => {
            debug!(%backend, timeout = ?check.timeout, "health check timed out");
            false
        }
    }
}
