//! The simulated distance: `--latency`, `--jitter`, `--bandwidth`, `--profile` and the faults
//! `latency_ms`, `jitter_ms`, `bandwidth_mb_s`. Times are checked from below only, except that
//! an undelayed request is checked to be far quicker than a 2 s latency.

mod common;

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use reqwest::{Client, Method, redirect::Policy};
use serde_json::{Value, json};

/// A client with an empty pool: its first request opens a new connection.
fn fresh_client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .expect("reqwest client")
}

async fn timed<T>(work: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = work.await;
    (out, start.elapsed())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at_least(took: Duration, floor: Duration, what: &str) {
    assert!(took >= floor, "{what} took {took:?}, less than {floor:?}");
}

/// GET `url` with `token` on `http`; expects 200.
async fn get_ok(http: &Client, url: &str, token: &str) {
    let resp = http.get(url).bearer_auth(token).send().await.expect("GET");
    json_status(resp, 200).await;
}

async fn faults_doc(sim: &Sim) -> Value {
    json_status(sim.http.get(sim.ctl("/faults")).send().await.unwrap(), 200).await
}

async fn clear_faults(sim: &Sim) {
    let resp = sim.http.delete(sim.ctl("/faults")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test]
async fn latency_costs_a_round_trip_per_request_and_one_per_connection() {
    let sim = Sim::spawn(None, &["--latency", "300ms"]);
    let (token, took) = timed(sim.app_token()).await;
    at_least(took, ms(600), "a token request on a new connection");
    let http = fresh_client();
    let root = sim.graph(&format!("/sites/{HOST}:/sites/partners"));
    let ((), took) = timed(get_ok(&http, &root, &token)).await;
    at_least(took, ms(600), "a Graph GET on a new connection");
    let ((), took) = timed(get_ok(&http, &root, &token)).await;
    at_least(took, ms(300), "a Graph GET on an open connection");
    // Errors come from far away too.
    let (resp, took) = timed(http.get(sim.graph("/drives/b!nope/root")).send()).await;
    graph_error(resp.unwrap(), 401, "InvalidAuthenticationToken").await;
    at_least(took, ms(300), "a refused Graph GET");
}

#[tokio::test]
async fn bandwidth_limits_downloads_and_uploads_per_connection() {
    let seed = seed(
        "",
        "[[tenants.sites.drives.files]]\npath = \"big.bin\"\nsize = 3000000\n",
    );
    let ctx = Ctx::from_sim(Sim::spawn(Some(&seed), &["--bandwidth", "1"])).await;
    let id = ctx.item("big.bin").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (bytes, took) = timed(ctx.download(&id)).await;
    assert_eq!(bytes.len(), 3_000_000);
    at_least(took, ms(2800), "a 3 MB download at 1 MB/s");
    let upload = data(3_000_000, 13);
    let (item, took) = timed(ctx.put("up.bin", &upload)).await;
    assert_eq!(item["size"], 3_000_000);
    at_least(took, ms(2800), "a 3 MB upload at 1 MB/s");
}

#[tokio::test]
async fn faults_change_the_distance_and_clearing_restores_the_command_line() {
    let ctx = Ctx::from_sim(Sim::spawn(None, &["--latency", "200ms"])).await;
    let root = ctx.d("/root");
    ctx.get_json(&root).await;

    ctx.sim
        .faults(json!({"latency_ms": 2000, "jitter_ms": 0}))
        .await;
    assert_eq!(
        faults_doc(&ctx.sim).await,
        json!({"latency_ms": 2000, "jitter_ms": 0})
    );
    let (_, took) = timed(ctx.get_json(&root)).await;
    at_least(took, ms(2000), "a Graph GET at 2 s latency");
    let (_, took) = timed(ctx.sim.stats()).await;
    assert!(took < ms(1000), "the control API is not delayed: {took:?}");

    clear_faults(&ctx.sim).await;
    assert_eq!(faults_doc(&ctx.sim).await, json!({}));
    let (_, took) = timed(ctx.get_json(&root)).await;
    at_least(
        took,
        ms(200),
        "a Graph GET back at the command line's latency",
    );
    assert!(
        took < ms(1000),
        "cleared faults drop the 2 s latency: {took:?}"
    );

    // The open connection follows a bandwidth set at run time.
    ctx.sim.faults(json!({"bandwidth_mb_s": 0.5})).await;
    let (_, took) = timed(ctx.put("half.bin", &data(1_000_000, 5))).await;
    at_least(took, ms(1900), "a 1 MB upload at 0.5 MB/s");

    for bad in [json!({"bandwidth_mb_s": -1}), json!({"latency_ms": -5})] {
        let resp = ctx
            .sim
            .http
            .request(Method::POST, ctx.sim.ctl("/faults"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        graph_error(resp, 400, "invalidRequest").await;
    }
    assert_eq!(faults_doc(&ctx.sim).await, json!({"bandwidth_mb_s": 0.5}));
    clear_faults(&ctx.sim).await;
}

#[tokio::test]
async fn profile_sets_the_distance_and_explicit_flags_replace_its_parts() {
    let sim = Sim::spawn(
        None,
        &["--profile", "far", "--jitter", "50ms", "--bandwidth", "2"],
    );
    let (token, took) = timed(sim.app_token()).await;
    at_least(took, ms(300), "a token request on a new connection");
    let http = fresh_client();
    let url = sim.graph(&format!("/sites/{HOST}:/sites/partners"));
    get_ok(&http, &url, &token).await;
    let ((), took) = timed(get_ok(&http, &url, &token)).await;
    at_least(
        took,
        ms(150),
        "a Graph GET on an open connection, 200 ms +- 50 ms",
    );
    let (_, drive) = sim.site_drive(&token, "partners").await;
    let upload = sim.graph(&format!("/drives/{drive}/root:/two.bin:/content"));
    let (resp, took) = timed(
        http.put(upload)
            .bearer_auth(&token)
            .body(data(2_000_000, 2))
            .send(),
    )
    .await;
    assert!(resp.unwrap().status().is_success());
    at_least(took, ms(1100), "a 2 MB upload at 2 MB/s, not 10 MB/s");
}

#[test]
fn bad_distance_arguments_are_refused() {
    for arg in [
        "--profile=moon",
        "--bandwidth=fast",
        "--bandwidth=-3",
        "--latency=soon",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_spgate"))
            .args(["sim", arg])
            .output()
            .expect("run spgate sim");
        assert!(!out.status.success(), "{arg} accepted");
        let flag = arg.split('=').next().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{arg}: {stderr}");
    }
}
