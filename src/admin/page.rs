//! The status page at `/`: connections, open alerts, sync jobs; server-rendered HTML, no
//! scripts.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State as Extract;
use axum::response::Html;
use chrono::DateTime;
use html_escape::encode_text as esc;
use serde_json::Value;

use super::State;
use super::api::{connection_rows, sync_rows};
use crate::connections::health::{Alert, open_alerts};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}\
table{border-collapse:collapse;margin-bottom:2rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}\
.bad{color:#a00;font-weight:bold}.ok{color:#070}.alert{background:#fee;border:1px solid #c66;padding:.6rem;margin:.4rem 0}";

fn time(at: &Value) -> String {
    at.as_i64()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s).into_owned(),
        Value::Null => "-".into(),
        other => esc(&other.to_string()).into_owned(),
    }
}

pub async fn status(Extract(state): Extract<Arc<State>>) -> Html<String> {
    let found = Found {
        alerts: open_alerts(&state.gateway().store).await,
        not_ready: state.not_ready().await,
        syncs: sync_rows(&state).await,
        cluster: crate::cluster::status(&state.gateway().store).await,
    };
    let mut out = String::new();
    let _ = render(&state, found, &mut out);
    Html(out)
}

/// What the page shows that is read from the state store.
struct Found {
    alerts: crate::state::Result<Vec<Alert>>,
    not_ready: Vec<String>,
    syncs: Vec<Value>,
    cluster: crate::state::Result<Value>,
}

fn render(state: &State, found: Found, out: &mut String) -> std::fmt::Result {
    let Found {
        alerts,
        not_ready: reasons,
        syncs,
        cluster,
    } = found;
    write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>spgate status</title>\
         <style>{STYLE}</style></head><body><h1>spgate</h1>"
    )?;
    if reasons.is_empty() {
        write!(out, "<p class=\"ok\">Ready.</p>")?;
    } else {
        write!(out, "<p class=\"bad\">Not ready:</p><ul>")?;
        for r in &reasons {
            write!(out, "<li>{}</li>", esc(r))?;
        }
        write!(out, "</ul>")?;
    }
    write!(out, "<h2>Alerts</h2>")?;
    match alerts {
        Ok(alerts) if alerts.is_empty() => write!(out, "<p>No open alerts.</p>")?,
        Ok(alerts) => {
            for a in alerts {
                write!(
                    out,
                    "<div class=\"alert\"><b>{}</b> since {}: {} <i>({})</i><br>What to do: {}</div>",
                    esc(&a.connection),
                    a.time.format("%Y-%m-%d %H:%M UTC"),
                    esc(&a.message),
                    esc(&a.code),
                    esc(&a.action)
                )?;
            }
        }
        Err(e) => write!(
            out,
            "<p class=\"bad\">Cannot read the alerts: {}</p>",
            esc(&e.to_string())
        )?,
    }
    write!(
        out,
        "<h2>Connections</h2><table><tr><th>name</th><th>state</th><th>site</th><th>library</th>\
         <th>Graph requests</th><th>throttled</th></tr>"
    )?;
    for c in connection_rows(state) {
        let class = if c["state"] == "enabled" { "ok" } else { "bad" };
        write!(
            out,
            "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&c["name"]),
            text(&c["state"]),
            text(&c["site"]),
            text(&c["library"]),
            text(&c["graph_requests"]),
            text(&c["throttled"])
        )?;
    }
    let q = state.gateway().queue.stats();
    write!(
        out,
        "</table><h2>Upload queue</h2><p class=\"{}\">{} file(s), {} bytes waiting for SharePoint; \
         oldest {} s; {} quarantined (see <code>spgate queue list</code>).</p>",
        if q.quarantined == 0 { "ok" } else { "bad" },
        q.depth,
        q.bytes,
        q.oldest_seconds,
        q.quarantined
    )?;
    write!(out, "<h2>Sync jobs</h2>")?;
    if syncs.is_empty() {
        write!(out, "<p>No sync jobs configured.</p>")?;
    } else {
        write!(
            out,
            "<table><tr><th>job</th><th>direction</th><th>local</th><th>SharePoint</th>\
             <th>last run</th><th>outcome</th><th>up / down / deleted / conflicts / errors</th>\
             <th>problems</th></tr>"
        )?;
        for s in syncs {
            let last = &s["last_run"];
            let outcome = last["outcome"].as_str().unwrap_or("never run");
            let class = if matches!(outcome, "success" | "never run") {
                "ok"
            } else {
                "bad"
            };
            write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}:{}</td><td>{}</td><td class=\"{class}\">{}</td>\
                 <td>{} / {} / {} / {} / {}</td><td>{}</td></tr>",
                text(&s["name"]),
                text(&s["direction"]),
                text(&s["local"]),
                text(&s["connection"]),
                text(&s["remote"]),
                time(&last["started"]),
                esc(outcome),
                text(&last["uploaded"]),
                text(&last["downloaded"]),
                text(&last["deleted"]),
                text(&last["conflicts"]),
                text(&last["errors"]),
                s["problems"].as_array().map_or(0, Vec::len)
            )?;
        }
        write!(out, "</table>")?;
    }
    render_cluster(cluster, out)?;
    write!(
        out,
        "<h2>Recent transfers</h2><table><tr><th>time</th><th>user</th><th>protocol</th>\
         <th>action</th><th>path</th><th>size</th><th>outcome</th></tr>"
    )?;
    let recent = state.gateway().audit.recent();
    if recent.is_empty() {
        write!(out, "<tr><td colspan=\"7\">none since the start</td></tr>")?;
    }
    for t in recent {
        let class = if t["outcome"] == "ok" { "ok" } else { "bad" };
        let path = match t["to"].as_str() {
            Some(to) => format!("{} -> {to}", t["path"].as_str().unwrap_or_default()),
            None => t["path"].as_str().unwrap_or_default().to_string(),
        };
        write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}{}</td></tr>",
            text(&t["time"]),
            text(&t["user"]),
            text(&t["protocol"]),
            text(&t["action"]),
            esc(&path),
            text(&t["size"]),
            text(&t["outcome"]),
            t["error"]
                .as_str()
                .map(|e| format!(": {}", esc(e)))
                .unwrap_or_default()
        )?;
    }
    write!(out, "</table></body></html>")
}

