//! Sync jobs: the list with each job's last run, the form (direction, after copying, interval,
//! conflict policy, deletion guard, excludes, names), run now, a dry run with its plan, and the
//! history of runs with their counts and problems.

use std::sync::Arc;

use axum::extract::{Path, Query, State as Extract};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use serde_json::{Map, Value as Json, json};

use super::connections::names;
use super::picker::{missing_folder, normalize};
use super::{Fields, Posted, Signed, delete_page, enc, message, page, see, ser, stored};
use crate::admin::State;
use crate::admin::records::save_record;
use crate::config::Section;
use crate::session::control::Change;
use crate::sync::store::RunRecord;

/// The runs the history shows.
const HISTORY: usize = 30;

fn run_view(r: &RunRecord) -> Value {
    let c = &r.counts;
    context! {
        id => r.id,
        started => r.started,
        ended => r.ended,
        outcome => r.outcome.map(|o| o.as_str()).unwrap_or("running"),
        message => r.message.clone(),
        uploaded => c.uploaded,
        downloaded => c.downloaded,
        deleted => c.deleted_local + c.deleted_remote,
        conflicts => c.conflicts,
        skipped => c.skipped,
        errors => c.errors,
        bytes_up => c.bytes_up,
        bytes_down => c.bytes_down,
    }
}

/// `GET /console/syncs`.
pub async fn list(Extract(state): Extract<Arc<State>>, signed: Signed) -> Response {
    let gateway = state.gateway();
    let records = match gateway.store.list(Section::Syncs).await {
        Ok(records) => records,
        Err(e) => return message(&state, &signed, "Sync jobs", &e.to_string(), "/console/").await,
    };
    let store = state.sync_store();
    let mut rows = Vec::new();
    for r in &records {
        let f = r.record.as_object().cloned().unwrap_or_default();
        let last = store
            .runs(&r.name, 1)
            .await
            .ok()
            .and_then(|runs| runs.first().map(run_view));
        let problems = store.problems(&r.name).await.map(|p| p.len()).unwrap_or(0);
        rows.push(context! {
            name => r.name.clone(),
            direction => ser(f.get("direction")),
            after_copy => f.get("after_copy").and_then(Json::as_str).unwrap_or("keep"),
            local => ser(f.get("local")),
            connection => ser(f.get("connection")),
            remote => ser(f.get("remote")),
            interval => f.get("interval").and_then(Json::as_str).unwrap_or("5m"),
            enabled => f.get("enabled").and_then(Json::as_bool).unwrap_or(true),
            last => last,
            problems => problems,
            managed_by => r.managed_by.clone(),
        });
    }
    page(
        &state,
        &signed,
        "syncs.html",
        context! { title => "Sync jobs", nav => "syncs", rows => rows, refresh => 15 },
    )
    .await
}

#[derive(serde::Deserialize, Default)]
pub struct Prefill {
    connection: Option<String>,
    remote: Option<String>,
    queued: Option<String>,
}

/// `GET /console/syncs/new`.
pub async fn new(
    Extract(state): Extract<Arc<State>>,
    signed: Signed,
    Query(q): Query<Prefill>,
) -> Response {
    let mut fields = Map::new();
    if let Some(c) = q.connection {
        fields.insert("connection".into(), json!(c));
        fields.insert(
            "remote".into(),
            json!(normalize(q.remote.as_deref().unwrap_or("/"))),
        );
    }
    form(&state, &signed, None, fields, None).await
}

/// `GET /console/syncs/{name}`: the job, its history and problems.
pub async fn show(
    Extract(state): Extract<Arc<State>>,
    signed: Signed,
    Path(name): Path<String>,
    Query(q): Query<Prefill>,
) -> Response {
    match state.gateway().store.get(Section::Syncs, &name).await {
        Ok(Some(record)) => {
            let mut fields = record.record.as_object().cloned().unwrap_or_default();
            if let Some(c) = q.connection {
                fields.insert("connection".into(), json!(c));
                fields.insert(
                    "remote".into(),
                    json!(normalize(q.remote.as_deref().unwrap_or("/"))),
                );
            }
            let extra = context! { managed_by => record.managed_by, queued => q.queued.is_some() };
            form(&state, &signed, Some(name), fields, Some(extra)).await
        }
        Ok(None) => {
            message(
                &state,
                &signed,
                "Not found",
                &format!("There is no sync job {name}."),
                "/console/syncs",
            )
            .await
        }
        Err(e) => {
            message(
                &state,
                &signed,
                "Sync jobs",
                &e.to_string(),
                "/console/syncs",
            )
            .await
        }
    }
}

