//! The API's users, connections and sessions. Users and connections are records in the state
//! store, written with the same keys as `[[users]]` and `[[connections]]` in the file and
//! validated by the same code, put in force at once (no reload); sessions are the logged-in
//! connections, each of which can be closed.
//!
//! - `GET /api/v1/users`, `GET /api/v1/users/{name}`: without password hashes;
//!   `GET /api/v1/connections/{name}`: without the secret;
//! - `POST /api/v1/{users,connections}` (create; 409 when the name is taken),
//!   `PUT /api/v1/{users,connections}/{name}` (create or replace): the body is the record as
//!   the file would declare it; a user's `password` in clear is hashed here with argon2id; a
//!   connection's `client_secret` is sealed and never returned (left out, the stored one
//!   stays). Saving a connection enables it again, changed or not;
//! - `DELETE .../{name}`: a user's open sessions are closed; a connection in use is refused;
//! - `POST /api/v1/connections/{name}/test`: signs in, finds the library and lists its root;
//! - a record the configuration file declares is read-only here: 409 naming the file;
//! - sync jobs the same way (`/api/v1/syncs`, `/api/v1/syncs/{name}`): a change reschedules
//!   them (a run in progress stops between files);
//! - `GET /api/v1/sessions`, `DELETE /api/v1/sessions/{id}`.
//!
//! Errors are `{"error": {"code", "message", "field"}}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::State;
use super::api::{ErrorBody, Failure, failure};
use crate::config::Section;
use crate::session::control::{self, Change};
use crate::state::records::Record;

#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, description = "Every user, without password hashes: {users: [...]}")))]
pub async fn list_users(Extract(state): Extract<Arc<State>>) -> Response {
    match state.gateway().store.list(Section::Users).await {
        Ok(users) => {
            let users: Vec<Value> = users
                .iter()
                .map(|u| view(&state, Section::Users, u))
                .collect();
            Json(json!({ "users": users })).into_response()
        }
        Err(e) => failure(Failure::store(e)),
    }
}

#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path, description = "The user's name")), responses((status = 200, description = "The user as its record, with managed_by, revision, updated_at and in_force"), (status = 404, description = "No such record (code not_found)", body = ErrorBody)))]
pub async fn get_user(state: Extract<Arc<State>>, Path(name): Path<String>) -> Response {
    get(&state, Section::Users, &name).await
}

#[utoipa::path(get, path = "/api/v1/connections/{name}", tag = "connections", params(("name" = String, Path, description = "The connection's name")), responses((status = 200, description = "The connection as its record, with managed_by, revision, updated_at and in_force"), (status = 404, description = "No such record (code not_found)", body = ErrorBody)))]
pub async fn get_connection(state: Extract<Arc<State>>, Path(name): Path<String>) -> Response {
    get(&state, Section::Connections, &name).await
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body(content = crate::config::UserRecord, description = "The user as the configuration file would declare it, plus password (in clear; hashed with argon2id, never returned); without password or password_hash the stored password stays"), responses((status = 201, description = "Created and in force"), (status = 400, description = "Not JSON (code bad_request)", body = ErrorBody), (status = 409, description = "The name is taken (code exists), or managed by the configuration file", body = ErrorBody), (status = 422, description = "Not a valid record (code invalid; field: the key within the record)", body = ErrorBody)))]
pub async fn create_user(
    state: Extract<Arc<State>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    create(&state, Section::Users, body).await
}

#[utoipa::path(post, path = "/api/v1/connections", tag = "connections", request_body(content = crate::config::ConnectionRecord, description = "The connection as the configuration file would declare it; client_secret is write-only (left out, the stored one stays)"), responses((status = 201, description = "Created and in force"), (status = 400, description = "Not JSON (code bad_request)", body = ErrorBody), (status = 409, description = "The name is taken (code exists), or managed by the configuration file", body = ErrorBody), (status = 422, description = "Not a valid record (code invalid; field: the key within the record)", body = ErrorBody)))]
pub async fn create_connection(
    state: Extract<Arc<State>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    create(&state, Section::Connections, body).await
}

#[utoipa::path(put, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path, description = "The user's name")), request_body(content = crate::config::UserRecord, description = "The user as the configuration file would declare it, plus password (in clear; hashed with argon2id, never returned); without password or password_hash the stored password stays"), responses((status = 200, description = "Replaced and in force; disabling closes its sessions"), (status = 201, description = "Created and in force"), (status = 400, description = "Not JSON (code bad_request)", body = ErrorBody), (status = 409, description = "Managed by the configuration file (code managed_by_config; the message names the file)", body = ErrorBody), (status = 422, description = "Not a valid record (code invalid; field: the key within the record)", body = ErrorBody)))]
pub async fn put_user(
    state: Extract<Arc<State>>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    put(&state, Section::Users, &name, body).await
}

