//! Parallel ranged downloads through spgate's `graph::Ranges` against the simulator: exact
//! slices fetched side by side on connections of their own, an expired download URL renewed
//! once however many ranges meet it, and a file that changes between ranges refused.

mod common;
mod graph_support;

use futures_util::TryStreamExt;
use graph_support::*;
use serde_json::json;
use spgate::graph::{Kind, Ranges};

use common::random;

async fn collect(ranges: &Ranges, start: u64, len: u64) -> spgate::graph::Result<Vec<u8>> {
    let body = ranges.fetch(start, len).await?;
    let chunks: Vec<bytes::Bytes> = body
        .try_collect()
        .await
        .map_err(|e| spgate::graph::Error::new(Kind::Unavailable, format!("body: {e}")))?;
    Ok(chunks.concat())
}

/// Redirects (302 answers to `/content`) the client has seen.
fn redirects(connection: &spgate::connections::Connection) -> u64 {
    let by_status = connection.client.counters.by_status.lock();
    by_status
        .get(&("GET".to_string(), 302))
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn ranges_are_exact_slices_fetched_side_by_side() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    let bytes = random(3 * 1024 * 1024 + 5);
    put(&drive, "/r.bin", &bytes).await;
    world.ctx.sim.control("/stats/reset", json!({})).await;

    let ranges = Ranges::open(drive.clone(), "/r.bin")
        .await
        .unwrap()
        .expect("the simulator redirects");
    let slices = [
        (0, 1 << 20),
        (1 << 20, 1 << 20),
        (2 << 20, 1 << 20),
        (3 << 20, 5),
    ];
    let fetched = futures_util::future::try_join_all(slices.iter().map(|&(start, len)| {
        let ranges = &ranges;
        async move { ranges.fetch(start, len).await }
    }))
    .await
    .unwrap();
    for ((start, len), body) in slices.iter().zip(fetched) {
        let chunks: Vec<bytes::Bytes> = body.try_collect().await.unwrap();
        let got = chunks.concat();
        assert!(
            got[..] == bytes[*start as usize..(*start + *len) as usize],
            "bytes {start}+{len}"
        );
    }
    let stats = world.ctx.sim.stats().await;
    assert_eq!(stats["by_kind"]["download"], 1 + 4, "{stats}");
    assert_eq!(stats["ranged_downloads"], 4, "{stats}");
    // All four were in flight at once (no body read before all had answered): HTTP/1.1 gave
    // each a connection of its own.
    assert_eq!(stats["download_connections"], 4, "{stats}");

    // Past the end: refused, not an empty success.
    let past = collect(&ranges, bytes.len() as u64, 10).await;
    assert!(past.is_err(), "a range past the end: {past:?}");
}

#[tokio::test]
async fn an_expired_download_url_is_renewed_once() {
    let world = World::new().await;
    let (connection, drive) = world.drive("").await;
    let bytes = random(400_000);
    put(&drive, "/e.bin", &bytes).await;
    let ranges = Ranges::open(drive.clone(), "/e.bin")
        .await
        .unwrap()
        .unwrap();
    assert!(collect(&ranges, 0, 1000).await.unwrap() == bytes[..1000]);
    assert_eq!(redirects(&connection), 1);

    world.ctx.sim.control("/downloads/expire", json!({})).await;
    let got = futures_util::future::try_join_all(
        (0..4u64).map(|i| collect(&ranges, i * 100_000, 100_000)),
    )
    .await
    .unwrap();
    assert!(got.concat() == bytes, "the ranges after renewal");
    assert_eq!(redirects(&connection), 2, "one renewal for four ranges");
    let refused = connection.client.counters.by_status.lock()[&("GET".to_string(), 401)];
    assert!((1..=4).contains(&refused), "{refused} refused");
}

#[tokio::test]
async fn a_file_changed_between_ranges_is_refused() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    // (how the file changes, its new size, the range read after the change)
    let cases: [(&str, usize, (u64, u64)); 3] = [
        (
            "same size, other content: the eTag tells",
            200_000,
            (50_000, 50_000),
        ),
        (
            "longer: the total in Content-Range tells",
            300_000,
            (10, 10),
        ),
        (
            "shorter, the range straddling the new end: SharePoint sends less than asked",
            150_000,
            (100_000, 100_000),
        ),
    ];
    for (change, new_size, (offset, len)) in cases {
        let bytes = random(200_000);
        put(&drive, "/c.bin", &bytes).await;
        let ranges = Ranges::open(drive.clone(), "/c.bin")
            .await
            .unwrap()
            .unwrap();
        assert!(
            collect(&ranges, 0, 10).await.unwrap() == bytes[..10],
            "{change}"
        );
        put(&drive, "/c.bin", &random(new_size)).await;
        let e = collect(&ranges, offset, len).await.unwrap_err();
        assert_eq!(e.kind, Kind::Modified, "{change}: {e}");
    }
}
