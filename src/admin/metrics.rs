//! Prometheus metrics: what the session layer counts ([`Metrics`]), and connection, Graph,
//! token and sync figures read at scrape time from where they already live (each
//! connection's client and token counters, the sync state store), so nothing is counted twice.

use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::session::metrics::Metrics;
use crate::sync::Counts;

/// One connection's figures, read at scrape time.
#[derive(Debug, Default)]
pub struct ConnectionFigures {
    pub name: String,
    pub up: bool,
    pub by_status: Vec<(String, u16, u64)>,
    pub throttled: u64,
    pub paused_seconds: f64,
    pub retries: u64,
    pub fragment_retries: u64,
    pub token_refreshes: u64,
    pub token_failures: u64,
}

impl ConnectionFigures {
    pub fn read(connection: &crate::connections::Connection) -> ConnectionFigures {
        let c = &connection.client.counters;
        ConnectionFigures {
            name: connection.name().to_string(),
            up: !connection.health.is_disabled(),
            by_status: c
                .by_status
                .lock()
                .iter()
                .map(|((m, s), n)| (m.clone(), *s, *n))
                .collect(),
            throttled: c.throttled.load(Ordering::Relaxed),
            paused_seconds: c.paused_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            retries: c.retries.load(Ordering::Relaxed),
            fragment_retries: c.fragment_retries.load(Ordering::Relaxed),
            token_refreshes: connection.tokens.refreshes.load(Ordering::Relaxed),
            token_failures: connection.tokens.failures.load(Ordering::Relaxed),
        }
    }
}

/// One sync job's figures from its run history.
#[derive(Debug, Default)]
pub struct SyncFigures {
    pub job: String,
    pub runs_by_outcome: Vec<(String, u64)>,
    pub totals: Counts,
    pub last_success: Option<i64>,
}

/// The figures read at scrape time.
#[derive(Debug, Default)]
pub struct Live {
    pub connections: Vec<ConnectionFigures>,
    pub syncs: Vec<SyncFigures>,
    pub uptime_seconds: f64,
    pub queue: crate::storage::queue::Stats,
}