#[utoipa::path(put, path = "/api/v1/connections/{name}", tag = "connections", params(("name" = String, Path, description = "The connection's name")), request_body(content = crate::config::ConnectionRecord, description = "The connection as the configuration file would declare it; client_secret is write-only (left out, the stored one stays)"), responses((status = 200, description = "Replaced and in force; saving enables the connection again"), (status = 201, description = "Created and in force"), (status = 400, description = "Not JSON (code bad_request)", body = ErrorBody), (status = 409, description = "Managed by the configuration file (code managed_by_config; the message names the file)", body = ErrorBody), (status = 422, description = "Not a valid record (code invalid; field: the key within the record)", body = ErrorBody)))]
pub async fn put_connection(
    state: Extract<Arc<State>>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    put(&state, Section::Connections, &name, body).await
}

#[utoipa::path(get, path = "/api/v1/syncs/{name}", tag = "syncs", params(("name" = String, Path, description = "The sync job's name")), responses((status = 200, description = "The sync job as its record, with managed_by, revision, updated_at and in_force"), (status = 404, description = "No such record (code not_found)", body = ErrorBody)))]
pub async fn get_sync(state: Extract<Arc<State>>, Path(name): Path<String>) -> Response {
    get(&state, Section::Syncs, &name).await
}

#[utoipa::path(post, path = "/api/v1/syncs", tag = "syncs", request_body(content = crate::config::SyncJobRecord, description = "The sync job as the configuration file would declare it"), responses((status = 201, description = "Created and in force"), (status = 400, description = "Not JSON (code bad_request)", body = ErrorBody), (status = 409, description = "The name is taken (code exists), or managed by the configuration file", body = ErrorBody), (status = 422, description = "Not a valid record (code invalid; field: the key within the record)", body = ErrorBody)))]
pub async fn create_sync(
    state: Extract<Arc<State>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    create(&state, Section::Syncs, body).await
}

#[utoipa::path(put, path = "/api/v1/syncs/{name}", tag = "syncs", params(("name" = String, Path, description = "The sync job's name")), request_body(content = crate::config::SyncJobRecord, description = "The sync job as the configuration file would declare it"), responses((status = 200, description = "Replaced and in force; the jobs are rescheduled"), (status = 201, description = "Created and in force"), (status = 400, description = "Not JSON (code bad_request)", body = ErrorBody), (status = 409, description = "Managed by the configuration file (code managed_by_config; the message names the file)", body = ErrorBody), (status = 422, description = "Not a valid record (code invalid; field: the key within the record)", body = ErrorBody)))]
pub async fn put_sync(
    state: Extract<Arc<State>>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    put(&state, Section::Syncs, &name, body).await
}

#[utoipa::path(delete, path = "/api/v1/syncs/{name}", tag = "syncs", params(("name" = String, Path, description = "The sync job's name")), responses((status = 204, description = "Deleted"), (status = 404, description = "No such record (code not_found)", body = ErrorBody), (status = 409, description = "Managed by the configuration file, or (a connection) in use (code in_use)", body = ErrorBody)))]
pub async fn delete_sync(state: Extract<Arc<State>>, Path(name): Path<String>) -> Response {
    delete(&state, Section::Syncs, &name).await
}

#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path, description = "The user's name")), responses((status = 204, description = "Deleted"), (status = 404, description = "No such record (code not_found)", body = ErrorBody), (status = 409, description = "Managed by the configuration file, or (a connection) in use (code in_use)", body = ErrorBody)))]
pub async fn delete_user(state: Extract<Arc<State>>, Path(name): Path<String>) -> Response {
    delete(&state, Section::Users, &name).await
}

#[utoipa::path(delete, path = "/api/v1/connections/{name}", tag = "connections", params(("name" = String, Path, description = "The connection's name")), responses((status = 204, description = "Deleted"), (status = 404, description = "No such record (code not_found)", body = ErrorBody), (status = 409, description = "Managed by the configuration file, or (a connection) in use (code in_use)", body = ErrorBody)))]
pub async fn delete_connection(state: Extract<Arc<State>>, Path(name): Path<String>) -> Response {
    delete(&state, Section::Connections, &name).await
}

