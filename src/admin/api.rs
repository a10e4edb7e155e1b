//! The JSON API and the metrics scrape.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State as Extract};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::State;
use super::metrics::{self, ConnectionFigures, Live, SyncFigures};
use crate::connections::health;
use crate::session::control::Refusal;

/// An API error: `{"error": {"code", "message", "field"}}` with its status.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl Failure {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::CONFLICT, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// A value of `field` is not acceptable (`field` empty: the body as a whole).
    pub fn invalid(field: &str, message: impl Into<String>) -> Failure {
        Failure::from(Refusal::invalid(field, message))
    }

    pub fn bad_json(rejection: axum::extract::rejection::JsonRejection) -> Failure {
        Failure::new(rejection.status(), "bad_request", rejection.body_text())
    }

    pub fn store(error: crate::state::Error) -> Failure {
        Failure::from(Refusal::from(error))
    }

    /// The message, for a person.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The field of the record at fault, if the failure is about one.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        let message = refusal.to_string();
        match refusal {
            Refusal::Managed { .. } => Failure::conflict("managed_by_config", message),
            Refusal::Exists(_) => Failure::conflict("exists", message),
            Refusal::InUse(_) => Failure::conflict("in_use", message),
            Refusal::NotFound(_) => Failure::not_found(message),
            Refusal::Invalid { field, .. } => Failure {
                field,
                ..Failure::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            },
            Refusal::Failed(_) => Failure::internal(message),
        }
    }
}

/// What every error of the API answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// `not_found`, `invalid`, `exists`, `managed_by_config`, `in_use`, `conflict`,
    /// `bad_request`, `internal`.
    pub code: String,
    pub message: String,
    /// For `invalid`: the key within the record (e.g. `mounts[0].connection`).
    pub field: Option<String>,
}

pub fn failure(f: Failure) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: f.code.to_string(),
            message: f.message,
            field: f.field,
        },
    };
    (f.status, Json(body)).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::CONFLICT => "conflict",
        StatusCode::BAD_REQUEST => "bad_request",
        _ => "internal",
    };
    failure(Failure::new(status, code, message))
}

pub async fn metrics(
    Extract(state): Extract<Arc<State>>,
    request: axum::http::HeaderMap,
) -> Response {
    let accept = request.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = metrics::Format::negotiate(accept);
    let mut live = Live {
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        ..Live::default()
    };
    let gateway = state.gateway();
    live.queue = gateway.queue.stats();
    live.notifications = state.shared.notifier.figures().snapshot();
    let mut names: Vec<&String> = gateway.connections.keys().collect();
    names.sort();
    for name in names {
        live.connections
            .push(ConnectionFigures::read(&gateway.connections[name]));
    }
    let store = state.sync_store();
    for job in &state.gateway().config.syncs {
        let (runs_by_outcome, totals) = store.totals(&job.name).await.unwrap_or_default();
        live.syncs.push(SyncFigures {
            job: job.name.clone(),
            runs_by_outcome,
            totals,
            last_success: store.last_success(&job.name).await.ok().flatten(),
        });
    }
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        metrics::render_as(format, &state.gateway().metrics, live),
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "status", responses((status = 200, description = "Open alerts, oldest first: {alerts: [{time, connection, code, message, action}]}")))]
pub async fn alerts(Extract(state): Extract<Arc<State>>) -> Response {
    match health::open_alerts(&state.gateway().store).await {
        Ok(alerts) => Json(json!({ "alerts": alerts })).into_response(),
        Err(e) => failure(Failure::internal(format!("reading alerts: {e}"))),
    }
}

/// `GET /api/v1/cluster`: the instances serving from the state store.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "status",
    responses((status = 200, description = "{cluster_id, engine, gone_after_s, instances: [{id, host, pid, version, admin, status (up, stopped, gone), started, last_heartbeat, heartbeat_age_s, stopped, sessions, uploads, jobs}]}")))]
pub async fn cluster(Extract(state): Extract<Arc<State>>) -> Response {
    match crate::cluster::status(&state.gateway().store).await {
        Ok(status) => Json(status).into_response(),
        Err(e) => failure(Failure::store(e)),
    }
}

