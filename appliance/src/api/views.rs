//! The read-only endpoints (and the lease release): health, leases, reservations, the DNS records
//! the name table gives, the CA certificate, the OpenAPI document.

use std::net::Ipv4Addr;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use http::{HeaderName, HeaderValue, StatusCode, header};
use proximity_config::api::{CA_PROOF_HEADER, DnsRecordView, HealthView, LeaseView};
use tracing::info;

use super::error::{ApiError, PathParam};
use super::proof::ca_proof;
use super::{OPENAPI_JSON, Shared};
use crate::dns::View;
use crate::dns::zone::{Zone, reverse_name, reverse_zones};
use crate::names::NameSource;
use crate::state::LeaseState;

/// A service in this state is off on purpose, so it does not make the appliance degraded.
const DISABLED: &str = "disabled";
const RUNNING: &str = "running";
/// The value shown for the WAN answer of apps and `ns`: it is whatever address the asker reached.
const ASKED_ADDRESS: &str = "the address the client asked";

/// `GET /v1/health`: `ok` while every enabled service runs, else `degraded`.
pub(super) async fn health(State(state): State<Shared>) -> Json<HealthView> {
    let services = state.services.snapshot();
    let ok = services.values().all(|s| s == RUNNING || s == DISABLED);
    Json(HealthView {
        status: if ok { "ok" } else { "degraded" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: state.started.elapsed().as_secs(),
        services,
    })
}

/// `GET /v1/leases`: every lease record, in address order, with the name its address holds.
pub(super) async fn leases(State(state): State<Shared>) -> Json<Vec<LeaseView>> {
    let mut leases = state.leases.as_ref().map(|l| l.leases()).unwrap_or_default();
    leases.sort_by_key(|l| l.ip);
    let table = state.directory.names().load();
    Json(
        leases
            .into_iter()
            .map(|l| LeaseView {
                ip: l.ip,
                mac: l.mac,
                name: table.name_of(l.ip).map(str::to_owned),
                hostname: l.hostname,
                state: match l.state {
                    LeaseState::Active => "active",
                    LeaseState::Released => "released",
                    LeaseState::Declined => "declined",
                }
                .to_owned(),
                starts: l.starts,
                ends: l.expires,
            })
            .collect(),
    )
}

/// `DELETE /v1/leases/{ip}`: ends the active lease of `ip` (204), 404 when there is none.
pub(super) async fn release_lease(
    State(state): State<Shared>,
    PathParam(ip): PathParam,
) -> Result<StatusCode, ApiError> {
    let ip: Ipv4Addr =
        ip.parse().map_err(|_| ApiError::InvalidRequest(format!("ip: {ip:?} is not an IPv4 address")))?;
    let not_found = || ApiError::NotFound(format!("no active lease of {ip}"));
    let admin = state.leases.clone().ok_or_else(not_found)?;
    // A task of its own, like app mutations: a client hanging up does not cut a release short.
    let released = state
        .tasks
        .spawn(async move { admin.release(ip).await })
        .await
        .map_err(|e| ApiError::internal("release a lease", &e))?
        .map_err(|e| ApiError::internal("release a lease", &e))?;
    if !released {
        return Err(not_found());
    }
    info!(%ip, action = "released", "admin api: lease released");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/dns/records`: what our zones answer, from the table in force, sorted.
pub(super) async fn dns_records(State(state): State<Shared>) -> Json<Vec<DnsRecordView>> {
    let table = state.directory.names().load();
    let domain = state.domain.trim_end_matches('.');
    let gateway = state.lan.addr();
    let ns = format!("{}.{domain}", crate::dns::zone::NS_LABEL);
    let mut out = Vec::new();
    let mut push = |name: String, kind: &str, value: String, view: &str, source: &str| {
        out.push(DnsRecordView {
            name,
            r#type: kind.into(),
            value,
            view: view.into(),
            source: source.into(),
        });
    };

    // The apexes (forward and reverse) as the DNS server itself answers them.
    if let Some(zones) = &state.zones {
        let apexes = std::iter::once(format!("{domain}."))
            .chain(reverse_zones(state.lan).into_iter().map(reverse_name));
        for apex in apexes {
            let Ok(apex) = Name::from_ascii(&apex) else { continue };
            let Some(zone) = zones.find(&apex) else { continue };
            for qtype in [RecordType::SOA, RecordType::NS] {
                let answer = zones.answer(zone, &apex, qtype, View::Lan, None, &table);
                for record in answer.answers {
                    push(presentation(&record.name), &kind(&record), value(&record), "both", "appliance");
                }
            }
            if zone == Zone::Forward {
                push(ns.clone(), "A", gateway.to_string(), "lan", "appliance");
                push(ns.clone(), "A", ASKED_ADDRESS.into(), "wan", "appliance");
            }
        }
    }
    push(reverse(gateway), "PTR", ns.clone(), "lan", "appliance");

    for (label, host) in table.hosts() {
        let source = match host.source {
            NameSource::Reservation => "reservation",
            NameSource::Lease { .. } => "lease",
        };
        let name = format!("{label}.{domain}");
        push(name.clone(), "A", host.ip.to_string(), "lan", source);
        if table.name_of(host.ip) == Some(label) {
            push(reverse(host.ip), "PTR", name, "lan", source);
        }
    }
    for app in table.apps() {
        let name = format!("{}.{domain}", app.app.name);
        push(name.clone(), "A", gateway.to_string(), "lan", "app");
        push(name, "A", ASKED_ADDRESS.into(), "wan", "app");
    }
    out.sort_by(|a, b| (&a.name, &a.r#type, &a.view, &a.value).cmp(&(&b.name, &b.r#type, &b.view, &b.value)));
    Json(out)
}

/// `GET /v1/ca.crt`: the CA certificate (PEM), for clients to trust, with its proof (see
/// `proof`); 404 without a CA.
pub(super) async fn ca_certificate(State(state): State<Shared>) -> Result<Response, ApiError> {
    let pem = state.ca_pem.clone().ok_or_else(|| ApiError::NotFound("this appliance has no CA".into()))?;
    // Hex digits: always a valid header value.
    let proof = HeaderValue::try_from(ca_proof(&state.token, pem.as_bytes()))
        .map_err(|e| ApiError::internal("ca proof header", &e))?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file")),
        (HeaderName::from_static(CA_PROOF_HEADER), proof),
    ];
    Ok((headers, pem).into_response())
}

/// `GET /v1/openapi.json`.
pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], OPENAPI_JSON).into_response()
}

/// `d.c.b.a.in-addr.arpa` for `a.b.c.d`.
fn reverse(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// A name without its final dot.
fn presentation(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_owned()
}

fn kind(record: &Record) -> String {
    record.record_type().to_string()
}

/// The record's data in presentation form, names without their final dot.
fn value(record: &Record) -> String {
    match &record.data {
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            presentation(&soa.mname),
            presentation(&soa.rname),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        RData::NS(ns) => presentation(&ns.0),
        RData::PTR(ptr) => presentation(&ptr.0),
        other => other.to_string(),
    }
}