/// Signs in, finds the library and lists its root, for the connection in force.
#[utoipa::path(post, path = "/api/v1/connections/{name}/test", tag = "connections", params(("name" = String, Path, description = "The connection's name")), responses((status = 200, description = "{ok: true, library, root_items} or {ok: false, error}"), (status = 404, description = "No such record (code not_found)", body = ErrorBody)))]
pub async fn test_connection(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
) -> Response {
    let gateway = state.gateway();
    let Some(c) = gateway.config.connection(&name) else {
        return failure(Failure::not_found(format!(
            "no connection named {name} is in force"
        )));
    };
    match crate::operate::probe(c, &gateway.paths()).await {
        Ok((library, items)) => {
            Json(json!({ "name": name, "ok": true, "library": library, "root_items": items }))
                .into_response()
        }
        Err(error) => Json(json!({ "name": name, "ok": false, "error": error })).into_response(),
    }
}

#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", responses((status = 200, description = "The logged-in connections: {sessions: [Session]}")))]
pub async fn sessions(Extract(state): Extract<Arc<State>>) -> Response {
    Json(json!({ "sessions": state.gateway().admission.sessions() })).into_response()
}

#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = u64, Path, description = "The session's id")), responses((status = 204, description = "Closed"), (status = 404, description = "No such session", body = ErrorBody)))]
pub async fn kick(Extract(state): Extract<Arc<State>>, Path(id): Path<u64>) -> Response {
    if state
        .gateway()
        .admission
        .kick(id, "closed through the admin API")
    {
        StatusCode::NO_CONTENT.into_response()
    } else {
        failure(Failure::not_found(format!("no session {id}")))
    }
}

async fn get(state: &State, section: Section, name: &str) -> Response {
    match state.gateway().store.get(section, name).await {
        Ok(Some(record)) => Json(view(state, section, &record)).into_response(),
        Ok(None) => failure(Failure::not_found(format!(
            "no {} named {name}",
            section.one()
        ))),
        Err(e) => failure(Failure::store(e)),
    }
}

async fn create(
    state: &State,
    section: Section,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return failure(Failure::bad_json(e)),
    };
    let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_string) else {
        return failure(Failure::invalid("name", "required"));
    };
    save(state, section, &name, body, true).await
}

async fn put(
    state: &State,
    section: Section,
    name: &str,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(body)) => save(state, section, name, body, false).await,
        Err(e) => failure(Failure::bad_json(e)),
    }
}

/// Saves `body` as `name` of `section` (`create`: only if there is none) and puts it in force;
/// a saved connection is enabled again.
async fn save(state: &State, section: Section, name: &str, body: Value, create: bool) -> Response {
    let Value::Object(fields) = body else {
        return failure(Failure::invalid("", "the body must be a JSON object"));
    };
    let change = Change {
        section,
        name: name.to_string(),
        fields,
        create,
    };
    match save_record(state, change).await {
        Ok(record) => {
            let status = if record.revision == 1 {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(view(state, section, &record))).into_response()
        }
        Err(f) => failure(f),
    }
}

/// Stores `change` and puts it in force (the API's and the console's saves); a saved
/// connection is enabled again, changed or not.
pub async fn save_record(state: &State, change: Change) -> Result<Record, Failure> {
    let gateway = state.gateway();
    let section = change.section;
    let name = change.name.clone();
    let record = control::save(
        &gateway.store,
        &gateway.config,
        Some(&gateway.events),
        change,
    )
    .await?;
    let saved = match section {
        Section::Connections => vec![name.clone()],
        _ => Vec::new(),
    };
    let what = format!("{} {name}", section.one());
    state
        .shared
        .refresh(&what, &saved)
        .await
        .map_err(Failure::internal)?;
    Ok(record)
}

async fn delete(state: &State, section: Section, name: &str) -> Response {
    match delete_record(state, section, name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(f) => failure(f),
    }
}

/// Deletes record `name` of `section` and puts the change in force.
pub async fn delete_record(state: &State, section: Section, name: &str) -> Result<(), Failure> {
    control::delete(&state.gateway().store, section, name).await?;
    let what = format!("{} {name}", section.one());
    state
        .shared
        .refresh(&what, &[])
        .await
        .map_err(Failure::internal)
}

/// [`control::view`], in force or not in the gateway in force.
fn view(state: &State, section: Section, record: &Record) -> Value {
    let config = &state.gateway().config;
    let in_force = match section {
        Section::Users => config.users.iter().any(|u| u.name == record.name),
        Section::Connections => config.connection(&record.name).is_some(),
        Section::Syncs => config.syncs.iter().any(|j| j.name == record.name),
    };
    control::view(section, record, Some(in_force))
}
