//! The live views: the dashboard (connections, sync jobs, sessions, the upload queue, the
//! instances), alerts with their history, and activity: open sessions (kick), lockouts
//! (unlock), transfers from the audit (filtered by user, path, outcome and time) and the audit
//! downloaded as CSV or JSONL.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State as Extract};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use serde_json::Value as Json;

use super::{Posted, Signed, message, page, see, ser};
use crate::admin::State;
use crate::admin::api::{connection_rows, sync_rows};
use crate::connections::health::history;
use crate::state::audit::Query as AuditQuery;

/// How often the live views reload themselves (seconds).
const REFRESH: u32 = 10;

/// `GET /console/`: the dashboard.
pub async fn dashboard(Extract(state): Extract<Arc<State>>, signed: Signed) -> Response {
    let gateway = state.gateway();
    let queue = gateway.queue.stats();
    let cluster = crate::cluster::status(&gateway.store).await.ok();
    let ctx = context! {
        title => "Dashboard",
        nav => "dashboard",
        refresh => REFRESH,
        not_ready => state.not_ready().await,
        connections => ser(connection_rows(&state)),
        syncs => ser(sync_rows(&state).await),
        sessions => gateway.admission.sessions().len(),
        queue => context! { depth => queue.depth, bytes => queue.bytes, oldest => queue.oldest_seconds, quarantined => queue.quarantined },
        cluster => cluster.map(|c| ser(&c)),
    };
    page(&state, &signed, "dashboard.html", ctx).await
}

/// `GET /console/alerts`: the open alerts (what to do) and the history.
pub async fn alerts(Extract(state): Extract<Arc<State>>, signed: Signed) -> Response {
    let events = history(&state.gateway().store, None, None, 100)
        .await
        .unwrap_or_default();
    let past: Vec<Value> = events
        .iter()
        .filter(|e| e.cleared.is_some())
        .map(|e| {
            context! {
                source => e.alert.connection.clone(), code => e.alert.code.clone(), message => e.alert.message.clone(),
                time => e.alert.time.to_rfc3339(), cleared => e.cleared.map(|t| t.to_rfc3339()),
                cleared_why => e.cleared_why.clone(),
            }
        })
        .collect();
    page(
        &state,
        &signed,
        "alerts.html",
        context! { title => "Alerts", nav => "alerts", past => past, refresh => REFRESH },
    )
    .await
}

/// The audit query of the activity filters.
fn audit_query(q: &HashMap<String, String>, limit: i64) -> AuditQuery {
    let some = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let ms = |k: &str| {
        some(k).and_then(|t| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .map(|t| t.timestamp_millis())
                .ok()
                .or_else(|| {
                    // What a datetime-local input sends: taken as UTC.
                    chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M")
                        .ok()
                        .map(|t| t.and_utc().timestamp_millis())
                })
        })
    };
    AuditQuery {
        user: some("user"),
        action: some("action"),
        outcome: some("outcome"),
        since_ms: ms("since"),
        before_ms: ms("before"),
        after: None,
        limit,
    }
}

/// How many events a path filter reads at most (newest first) to find its matches.
const PATH_SCAN: usize = 200_000;
/// Events read per page while a path filter looks for matches.
const PATH_PAGE: i64 = 2_000;

/// The audit events the filters select, newest first, `limit` at most. The path filter (a
/// substring of the event's path) is applied to pages of the other filters' selection until
/// `limit` events match, the audit ends, or [`PATH_SCAN`] events were read.
async fn events(
    state: &State,
    q: &HashMap<String, String>,
    limit: i64,
) -> Result<Vec<Json>, String> {
    let store = &state.gateway().store;
    let path = q.get("path").map(|p| p.trim()).unwrap_or("");
    let mut query = audit_query(q, if path.is_empty() { limit } else { PATH_PAGE });
    let matches = |e: &Json| {
        path.is_empty()
            || e.get("path")
                .and_then(Json::as_str)
                .is_some_and(|p| p.contains(path))
    };
    let (mut found, mut read) = (Vec::new(), 0);
    loop {
        let entries = store.audit(&query).await.map_err(|e| e.to_string())?;
        read += entries.len();
        found.extend(
            entries
                .iter()
                .filter_map(|e| serde_json::from_str::<Json>(&e.event).ok())
                .filter(matches),
        );
        let last = entries.last().map(|e| (e.time_ms, e.seq));
        if path.is_empty()
            || found.len() as i64 >= limit
            || (entries.len() as i64) < query.limit
            || read >= PATH_SCAN
        {
            found.truncate(limit.max(0) as usize);
            return Ok(found);
        }
        query.after = last;
    }
}

