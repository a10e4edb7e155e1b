//! GRAPH.md section 4 upload sessions: a 50 MiB upload in 320 KiB-multiple fragments resumed
//! after dropped fragments, status/cancel/expiry, invisibility until the last fragment,
//! fileSystemInfo, conflicts at the end and without a behaviour, and missing parent folders.
//! Fragment rules are in sim_fragments.rs.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

const MIB: usize = 1 << 20;

fn time_eq(a: &Value, b: &str) -> bool {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    a.as_str()
        .and_then(parse)
        .is_some_and(|t| Some(t) == parse(b))
}

async fn status(ctx: &Ctx, url: &str) -> Value {
    session_status(&ctx.sim.http, url).await
}

#[tokio::test]
async fn upload_50_mib_with_a_resumed_fragment() {
    let ctx = Ctx::new().await;
    let dir = ctx.mkdirs("big").await;
    let total = 50 * MIB;
    let body = data(total, 50);
    let frag = 16 * FRAG; // 5 MiB
    let modified = "2020-01-02T03:04:05Z";
    ctx.sim.faults(json!({"drop_fragment_every": 3})).await;
    ctx.sim.control("/stats/reset", json!({})).await;
    let item = json!({"@microsoft.graph.conflictBehavior": "fail", "name": "fifty.bin",
        "fileSystemInfo": {"lastModifiedDateTime": modified}});
    let session = ctx.create_session("big/fifty.bin", item).await;
    let url = check_session(&session);
    // Fragments go over fresh connections: a dropped fragment may also surface as a transport
    // error, which a client must handle the same way (ask the session, resume). That a dropped
    // fragment answers a readable 500 is checked in sim_fragments.rs.
    let up = oneshot_client();
    let (mut pos, mut puts, mut drops) = (0, 0, 0);
    let done = loop {
        let end = (pos + frag).min(total);
        let sent = try_put_fragment(&up, &url, pos, &body[pos..end], total).await;
        puts += 1;
        let code = sent.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
        match (code, sent) {
            (202, Ok(resp)) => {
                let v: Value = resp.json().await.unwrap();
                assert_eq!(v["nextExpectedRanges"], json!([format!("{end}-")]), "{v}");
                assert!(is_time(&v["expirationDateTime"]), "{v}");
                pos = end;
                // Invisible until the last fragment.
                let resp = ctx.get(&ctx.p("big/fifty.bin", "")).await;
                graph_error(resp, 404, "itemNotFound").await;
                assert!(ctx.list_all(&ctx.p("big", "/children")).await.is_empty());
                assert_eq!(ctx.item("big").await["folder"]["childCount"], 0);
            }
            (500, _) | (0, Err(_)) => {
                drops += 1;
                let st = session_status(&up, &url).await;
                let kept = pos + (end - pos) / 2;
                let want = json!([format!("{kept}-")]);
                assert_eq!(st["nextExpectedRanges"], want, "resume point: {st}");
                pos = kept;
            }
            (200 | 201, Ok(resp)) => break json_status(resp, 201).await,
            (other, resp) => panic!("fragment {pos}-{end}: {other} {resp:?}"),
        }
        assert!(puts < 100, "upload does not finish");
    };
    assert!(
        drops >= 3,
        "drop_fragment_every 3 dropped {drops} of {puts}"
    );
    check_item(&done);
    assert_eq!(done["name"], "fifty.bin");
    assert_eq!(done["size"], total);
    assert_eq!(done["file"]["hashes"]["quickXorHash"], qxh(&body).as_str());
    check_parent(&done, &ctx.drive, dir["id"].as_str().unwrap(), "big");
    let fsi = &done["fileSystemInfo"]["lastModifiedDateTime"];
    assert!(time_eq(fsi, modified), "client mtime kept: {done}");
    let again = ctx.item("big/fifty.bin").await;
    assert!(
        time_eq(&again["fileSystemInfo"]["lastModifiedDateTime"], modified),
        "{again}"
    );
    let got = ctx.download(done["id"].as_str().unwrap()).await;
    assert_eq!(
        sha2::Sha256::digest(&got),
        sha2::Sha256::digest(&body),
        "content round-trips"
    );
    let stats = ctx.sim.stats().await;
    assert_eq!(stats["by_kind"]["create_session"], 1, "{stats}");
    // Fragment PUTs count as upload_fragment (status GETs may count there too).
    let counted = stats["by_kind"]["upload_fragment"].as_u64().unwrap();
    assert!(
        counted >= puts && counted <= puts + drops,
        "{puts} PUTs, {drops} GETs: {stats}"
    );
}