fn family<'a>(
    encoder: &'a mut DescriptorEncoder,
    name: &'a str,
    help: &str,
    kind: MetricType,
) -> Result<prometheus_client::encoding::MetricEncoder<'a>, std::fmt::Error> {
    encoder.encode_descriptor(name, help, None, kind)
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        {
            let mut f = family(
                &mut encoder,
                "spgate_uptime_seconds",
                "Seconds since spgate started",
                MetricType::Gauge,
            )?;
            ConstGauge::new(self.uptime_seconds)
                .encode(f.encode_family(&[("process", "spgate")])?)?;
        }
        let q = &self.queue;
        for (name, help, value) in [
            (
                "spgate_upload_queue_files",
                "Queued uploads waiting for or on their way to SharePoint",
                q.depth as f64,
            ),
            (
                "spgate_upload_queue_bytes",
                "Bytes of the queued uploads",
                q.bytes as f64,
            ),
            (
                "spgate_upload_queue_oldest_seconds",
                "Age of the oldest queued upload (0 when the queue is empty)",
                q.oldest_seconds as f64,
            ),
            (
                "spgate_upload_queue_quarantined",
                "Queued uploads SharePoint refused, kept until retried or discarded",
                q.quarantined as f64,
            ),
        ] {
            let f = family(&mut encoder, name, help, MetricType::Gauge)?;
            ConstGauge::new(value).encode(f)?;
        }
        type Pick = fn(&ConnectionFigures) -> f64;
        let per_connection: [(&str, &str, MetricType, Pick); 7] = [
            (
                "spgate_connection_up",
                "1 when the connection is enabled, 0 when disabled",
                MetricType::Gauge,
                |c| f64::from(u8::from(c.up)),
            ),
            (
                "spgate_graph_throttled",
                "Graph responses 429/503 that paused the connection",
                MetricType::Counter,
                |c| c.throttled as f64,
            ),
            (
                "spgate_graph_paused_seconds",
                "Time requests waited while the connection was paused by throttling",
                MetricType::Counter,
                |c| c.paused_seconds,
            ),
            (
                "spgate_graph_retries",
                "Graph requests retried after transient failures",
                MetricType::Counter,
                |c| c.retries as f64,
            ),
            (
                "spgate_upload_fragments_retried",
                "Upload-session fragments sent again",
                MetricType::Counter,
                |c| c.fragment_retries as f64,
            ),
            (
                "spgate_token_refreshes",
                "Access tokens obtained",
                MetricType::Counter,
                |c| c.token_refreshes as f64,
            ),
            (
                "spgate_token_failures",
                "Token requests that failed",
                MetricType::Counter,
                |c| c.token_failures as f64,
            ),
        ];
        for (name, help, kind, pick) in per_connection {
            let mut f = family(&mut encoder, name, help, kind)?;
            for c in &self.connections {
                let labels = [("connection", c.name.as_str())];
                let value = pick(c);
                match kind {
                    MetricType::Gauge => {
                        ConstGauge::new(value).encode(f.encode_family(&labels)?)?
                    }
                    _ => ConstCounter::new(value).encode(f.encode_family(&labels)?)?,
                }
            }
        }
        {
            let mut f = family(
                &mut encoder,
                "spgate_graph_requests",
                "Graph responses by connection, HTTP method and status (0: no response)",
                MetricType::Counter,
            )?;
            for c in &self.connections {
                for (method, status, n) in &c.by_status {
                    let status = status.to_string();
                    let labels = [
                        ("connection", c.name.as_str()),
                        ("method", method.as_str()),
                        ("status", status.as_str()),
                    ];
                    ConstCounter::new(*n).encode(f.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut f = family(
                &mut encoder,
                "spgate_sync_runs",
                "Sync runs by job and outcome",
                MetricType::Counter,
            )?;
            for s in &self.syncs {
                for (outcome, n) in &s.runs_by_outcome {
                    let labels = [("job", s.job.as_str()), ("outcome", outcome.as_str())];
                    ConstCounter::new(*n).encode(f.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut f = family(
                &mut encoder,
                "spgate_sync_files",
                "Files a sync job moved, by action",
                MetricType::Counter,
            )?;
            for s in &self.syncs {
                let t = &s.totals;
                for (action, n) in [
                    ("uploaded", t.uploaded),
                    ("downloaded", t.downloaded),
                    ("deleted_local", t.deleted_local),
                    ("deleted_remote", t.deleted_remote),
                    ("conflicts", t.conflicts),
                    ("errors", t.errors),
                ] {
                    let labels = [("job", s.job.as_str()), ("action", action)];
                    ConstCounter::new(n).encode(f.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut f = family(
                &mut encoder,
                "spgate_sync_bytes",
                "Bytes a sync job moved, by direction",
                MetricType::Counter,
            )?;
            for s in &self.syncs {
                for (direction, n) in [("up", s.totals.bytes_up), ("down", s.totals.bytes_down)] {
                    let labels = [("job", s.job.as_str()), ("direction", direction)];
                    ConstCounter::new(n).encode(f.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut f = family(
                &mut encoder,
                "spgate_sync_last_success_timestamp_seconds",
                "When the job's last successful run ended (Unix time)",
                MetricType::Gauge,
            )?;
            for s in &self.syncs {
                if let Some(at) = s.last_success {
                    ConstGauge::new(at).encode(f.encode_family(&[("job", s.job.as_str())])?)?;
                }
            }
        }
        Ok(())
    }
}

/// The whole exposition text.
pub fn render(metrics: &Metrics, live: Live) -> String {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    registry.register_collector(Box::new(live));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!(error = %e, "encoding metrics failed");
    }
    out
}
