//! Counters of the reverse proxy and their Prometheus text exposition: requests by app and
//! status, request duration by app, unknown hosts, backend failures by kind, connections.
//!
//! Per-app figures sit in one `Mutex<HashMap>` taken once per request, after the response head,
//! for a few additions; everything else is a lone atomic.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::health::Health;

/// Upper bounds (seconds) of the request-duration histogram buckets, 1 ms to 10 s.
pub const DURATION_BUCKETS: [f64; 13] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Why an attempt at a backend failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendError {
    /// The connection was refused (or failed at once: unreachable, reset during connect).
    Refused,
    /// No connection within `Limits::connect_timeout`.
    ConnectTimeout,
    /// Connected, but no response head within `Limits::response_timeout`.
    ResponseTimeout,
    /// The app has health checks and no backend passes them.
    Unhealthy,
    /// Anything else: reset mid-request, malformed response, closed early.
    Failed,
}

impl BackendError {
    const ALL: [BackendError; 5] = [
        BackendError::Refused,
        BackendError::ConnectTimeout,
        BackendError::ResponseTimeout,
        BackendError::Unhealthy,
        BackendError::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendError::Refused => "refused",
            BackendError::ConnectTimeout => "connect_timeout",
            BackendError::ResponseTimeout => "response_timeout",
            BackendError::Unhealthy => "unhealthy",
            BackendError::Failed => "error",
        }
    }
}

/// What one app has seen.
#[derive(Debug, Default, Clone)]
struct AppStats {
    /// `(status, count)`; an app answers a handful of distinct codes, a scan beats hashing.
    statuses: Vec<(u16, u64)>,
    /// Non-cumulative counts per [`DURATION_BUCKETS`] bound, then the overflow (+Inf).
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    seconds: f64,
    count: u64,
}

/// The proxy's counters. Every figure is a Prometheus series named `proximity_proxy_*`.
#[derive(Debug, Default)]
pub struct Metrics {
    apps: Mutex<HashMap<String, AppStats>>,
    /// Requests whose Host (or `:authority`) no route names, or that had none: 404.
    unknown_host: AtomicU64,
    /// Indexed like [`BackendError::ALL`].
    backend_errors: [AtomicU64; BackendError::ALL.len()],
    /// Client connections accepted (TCP), since start.
    connections: AtomicU64,
    /// Client connections open now (TLS handshakes and upgraded tunnels included).
    open_connections: AtomicU64,
    /// TLS handshakes that failed or took longer than `Limits::tls_handshake_timeout`.
    tls_failures: AtomicU64,
    /// Connections closed because a request head took longer than `Limits::header_read_timeout`.
    header_timeouts: AtomicU64,
    /// Requests whose client stopped sending its body for `Limits::idle_timeout` (408).
    body_timeouts: AtomicU64,
    /// Upgraded connections (WebSocket and the like) bridged to a backend.
    upgrades: AtomicU64,
    /// Connections opened to backends (the keep-alive pool reuses them).
    backend_connections: AtomicU64,
    /// The health state of the proxy serving with these metrics, for the down-backend gauge.
    health: OnceLock<Arc<Health>>,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts one response to a request routed to `app`, and how long its head took.
    pub fn request(&self, app: &str, status: u16, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = DURATION_BUCKETS.iter().position(|&le| seconds <= le).unwrap_or(DURATION_BUCKETS.len());
        let mut apps = self.apps.lock().unwrap_or_else(PoisonError::into_inner);
        let stats = match apps.get_mut(app) {
            Some(stats) => stats,
            None => apps.entry(app.to_string()).or_default(),
        };
        match stats.statuses.iter_mut().find(|(code, _)| *code == status) {
            Some((_, n)) => *n += 1,
            None => stats.statuses.push((status, 1)),
        }
        if let Some(n) = stats.buckets.get_mut(bucket) {
            *n += 1;
        }
        stats.seconds += seconds;
        stats.count += 1;
    }

    pub fn unknown_host(&self) {
        bump(&self.unknown_host);
    }

    pub fn backend_error(&self, kind: BackendError) {
        if let Some(i) = BackendError::ALL.iter().position(|k| *k == kind) {
            self.backend_errors.get(i).map(bump);
        }
    }

