//! GRAPH.md section 5: rename/move with If-Match, cross-drive moves refused, copy with a monitor
//! URL, delete, and 423 on locked items.

mod common;

use std::time::Duration;

use common::*;
use reqwest::{Method, Response};
use serde_json::{Value, json};

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

async fn patch(
    ctx: &Ctx,
    item: &str,
    body: Value,
    if_match: Option<&str>,
    query: &str,
) -> Response {
    let url = format!("{}{query}", ctx.d(&format!("/items/{item}")));
    let mut req = ctx.req(Method::PATCH, &url).json(&body);
    if let Some(tag) = if_match {
        req = req.header("If-Match", tag);
    }
    req.send().await.unwrap()
}

async fn delete(ctx: &Ctx, item: &str) -> Response {
    ctx.req(Method::DELETE, &ctx.d(&format!("/items/{item}")))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn if_match_mismatch_is_412() {
    let ctx = Ctx::new().await;
    let file = ctx.put("m.txt", b"abc").await;
    let stale = file["eTag"].as_str().unwrap().to_string();
    let changed = ctx.put("m.txt", b"abcd").await;
    let resp = patch(&ctx, id(&file), json!({"name": "n.txt"}), Some(&stale), "").await;
    graph_error(resp, 412, "resourceModified").await;
    assert_eq!(ctx.item("m.txt").await["id"], file["id"], "nothing renamed");
    let current = changed["eTag"].as_str().unwrap();
    let resp = patch(&ctx, id(&file), json!({"name": "n.txt"}), Some(current), "").await;
    assert_eq!(json_status(resp, 200).await["name"], "n.txt");
    let resp = patch(&ctx, id(&file), json!({"name": "o.txt"}), Some("*"), "").await;
    assert_eq!(json_status(resp, 200).await["name"], "o.txt");
}

#[tokio::test]
async fn move_across_folders() {
    let ctx = Ctx::new().await;
    let src = ctx.mkdirs("src").await;
    let dst = ctx.mkdirs("dst/deeper").await;
    let file = ctx.put("src/f.txt", b"move me").await;
    let body = json!({"parentReference": {"id": id(&dst)}});
    let moved = json_status(patch(&ctx, id(&file), body, None, "").await, 200).await;
    assert_eq!(moved["id"], file["id"]);
    check_item(&moved);
    check_parent(&moved, &ctx.drive, id(&dst), "dst/deeper");
    assert_eq!(moved["cTag"], file["cTag"], "a move is no content change");
    graph_error(ctx.get(&ctx.p("src/f.txt", "")).await, 404, "itemNotFound").await;
    assert_eq!(ctx.item("dst/deeper/f.txt").await["id"], file["id"]);
    assert_eq!(ctx.item_by_id(id(&src)).await["folder"]["childCount"], 0);
    assert_eq!(ctx.item_by_id(id(&dst)).await["folder"]["childCount"], 1);
    // Move and rename in one PATCH.
    let body = json!({"name": "g.txt", "parentReference": {"id": id(&src)}});
    let back = json_status(patch(&ctx, id(&file), body, None, "").await, 200).await;
    assert_eq!(back["name"], "g.txt");
    check_parent(&back, &ctx.drive, id(&src), "src");
    assert_eq!(ctx.download(id(&file)).await, b"move me");
    // A folder moves with its subtree; children's paths follow.
    let body = json!({"parentReference": {"id": id(&src)}});
    json_status(patch(&ctx, id(&dst), body, None, "").await, 200).await;
    let inner = ctx.put("src/deeper/h.txt", b"h").await;
    check_parent(&inner, &ctx.drive, id(&dst), "src/deeper");
    // A folder cannot move into itself or its own descendant.
    let body = json!({"parentReference": {"id": id(&dst)}});
    let resp = patch(&ctx, id(&src), body, None, "").await;
    assert!(
        resp.status().is_client_error(),
        "move into own subtree: {}",
        resp.status()
    );
    check_error_shape(&resp.json().await.unwrap());
    assert_eq!(ctx.item("src/deeper").await["id"], dst["id"]);
}

#[tokio::test]
async fn move_onto_taken_name() {
    let ctx = Ctx::new().await;
    let a = ctx.put("a.txt", b"A").await;
    let b = ctx.put("b.txt", b"B").await;
    let resp = patch(&ctx, id(&a), json!({"name": "B.TXT"}), None, "").await;
    graph_error(resp, 409, "nameAlreadyExists").await;
    let q = "?@microsoft.graph.conflictBehavior=replace";
    let resp = patch(&ctx, id(&a), json!({"name": "b.txt"}), None, q).await;
    let replaced = json_status(resp, 200).await;
    assert_eq!(replaced["id"], a["id"]);
    assert_eq!(replaced["name"], "b.txt");
    graph_error(
        ctx.get(&ctx.d(&format!("/items/{}", id(&b)))).await,
        404,
        "itemNotFound",
    )
    .await;
    assert_eq!(ctx.download(id(&a)).await, b"A");
    graph_error(ctx.get(&ctx.p("a.txt", "")).await, 404, "itemNotFound").await;
}

#[tokio::test]
async fn cross_drive_move_is_refused() {
    let more = "[[tenants.sites.drives]]\nname = \"Archive\"\nfolders = [\"Target\"]\n";
    let ctx = Ctx::with_seed(&seed("", more)).await;
    let drives = ctx
        .get_json(&ctx.sim.graph(&format!("/sites/{}/drives", ctx.site)))
        .await;
    let list = drives["value"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{drives}");
    let archive = list
        .iter()
        .find(|d| d["name"] == "Archive")
        .expect("Archive drive");
    let archive_id = archive["id"].as_str().unwrap();
    assert!(archive_id.starts_with("b!") && archive_id != ctx.drive);
    let url = ctx.sim.graph(&format!("/drives/{archive_id}/root:/Target"));
    let target = ctx.get_json(&url).await;
    let file = ctx.put("stay.txt", b"stay").await;
    let body = json!({"parentReference": {"driveId": archive_id, "id": id(&target)}});
    let resp = patch(&ctx, id(&file), body, None, "").await;
    let status = resp.status();
    assert!(
        status.is_client_error(),
        "cross-drive move must be refused, got {status}"
    );
    check_error_shape(&resp.json().await.unwrap());
    assert_eq!(ctx.item("stay.txt").await["id"], file["id"]);
    let url = ctx
        .sim
        .graph(&format!("/drives/{archive_id}/root:/Target:/children"));
    assert_eq!(
        ctx.get_json(&url).await["value"].as_array().map(Vec::len),
        Some(0)
    );
}

/// Polls a copy monitor (without auth) until it completes; returns the final status body.
async fn wait_copy(ctx: &Ctx, monitor: &str) -> Value {
    for _ in 0..400 {
        let resp = ctx.sim.http.get(monitor).send().await.unwrap();
        let code = resp.status().as_u16();
        let body: Value = resp.json().await.expect("monitor JSON");
        assert!(code == 200 || code == 202, "monitor status {code}: {body}");
        match body["status"].as_str() {
            Some("completed") => {
                assert_eq!(body["percentageComplete"].as_f64(), Some(100.0), "{body}");
                return body;
            }
            Some("inProgress" | "notStarted") => {}
            other => panic!("copy status {other:?}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("copy did not complete");
}

async fn copy(ctx: &Ctx, item: &str, body: Value) -> Value {
    let url = ctx.d(&format!("/items/{item}/copy"));
    let resp = ctx
        .req(Method::POST, &url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "copy answers 202");
    let monitor = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(monitor.starts_with("http://"), "monitor URL: {monitor}");
    let done = wait_copy(ctx, &monitor).await;
    let new_id = done["resourceId"].as_str().expect("resourceId").to_string();
    ctx.item_by_id(&new_id).await
}

#[tokio::test]
async fn copy_file_and_folder_with_monitor() {
    let ctx = Ctx::new().await;
    let body = data(700_000, 3);
    ctx.mkdirs("orig/sub").await;
    let file = ctx.put("orig/data.bin", &body).await;
    let dst = ctx.mkdirs("dst").await;
    let parent = json!({"driveId": ctx.drive, "id": id(&dst)});
    let copied = copy(
        &ctx,
        id(&file),
        json!({"parentReference": parent, "name": "copy.bin"}),
    )
    .await;
    assert_ne!(copied["id"], file["id"]);
    assert_eq!(copied["name"], "copy.bin");
    assert_eq!(copied["size"], 700_000);
    assert_eq!(
        copied["file"]["hashes"]["quickXorHash"],
        qxh(&body).as_str()
    );
    check_parent(&copied, &ctx.drive, id(&dst), "dst");
    assert_eq!(ctx.download(id(&copied)).await, body);
    assert_eq!(ctx.download(id(&file)).await, body, "the original stays");
    // A folder copies with its children, keeping its name when none is given.
    ctx.put("orig/sub/two.txt", b"two").await;
    let orig = ctx.item("orig").await;
    let folder = copy(&ctx, id(&orig), json!({"parentReference": parent})).await;
    assert_eq!(folder["name"], "orig");
    assert_eq!(folder["folder"]["childCount"], 2);
    let two = ctx.item("dst/orig/sub/two.txt").await;
    assert_eq!(ctx.download(id(&two)).await, b"two");
    assert_eq!(ctx.item("dst/orig/data.bin").await["size"], 700_000);
}

#[tokio::test]
async fn delete_then_404() {
    let ctx = Ctx::new().await;
    let dir = ctx.mkdirs("del").await;
    let file = ctx.put("del/x.txt", b"x").await;
    let keep = ctx.put("del/keep.txt", b"k").await;
    let resp = delete(&ctx, id(&file)).await;
    assert_eq!(resp.status(), 204);
    assert!(resp.bytes().await.unwrap().is_empty(), "204 has no body");
    graph_error(
        ctx.get(&ctx.d(&format!("/items/{}", id(&file)))).await,
        404,
        "itemNotFound",
    )
    .await;
    graph_error(ctx.get(&ctx.p("del/x.txt", "")).await, 404, "itemNotFound").await;
    graph_error(delete(&ctx, id(&file)).await, 404, "itemNotFound").await;
    let url = ctx.d(&format!("/items/{}/content", id(&file)));
    graph_error(ctx.get(&url).await, 404, "itemNotFound").await;
    assert_eq!(ctx.item("del").await["folder"]["childCount"], 1);
    // Deleting a folder removes its subtree.
    assert_eq!(delete(&ctx, id(&dir)).await.status(), 204);
    graph_error(
        ctx.get(&ctx.d(&format!("/items/{}", id(&keep)))).await,
        404,
        "itemNotFound",
    )
    .await;
    graph_error(ctx.get(&ctx.p("del", "")).await, 404, "itemNotFound").await;
    // The name is free again.
    ctx.mkdirs("del").await;
    ctx.put("del/x.txt", b"again").await;
}

async fn expect_locked(resp: Response, what: &str) {
    let body = json_status(resp, 423).await;
    check_error_shape(&body);
    assert_eq!(body["error"]["code"], "notAllowed", "{what}: {body}");
    assert!(
        inner_codes(&body).contains(&"resourceLocked".to_string()),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn locked_item_refuses_changes() {
    let ctx = Ctx::new().await;
    let dir = ctx.mkdirs("Locks").await;
    let file = ctx.put("Locks/locked.txt", b"in use").await;
    let lock = json!({"drive_id": ctx.drive, "path": "Locks/locked.txt"});
    ctx.sim.control("/lock", lock.clone()).await;
    expect_locked(
        ctx.put_raw("Locks/locked.txt", b"new".to_vec(), "").await,
        "replace",
    )
    .await;
    expect_locked(
        patch(&ctx, id(&file), json!({"name": "r.txt"}), None, "").await,
        "rename",
    )
    .await;
    let root = ctx.get_json(&ctx.d("/root")).await;
    let body = json!({"parentReference": {"id": id(&root)}});
    expect_locked(patch(&ctx, id(&file), body, None, "").await, "move").await;
    expect_locked(delete(&ctx, id(&file)).await, "delete").await;
    expect_locked(delete(&ctx, id(&dir)).await, "delete ancestor").await;
    // Reads still work and nothing changed.
    assert_eq!(ctx.download(id(&file)).await, b"in use");
    assert_eq!(ctx.item("Locks/locked.txt").await["eTag"], file["eTag"]);
    ctx.sim.control("/unlock", lock).await;
    let renamed = json_status(
        patch(&ctx, id(&file), json!({"name": "r.txt"}), None, "").await,
        200,
    )
    .await;
    assert_eq!(renamed["name"], "r.txt");
    assert_eq!(delete(&ctx, id(&dir)).await.status(), 204);
}
