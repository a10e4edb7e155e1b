//! Item operations through spgate's Drive, checked against the simulator's own Graph API:
//! rename (with and without replace), move, delete, copy, set_modified, mkdir conflicts, missing
//! items, locked items, paging, and delta.

mod common;
mod graph_support;

use chrono::{TimeZone, Utc};
use common::qxh;
use graph_support::*;
use serde_json::json;
use spgate::graph::Kind;

#[tokio::test]
async fn rename_move_copy_delete() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    drive.mkdir("/in").await.unwrap();
    drive.mkdir("/out").await.unwrap();
    put(&drive, "/in/a.txt", b"content A").await;
    put(&drive, "/in/b.txt", b"content B, longer").await;
    let a_id = world.item("in/a.txt").await["id"].clone();

    // Without replace an existing target is a conflict; nothing changes.
    assert_kind(
        drive.rename("/in/a.txt", "/in/b.txt", false).await,
        Kind::AlreadyExists,
        "rename onto an existing file",
    );
    assert_eq!(world.item("in/b.txt").await["size"], 17);

    // With replace, b.txt now holds a.txt's content (same item as a.txt was).
    let entry = drive.rename("/in/a.txt", "/in/b.txt", true).await.unwrap();
    assert_eq!(entry.name, "b.txt");
    let b = world.item("in/b.txt").await;
    assert_eq!(b["id"], a_id);
    assert_eq!(b["file"]["hashes"]["quickXorHash"], qxh(b"content A"));
    assert_eq!(world.names("in").await, ["b.txt"]);

    // Move to another folder, renaming on the way.
    let out = world.item("out").await;
    let moved = drive
        .rename("/in/b.txt", "/out/c.txt", false)
        .await
        .unwrap();
    assert_eq!(
        moved.parent_id.as_ref(),
        out["id"].as_str().map(str::to_string).as_ref()
    );
    let c = world.item("out/c.txt").await;
    assert_eq!(c["parentReference"]["path"], "/drive/root:/out");
    assert!(world.names("in").await.is_empty());

    // Copy, waiting for the copy to finish.
    let copied = drive.copy("/out/c.txt", "/in/copy.txt").await.unwrap();
    assert_eq!(copied.name, "copy.txt");
    let copy = world.item("in/copy.txt").await;
    assert_ne!(copy["id"], c["id"]);
    assert_eq!(copy["file"]["hashes"]["quickXorHash"], qxh(b"content A"));
    assert!(fetch(&drive, "/in/copy.txt", 0, None).await == b"content A");
    assert_kind(
        drive.copy("/out/missing.txt", "/in/x.txt").await,
        Kind::NotFound,
        "copy of a missing file",
    );

    // Delete a file, then a folder with its content.
    drive.delete("/in/copy.txt").await.unwrap();
    assert_eq!(world.item_status("in/copy.txt").await, 404);
    drive.delete("/out").await.unwrap();
    assert_eq!(world.item_status("out/c.txt").await, 404);
    assert_eq!(world.names("").await, ["in"]);
    assert_kind(drive.delete("/out").await, Kind::NotFound, "delete twice");
    assert_kind(
        drive.delete("/").await,
        Kind::PermissionDenied,
        "delete the root",
    );
}

#[tokio::test]
async fn conflicts_and_missing_items() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    let made = drive.mkdir("/dir").await.unwrap();
    assert!(made.is_dir);
    assert_eq!(world.item("dir").await["id"], made.id.as_str());
    assert_kind(
        drive.mkdir("/dir").await,
        Kind::AlreadyExists,
        "mkdir existing",
    );
    put(&drive, "/file", b"f").await;
    assert_kind(
        drive.mkdir("/file").await,
        Kind::AlreadyExists,
        "mkdir over a file",
    );
    assert_kind(
        drive.mkdir("/nope/sub").await,
        Kind::NotFound,
        "mkdir without parent",
    );

    assert_kind(
        drive.stat("/missing.txt").await,
        Kind::NotFound,
        "stat missing",
    );
    assert_kind(
        drive.stat("/dir/missing/x").await,
        Kind::NotFound,
        "stat deep missing",
    );
    assert_kind(
        drive.list_all("/missing").await,
        Kind::NotFound,
        "list missing",
    );
    assert_kind(
        drive
            .download("/missing.txt", 0, None)
            .await
            .map(|d| d.total),
        Kind::NotFound,
        "download missing",
    );
    assert_kind(
        drive.rename("/missing.txt", "/other.txt", false).await,
        Kind::NotFound,
        "rename missing",
    );
    assert_kind(
        drive.rename("/file", "/nope/file", false).await,
        Kind::NotFound,
        "move into a missing folder",
    );
    let root = drive.stat("/").await.unwrap();
    assert!(root.is_dir);
    assert_eq!(drive.stat("/dir").await.unwrap().id, made.id);
}