    pub(crate) fn connection_opened(&self) {
        bump(&self.connections);
        bump(&self.open_connections);
    }

    pub(crate) fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn tls_failed(&self) {
        bump(&self.tls_failures);
    }

    pub(crate) fn header_timeout(&self) {
        bump(&self.header_timeouts);
    }

    pub(crate) fn body_timeout(&self) {
        bump(&self.body_timeouts);
    }

    /// Shows `health`'s down backends in [`Metrics::render`] (the first proxy to ask wins).
    pub(crate) fn watch_health(&self, health: Arc<Health>) {
        let _ = self.health.set(health);
    }

    pub(crate) fn upgraded(&self) {
        bump(&self.upgrades);
    }

    pub(crate) fn backend_connected(&self) {
        bump(&self.backend_connections);
    }

    /// Connections opened to backends since start.
    pub fn backend_connections(&self) -> u64 {
        self.backend_connections.load(Ordering::Relaxed)
    }

    /// Responses with `status` to requests for `app`.
    pub fn requests(&self, app: &str, status: u16) -> u64 {
        let apps = self.apps.lock().unwrap_or_else(PoisonError::into_inner);
        apps.get(app).and_then(|s| s.statuses.iter().find(|(code, _)| *code == status)).map_or(0, |(_, n)| *n)
    }

    pub fn unknown_hosts(&self) -> u64 {
        self.unknown_host.load(Ordering::Relaxed)
    }

