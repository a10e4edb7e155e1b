//! The API's users and sessions: users are records in the state store, written with the same
//! keys as `[[users]]` in the file and validated by the same code, put in force at once (no
//! reload); sessions are the logged-in connections, each of which can be closed.
//!
//! - `GET /api/v1/users`, `GET /api/v1/users/{name}`: without password hashes;
//! - `POST /api/v1/users` (create; 409 when the name is taken), `PUT /api/v1/users/{name}`
//!   (create or replace): the body is the user as the file would declare it, with `password`
//!   in clear (hashed here with argon2id, never stored or returned as given) or a
//!   `password_hash`; neither keeps the password stored;
//! - `DELETE /api/v1/users/{name}`: its open sessions are closed;
//! - a user the configuration file declares is read-only here: 409 naming the file;
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
use super::api::{Failure, failure};
use crate::session::control::{self, UserChange};
use crate::state::records::{Kind, Record};

pub async fn list_users(Extract(state): Extract<Arc<State>>) -> Response {
    let gateway = state.gateway();
    match gateway.store.list(Kind::Users).await {
        Ok(users) => {
            let users: Vec<Value> = users.iter().map(|u| view(&state, u)).collect();
            Json(json!({ "users": users })).into_response()
        }
        Err(e) => failure(Failure::store(e)),
    }
}

pub async fn get_user(Extract(state): Extract<Arc<State>>, Path(name): Path<String>) -> Response {
    match state.gateway().store.get(Kind::Users, &name).await {
        Ok(Some(user)) => Json(view(&state, &user)).into_response(),
        Ok(None) => failure(Failure::not_found(format!("no user named {name}"))),
        Err(e) => failure(Failure::store(e)),
    }
}

pub async fn create_user(
    Extract(state): Extract<Arc<State>>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return failure(Failure::bad_json(e)),
    };
    let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_string) else {
        return failure(Failure::invalid("name", "required"));
    };
    save_user(&state, &name, body, true).await
}

pub async fn put_user(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    match body {
        Ok(Json(body)) => save_user(&state, &name, body, false).await,
        Err(e) => failure(Failure::bad_json(e)),
    }
}

pub async fn delete_user(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
) -> Response {
    if let Err(refusal) = control::delete_user(&state.gateway().store, &name).await {
        return failure(Failure::from(refusal));
    }
    if let Err(why) = state.shared.refresh(&format!("user {name}"), &[]).await {
        return failure(Failure::internal(why));
    }
    StatusCode::NO_CONTENT.into_response()
}

pub async fn sessions(Extract(state): Extract<Arc<State>>) -> Response {
    Json(json!({ "sessions": state.gateway().admission.sessions() })).into_response()
}

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

/// Saves `body` as user `name` (`create`: only if there is none) and puts it in force.
async fn save_user(state: &State, name: &str, body: Value, create: bool) -> Response {
    let Value::Object(fields) = body else {
        return failure(Failure::invalid("", "the body must be a JSON object"));
    };
    let gateway = state.gateway();
    let change = UserChange {
        name: name.to_string(),
        fields,
        create,
    };
    let user = match control::save_user(&gateway.store, &gateway.config, change).await {
        Ok(user) => user,
        Err(refusal) => return failure(Failure::from(refusal)),
    };
    if let Err(why) = state.shared.refresh(&format!("user {name}"), &[]).await {
        return failure(Failure::internal(why));
    }
    let status = if user.revision == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(view(state, &user))).into_response()
}

/// [`control::user_view`], in force or not in the gateway in force.
fn view(state: &State, user: &Record) -> Value {
    let in_force = state
        .gateway()
        .config
        .users
        .iter()
        .any(|u| u.name == user.name);
    control::user_view(user, Some(in_force))
}