/// `GET /api/v1/alerts/history`: alerts open and cleared, newest first.
#[utoipa::path(get, path = "/api/v1/alerts/history", tag = "status", params(
    ("source" = Option<String>, Query, description = "Only the alerts of this connection (or sync:JOB, queue:ID)"),
    ("before" = Option<String>, Query, description = "Only alerts raised before this time (RFC 3339): the previous page's last time"),
    ("limit" = Option<usize>, Query, description = "How many (1-1000, default 100)")),
    responses((status = 200, description = "{alerts: [{time, connection, code, message, action, cleared, cleared_why}]}, newest first; cleared is null while open"), (status = 422, description = "A bad parameter", body = ErrorBody)))]
pub async fn alert_history(
    Extract(state): Extract<Arc<State>>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let limit = match limit(&query) {
        Ok(limit) => limit,
        Err(f) => return failure(f),
    };
    let before = match query.get("before").map(|t| moment("before", t)).transpose() {
        Ok(before) => before,
        Err(f) => return failure(f),
    };
    let store = &state.gateway().store;
    match health::history(
        store,
        query.get("source").map(String::as_str),
        before,
        limit,
    )
    .await
    {
        Ok(alerts) => Json(json!({ "alerts": alerts })).into_response(),
        Err(e) => failure(Failure::internal(format!("reading alerts: {e}"))),
    }
}

/// The `limit` parameter: 1-1000, 100 when absent.
fn limit(query: &std::collections::HashMap<String, String>) -> Result<i64, Failure> {
    match query.get("limit").map(|l| l.parse::<i64>()) {
        None => Ok(100),
        Some(Ok(n)) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(Failure::invalid("limit", "must be a number from 1 to 1000")),
    }
}

/// A time parameter, RFC 3339.
fn moment(key: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>, Failure> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|_| Failure::invalid(key, "must be a time like 2026-12-01T08:00:00Z"))
}

/// `GET /api/v1/audit`: audit events from the state store, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "status", params(
    ("user" = Option<String>, Query, description = "Only this user's events"),
    ("action" = Option<String>, Query, description = "login, upload, download, delete or rename"),
    ("outcome" = Option<String>, Query, description = "ok, failed or denied"),
    ("since" = Option<String>, Query, description = "Only events at or after this time (RFC 3339)"),
    ("before" = Option<String>, Query, description = "Only events before this time (RFC 3339)"),
    ("after" = Option<String>, Query, description = "Only events older than the previous page's last: its answer's next"),
    ("limit" = Option<usize>, Query, description = "How many (1-1000, default 100)")),
    responses((status = 200, description = "{events: [...], next}: the audit lines, newest first; next (when more may be older) is the after of the next page"), (status = 422, description = "A bad parameter", body = ErrorBody)))]
pub async fn audit(
    Extract(state): Extract<Arc<State>>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let limit = match limit(&query) {
        Ok(limit) => limit,
        Err(f) => return failure(f),
    };
    let mut times = [None, None];
    for (slot, key) in times.iter_mut().zip(["since", "before"]) {
        if let Some(text) = query.get(key) {
            match moment(key, text) {
                Ok(time) => *slot = Some(time.timestamp_millis()),
                Err(f) => return failure(f),
            }
        }
    }
    let after = match query
        .get("after")
        .map(|a| crate::state::audit::parse_cursor(a))
    {
        None => None,
        Some(Some(after)) => Some(after),
        Some(None) => {
            return failure(Failure::invalid(
                "after",
                "must be the next of a previous answer",
            ));
        }
    };
    let selected = crate::state::audit::Query {
        after,
        user: query.get("user").cloned(),
        action: query.get("action").cloned(),
        outcome: query.get("outcome").cloned(),
        since_ms: times[0],
        before_ms: times[1],
        limit,
    };
    let entries = match state.gateway().store.audit(&selected).await {
        Ok(entries) => entries,
        Err(e) => return failure(Failure::internal(format!("reading the audit: {e}"))),
    };
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(crate::state::audit::Entry::cursor))
        .flatten();
    let events: Vec<Value> = entries
        .iter()
        .filter_map(|e| serde_json::from_str(&e.event).ok())
        .collect();
    Json(json!({ "events": events, "next": next })).into_response()
}

