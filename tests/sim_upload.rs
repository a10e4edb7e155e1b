//! GRAPH.md section 4 upload sessions: a 50 MiB upload in 320 KiB-multiple fragments resumed
//! after a dropped fragment, status/cancel/expiry, invisibility until the last fragment,
//! fileSystemInfo, and conflicts at the end.

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

fn check_session(s: &Value) -> String {
    assert!(is_time(&s["expirationDateTime"]), "expirationDateTime: {s}");
    assert_eq!(s["nextExpectedRanges"], json!(["0-"]), "{s}");
    let url = s["uploadUrl"].as_str().expect("uploadUrl").to_string();
    assert!(url.starts_with("http://"), "absolute uploadUrl: {url}");
    url
}

async fn status(ctx: &Ctx, url: &str) -> Value {
    json_status(ctx.sim.http.get(url).send().await.unwrap(), 200).await
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
    let (mut pos, mut puts, mut drops) = (0, 0, 0);
    let done = loop {
        let end = (pos + frag).min(total);
        let resp = put_fragment(&ctx.sim.http, &url, pos, &body[pos..end], total).await;
        puts += 1;
        match resp.status().as_u16() {
            202 => {
                let v: Value = resp.json().await.unwrap();
                assert_eq!(v["nextExpectedRanges"], json!([format!("{end}-")]), "{v}");
                assert!(is_time(&v["expirationDateTime"]), "{v}");
                pos = end;
                // Invisible until the last fragment.
                graph_error(
                    ctx.get(&ctx.p("big/fifty.bin", "")).await,
                    404,
                    "itemNotFound",
                )
                .await;
                assert!(ctx.list_all(&ctx.p("big", "/children")).await.is_empty());
                assert_eq!(ctx.item("big").await["folder"]["childCount"], 0);
            }
            500 => {
                drops += 1;
                graph_error(resp, 500, "generalException").await;
                let st = status(&ctx, &url).await;
                let kept = pos + (end - pos) / 2;
                assert_eq!(
                    st["nextExpectedRanges"],
                    json!([format!("{kept}-")]),
                    "{st}"
                );
                pos = kept;
            }
            200 | 201 => break json_status(resp, 201).await,
            other => panic!(
                "fragment {pos}-{end}: {other} {}",
                resp.text().await.unwrap()
            ),
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
async fn fragment_rules() {
    let ctx = Ctx::new().await;
    let dir = ctx.mkdirs("rules").await;
    let total = 3 * FRAG + 1000;
    let body = data(total, 5);
    let url = ctx.d(&format!(
        "/items/{}:/r.bin:/createUploadSession",
        dir["id"].as_str().unwrap()
    ));
    let resp = ctx
        .req(Method::POST, &url)
        .json(&json!({"item": {"@microsoft.graph.conflictBehavior": "replace"}}));
    let up = check_session(&json_status(resp.send().await.unwrap(), 200).await);
    let http = &ctx.sim.http;
    // No Content-Range at all.
    let resp = http
        .put(&up)
        .body(body[..FRAG].to_vec())
        .send()
        .await
        .unwrap();
    graph_error(resp, 400, "invalidRequest").await;
    // A non-final fragment that is not a multiple of 320 KiB.
    graph_error(
        put_fragment(http, &up, 0, &body[..100_000], total).await,
        400,
        "invalidRequest",
    )
    .await;
    let resp = put_fragment(http, &up, 0, &body[..FRAG], total).await;
    assert_eq!(
        json_status(resp, 202).await["nextExpectedRanges"],
        json!([format!("{FRAG}-")])
    );
    // Overlap, gap, changed total, and a Content-Range that disagrees with the body.
    let b = graph_error(
        put_fragment(http, &up, 0, &body[..FRAG], total).await,
        416,
        "invalidRange",
    )
    .await;
    assert!(inner_codes(&b).contains(&"fragmentOverlap".into()), "{b}");
    let gap = put_fragment(http, &up, 2 * FRAG, &body[2 * FRAG..3 * FRAG], total).await;
    let b = graph_error(gap, 416, "invalidRange").await;
    assert!(
        inner_codes(&b).contains(&"fragmentOutOfOrder".into()),
        "{b}"
    );
    let grow = put_fragment(http, &up, FRAG, &body[FRAG..2 * FRAG], total + 1).await;
    let b = graph_error(grow, 400, "invalidRequest").await;
    assert!(
        inner_codes(&b).contains(&"fragmentLengthMismatch".into()),
        "{b}"
    );
    let short = http
        .put(&up)
        .header(
            "Content-Range",
            format!("bytes {FRAG}-{}/{total}", 2 * FRAG - 1),
        )
        .body(body[FRAG..2 * FRAG - 1].to_vec())
        .send()
        .await
        .unwrap();
    graph_error(short, 400, "invalidRequest").await;
    // None of that moved the session.
    assert_eq!(
        status(&ctx, &up).await["nextExpectedRanges"],
        json!([format!("{FRAG}-")])
    );
    let resp = put_fragment(http, &up, FRAG, &body[FRAG..3 * FRAG], total).await;
    assert_eq!(
        json_status(resp, 202).await["nextExpectedRanges"],
        json!([format!("{}-", 3 * FRAG)])
    );
    let last = put_fragment(http, &up, 3 * FRAG, &body[3 * FRAG..], total).await;
    let item = json_status(last, 201).await;
    assert_eq!(item["size"], total);
    assert_eq!(item["file"]["hashes"]["quickXorHash"], qxh(&body).as_str());
    assert_eq!(ctx.download(item["id"].as_str().unwrap()).await, body);
}

#[tokio::test]
async fn fragment_of_60_mib_is_refused() {
    let ctx = Ctx::new().await;
    let total = 60 * MIB + FRAG;
    let body = data(total, 60);
    let up = check_session(
        &ctx.create_session(
            "sixty.bin",
            json!({"@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await,
    );
    let http = &ctx.sim.http;
    // The client must be able to read the 400: a reply that closes the connection before the
    // body is read surfaces as a broken pipe instead.
    let resp = http
        .put(&up)
        .header("Content-Range", format!("bytes 0-{}/{total}", 60 * MIB - 1))
        .body(body[..60 * MIB].to_vec())
        .send()
        .await
        .unwrap_or_else(|e| panic!("no readable 400 for a 60 MiB fragment: {e:?}"));
    graph_error(resp, 400, "invalidRequest").await;
    let cut = 60 * MIB - FRAG;
    assert_eq!(
        put_fragment(http, &up, 0, &body[..cut], total)
            .await
            .status(),
        202
    );
    let done = json_status(put_fragment(http, &up, cut, &body[cut..], total).await, 201).await;
    assert_eq!(done["size"], total);
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
    assert_eq!(
        put_fragment(http, &up, 0, &body[..FRAG], total)
            .await
            .status(),
        202
    );
    let st = status(&ctx, &up).await;
    assert_eq!(st["nextExpectedRanges"], json!([format!("{FRAG}-")]));
    assert!(is_time(&st["expirationDateTime"]), "{st}");
    // Upload URLs carry their own auth and refuse an Authorization header.
    let resp = http.get(&up).bearer_auth(&ctx.token).send().await.unwrap();
    assert_eq!(resp.status(), 401, "status with Authorization");
    let resp = http
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
    let resp = put_fragment(http, &up, FRAG, &body[FRAG..2 * FRAG], total).await;
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
    let resp = put_fragment(http, &up, FRAG, &body[FRAG..], total).await;
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
