//! `/v1/forwards`: the port forwards, the config file's and the API's; adding and removing the
//! API's. A change re-applies the NAT ruleset: the forward is live (or closed) as soon as NAT
//! has put the new table in force, milliseconds after the answer.
//!
//! A mutation follows the reservations' transaction: validate (400, every problem by field, a
//! port the appliance serves itself included), then under the mutation lock check what is taken
//! (409), commit (on failure nothing changes: 500), and publish the new list to NAT. A forward
//! from the config file cannot be deleted here: the file is the truth for those.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use proximity_config::api::{ForwardRequest, ForwardView};
use proximity_config::{PortForward, Protocol};
use tracing::info;

use super::error::{ApiError, JsonBody};
use super::{ApiState, Shared};
use crate::state::Change;

/// `GET /v1/forwards`: the config's and the API's, in (protocol, port) order.
pub(super) async fn list(State(state): State<Shared>) -> Json<Vec<ForwardView>> {
    let configured = state.forwards.configured().iter().map(|f| ForwardView::new(f, "config"));
    let added = state.forwards.added();
    let mut views: Vec<ForwardView> =
        configured.chain(added.iter().map(|f| ForwardView::new(f, "api"))).collect();
    views.sort_by_key(|v| (v.protocol, v.port));
    Json(views)
}

/// `POST /v1/forwards`: 201 with the forward and its `Location`.
pub(super) async fn create(
    State(state): State<Shared>,
    JsonBody(raw): JsonBody<ForwardRequest>,
) -> Result<Response, ApiError> {
    let forward = raw.validate(state.lan).map_err(|e| ApiError::invalid(&e))?;
    if let Some(why) = forward.takes_own_port(&state.own_ports) {
        return Err(ApiError::InvalidRequest(format!("port: {why}")));
    }
    let task_state = state.clone();
    let task = state.tasks.spawn(async move {
        let _one_at_a_time = task_state.mutations.lock().await;
        add(&task_state, forward).await
    });
    task.await.map_err(|e| ApiError::internal("forward mutation", &e))??;
    let location = format!("/v1/forwards/{}/{}", forward.protocol, forward.port);
    let mut response = (StatusCode::CREATED, Json(ForwardView::new(&forward, "api"))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `DELETE /v1/forwards/{protocol}/{port}`: 204; 404 if there is none; 409 for one from the config.
pub(super) async fn remove(
    State(state): State<Shared>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path((protocol, port)) =
        path.map_err(|e| ApiError::InvalidRequest(format!("path: {}", e.body_text())))?;
    let protocol: Protocol =
        protocol.parse().map_err(|e| ApiError::InvalidRequest(format!("protocol: {e}")))?;
    let port = match port.parse::<u16>() {
        Ok(port) if port != 0 => port,
        _ => return Err(ApiError::InvalidRequest(format!("port: {port:?} is not a port (1 to 65535)"))),
    };
    let task_state = state.clone();
    let task = state.tasks.spawn(async move {
        let _one_at_a_time = task_state.mutations.lock().await;
        delete(&task_state, protocol, port).await
    });
    task.await.map_err(|e| ApiError::internal("forward mutation", &e))??;
    Ok(StatusCode::NO_CONTENT)
}

async fn add(state: &ApiState, new: PortForward) -> Result<(), ApiError> {
    let added = state.forwards.added();
    let configured = state.forwards.configured().iter().map(|f| (f, "the config"));
    let taken = configured.chain(added.iter().map(|f| (f, "the admin api")));
    for (f, source) in taken {
        if (f.protocol, f.port) == (new.protocol, new.port) {
            return Err(ApiError::Conflict(format!(
                "port: {} port {} is already forwarded to {} ({source})",
                f.protocol, f.port, f.to
            )));
        }
    }
    state
        .store
        .commit(vec![Change::PutForward(new)])
        .await
        .map_err(|e| ApiError::internal("commit a forward", &e))?;
    let mut added = added.to_vec();
    added.push(new);
    state.forwards.set_added(added);
    info!(protocol = %new.protocol, port = new.port, to = %new.to, "admin api: forward created");
    Ok(())
}

async fn delete(state: &ApiState, protocol: Protocol, port: u16) -> Result<(), ApiError> {
    if state.forwards.configured().iter().any(|f| (f.protocol, f.port) == (protocol, port)) {
        return Err(ApiError::Conflict(format!(
            "port: the forward of {protocol} port {port} is in the config file ([[nat.forwards]]); remove it there"
        )));
    }
    let mut added = state.forwards.added().to_vec();
    let before = added.len();
    added.retain(|f| (f.protocol, f.port) != (protocol, port));
    if added.len() == before {
        return Err(ApiError::NotFound(format!("no forward of {protocol} port {port}")));
    }
    state
        .store
        .commit(vec![Change::DeleteForward(protocol, port)])
        .await
        .map_err(|e| ApiError::internal("commit a forward", &e))?;
    state.forwards.set_added(added);
    info!(%protocol, port, "admin api: forward deleted");
    Ok(())
}