/// `GET /console/activity`: sessions, lockouts, transfers.
pub async fn activity(
    Extract(state): Extract<Arc<State>>,
    signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let gateway = state.gateway();
    let sessions: Vec<Value> = gateway
        .admission
        .sessions()
        .iter()
        .map(|s| context! { id => s.id, user => s.user.clone(), protocol => s.protocol, peer => s.peer.to_string(), since => s.since.clone() })
        .collect();
    let locks: Vec<Value> = gateway
        .lockout
        .list()
        .await
        .unwrap_or_default()
        .iter()
        .map(|l| context! { user => l.user.clone(), addresses => l.addresses.to_string(), failures => l.failures, remaining_s => l.remaining_s })
        .collect();
    let (transfers, error) = match events(&state, &q, 200).await {
        Ok(events) => (events, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let query = serde_urlencoded::to_string(&q).unwrap_or_default();
    let ctx = context! {
        title => "Activity",
        nav => "activity",
        refresh => if q.is_empty() { Some(REFRESH) } else { None },
        sessions => sessions,
        locks => locks,
        transfers => ser(&transfers),
        error => error,
        filter => ser(&q),
        query => query,
    };
    page(&state, &signed, "activity.html", ctx).await
}

/// `GET /console/activity/audit.{csv,jsonl}`: the filtered audit (up to 100,000 events).
pub async fn audit(
    Extract(state): Extract<Arc<State>>,
    _signed: Signed,
    Path(format): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let events = match events(&state, &q, 100_000).await {
        Ok(events) => events,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
    };
    let (kind, body) = match format.as_str() {
        "jsonl" => {
            let mut out = String::new();
            for e in &events {
                out += &e.to_string();
                out.push('\n');
            }
            ("application/jsonl", out)
        }
        "csv" => ("text/csv; charset=utf-8", csv(&events)),
        _ => return (StatusCode::NOT_FOUND, "audit.csv or audit.jsonl\n").into_response(),
    };
    let file = format!("attachment; filename=\"spgate-audit.{format}\"");
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_DISPOSITION, file),
        ],
        body,
    )
        .into_response()
}

/// The columns of the CSV audit.
const CSV_COLUMNS: [&str; 14] = [
    "time",
    "action",
    "user",
    "protocol",
    "peer",
    "path",
    "to",
    "connection",
    "size",
    "item_id",
    "duration_ms",
    "outcome",
    "reason",
    "error",
];

/// Events as CSV (RFC 4180: fields with commas, quotes or line breaks quoted; a leading
/// `=`, `+`, `-` or `@` is prefixed with `'` so that a spreadsheet does not run it).
fn csv(events: &[Json]) -> String {
    let field = |v: Option<&Json>| -> String {
        let text = match v {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let text = if text.starts_with(['=', '+', '-', '@']) {
            format!("'{text}")
        } else {
            text
        };
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text
        }
    };
    let mut out = CSV_COLUMNS.join(",");
    out += "\r\n";
    for e in events {
        let row: Vec<String> = CSV_COLUMNS.iter().map(|c| field(e.get(*c))).collect();
        out += &row.join(",");
        out += "\r\n";
    }
    out
}

/// `POST /console/sessions/{id}/kick`.
pub async fn kick(
    Extract(state): Extract<Arc<State>>,
    Path(id): Path<u64>,
    Posted { signed, form }: Posted,
) -> Response {
    let why = format!("closed in the console by {}", signed.admin);
    if !state.gateway().admission.kick(id, &why) {
        return message(
            &state,
            &signed,
            "Not closed",
            &format!("Session {id} is no longer open."),
            "/console/activity",
        )
        .await;
    }
    tracing::info!(admin = %signed.admin, session = id, "console: session closed");
    see(super::picker::back_or(
        form.get("back"),
        "/console/activity",
    ))
}

/// `POST /console/lockouts/{user}/clear`.
pub async fn unlock(
    Extract(state): Extract<Arc<State>>,
    Path(user): Path<String>,
    Posted { signed, form }: Posted,
) -> Response {
    if let Err(e) = state.gateway().lockout.clear(Some(&user)).await {
        return message(
            &state,
            &signed,
            "Not unlocked",
            &e.to_string(),
            "/console/activity",
        )
        .await;
    }
    tracing::info!(admin = %signed.admin, %user, "console: lockout cleared");
    see(super::picker::back_or(
        form.get("back"),
        "/console/activity",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let events = vec![
            serde_json::json!({"time": "t", "user": "a,b", "path": "=cmd", "reason": "not_found", "error": "say \"hi\"", "size": 3}),
        ];
        let text = csv(&events);
        let row = text.lines().nth(1).unwrap();
        assert!(
            row.starts_with("t,,\"a,b\",,,'=cmd,,,3,,,,not_found,\"say \"\"hi\"\"\""),
            "{row}"
        );
    }
}