#[tokio::test]
async fn status_cancel_and_authorization() {
    let ctx = Ctx::new().await;
    let total = 4 * FRAG;
    let body = data(total, 9);
    let up = check_session(
        &ctx.create_session(
            "cancel.bin",
            json!({"@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await,
    );
    let http = &ctx.sim.http;
    let bad = &oneshot_client();
    assert_eq!(
        put_fragment(http, &up, 0, &body[..FRAG], total)
            .await
            .status(),
        202
    );
    let st = status(&ctx, &up).await;
    assert_eq!(st["nextExpectedRanges"], json!([format!("{FRAG}-")]));
    assert!(is_time(&st["expirationDateTime"]), "{st}");
    // Upload URLs carry their own auth and refuse an Authorization header ("Don't include it
    // when you issue the PUT call": driveItem: createUploadSession, remarks).
    let resp = http.get(&up).bearer_auth(&ctx.token).send().await.unwrap();
    assert_eq!(resp.status(), 401, "status with Authorization");
    let resp = bad
        .put(&up)
        .bearer_auth(&ctx.token)
        .header(
            "Content-Range",
            format!("bytes {FRAG}-{}/{total}", 2 * FRAG - 1),
        )
        .body(body[FRAG..2 * FRAG].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "fragment with Authorization");
    assert_eq!(
        status(&ctx, &up).await["nextExpectedRanges"],
        json!([format!("{FRAG}-")])
    );
    // Cancel.
    let resp = http.delete(&up).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(http.get(&up).send().await.unwrap().status(), 404);
    let resp = put_fragment(bad, &up, FRAG, &body[FRAG..2 * FRAG], total).await;
    assert_eq!(resp.status(), 404);
    check_error_shape(&resp.json().await.unwrap());
    graph_error(ctx.get(&ctx.p("cancel.bin", "")).await, 404, "itemNotFound").await;
}

#[tokio::test]
async fn expired_sessions_are_404() {
    let ctx = Ctx::new().await;
    let total = 2 * FRAG;
    let body = data(total, 1);
    let up = check_session(
        &ctx.create_session(
            "exp.bin",
            json!({"@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await,
    );
    let http = &ctx.sim.http;
    assert_eq!(
        put_fragment(http, &up, 0, &body[..FRAG], total)
            .await
            .status(),
        202
    );
    ctx.sim.control("/uploads/expire", json!({})).await;
    let resp = put_fragment(&oneshot_client(), &up, FRAG, &body[FRAG..], total).await;
    assert_eq!(resp.status(), 404);
    check_error_shape(&resp.json().await.unwrap());
    let resp = http.get(&up).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    check_error_shape(&resp.json().await.unwrap());
    graph_error(ctx.get(&ctx.p("exp.bin", "")).await, 404, "itemNotFound").await;
    // A fresh session works: restart the upload.
    let up = check_session(
        &ctx.create_session(
            "exp.bin",
            json!({"@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await,
    );
    assert_eq!(put_fragment(http, &up, 0, &body, total).await.status(), 201);
}

#[tokio::test]
async fn name_taken_meanwhile() {
    let ctx = Ctx::new().await;
    let total = 2 * FRAG;
    let body = data(total, 2);
    let http = &ctx.sim.http;
    let fail = check_session(
        &ctx.create_session(
            "race.txt",
            json!({"@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await,
    );
    let replace = check_session(
        &ctx.create_session(
            "race2.txt",
            json!({"@microsoft.graph.conflictBehavior": "replace"}),
        )
        .await,
    );
    for up in [&fail, &replace] {
        assert_eq!(
            put_fragment(http, up, 0, &body[..FRAG], total)
                .await
                .status(),
            202
        );
    }
    let winner = ctx.put("race.txt", b"first").await;
    ctx.put("race2.txt", b"first").await;
    let resp = put_fragment(http, &fail, FRAG, &body[FRAG..], total).await;
    graph_error(resp, 409, "nameAlreadyExists").await;
    assert_eq!(ctx.download(winner["id"].as_str().unwrap()).await, b"first");
    let resp = put_fragment(http, &replace, FRAG, &body[FRAG..], total).await;
    let code = resp.status().as_u16();
    assert!(code == 200 || code == 201, "replace at the end: {code}");
    let item = ctx.item("race2.txt").await;
    assert_eq!(ctx.download(item["id"].as_str().unwrap()).await, body);
}

#[tokio::test]
async fn old_conflict_spelling_is_accepted() {
    let ctx = Ctx::new().await;
    ctx.put("old.txt", b"old").await;
    let s = ctx
        .create_session("old.txt", json!({"@name.conflictBehavior": "rename"}))
        .await;
    let up = check_session(&s);
    let item = json_status(put_fragment(&ctx.sim.http, &up, 0, b"new", 3).await, 201).await;
    assert_ne!(item["name"], "old.txt", "rename honoured: {item}");
    assert_eq!(
        ctx.download(ctx.item("old.txt").await["id"].as_str().unwrap())
            .await,
        b"old"
    );
}

/// `POST .../createUploadSession` with a raw body (`None`: no body at all); expects 200.
async fn open_session(ctx: &Ctx, path: &str, body: Option<&str>) -> String {
    let mut req = ctx.req(Method::POST, &ctx.p(path, "/createUploadSession"));
    if let Some(body) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    check_session(&json_status(req.send().await.unwrap(), 200).await)
}

#[tokio::test]
async fn session_without_conflict_behaviour_replaces() {
    let ctx = Ctx::new().await;
    let original = ctx.put("keep.txt", b"original").await;
    let id = original["id"].as_str().unwrap();
    let bodies = [
        None,
        Some(""),
        Some("{}"),
        Some(r#"{"item": {}}"#),
        Some(r#"{"item": {"fileSystemInfo": {"lastModifiedDateTime": "2021-02-03T04:05:06Z"}}}"#),
    ];
    for (n, body) in bodies.into_iter().enumerate() {
        let content = format!("replaced by session {n}");
        let up = open_session(&ctx, "keep.txt", body).await;
        let resp = put_fragment(&ctx.sim.http, &up, 0, content.as_bytes(), content.len()).await;
        let item = json_status(resp, 200).await;
        assert_eq!(item["id"], id, "replace keeps the item ({body:?}): {item}");
        assert_eq!(item["name"], "keep.txt");
        assert_eq!(ctx.download(id).await, content.as_bytes(), "{body:?}");
    }
    assert_eq!(ctx.child_names("").await, ["keep.txt"], "no renamed copies");
    // The explicit behaviours still apply.
    let resp = ctx
        .req(Method::POST, &ctx.p("keep.txt", "/createUploadSession"))
        .json(&json!({"item": {"@microsoft.graph.conflictBehavior": "fail"}}))
        .send()
        .await
        .unwrap();
    graph_error(resp, 409, "nameAlreadyExists").await;
    let up = check_session(
        &ctx.create_session(
            "keep.txt",
            json!({"@microsoft.graph.conflictBehavior": "rename"}),
        )
        .await,
    );
    let renamed = json_status(put_fragment(&ctx.sim.http, &up, 0, b"r", 1).await, 201).await;
    assert_ne!(renamed["id"], id, "{renamed}");
    assert_ne!(renamed["name"], "keep.txt", "{renamed}");
}

#[tokio::test]
async fn path_session_creates_missing_folders_with_the_file() {
    let ctx = Ctx::new().await;
    ctx.mkdirs("top").await;
    let total = 2 * FRAG;
    let body = data(total, 3);
    let http = &ctx.sim.http;
    let up = open_session(&ctx, "top/new/deeper/s.bin", Some("{}")).await;
    assert_eq!(
        put_fragment(http, &up, 0, &body[..FRAG], total)
            .await
            .status(),
        202
    );
    // Nothing of the path exists before the last fragment.
    assert!(
        ctx.item_at("top/new").await.is_none(),
        "folder created early"
    );
    let done = json_status(
        put_fragment(http, &up, FRAG, &body[FRAG..], total).await,
        201,
    )
    .await;
    let deeper = ctx.item("top/new/deeper").await;
    assert!(deeper["folder"].is_object(), "{deeper}");
    check_parent(
        &done,
        &ctx.drive,
        deeper["id"].as_str().unwrap(),
        "top/new/deeper",
    );
    assert_eq!(ctx.download(done["id"].as_str().unwrap()).await, body);
    // A cancelled session on a missing path leaves nothing behind.
    let up = open_session(&ctx, "gone/s.bin", None).await;
    assert_eq!(http.delete(&up).send().await.unwrap().status(), 204);
    assert!(ctx.item_at("gone").await.is_none());
    // A relative path below an item works the same way.
    let top = ctx.item("top").await;
    let url = ctx.d(&format!(
        "/items/{}:/rel/r.bin:/createUploadSession",
        top["id"].as_str().unwrap()
    ));
    let session = json_status(ctx.req(Method::POST, &url).send().await.unwrap(), 200).await;
    let up = check_session(&session);
    json_status(put_fragment(http, &up, 0, b"rel", 3).await, 201).await;
    assert_eq!(ctx.child_names("top/rel").await, ["r.bin"]);
}
