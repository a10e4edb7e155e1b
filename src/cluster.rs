//! The instances of a cluster (every `spgate serve` on one state store): each writes a
//! heartbeat into the store every few seconds, and marks itself stopped when it shuts down;
//! `spgate cluster status`, `GET /api/v1/cluster` and the status page show them all.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::session::Shared;
use crate::state::Store;
use crate::state::instances::{Beat, GONE_AFTER_S, Instance};

/// How often an instance writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// This instance's heartbeat as of now.
fn beat(shared: &Shared, id: &str) -> Beat {
    let gateway = shared.current();
    let (sessions, _) = gateway.admission.counts();
    Beat {
        id: id.to_string(),
        host: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        pid: i64::from(std::process::id()),
        version: env!("CARGO_PKG_VERSION").to_string(),
        admin: gateway.config.admin.as_ref().map(|a| a.listen.to_string()),
        sessions: sessions as i64,
        uploads: gateway.queue.stats().depth as i64,
    }
}

/// Writes this instance's heartbeat every [`HEARTBEAT`] until `shutdown`, then marks it
/// stopped. A store that does not answer is retried at the next beat.
pub async fn heartbeat(shared: Arc<Shared>, shutdown: CancellationToken) {
    let gateway = shared.current();
    let store = gateway.store.clone();
    let id = match crate::state::dir_id(&gateway.config.state.dir) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %crate::logging::chain(&e), "no state directory id: this instance is not listed in the cluster");
            return;
        }
    };
    drop(gateway);
    let mut starting = true;
    let mut failing = false;
    loop {
        match store.instance_beat(&beat(&shared, &id), starting).await {
            Ok(()) => {
                if failing {
                    tracing::info!("the instance heartbeat is written again");
                }
                starting = false;
                failing = false;
            }
            Err(e) if !failing => {
                tracing::warn!(error = %crate::logging::chain(&e), "writing the instance heartbeat failed (retried)");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(HEARTBEAT) => {}
        }
    }
    if let Err(e) = store.instance_stopped(&id).await {
        tracing::warn!(error = %crate::logging::chain(&e), "marking the instance stopped failed");
    }
}

/// The cluster as JSON: its id, the store's engine, and every instance with its state.
pub async fn status(store: &Store) -> crate::state::Result<Value> {
    let cluster = store.cluster_id().await?;
    let (now, instances) = store.instances().await?;
    Ok(json!({
        "cluster_id": cluster,
        "engine": format!("{:?}", store.engine()).to_lowercase(),
        "gone_after_s": GONE_AFTER_S,
        "instances": instances.iter().map(|i| instance(i, now)).collect::<Vec<_>>(),
    }))
}

fn instance(i: &Instance, now: i64) -> Value {
    let time = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    json!({
        "id": i.beat.id,
        "host": i.beat.host,
        "pid": i.beat.pid,
        "version": i.beat.version,
        "admin": i.beat.admin,
        "status": i.status(now).as_str(),
        "started": time(i.started),
        "last_heartbeat": time(i.heartbeat),
        "heartbeat_age_s": (now - i.heartbeat).max(0),
        "stopped": i.stopped.and_then(time),
        "sessions": i.beat.sessions,
        "uploads": i.beat.uploads,
        "jobs": i.jobs,
    })
}

/// `spgate cluster status`: one line per instance.
pub async fn print(store: &Store, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let status = status(store).await?;
    writeln!(
        out,
        "cluster {} ({} store)",
        status["cluster_id"].as_str().unwrap_or_default(),
        status["engine"].as_str().unwrap_or_default()
    )?;
    let instances = status["instances"].as_array().cloned().unwrap_or_default();
    if instances.is_empty() {
        writeln!(out, "no instance has served from this store yet")?;
    }
    writeln!(
        out,
        "ID\tHOST\tPID\tVERSION\tSTATUS\tSTARTED\tLAST HEARTBEAT\tSESSIONS\tUPLOADS\tJOBS"
    )?;
    for i in instances {
        let text = |key: &str| i[key].as_str().unwrap_or("-").to_string();
        let jobs: Vec<&str> = i["jobs"]
            .as_array()
            .map(|j| j.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{} ({} s ago)\t{}\t{}\t{}",
            text("id"),
            text("host"),
            i["pid"],
            text("version"),
            text("status"),
            text("started"),
            text("last_heartbeat"),
            i["heartbeat_age_s"],
            i["sessions"],
            i["uploads"],
            if jobs.is_empty() {
                "-".to_string()
            } else {
                jobs.join(",")
            },
        )?;
    }
    Ok(())
}
