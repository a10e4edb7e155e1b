//! Prometheus metrics: what the session layer counts ([`Metrics`]), and connection, Graph,
//! token and sync figures read at scrape time from where they already live (each
//! connection's client and token counters, the sync state store), so nothing is counted twice.
//! The exposition is OpenMetrics text, or Prometheus' classic text format 0.0.4 for a scraper
//! whose `Accept` header prefers it ([`Format::negotiate`]).

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
    pub notifications: crate::notify::figures::Snapshot,
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
        self.notifications.encode(&mut encoder)?;
        Ok(())
    }
}

/// The whole exposition text, in OpenMetrics.
pub fn render(metrics: &Metrics, live: Live) -> String {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    registry.register_collector(Box::new(live));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::warn!(error = %crate::logging::chain(&e), "encoding metrics failed");
    }
    out
}

/// The whole exposition text in `format`.
pub fn render_as(format: Format, metrics: &Metrics, live: Live) -> String {
    let text = render(metrics, live);
    match format {
        Format::OpenMetrics => text,
        Format::Classic => classic(&text),
    }
}

/// An exposition format `/metrics` answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 text: a counter family `x` has the samples `x_total`. The default.
    OpenMetrics,
    /// Prometheus' classic text format 0.0.4, which older Prometheus servers and many agents
    /// ask for: a counter family is named after its samples (`x_total`), and there is no
    /// `# EOF`. Read as OpenMetrics, a scraper that knows only this format types every counter
    /// wrongly.
    Classic,
}

impl Format {
    /// The format the `Accept` header prefers (RFC 9110 media ranges with `q` weights; the most
    /// specific range that matches a format gives its weight); OpenMetrics on a tie, without
    /// the header, or when neither is acceptable.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::OpenMetrics;
        };
        let classic = Format::Classic.weight(accept);
        if classic > 0.0 && classic > Format::OpenMetrics.weight(accept) {
            Format::Classic
        } else {
            Format::OpenMetrics
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The `q` of the most specific media range of `accept` that matches this format (0: none).
    fn weight(self, accept: &str) -> f32 {
        let (kind, subtype, version) = match self {
            Format::OpenMetrics => ("application", "openmetrics-text", "1.0.0"),
            Format::Classic => ("text", "plain", "0.0.4"),
        };
        let mut best: Option<(u8, f32)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let (range_kind, range_subtype) = parts
                .next()
                .and_then(|media| media.split_once('/'))
                .unwrap_or(("", ""));
            let (mut q, mut range_version) = (1.0, None);
            for parameter in parts {
                let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
                match name.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.trim().parse().unwrap_or(0.0),
                    "version" => range_version = Some(value.trim().trim_matches('"')),
                    _ => {}
                }
            }
            let specificity = match (range_kind.trim(), range_subtype.trim()) {
                ("*", "*") => 0,
                (k, "*") if k.eq_ignore_ascii_case(kind) => 1,
                (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => {
                    match range_version {
                        None => 2,
                        Some(v) if v == version => 3,
                        Some(_) => continue,
                    }
                }
                _ => continue,
            };
            if best.is_none_or(|(known, _)| specificity > known) {
                best = Some((specificity, q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    }
}

/// Where a sample line's exemplar (`VALUE # {...}`) starts, or its end: the first " # " after
/// the label set, whose quoted values may hold anything.
fn sample_end(line: &str) -> usize {
    let mut labels_end = 0;
    if let Some(open) = line
        .find(['{', ' '])
        .filter(|&at| line[at..].starts_with('{'))
    {
        let (mut quoted, mut escaped) = (false, false);
        for (at, c) in line[open..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '}' if !quoted => {
                    labels_end = open + at;
                    break;
                }
                _ => {}
            }
        }
    }
    line[labels_end..]
        .find(" # ")
        .map_or(line.len(), |at| labels_end + at)
}

/// OpenMetrics text as Prometheus' classic text format 0.0.4: a counter family takes its
/// samples' name (`x_total`), an info family becomes a gauge `x_info`, other types without a
/// classic equivalent become `untyped`; `_created` samples, `# UNIT`, `# EOF` and exemplars
/// are left out. Samples and label escaping are the same in both formats.
fn classic(openmetrics: &str) -> String {
    let kinds: std::collections::HashMap<&str, &str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.split_once(' '))
        .collect();
    let renamed = |name: &str| match kinds.get(name) {
        Some(&"counter") => format!("{name}_total"),
        Some(&"info") => format!("{name}_info"),
        _ => name.to_owned(),
    };
    let mut out = String::with_capacity(openmetrics.len());
    let mut family_kind = "";
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out += &format!("# HELP {} {help}\n", renamed(name));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            family_kind = kind;
            let kind = match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                "info" => "gauge",
                _ => "untyped",
            };
            out += &format!("# TYPE {} {kind}\n", renamed(name));
        } else if line.starts_with('#') || line.is_empty() {
            // # UNIT, # EOF: OpenMetrics only.
        } else {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let created = line[..name_end].ends_with("_created");
            if created && matches!(family_kind, "counter" | "histogram" | "summary") {
                continue;
            }
            out += &line[..sample_end(line)];
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Prometheus before 2.5 sends; 2.x with OpenMetrics on; a browser.
    const OLD_PROMETHEUS: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";
    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

    #[test]
    fn negotiation_follows_the_weights_of_the_accept_header() {
        use Format::{Classic, OpenMetrics};
        for (accept, expected) in [
            (None, OpenMetrics),
            (Some(OLD_PROMETHEUS), Classic),
            (Some(PROMETHEUS_2), OpenMetrics),
            (Some("text/plain; version=0.0.4"), Classic),
            (Some("text/plain"), Classic),
            (Some("text/*"), Classic),
            (Some("*/*"), OpenMetrics),
            (Some("application/openmetrics-text"), OpenMetrics),
            // The most specific range decides: text/plain is refused, anything else welcome.
            (Some("text/plain;q=0, */*"), OpenMetrics),
            (
                Some("application/openmetrics-text;q=0.1, text/plain;q=0.9"),
                Classic,
            ),
            // A version spgate does not write matches nothing; neither format is asked for.
            (Some("text/plain;version=0.0.5"), OpenMetrics),
            (Some("application/json"), OpenMetrics),
        ] {
            assert_eq!(Format::negotiate(accept), expected, "Accept: {accept:?}");
        }
        assert_eq!(
            Classic.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }

    #[test]
    fn classic_text_names_each_family_after_its_samples() {
        let openmetrics = "\
# HELP jobs Jobs run.
# TYPE jobs counter
jobs_total{job=\"a # }\\\"b\"} 3 # {trace=\"x\"} 1.0
jobs_created{job=\"a\"} 1.7e9
# HELP up Up.
# TYPE up gauge
# UNIT up seconds
up 1
# HELP build Build.
# TYPE build info
build_info{version=\"1\"} 1
# HELP wait Wait.
# TYPE wait histogram
wait_bucket{le=\"+Inf\"} 2
wait_sum 0.5
wait_count 2
wait_created 1.7e9
# EOF
";
        let expected = "\
# HELP jobs_total Jobs run.
# TYPE jobs_total counter
jobs_total{job=\"a # }\\\"b\"} 3
# HELP up Up.
# TYPE up gauge
up 1
# HELP build_info Build.
# TYPE build_info gauge
build_info{version=\"1\"} 1
# HELP wait Wait.
# TYPE wait histogram
wait_bucket{le=\"+Inf\"} 2
wait_sum 0.5
wait_count 2
";
        assert_eq!(classic(openmetrics), expected);
    }
}