#[tokio::test]
async fn locked_items_refuse_changes() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    drive.mkdir("/team").await.unwrap();
    put(&drive, "/team/open.docx", b"in use").await;
    let lock = json!({"drive_id": world.ctx.drive, "path": "team/open.docx"});
    world.ctx.sim.control("/lock", lock.clone()).await;

    assert_kind(
        drive.delete("/team/open.docx").await,
        Kind::Locked,
        "delete locked",
    );
    assert_kind(
        drive.delete("/team").await,
        Kind::Locked,
        "delete the folder holding it",
    );
    assert_kind(
        drive
            .rename("/team/open.docx", "/team/moved.docx", false)
            .await,
        Kind::Locked,
        "rename locked",
    );
    assert_kind(
        drive
            .upload("/team/open.docx", &b"new"[..], 3, None)
            .await
            .map(|_| ()),
        Kind::Locked,
        "overwrite locked",
    );
    assert_eq!(world.item("team/open.docx").await["size"], 6, "unchanged");

    world.ctx.sim.control("/unlock", lock).await;
    drive
        .delete("/team/open.docx")
        .await
        .expect("delete after unlock");
    assert_eq!(world.item_status("team/open.docx").await, 404);
}

#[tokio::test]
async fn set_modified_and_listing_pages() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("max_concurrent_requests = 16").await;
    put(&drive, "/m.txt", b"m").await;
    let at = Utc.with_ymd_and_hms(2019, 12, 31, 23, 59, 58).unwrap();
    let entry = drive.set_modified("/m.txt", at).await.unwrap();
    assert_eq!(entry.modified, at);
    let stored = world.item("m.txt").await["fileSystemInfo"]["lastModifiedDateTime"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<Utc>>()
        .unwrap();
    assert_eq!(stored, at);
    assert_eq!(drive.stat("/m.txt").await.unwrap().modified, at);

    // More children than one page of 1,000 (uploaded through the simulator's own API).
    world.ctx.mkdirs("many").await;
    let uploads: Vec<_> = (0..1030)
        .map(|i| {
            let url = world.ctx.p(&format!("many/{i:04}.txt"), "/content");
            let request = world.ctx.req(reqwest::Method::PUT, &url).body("x");
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for upload in uploads {
        assert_eq!(upload.await.unwrap(), 201);
    }
    let before = world.count("list").await;
    let mut names: Vec<String> = drive
        .list_all("/many")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(world.count("list").await - before >= 2, "paged");
    names.sort();
    let want: Vec<String> = (0..1030).map(|i| format!("{i:04}.txt")).collect();
    assert_eq!(names, want);
}

#[tokio::test]
async fn delta_reports_changes_since_the_last_link() {
    let world = World::new().await;
    let (_connection, drive) = world.drive("").await;
    put(&drive, "/before.txt", b"1").await;
    let mut link = None;
    let mut seen = Vec::new();
    loop {
        let page = drive.delta(link.as_deref()).await.unwrap();
        seen.extend(page.items.iter().filter_map(|i| i.name.clone()));
        match (page.next_link, page.delta_link) {
            (Some(next), _) => link = Some(next),
            (None, Some(delta)) => {
                link = Some(delta);
                break;
            }
            (None, None) => panic!("a delta page without a next or delta link"),
        }
    }
    assert!(seen.contains(&"before.txt".to_string()), "{seen:?}");
    put(&drive, "/after.txt", b"2").await;
    let page = drive.delta(link.as_deref()).await.unwrap();
    let names: Vec<String> = page.items.iter().filter_map(|i| i.name.clone()).collect();
    assert!(names.contains(&"after.txt".to_string()), "{names:?}");
    assert!(!names.contains(&"before.txt".to_string()), "{names:?}");

    world
        .ctx
        .sim
        .control("/delta/reset", json!({"drive_id": world.ctx.drive}))
        .await;
    assert_kind(
        drive.delta(link.as_deref()).await,
        Kind::ResyncRequired,
        "reset",
    );
}