    pub fn backend_errors(&self, kind: BackendError) -> u64 {
        let i = BackendError::ALL.iter().position(|k| *k == kind);
        i.and_then(|i| self.backend_errors.get(i)).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub fn open_connections(&self) -> u64 {
        self.open_connections.load(Ordering::Relaxed)
    }

    pub fn header_timeouts(&self) -> u64 {
        self.header_timeouts.load(Ordering::Relaxed)
    }

    pub fn body_timeouts(&self) -> u64 {
        self.body_timeouts.load(Ordering::Relaxed)
    }

    /// Appends every series in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        // Copied out so the lock is not held while formatting.
        let mut apps: Vec<(String, AppStats)> = {
            let apps = self.apps.lock().unwrap_or_else(PoisonError::into_inner);
            apps.iter().map(|(app, stats)| (app.clone(), stats.clone())).collect()
        };
        apps.sort_by(|a, b| a.0.cmp(&b.0));

        header(
            out,
            "requests_total",
            "counter",
            "Responses sent to requests routed to an app, by status code.",
        );
        for (app, stats) in &apps {
            let mut statuses = stats.statuses.clone();
            statuses.sort_unstable();
            for (code, n) in statuses {
                let _ = writeln!(
                    out,
                    "proximity_proxy_requests_total{{app=\"{}\",code=\"{code}\"}} {n}",
                    escape(app)
                );
            }
        }

        header(
            out,
            "request_duration_seconds",
            "histogram",
            "Time from a request's head to its response's head, by app.",
        );
        for (app, AppStats { buckets, seconds, count, .. }) in &apps {
            let app = escape(app);
            let mut cumulative = 0;
            for (le, n) in DURATION_BUCKETS.iter().zip(buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "proximity_proxy_request_duration_seconds_bucket{{app=\"{app}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "proximity_proxy_request_duration_seconds_bucket{{app=\"{app}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "proximity_proxy_request_duration_seconds_sum{{app=\"{app}\"}} {seconds}");
            let _ = writeln!(out, "proximity_proxy_request_duration_seconds_count{{app=\"{app}\"}} {count}");
        }

        header(out, "unknown_host_total", "counter", "Requests for a host no route names (404).");
        let _ = writeln!(out, "proximity_proxy_unknown_host_total {}", get(&self.unknown_host));

        header(
            out,
            "backend_errors_total",
            "counter",
            "Failed attempts at a backend (each one of a request failed over), by reason.",
        );
        for (kind, counter) in BackendError::ALL.iter().zip(&self.backend_errors) {
            let _ = writeln!(
                out,
                "proximity_proxy_backend_errors_total{{kind=\"{}\"}} {}",
                kind.as_str(),
                get(counter)
            );
        }

        header(out, "backend_down", "gauge", "Backends failing their health check (present while down).");
        if let Some(health) = self.health.get() {
            let mut down = health.down();
            down.sort();
            for (app, backend) in down {
                let _ = writeln!(
                    out,
                    "proximity_proxy_backend_down{{app=\"{}\",backend=\"{backend}\"}} 1",
                    escape(&app)
                );
            }
        }

        for (name, kind, help, counter) in [
            ("connections_total", "counter", "Client connections accepted.", &self.connections),
            ("open_connections", "gauge", "Client connections open now.", &self.open_connections),
            ("tls_failures_total", "counter", "TLS handshakes failed or timed out.", &self.tls_failures),
            (
                "header_timeouts_total",
                "counter",
                "Connections closed for sending a request head too slowly.",
                &self.header_timeouts,
            ),
            (
                "body_timeouts_total",
                "counter",
                "Requests whose client stopped sending the body (408).",
                &self.body_timeouts,
            ),
            ("upgrades_total", "counter", "Upgraded connections bridged to a backend.", &self.upgrades),
            (
                "backend_connections_total",
                "counter",
                "Connections opened to backends (kept alive and reused between requests).",
                &self.backend_connections,
            ),
        ] {
            header(out, name, kind, help);
            let _ = writeln!(out, "proximity_proxy_{name} {}", get(counter));
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP proximity_proxy_{name} {help}");
    let _ = writeln!(out, "# TYPE proximity_proxy_{name} {kind}");
}

/// A label value as the exposition format wants it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.request("wiki", 200, Duration::from_millis(3));
        m.request("wiki", 200, Duration::from_millis(30));
        m.request("wiki", 502, Duration::from_secs(20));
        m.unknown_host();
        m.backend_error(BackendError::Refused);
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "# TYPE proximity_proxy_requests_total counter",
            "proximity_proxy_requests_total{app=\"wiki\",code=\"200\"} 2",
            "proximity_proxy_requests_total{app=\"wiki\",code=\"502\"} 1",
            "# TYPE proximity_proxy_request_duration_seconds histogram",
            "proximity_proxy_request_duration_seconds_bucket{app=\"wiki\",le=\"0.001\"} 0",
            "proximity_proxy_request_duration_seconds_bucket{app=\"wiki\",le=\"0.005\"} 1",
            "proximity_proxy_request_duration_seconds_bucket{app=\"wiki\",le=\"0.05\"} 2",
            "proximity_proxy_request_duration_seconds_bucket{app=\"wiki\",le=\"10\"} 2",
            "proximity_proxy_request_duration_seconds_bucket{app=\"wiki\",le=\"+Inf\"} 3",
            "proximity_proxy_request_duration_seconds_count{app=\"wiki\"} 3",
            "proximity_proxy_unknown_host_total 1",
            "proximity_proxy_backend_errors_total{kind=\"refused\"} 1",
            "proximity_proxy_backend_errors_total{kind=\"unhealthy\"} 0",
            "proximity_proxy_open_connections 0",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        assert_eq!(m.requests("wiki", 200), 2);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    /// Cost of recording one request, alone and with 8 threads at once (run in release with
    /// `--ignored --nocapture`).
    #[test]
    #[ignore]
    fn contended_record_cost() {
        const PER_THREAD: u32 = 1_000_000;
        for threads in [1u32, 8] {
            let m = std::sync::Arc::new(Metrics::default());
            let start = std::time::Instant::now();
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let m = m.clone();
                    std::thread::spawn(move || {
                        let app = format!("app{}", t % 4);
                        for i in 0..PER_THREAD {
                            let status = if i % 10 == 0 { 404 } else { 200 };
                            m.request(&app, status, Duration::from_micros(u64::from(i % 5000)));
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let wall = start.elapsed();
            println!(
                "metrics.request, {threads} thread(s) nonstop: {:?} per call per thread, {:.1} M calls/s in all",
                wall / PER_THREAD,
                f64::from(threads * PER_THREAD) / wall.as_secs_f64() / 1e6
            );
        }
    }
}
