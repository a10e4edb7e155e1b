//! The control API under `/_sim/` (statistics, faults, revocation, locks, device-code approval,
//! browser sign-ins, expiry of tokens, authorization codes, upload sessions and download URLs)
//! and the device-login page. Loopback callers only; no authentication.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth;
use super::authorize::Record;
use super::error::GraphError;
use super::state::{Faults, Sim};

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_sim/stats", get(stats))
        .route("/_sim/stats/reset", post(reset_stats))
        .route(
            "/_sim/faults",
            get(faults).post(set_faults).delete(clear_faults),
        )
        .route(
            "/_sim/apps/{client_id}/certificate",
            post(upload_certificate),
        )
        .route("/_sim/apps/{client_id}/{action}", post(app_action))
        .route("/_sim/lock", post(lock))
        .route("/_sim/unlock", post(unlock))
        .route("/_sim/devicecode/approve", post(approve))
        .route("/_sim/tokens/expire", post(expire_tokens))
        .route("/_sim/signins", get(signins).delete(clear_signins))
        .route("/_sim/codes/expire", post(expire_codes))
        .route("/_sim/uploads/expire", post(expire_uploads))
        .route("/_sim/downloads/expire", post(expire_downloads))
        .route("/_sim/delta/reset", post(reset_delta))
        .route("/_sim/drives", get(drives))
        .route("/devicelogin", get(login_page).post(login_submit))
        .route("/_sim/{*rest}", delete(unknown).get(unknown).post(unknown))
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, GraphError> {
    serde_json::from_slice(body)
        .map_err(|e| GraphError::invalid(format!("Invalid control request: {e}")))
}

async fn stats(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(sim.stats.to_json())
}

async fn reset_stats(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.stats.reset();
    StatusCode::NO_CONTENT
}

async fn faults(State(sim): State<Arc<Sim>>) -> Json<Faults> {
    Json(sim.faults.lock().clone())
}

async fn set_faults(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let new = match json_body::<Faults>(&body) {
        Ok(new) => new,
        Err(e) => return e.into_response(),
    };
    let mut faults = sim.faults.lock();
    let mut merged = faults.clone();
    merged.merge(new);
    match merged.link(sim.network.base()) {
        Ok(link) => {
            sim.network.set(link);
            *faults = merged;
            Json(faults.clone()).into_response()
        }
        Err(e) => GraphError::invalid(format!("Invalid control request: {e}")).into_response(),
    }
}

/// Clears every fault; the link goes back to the command line's.
async fn clear_faults(State(sim): State<Arc<Sim>>) -> StatusCode {
    let mut faults = sim.faults.lock();
    *faults = Faults::default();
    sim.network.set(sim.network.base());
    StatusCode::NO_CONTENT
}

async fn app_action(
    State(sim): State<Arc<Sim>>,
    Path((client_id, action)): Path<(String, String)>,
) -> Response {
    let revoked = match action.as_str() {
        "revoke" => true,
        "restore" => false,
        _ => return unknown().await,
    };
    let mut world = sim.world.lock();
    let mut found = false;
    for app in world
        .tenants
        .iter_mut()
        .flat_map(|t| t.apps.iter_mut())
        .filter(|a| a.client_id == client_id)
    {
        app.revoked = revoked;
        found = true;
    }
    if found {
        StatusCode::NO_CONTENT.into_response()
    } else {
        GraphError::not_found().into_response()
    }
}