async fn form(
    state: &State,
    signed: &Signed,
    name: Option<String>,
    fields: Map<String, Json>,
    extra: Option<Value>,
) -> Response {
    let (runs, problems) = match &name {
        Some(n) => {
            let store = state.sync_store();
            let runs: Vec<Value> = store
                .runs(n, HISTORY)
                .await
                .unwrap_or_default()
                .iter()
                .map(run_view)
                .collect();
            let problems: Vec<Value> = store
                .problems(n)
                .await
                .unwrap_or_default()
                .iter()
                .map(|(p, first, _)| context! { side => p.side.to_string(), path => p.path.clone(), reason => p.reason.clone(), since => first })
                .collect();
            (runs, problems)
        }
        None => (Vec::new(), Vec::new()),
    };
    let max_delete = fields.get("max_delete").and_then(Json::as_object);
    let back = match &name {
        Some(n) => format!("/console/syncs/{}", enc(n)),
        None => "/console/syncs/new".into(),
    };
    let ctx = context! {
        title => name.clone().unwrap_or_else(|| "New sync job".into()),
        nav => "syncs",
        name => name,
        local => ser(fields.get("local")),
        connection => ser(fields.get("connection")),
        remote => ser(fields.get("remote")),
        direction => fields.get("direction").and_then(Json::as_str).unwrap_or("push"),
        after_copy => fields.get("after_copy").and_then(Json::as_str).unwrap_or("keep"),
        interval => fields.get("interval").and_then(Json::as_str).unwrap_or("5m"),
        conflict => fields.get("conflict").and_then(Json::as_str).unwrap_or("keep-both"),
        names_option => fields.get("names").and_then(Json::as_str).unwrap_or("encode"),
        max_delete_percent => ser(max_delete.and_then(|m| m.get("percent"))),
        max_delete_count => ser(max_delete.and_then(|m| m.get("count"))),
        exclude => fields.get("exclude").and_then(Json::as_array).map(|v| v.iter().filter_map(Json::as_str).collect::<Vec<_>>().join("\n")).unwrap_or_default(),
        enabled => fields.get("enabled").and_then(Json::as_bool).unwrap_or(true),
        connections => names(state).await,
        runs => runs,
        problems => problems,
        back => back,
        ..extra.unwrap_or_default()
    };
    page(state, signed, "sync.html", ctx).await
}

/// The record the form describes, over the stored `fields`.
fn record(form: &Fields, mut fields: Map<String, Json>) -> Map<String, Json> {
    for key in [
        "local",
        "connection",
        "direction",
        "after_copy",
        "interval",
        "conflict",
        "names",
    ] {
        match form.some(key) {
            Some(v) => {
                fields.insert(key.into(), json!(v));
            }
            None => {
                fields.remove(key);
            }
        }
    }
    fields.insert("remote".into(), json!(normalize(form.get("remote"))));
    fields.insert("enabled".into(), json!(form.on("enabled")));
    let mut max_delete = Map::new();
    for key in ["percent", "count"] {
        if let Ok(n) = form.get(&format!("max_delete_{key}")).parse::<u64>() {
            max_delete.insert(key.into(), json!(n));
        }
    }
    if max_delete.is_empty() {
        fields.remove("max_delete");
    } else {
        fields.insert("max_delete".into(), Json::Object(max_delete));
    }
    let exclude: Vec<&str> = form
        .raw("exclude")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    fields.insert("exclude".into(), json!(exclude));
    fields
}