/// Each connection's state for the API and the status page.
pub fn connection_rows(state: &State) -> Vec<Value> {
    let gateway = state.gateway();
    let mut rows: Vec<Value> = gateway
        .config
        .connections
        .iter()
        .filter_map(|c| {
            let connection = gateway.connections.get(&c.name)?;
            let figures = ConnectionFigures::read(connection);
            Some(json!({
                "name": c.name,
                "state": if figures.up { "enabled" } else { "disabled" },
                "alert": connection.health.alert(),
                "site": format!("{}{}", c.site.host, c.site.path),
                "library": c.drive,
                "graph_requests": figures.by_status.iter().map(|(_, _, n)| n).sum::<u64>(),
                "throttled": figures.throttled,
            }))
        })
        .collect();
    rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    rows
}

#[utoipa::path(get, path = "/api/v1/connections", tag = "connections", responses((status = 200, description = "Each connection in force: state, alert, site, library, Graph requests, throttling")))]
pub async fn connections(Extract(state): Extract<Arc<State>>) -> Response {
    Json(json!({ "connections": connection_rows(&state) })).into_response()
}

#[utoipa::path(post, path = "/api/v1/connections/{name}/enable", tag = "connections", params(("name" = String, Path, description = "The connection's name")), responses((status = 200, description = "Enabled; its alert cleared"), (status = 404, description = "No such connection", body = ErrorBody)))]
pub async fn enable(Extract(state): Extract<Arc<State>>, Path(name): Path<String>) -> Response {
    let gateway = state.gateway();
    let Some(connection) = gateway.connections.get(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no connection named {name}"));
    };
    match connection
        .health
        .enable("enabled through the admin API")
        .await
    {
        Ok(changed) => {
            Json(json!({ "name": name, "state": "enabled", "changed": changed })).into_response()
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("saving the state: {e}"),
        ),
    }
}

/// Each sync job with its last run and open problems.
pub async fn sync_rows(state: &State) -> Vec<Value> {
    let store = state.sync_store();
    let mut rows = Vec::new();
    for job in &state.gateway().config.syncs {
        let last = store
            .runs(&job.name, 1)
            .await
            .ok()
            .and_then(|runs| runs.into_iter().next());
        let problems = store.problems(&job.name).await.unwrap_or_default();
        rows.push(json!({
                "name": job.name,
                "enabled": job.enabled,
                "direction": format!("{:?}", job.direction).to_lowercase(),
                "local": job.local,
                "connection": job.connection,
                "remote": job.remote,
                "interval_seconds": job.interval.as_secs(),
                "last_run": last.as_ref().map(run_json),
                "problems": problems.iter().map(|(p, first, _)| json!({
                    "side": p.side, "path": p.path, "reason": p.reason, "since": first,
                })).collect::<Vec<_>>(),
        }));
    }
    rows
}

/// One sync run as the API shows it.
fn run_json(r: &crate::sync::store::RunRecord) -> Value {
    json!({
        "started": r.started,
        "ended": r.ended,
        "outcome": r.outcome.map(|o| o.as_str()),
        "message": r.message,
        "uploaded": r.counts.uploaded,
        "downloaded": r.counts.downloaded,
        "deleted": r.counts.deleted_local + r.counts.deleted_remote,
        "conflicts": r.counts.conflicts,
        "errors": r.counts.errors,
    })
}

