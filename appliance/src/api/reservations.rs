//! `/v1/reservations`: list (the config's and the API's), create, delete. A reservation fixes a
//! MAC's address (and optionally owns a name) like `[[dhcp.reservations]]`, without editing the
//! file or restarting.
//!
//! A mutation follows the apps' transaction (`apps.rs`): validate (400), then under the mutation
//! lock check what is taken (409), commit (on failure nothing changes: 500), and hand the new list
//! to the directory (names) and the DHCP server (addresses). A reservation from the config file
//! cannot be deleted here: the file is the truth for those.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use proximity_config::api::{ApiReservation, ReservationRequest, ReservationView};
use proximity_config::{MacAddr, Reservation};
use tracing::info;

use super::error::{ApiError, JsonBody, PathParam};
use super::{ApiState, Shared};
use crate::dhcp::server::unix_now;
use crate::state::{Change, LeaseState};

/// `GET /v1/reservations`: the config's and the API's, in address order.
pub(super) async fn list(State(state): State<Shared>) -> Json<Vec<ReservationView>> {
    let configured = state.directory.configured_reservations().iter().map(|r| view(r, "config"));
    let added = state.directory.api_reservations();
    let mut views: Vec<ReservationView> =
        configured.chain(added.into_iter().map(|r| view(&Reservation::from(r), "api"))).collect();
    views.sort_by_key(|r| r.ip);
    Json(views)
}

/// `POST /v1/reservations`: 201 with the reservation and its `Location`.
pub(super) async fn create(
    State(state): State<Shared>,
    JsonBody(raw): JsonBody<ReservationRequest>,
) -> Result<Response, ApiError> {
    let reservation = ApiReservation::validate(raw, &state.lan).map_err(|e| ApiError::invalid(&e))?;
    let task_state = state.clone();
    let task = state.tasks.spawn(async move {
        let _one_at_a_time = task_state.mutations.lock().await;
        add(&task_state, reservation).await
    });
    let added = task.await.map_err(|e| ApiError::internal("reservation mutation", &e))??;
    let location = format!("/v1/reservations/{}", added.mac);
    let mut response = (StatusCode::CREATED, Json(view(&Reservation::from(added), "api"))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `DELETE /v1/reservations/{mac}`: 204; 404 if there is none; 409 for one from the config.
pub(super) async fn remove(
    State(state): State<Shared>,
    PathParam(mac): PathParam,
) -> Result<StatusCode, ApiError> {
    let mac: MacAddr = mac
        .parse()
        .map_err(|e| ApiError::InvalidRequest(format!("mac: {mac:?} is not a MAC address: {e}")))?;
    let task_state = state.clone();
    let task = state.tasks.spawn(async move {
        let _one_at_a_time = task_state.mutations.lock().await;
        delete(&task_state, mac).await
    });
    task.await.map_err(|e| ApiError::internal("reservation mutation", &e))??;
    Ok(StatusCode::NO_CONTENT)
}

async fn add(state: &ApiState, new: ApiReservation) -> Result<ApiReservation, ApiError> {
    if let Some(reserved) = state.reserved
        && !reserved.contains(new.ip)
    {
        return Err(ApiError::InvalidRequest(format!(
            "ip: {} is outside dhcp.reserved {reserved}, the addresses kept for reservations",
            new.ip
        )));
    }
    let configured = state.directory.configured_reservations();
    let mut added = state.directory.api_reservations();
    let all = configured
        .iter()
        .cloned()
        .map(|r| (r, "the config"))
        .chain(added.iter().cloned().map(|r| (Reservation::from(r), "the admin api")));
    for (r, source) in all {
        if r.mac == new.mac {
            return Err(ApiError::Conflict(format!("mac: {} already has a reservation ({source})", new.mac)));
        }
        if r.ip == new.ip {
            return Err(ApiError::Conflict(format!("ip: {} is reserved for {} ({source})", new.ip, r.mac)));
        }
        if new.name.is_some() && r.name == new.name {
            return Err(ApiError::NameTaken(format!(
                "name: {:?} belongs to the reservation of {}",
                r.name, r.mac
            )));
        }
    }
    if let Some(name) = &new.name
        && state.directory.apps().iter().any(|a| &a.name == name)
    {
        return Err(ApiError::NameTaken(format!("name: {name:?} belongs to an app")));
    }
    if let Some(leases) = &state.leases {
        let now = unix_now();
        let held = leases
            .leases()
            .into_iter()
            .find(|l| l.ip == new.ip && l.mac != new.mac && l.state == LeaseState::Active && l.is_bound(now));
        if let Some(lease) = held {
            return Err(ApiError::Conflict(format!(
                "ip: {} is leased to {}; end that lease first (DELETE /v1/leases/{})",
                new.ip, lease.mac, new.ip
            )));
        }
    }
    state
        .store
        .commit(vec![Change::PutReservation(new.clone())])
        .await
        .map_err(|e| ApiError::internal("commit a reservation", &e))?;
    added.push(new.clone());
    publish(state, added);
    info!(mac = %new.mac, ip = %new.ip, name = new.name.as_deref().unwrap_or(""), "admin api: reservation created");
    Ok(new)
}

async fn delete(state: &ApiState, mac: MacAddr) -> Result<(), ApiError> {
    if state.directory.configured_reservations().iter().any(|r| r.mac == mac) {
        return Err(ApiError::Conflict(format!(
            "mac: the reservation of {mac} is in the config file; remove it there"
        )));
    }
    let mut added = state.directory.api_reservations();
    let before = added.len();
    added.retain(|r| r.mac != mac);
    if added.len() == before {
        return Err(ApiError::NotFound(format!("no reservation for {mac}")));
    }
    state
        .store
        .commit(vec![Change::DeleteReservation(mac)])
        .await
        .map_err(|e| ApiError::internal("commit a reservation", &e))?;
    publish(state, added);
    info!(%mac, "admin api: reservation deleted");
    Ok(())
}

/// Hands the API's reservations to the names and, with the config's, to the DHCP server.
fn publish(state: &ApiState, added: Vec<ApiReservation>) {
    state.directory.set_api_reservations(added, unix_now());
    if let Some(leases) = &state.leases {
        leases.set_reservations(&state.directory.reservations());
    }
}

fn view(r: &Reservation, source: &str) -> ReservationView {
    ReservationView { mac: r.mac, ip: r.ip, name: r.name.clone(), source: source.into() }
}
