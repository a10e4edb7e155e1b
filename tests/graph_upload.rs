//! Uploads of every size class (empty, tiny, exactly the simple-upload limit, one byte over,
//! 25 MiB in sessions) with and without a modification time, checked through the simulator's
//! own Graph API (size, quickXorHash, fileSystemInfo), and ranged downloads.

mod common;
mod graph_support;

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use common::{data, qxh};
use graph_support::*;
use spgate::graph::OnConflict;

const MIB: usize = 1 << 20;

fn mtime(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2021, 3, day, 5, 6, 7).unwrap() + chrono::Duration::milliseconds(789)
}

#[tokio::test]
async fn every_size_arrives_whole_with_its_modification_time() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    let cases: [(&str, usize, Option<DateTime<Utc>>); 6] = [
        ("/empty.bin", 0, Some(mtime(1))),
        ("/one.bin", 1, None),
        ("/four.bin", 4 * MIB, None),
        ("/four-dated.bin", 4 * MIB, Some(mtime(2))),
        ("/four-plus.bin", 4 * MIB + 1, Some(mtime(3))),
        ("/big.bin", 25 * MIB, Some(mtime(4))),
    ];
    for (i, (path, len, modified)) in cases.iter().enumerate() {
        let source = data(*len, i as u64 + 1);
        let before = world.ctx.sim.stats().await["by_kind"].clone();
        let entry = drive
            .upload(path, &source[..], *len as u64, *modified)
            .await
            .unwrap_or_else(|e| panic!("upload {path}: {e}"));
        let after = world.ctx.sim.stats().await["by_kind"].clone();
        let sent = |kind: &str| after[kind].as_u64().unwrap() - before[kind].as_u64().unwrap();
        // Small files without a time go in one PUT; the rest use sessions (except empty ones).
        let simple = *len == 0 || (*len <= 4 * MIB && modified.is_none());
        assert_eq!(sent("simple_upload"), simple as u64, "{path}");
        assert_eq!(sent("create_session"), !simple as u64, "{path}");

        let item = world.item(path).await;
        assert_eq!(item["size"], *len, "{path}: {item}");
        assert_eq!(
            item["file"]["hashes"]["quickXorHash"],
            qxh(&source),
            "{path}"
        );
        assert_eq!(entry.size, *len as u64, "{path}");
        assert_eq!(entry.quick_xor_hash.as_deref(), Some(qxh(&source).as_str()));
        if let Some(at) = modified {
            let stored = item["fileSystemInfo"]["lastModifiedDateTime"]
                .as_str()
                .unwrap();
            let stored: DateTime<Utc> = stored.parse().unwrap();
            assert_eq!(
                stored,
                at.trunc_subsecs(0),
                "{path}: mtime at second precision"
            );
            assert_eq!(entry.modified, at.trunc_subsecs(0), "{path}: entry mtime");
        }
    }
    // The big file is stored exactly as sent.
    let big = world.item("big.bin").await;
    let stored = world.ctx.download(big["id"].as_str().unwrap()).await;
    assert!(stored == data(25 * MIB, 6));
}

#[tokio::test]
async fn replacing_a_file_keeps_one_item_with_the_new_content() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    put(&drive, "/same.txt", b"first version").await;
    let id = world.item("same.txt").await["id"].clone();
    let second = data(5 * MIB, 9);
    drive
        .upload(
            "/same.txt",
            &second[..],
            second.len() as u64,
            Some(mtime(5)),
        )
        .await
        .unwrap();
    let item = world.item("same.txt").await;
    assert_eq!(item["id"], id, "replaced in place");
    assert_eq!(item["file"]["hashes"]["quickXorHash"], qxh(&second));
    assert_eq!(world.names("").await, ["same.txt"]);
}

#[tokio::test]
async fn ranged_downloads_return_exact_slices() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    let source = data(5 * MIB + 333, 11);
    let len = source.len() as u64;
    put(&drive, "/r.bin", &source).await;
    assert!(
        fetch(&drive, "/r.bin", 0, None).await == source,
        "whole file"
    );
    let download = drive.download("/r.bin", 0, None).await.unwrap();
    assert_eq!(download.total, len);
    for (offset, take) in [
        (0u64, Some(1u64)),
        (0, Some(10)),
        (1000, Some(5000)),
        (4 * MIB as u64 - 7, Some(MIB as u64)),
        (len - 1, Some(1)),
        (len - 100, Some(1000)),
        (12_345, None),
        (len - 1, None),
    ] {
        let got = fetch(&drive, "/r.bin", offset, take).await;
        let end = take.map_or(len, |t| (offset + t).min(len));
        assert!(
            got == source[offset as usize..end as usize],
            "slice {offset}+{take:?}: {} bytes",
            got.len()
        );
    }
    let download = drive.download("/r.bin", 1000, Some(10)).await.unwrap();
    assert_eq!(download.total, len, "total of a ranged download");
    assert!(
        fetch(&drive, "/r.bin", len, None).await.is_empty(),
        "at EOF"
    );
    assert!(
        fetch(&drive, "/r.bin", len, Some(10)).await.is_empty(),
        "at EOF, len"
    );
    assert!(
        fetch(&drive, "/r.bin", 10, Some(0)).await.is_empty(),
        "zero length"
    );
}

#[tokio::test]
async fn an_empty_file_downloads_as_nothing() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    put(&drive, "/zero", b"").await;
    assert_eq!(world.item("zero").await["size"], 0);
    assert!(fetch(&drive, "/zero", 0, None).await.is_empty());
    assert!(fetch(&drive, "/zero", 0, Some(10)).await.is_empty());
}

#[tokio::test]
async fn an_upload_session_fed_by_hand_and_cancelled_leaves_nothing() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("upload_chunk_mib = 1").await;
    let source = data(3 * MIB, 3);
    let mut upload = drive
        .upload_session("/hand.bin", source.len() as u64, None, OnConflict::Replace)
        .await
        .unwrap();
    for piece in source.chunks(100_000) {
        upload.write(piece).await.unwrap();
    }
    assert_eq!(upload.written(), source.len() as u64);
    let entry = upload.finish().await.unwrap();
    assert_eq!(entry.quick_xor_hash.as_deref(), Some(qxh(&source).as_str()));

    let mut upload = drive
        .upload_session("/gone.bin", 2 * MIB as u64, None, OnConflict::Replace)
        .await
        .unwrap();
    upload.write(&source[..1_500_000]).await.unwrap();
    assert_kind(
        upload.write(&source[..MIB]).await,
        spgate::graph::Kind::Invalid,
        "more than announced",
    );
    upload.cancel().await;
    assert_eq!(world.item_status("gone.bin").await, 404);
    assert_eq!(world.names("").await, ["hand.bin"]);
}
