//! The Graph client under pressure: one token request for 100 concurrent operations after the
//! tokens expired, throttling (429 + Retry-After) honoured by pausing the connection, 5xx
//! answers retried, and upload fragments the service dropped resumed from the session status.

mod common;
mod graph_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{data, qxh};
use graph_support::*;
use serde_json::json;

#[tokio::test]
async fn concurrent_operations_after_expiry_share_one_token_request() {
    let mut world = World::new().await;
    let (_connection, drive) = world.drive("max_concurrent_requests = 64").await;
    drive.stat("/").await.unwrap();
    world.expire_tokens().await;
    let tokens = world.count("token").await;
    let items = world.count("get_item").await;

    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let drive = drive.clone();
            tokio::spawn(async move { drive.stat("/").await })
        })
        .collect();
    for task in tasks {
        let entry = task.await.unwrap().expect("stat after expiry");
        assert!(entry.is_dir);
    }
    assert_eq!(world.count("token").await - tokens, 1, "single-flight");
    // Each operation was answered once; at most one 401 each before the new token.
    let sent = world.count("get_item").await - items;
    assert!((100..=200).contains(&sent), "{sent} item requests");
}

#[tokio::test]
async fn throttling_pauses_the_connection_and_every_operation_succeeds() {
    let world = World::new().await;
    let (connection, drive) = world.drive("max_concurrent_requests = 4").await;
    let throttled_before = world.ctx.sim.stats().await["throttled"].as_u64().unwrap();
    world
        .ctx
        .sim
        .faults(json!({"throttle_every": 3, "retry_after_s": 1}))
        .await;

    let started = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let drive = drive.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    drive.stat("/").await.map(|_| ())
                } else {
                    let body = format!("file {i}");
                    drive
                        .upload(
                            &format!("/t{i}.txt"),
                            body.as_bytes(),
                            body.len() as u64,
                            None,
                        )
                        .await
                        .map(|_| ())
                }
            })
        })
        .collect();
    for task in tasks {
        task.await
            .unwrap()
            .expect("throttled operations end up succeeding");
    }
    let elapsed = started.elapsed();
    world.ctx.sim.faults(json!({"throttle_every": 0})).await;

    let sim_throttled =
        world.ctx.sim.stats().await["throttled"].as_u64().unwrap() - throttled_before;
    let counters = &connection.client.counters;
    let client_throttled = counters.throttled.load(Ordering::Relaxed);
    assert!(sim_throttled > 0, "the simulator throttled something");
    assert_eq!(client_throttled, sim_throttled, "every 429 was seen");
    assert!(
        counters.paused_ms.load(Ordering::Relaxed) > 0,
        "requests waited"
    );
    assert!(
        elapsed >= Duration::from_millis(950),
        "Retry-After was honoured: {elapsed:?}"
    );
    for i in (1..10).step_by(2) {
        assert_eq!(
            world.item(&format!("t{i}.txt")).await["size"],
            format!("file {i}").len()
        );
    }
}

#[tokio::test]
async fn server_errors_are_retried() {
    let world = World::new().await;
    let (connection, drive) = world.drive("").await;
    world.ctx.sim.faults(json!({"fail_5xx_every": 3})).await;
    drive.mkdir("/r").await.expect("mkdir despite 5xx");
    for i in 0..4 {
        put(&drive, &format!("/r/{i}.txt"), &data(100 + i, i as u64)).await;
        assert_eq!(
            drive.stat(&format!("/r/{i}.txt")).await.unwrap().size,
            100 + i as u64
        );
    }
    let names: Vec<String> = drive
        .list_all("/r")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    world.ctx.sim.faults(json!({"fail_5xx_every": 0})).await;
    assert!(connection.client.counters.retries.load(Ordering::Relaxed) >= 3);
    assert_eq!(world.names("r").await, ["0.txt", "1.txt", "2.txt", "3.txt"]);
}

#[tokio::test]
async fn a_server_error_beyond_the_retry_budget_fails_as_unavailable() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("max_retries = 1").await;
    world.ctx.sim.faults(json!({"fail_5xx_every": 1})).await;
    let result = drive.stat("/").await;
    world.ctx.sim.faults(json!({"fail_5xx_every": 0})).await;
    assert_kind(result, spgate::graph::Kind::Unavailable, "always 5xx");
}

#[tokio::test]
async fn dropped_fragments_are_resumed() {
    let world = World::new().await;
    // 1 MiB rounds down to 960 KiB (three 320 KiB units).
    let (connection, drive) = world.drive("upload_chunk_mib = 1").await;
    assert_eq!(connection.client.upload_chunk(), 983_040);
    world
        .ctx
        .sim
        .faults(json!({"drop_fragment_every": 2}))
        .await;
    let source = data(6 * 1024 * 1024 + 12_345, 7);
    let entry = drive
        .upload("/big.bin", &source[..], source.len() as u64, None)
        .await
        .expect("upload despite dropped fragments");
    world
        .ctx
        .sim
        .faults(json!({"drop_fragment_every": 0}))
        .await;

    assert!(
        connection
            .client
            .counters
            .fragment_retries
            .load(Ordering::Relaxed)
            > 0
    );
    assert_eq!(entry.size, source.len() as u64);
    let item = world.item("big.bin").await;
    assert_eq!(item["size"], source.len());
    assert_eq!(item["file"]["hashes"]["quickXorHash"], qxh(&source));
    assert_eq!(entry.quick_xor_hash.as_deref(), Some(qxh(&source).as_str()));
    let id = item["id"].as_str().unwrap();
    assert!(world.ctx.download(id).await == source, "simulator copy");
    assert!(
        fetch(&drive, "/big.bin", 0, None).await == source,
        "spgate download"
    );
}