/// `POST /_sim/apps/{client_id}/certificate` with a PEM certificate as the body: the
/// certificate an administrator uploads to the app registration (Certificates & secrets);
/// it replaces the app's certificate.
async fn upload_certificate(
    State(sim): State<Arc<Sim>>,
    Path(client_id): Path<String>,
    body: Bytes,
) -> Response {
    let cert = match std::str::from_utf8(&body)
        .map_err(|e| e.to_string())
        .and_then(super::state::parse_cert)
    {
        Ok(cert) => cert,
        Err(why) => {
            return GraphError::invalid(format!("Not a PEM certificate: {why}")).into_response();
        }
    };
    let mut world = sim.world.lock();
    let mut apps = world
        .tenants
        .iter_mut()
        .flat_map(|t| t.apps.iter_mut())
        .filter(|a| a.client_id == client_id)
        .peekable();
    if apps.peek().is_none() {
        return GraphError::not_found().into_response();
    }
    for app in apps {
        app.cert = Some(cert.clone());
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct LockRequest {
    drive_id: String,
    path: String,
}

fn set_lock(sim: &Sim, body: &Bytes, locked: bool) -> Response {
    let request = match json_body::<LockRequest>(body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut world = sim.world.lock();
    let Some(drive) = world.drives.get_mut(&request.drive_id) else {
        return GraphError::not_found().into_response();
    };
    let segments: Vec<String> = request
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let id = match drive.resolve(&drive.root_id.clone(), &segments) {
        Ok(item) => item.id.clone(),
        Err(e) => return e.into_response(),
    };
    if locked {
        drive.locked.insert(id);
    } else {
        drive.locked.remove(&id);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn lock(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    set_lock(&sim, &body, true)
}

async fn unlock(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    set_lock(&sim, &body, false)
}

#[derive(Deserialize)]
struct Approval {
    user_code: String,
    user: Option<String>,
}

async fn approve(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    match json_body::<Approval>(&body) {
        Ok(a)
            if auth::approve(
                &sim,
                &a.user_code,
                a.user
                    .as_deref()
                    .unwrap_or("partner.admin@contoso.onmicrosoft.com"),
            ) =>
        {
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(_) => GraphError::not_found().into_response(),
        Err(e) => e.into_response(),
    }
}

async fn expire_tokens(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.token_generation.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

/// The browser sign-ins, oldest first: `[{user, client_id, prompt, picked_by, error?}]`.
async fn signins(State(sim): State<Arc<Sim>>) -> Json<Vec<Record>> {
    Json(sim.sign_ins.records())
}

async fn clear_signins(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.sign_ins.clear_records();
    StatusCode::NO_CONTENT
}

async fn expire_codes(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.sign_ins.expire_codes();
    StatusCode::NO_CONTENT
}

async fn expire_uploads(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.upload_generation.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

async fn expire_downloads(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.download_generation.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize, Default)]
struct DeltaReset {
    drive_id: Option<String>,
}

async fn reset_delta(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        DeltaReset::default()
    } else {
        match json_body::<DeltaReset>(&body) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        }
    };
    let mut world = sim.world.lock();
    for drive in world
        .drives
        .values_mut()
        .filter(|d| request.drive_id.as_ref().is_none_or(|id| *id == d.id))
    {
        drive.delta_epoch += 1;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn drives(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let world = sim.world.lock();
    let drives: Vec<Value> = world
        .sites
        .iter()
        .flat_map(|site| {
            let tenant = world.tenants.iter().find(|t| t.id == site.tenant_id).map(|t| t.name.clone());
            site.drives.iter().filter_map(|id| world.drives.get(id)).map(move |d| {
                json!({"id": d.id, "name": d.name, "site": format!("https://{}/sites/{}", site.hostname, site.name), "site_id": site.id, "tenant": tenant})
            })
        })
        .collect();
    Json(json!({ "value": drives }))
}

async fn unknown() -> Response {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "notFound",
        "No such control endpoint.",
    )
    .into_response()
}

async fn login_page() -> Html<&'static str> {
    Html(
        "<!doctype html><title>spgate sim: device login</title><h1>Sign in (simulated)</h1>\
         <p>Enter the code shown by the application.</p>\
         <form method=post><input name=user_code autofocus> <input name=user placeholder=user@contoso.onmicrosoft.com> <button>Approve</button></form>",
    )
}

async fn login_submit(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    struct Form {
        user_code: String,
        user: Option<String>,
    }
    let Ok(form) = serde_urlencoded::from_bytes::<Form>(&body) else {
        return (StatusCode::BAD_REQUEST, Html("<p>Missing code.</p>")).into_response();
    };
    let user = form
        .user
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "partner.admin@contoso.onmicrosoft.com".into());
    if auth::approve(&sim, &form.user_code, &user) {
        Html("<p>You have signed in. You may close this window.</p>").into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Html("<p>That code is unknown or has expired.</p>"),
        )
            .into_response()
    }
}
