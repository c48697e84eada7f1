//! `/v1/apps`: list, show, create, replace, delete. The only mutations of the API.
//!
//! A mutation is one transaction: validate the request (400 with every problem), then, holding
//! the mutation lock, check who owns the name (409), commit to the store (durable; on failure
//! nothing changes in memory: 500), and hand the new list to the directory, which publishes the
//! names (DNS) and the routes (proxy) before the answer leaves.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use proximity_config::api::{App, AppView, RawApp};
use tracing::info;

use super::error::{ApiError, JsonBody, PathParam};
use super::{ApiState, Shared};
use crate::dhcp::server::unix_now;
use crate::state::Change;

/// `GET /v1/apps`: every app, in name order.
pub(super) async fn list(State(state): State<Shared>) -> Json<Vec<AppView>> {
    Json(state.directory.apps().iter().map(|app| view(&state, app)).collect())
}

/// `GET /v1/apps/{name}`.
pub(super) async fn show(
    State(state): State<Shared>,
    PathParam(name): PathParam,
) -> Result<Json<AppView>, ApiError> {
    let name = name.to_ascii_lowercase();
    let apps = state.directory.apps();
    let app = apps.iter().find(|a| a.name == name).ok_or_else(|| no_app(&name))?;
    Ok(Json(view(&state, app)))
}

/// `POST /v1/apps`: 201 with the app and its `Location`; 409 when the name is taken.
pub(super) async fn create(
    State(state): State<Shared>,
    JsonBody(raw): JsonBody<RawApp>,
) -> Result<Response, ApiError> {
    let app = App::validate(raw, &state.lan, &state.domain).map_err(|e| ApiError::invalid(&e))?;
    let outcome = mutate(&state, Mutation::Create(app)).await?;
    Ok(answer(&state, outcome))
}

/// `PUT /v1/apps/{name}`: creates (201) or replaces (200) the app; the same body twice changes
/// nothing the second time (200, no store write).
pub(super) async fn replace(
    State(state): State<Shared>,
    PathParam(name): PathParam,
    JsonBody(raw): JsonBody<RawApp>,
) -> Result<Response, ApiError> {
    let app = App::validate(raw, &state.lan, &state.domain).map_err(|e| ApiError::invalid(&e))?;
    if app.name != name.to_ascii_lowercase() {
        return Err(ApiError::InvalidRequest(format!(
            "name: {:?} differs from the name in the path ({name:?})",
            app.name
        )));
    }
    let outcome = mutate(&state, Mutation::Put(app)).await?;
    Ok(answer(&state, outcome))
}

/// `DELETE /v1/apps/{name}`: 204, or 404 when there is no such app.
pub(super) async fn remove(
    State(state): State<Shared>,
    PathParam(name): PathParam,
) -> Result<StatusCode, ApiError> {
    mutate(&state, Mutation::Delete(name.to_ascii_lowercase())).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a request asks to change.
#[derive(Debug)]
enum Mutation {
    /// Add an app whose name must be free.
    Create(App),
    /// Add or replace an app.
    Put(App),
    Delete(String),
}

/// What was done.
#[derive(Debug)]
enum Outcome {
    Created(App),
    Replaced(App),
    /// The app was already exactly so.
    Unchanged(App),
    Deleted,
}

/// Runs `mutation` as a task of its own under the mutation lock: a client that hangs up does
/// not cancel it between its commit and its publish, so store and directory stay in step.
async fn mutate(state: &Shared, mutation: Mutation) -> Result<Outcome, ApiError> {
    let task_state = state.clone();
    let task = state.tasks.spawn(async move {
        let _one_at_a_time = task_state.mutations.lock().await;
        apply(&task_state, mutation).await
    });
    task.await.map_err(|e| ApiError::internal("app mutation", &e))?
}

async fn apply(state: &ApiState, mutation: Mutation) -> Result<Outcome, ApiError> {
    // Only mutations change the directory's apps, and they hold the lock: this list is current.
    let mut apps = state.directory.apps();
    let (change, outcome, action) = match mutation {
        Mutation::Create(app) => {
            check_owner(state, &app.name)?;
            if apps.iter().any(|a| a.name == app.name) {
                return Err(ApiError::NameTaken(format!("name: an app named {:?} exists", app.name)));
            }
            apps.push(app.clone());
            (Change::PutApp(app.clone()), Outcome::Created(app), "created")
        }
        Mutation::Put(app) => {
            check_owner(state, &app.name)?;
            match apps.iter_mut().find(|a| a.name == app.name) {
                Some(old) if *old == app => return Ok(Outcome::Unchanged(app)),
                Some(old) => {
                    *old = app.clone();
                    (Change::PutApp(app.clone()), Outcome::Replaced(app), "replaced")
                }
                None => {
                    apps.push(app.clone());
                    (Change::PutApp(app.clone()), Outcome::Created(app), "created")
                }
            }
        }
        Mutation::Delete(name) => {
            let before = apps.len();
            apps.retain(|a| a.name != name);
            if apps.len() == before {
                return Err(no_app(&name));
            }
            (Change::DeleteApp(name), Outcome::Deleted, "deleted")
        }
    };
    let name = match &change {
        Change::PutApp(app) => app.name.clone(),
        Change::DeleteApp(name) => name.clone(),
        _ => String::new(),
    };
    state.store.commit(vec![change]).await.map_err(|e| ApiError::internal("commit an app change", &e))?;
    state.directory.set_apps(apps, unix_now());
    info!(app = %name, action, "admin api: app {action}");
    Ok(outcome)
}

/// Refuses a name that a reservation (config or API) owns. DHCP clients' host names do not
/// count: an app takes the name and the client loses it.
fn check_owner(state: &ApiState, name: &str) -> Result<(), ApiError> {
    match state.directory.reservations().iter().find(|r| r.name.as_deref() == Some(name)) {
        Some(r) => {
            Err(ApiError::NameTaken(format!("name: {name:?} belongs to the DHCP reservation of {}", r.mac)))
        }
        None => Ok(()),
    }
}

fn answer(state: &ApiState, outcome: Outcome) -> Response {
    let (status, app) = match outcome {
        Outcome::Created(app) => (StatusCode::CREATED, app),
        Outcome::Replaced(app) | Outcome::Unchanged(app) => (StatusCode::OK, app),
        Outcome::Deleted => return StatusCode::NO_CONTENT.into_response(),
    };
    let mut response = (status, Json(view(state, &app))).into_response();
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&format!("/v1/apps/{}", app.name))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The app as the API shows it, with the address its backend has in the published table.
fn view(state: &ApiState, app: &App) -> AppView {
    let backend = state.directory.names().load().app(&app.name).and_then(|a| a.backend);
    AppView::new(app, &state.domain, backend)
}

fn no_app(name: &str) -> ApiError {
    ApiError::NotFound(format!("no app named {name:?}"))
}