/// `GET /api/v1/syncs/{name}/runs?limit=N`: the job's last runs, newest first (default 50).
#[utoipa::path(get, path = "/api/v1/syncs/{name}/runs", tag = "syncs", params(("name" = String, Path, description = "The sync job's name"), ("limit" = Option<usize>, Query, description = "How many (1-1000, default 50)")), responses((status = 200, description = "The job's runs, newest first: {name, runs: [...]}"), (status = 404, description = "No such job in force", body = ErrorBody), (status = 422, description = "A bad limit", body = ErrorBody)))]
pub async fn sync_runs(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    if !state.gateway().config.syncs.iter().any(|j| j.name == name) {
        return error(
            StatusCode::NOT_FOUND,
            format!("no sync job named {name} is in force"),
        );
    }
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return failure(Failure::invalid("limit", "must be a number from 1 to 1000"));
        }
    };
    let runs = match state.sync_store().runs(&name, limit).await {
        Ok(runs) => runs,
        Err(e) => return failure(Failure::internal(format!("reading the runs: {e}"))),
    };
    let runs: Vec<Value> = runs.iter().map(run_json).collect();
    Json(json!({ "name": name, "runs": runs })).into_response()
}

#[utoipa::path(get, path = "/api/v1/syncs", tag = "syncs", responses((status = 200, description = "Each job in force with its last run and open problems")))]
pub async fn syncs(Extract(state): Extract<Arc<State>>) -> Response {
    Json(json!({ "syncs": sync_rows(&state).await })).into_response()
}

#[utoipa::path(post, path = "/api/v1/syncs/{name}/run", tag = "syncs", params(("name" = String, Path, description = "The sync job's name")), responses((status = 202, description = "Queued"), (status = 404, description = "No such job", body = ErrorBody), (status = 409, description = "The job is disabled", body = ErrorBody)))]
pub async fn run_sync(Extract(state): Extract<Arc<State>>, Path(name): Path<String>) -> Response {
    if !state.gateway().config.syncs.iter().any(|j| j.name == name) {
        return error(StatusCode::NOT_FOUND, format!("no sync job named {name}"));
    }
    if state.gateway().triggers.run_now(&name) {
        (
            StatusCode::ACCEPTED,
            Json(json!({ "name": name, "queued": true })),
        )
            .into_response()
    } else {
        error(StatusCode::CONFLICT, crate::sync::command::disabled(&name))
    }
}

#[utoipa::path(post, path = "/api/v1/reload", tag = "status", responses((status = 200, description = "Reloaded: {reloaded, summary}"), (status = 400, description = "Refused, with the reason; the configuration in force stays", body = ErrorBody)))]
pub async fn reload(Extract(state): Extract<Arc<State>>) -> Response {
    match state.shared.reload().await {
        Ok(summary) => Json(json!({ "reloaded": true, "summary": summary })).into_response(),
        Err(why) => {
            tracing::error!(%why, "configuration reload refused; the old configuration stays in force");
            error(StatusCode::BAD_REQUEST, why)
        }
    }
}

#[utoipa::path(get, path = "/api/v1/lockouts", tag = "lockouts", responses((status = 200, description = "Logins locked after repeated failures")))]
pub async fn lockouts(Extract(state): Extract<Arc<State>>) -> Response {
    match state.gateway().lockout.list().await {
        Ok(locked) => Json(json!({ "lockouts": locked })).into_response(),
        Err(e) => failure(Failure::store(e)),
    }
}

/// Ends the login locks of one user (every address).
#[utoipa::path(post, path = "/api/v1/lockouts/{user}/clear", tag = "lockouts", params(("user" = String, Path, description = "The user")), responses((status = 200, description = "{user, cleared}")))]
pub async fn clear_lockouts(
    Extract(state): Extract<Arc<State>>,
    Path(user): Path<String>,
) -> Response {
    match state.gateway().lockout.clear(Some(&user)).await {
        Ok(cleared) => Json(json!({ "user": user, "cleared": cleared })).into_response(),
        Err(e) => failure(Failure::store(e)),
    }
}

/// Ends everyone's login locks.
#[utoipa::path(post, path = "/api/v1/lockouts/clear", tag = "lockouts", responses((status = 200, description = "{user: null, cleared}")))]
pub async fn clear_all_lockouts(Extract(state): Extract<Arc<State>>) -> Response {
    match state.gateway().lockout.clear(None).await {
        Ok(cleared) => Json(json!({ "user": null, "cleared": cleared })).into_response(),
        Err(e) => failure(Failure::store(e)),
    }
}
