//! `/metrics` answers in the exposition format the scraper's `Accept` header asks for, over real
//! HTTP against `spgate serve`: Prometheus' classic text format 0.0.4 (every sample of the family
//! its `# TYPE` line names, counters as `x_total`) for scrapers that prefer it, OpenMetrics for
//! Prometheus 2 and 3 and when no format is asked for.

mod common;

use common::{Ctx, KillOnDrop, spawn_serve};

fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// What Prometheus 2.x sends (OpenMetrics first), and what Prometheus before 2.5 and many
/// agents send (the classic text format only).
const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
const OLD_PROMETHEUS: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

/// Checks the rule scrapers of the classic text format apply: a sample belongs to the family
/// of the `# TYPE` line before it only if it has that family's name (histograms and summaries:
/// with their suffixes); any other sample is untyped.
fn assert_classic_families(text: &str) {
    let mut family: Option<(&str, &str)> = None;
    for line in text.lines() {
        assert!(
            !line.starts_with("# EOF") && !line.starts_with("# UNIT"),
            "{line}"
        );
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split_once(' ');
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name = &line[..line.find(['{', ' ']).unwrap()];
        let (family_name, kind) = family.unwrap_or_else(|| panic!("{line}: no # TYPE before"));
        let suffixes: &[&str] = match kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        assert!(
            suffixes.iter().any(|s| name == format!("{family_name}{s}")),
            "{line} is not of the family # TYPE {family_name} {kind}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_answer_the_format_the_scraper_asks_for() {
    let ctx = Ctx::new().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("spgate.toml");
    std::fs::write(
        &config,
        format!(
            "[state]\ndir = {}\n\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"admin-token\"\n\n{}",
            quote(dir.path().join("state").to_str().unwrap()),
            ctx.connection_toml("sp")
        ),
    )
    .unwrap();
    let log = dir.path().join("spgate.log");
    let (serve, announced) = spawn_serve(&config, &log, &["admin"]);
    let _serve = KillOnDrop(serve);
    let Some(admin) = &announced[0] else {
        panic!("no admin address; log:\n{}", common::file_tail(&log, 4000));
    };
    let client = reqwest::Client::new();
    let scrape = |accept: Option<&'static str>| {
        let mut request = client.get(format!("http://{admin}/metrics"));
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let header = |name: &str| {
                let value = response.headers().get(name);
                value.map(|v| v.to_str().unwrap().to_owned())
            };
            let (kind, vary) = (header("content-type"), header("vary"));
            assert_eq!(vary.as_deref(), Some("accept"));
            (kind.unwrap(), response.text().await.unwrap())
        }
    };

    let (kind, classic) = scrape(Some(OLD_PROMETHEUS)).await;
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    assert_classic_families(&classic);
    for expected in [
        "# HELP spgate_token_refreshes_total Access tokens obtained\n",
        "# TYPE spgate_token_refreshes_total counter\n",
        "spgate_token_refreshes_total{connection=\"sp\"} ",
        "# TYPE spgate_graph_requests_total counter\n",
        "# TYPE spgate_connection_up gauge\nspgate_connection_up{connection=\"sp\"} 1",
    ] {
        assert!(classic.contains(expected), "{expected:?} in:\n{classic}");
    }

    for accept in [
        Some(PROMETHEUS_2),
        Some("application/openmetrics-text"),
        None,
    ] {
        let (kind, openmetrics) = scrape(accept).await;
        assert_eq!(
            kind, "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "Accept: {accept:?}"
        );
        assert!(openmetrics.contains("# TYPE spgate_token_refreshes counter\n"));
        assert!(openmetrics.contains("spgate_token_refreshes_total{connection=\"sp\"} "));
        assert!(openmetrics.ends_with("# EOF\n"));
    }
    let (kind, _) = scrape(Some("text/plain")).await;
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
}