/// `POST /console/syncs`.
pub async fn create(
    Extract(state): Extract<Arc<State>>,
    Posted { signed, form }: Posted,
) -> Response {
    let name = form.get("name").to_string();
    store(&state, &signed, name, record(&form, Map::new()), true).await
}

/// `POST /console/syncs/{name}`.
pub async fn save(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    Posted { signed, form }: Posted,
) -> Response {
    let stored = match stored(&state, Section::Syncs, &name).await {
        Ok(fields) => fields,
        Err(e) => return message(&state, &signed, "Sync jobs", &e, "/console/syncs").await,
    };
    store(&state, &signed, name, record(&form, stored), false).await
}

async fn store(
    state: &State,
    signed: &Signed,
    name: String,
    fields: Map<String, Json>,
    create: bool,
) -> Response {
    let missing = match (
        fields.get("connection").and_then(Json::as_str),
        fields.get("remote").and_then(Json::as_str),
    ) {
        (Some(c), Some(remote)) => missing_folder(state, c, remote).await,
        _ => None,
    };
    let saved = match missing {
        Some(why) => Err((why, Some("remote".to_string()))),
        None => {
            let change = Change {
                section: Section::Syncs,
                name: name.clone(),
                fields: fields.clone(),
                create,
            };
            save_record(state, change)
                .await
                .map_err(|f| (f.message().to_string(), f.field().map(str::to_string)))
        }
    };
    match saved {
        Ok(_) => {
            tracing::info!(admin = %signed.admin, job = %name, "console: sync job saved");
            see(&format!("/console/syncs/{}", enc(&name)))
        }
        Err((message, field)) => {
            let extra = context! { error => context! { message => message, field => field }, new_name => name.clone() };
            let mut response = form(
                state,
                signed,
                (!create).then_some(name),
                fields,
                Some(extra),
            )
            .await;
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            response
        }
    }
}

/// `POST /console/syncs/{name}/delete`.
pub async fn delete(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    delete_page(&state, &signed, Section::Syncs, &name, "/console/syncs").await
}

/// `POST /console/syncs/{name}/run`: queues a run now (on whichever instance holds the job).
pub async fn run(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    let back = format!("/console/syncs/{}", enc(&name));
    if !state.gateway().triggers.run_now(&name) {
        return message(
            &state,
            &signed,
            "Not run",
            &crate::sync::command::disabled(&name),
            &back,
        )
        .await;
    }
    tracing::info!(admin = %signed.admin, job = %name, "console: sync run queued");
    see(&format!("{back}?queued=1"))
}

/// `POST /console/syncs/{name}/plan`: a dry run: what a run would do now, changing nothing.
pub async fn plan(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    let back = format!("/console/syncs/{}", enc(&name));
    let gateway = state.gateway();
    let Some(job) = gateway.config.syncs.iter().find(|j| j.name == name) else {
        return message(
            &state,
            &signed,
            "Dry run",
            &format!("No sync job {name} is in force."),
            &back,
        )
        .await;
    };
    let Some(connection) = gateway.connections.get(&job.connection) else {
        return message(
            &state,
            &signed,
            "Dry run",
            "Its connection is not in force.",
            &back,
        )
        .await;
    };
    let options = crate::sync::run::Options {
        dry_run: true,
        ..Default::default()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let report = crate::sync::run::run(
        job,
        connection,
        &state.sync_store(),
        &gateway.paths(),
        options,
        &crate::sync::run::Quiet,
        &stop,
    )
    .await;
    let text = match report {
        Ok(report) => {
            let mut lines: Vec<String> = report
                .actions
                .iter()
                .map(|a| format!("would {:<9} {}", crate::sync::command::verb(a), a.path()))
                .collect();
            if lines.is_empty() {
                lines.push("Nothing to do: both sides agree.".into());
            }
            for p in &report.problems {
                lines.push(format!("skipped {} ({}): {}", p.path, p.side, p.reason));
            }
            lines.join("\n")
        }
        Err(e) => format!("The dry run failed: {e}"),
    };
    message(&state, &signed, &format!("Dry run of {name}"), &text, &back).await
}
