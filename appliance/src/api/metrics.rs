//! `GET /metrics`: every service's figures in the Prometheus text format (0.0.4), each series
//! named `proximity_*`.

use std::collections::HashSet;
use std::fmt::Write as _;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

use super::{ApiState, Shared};
use crate::dhcp::server::unix_now;

/// The content type of the Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn render(State(state): State<Shared>) -> Response {
    let text = exposition(&state);
    ([(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))], text).into_response()
}

/// The whole exposition text.
pub(super) fn exposition(state: &ApiState) -> String {
    let mut out = String::new();
    if let Some(dns) = &state.dns_metrics {
        counters(&mut out, dns.snapshot().iter().map(|(name, value)| (name.as_str(), *value)));
    }
    if let Some(dhcp) = &state.dhcp_metrics {
        counters(&mut out, dhcp.snapshot().into_iter());
    }
    if let Some(leases) = &state.leases {
        let now = unix_now();
        let records = leases.leases();
        let active =
            records.iter().filter(|l| l.state == crate::state::LeaseState::Active && l.expires > now);
        gauge(&mut out, "dhcp_leases_active", "Leases held by a client now.", active.count() as u64);
        if let Some(pool) = state.pool {
            // Free: in the pool, and neither bound (active, declined on probation) nor reserved.
            let taken: HashSet<_> = records
                .iter()
                .filter(|l| l.is_bound(now))
                .map(|l| l.ip)
                .chain(state.directory.reservations().iter().map(|r| r.ip))
                .filter(|ip| pool.contains(*ip))
                .collect();
            let free = pool.len().saturating_sub(taken.len() as u64);
            gauge(&mut out, "dhcp_leases_free", "Pool addresses free to lease now.", free);
        }
    }
    if let Some(proxy) = &state.proxy_metrics {
        proxy.render(&mut out);
    }
    gauge(&mut out, "apps", "Apps registered.", state.directory.apps().len() as u64);
    let _ = writeln!(out, "# HELP proximity_admin_requests_total Admin API responses, by status code.");
    let _ = writeln!(out, "# TYPE proximity_admin_requests_total counter");
    for (status, n) in state.responses() {
        let _ = writeln!(out, "proximity_admin_requests_total{{status=\"{status}\"}} {n}");
    }
    out
}

/// Counters named `<family>{labels}`, one `# TYPE` line per family (they come grouped).
fn counters<'a>(out: &mut String, series: impl Iterator<Item = (&'a str, u64)>) {
    let mut family = "";
    for (name, value) in series {
        let this = name.split('{').next().unwrap_or(name);
        if this != family {
            let _ = writeln!(out, "# TYPE proximity_{this} counter");
            family = this;
        }
        let _ = writeln!(out, "proximity_{name} {value}");
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP proximity_{name} {help}");
    let _ = writeln!(out, "# TYPE proximity_{name} gauge");
    let _ = writeln!(out, "proximity_{name} {value}");
}