/// The instances serving from the store (one row when spgate runs alone).
fn render_cluster(cluster: crate::state::Result<Value>, out: &mut String) -> std::fmt::Result {
    write!(out, "<h2>Instances</h2>")?;
    let cluster = match cluster {
        Ok(cluster) => cluster,
        Err(e) => {
            return write!(
                out,
                "<p class=\"bad\">Cannot read the instances: {}</p>",
                esc(&e.to_string())
            );
        }
    };
    write!(
        out,
        "<p>Cluster {} ({} store).</p><table><tr><th>instance</th><th>host</th><th>version</th>\
         <th>state</th><th>started</th><th>last heartbeat</th><th>sessions</th><th>queued uploads</th>\
         <th>sync jobs</th></tr>",
        text(&cluster["cluster_id"]),
        text(&cluster["engine"])
    )?;
    for i in cluster["instances"].as_array().into_iter().flatten() {
        let class = if i["status"] == "up" { "ok" } else { "bad" };
        let jobs: Vec<String> = i["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td>\
             <td>{} ({} s ago)</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&i["id"]),
            text(&i["host"]),
            text(&i["version"]),
            text(&i["status"]),
            text(&i["started"]),
            text(&i["last_heartbeat"]),
            text(&i["heartbeat_age_s"]),
            text(&i["sessions"]),
            text(&i["uploads"]),
            if jobs.is_empty() {
                "-".to_string()
            } else {
                jobs.join(", ")
            }
        )?;
    }
    write!(out, "</table>")
}
