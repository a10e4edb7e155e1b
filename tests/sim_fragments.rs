//! GRAPH.md section 4 fragment rules: Content-Range required, 320 KiB multiples, < 60 MiB,
//! overlap/gap/length mismatch, dropped fragments answering 500, and refusals that leave the
//! client's connection usable.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

const MIB: usize = 1 << 20;

async fn status(ctx: &Ctx, url: &str) -> serde_json::Value {
    session_status(&ctx.sim.http, url).await
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
    let bad = &oneshot_client();
    // No Content-Range at all.
    let resp = bad
        .put(&up)
        .body(body[..FRAG].to_vec())
        .send()
        .await
        .unwrap();
    graph_error(resp, 400, "invalidRequest").await;
    // A non-final fragment that is not a multiple of 320 KiB.
    graph_error(
        put_fragment(bad, &up, 0, &body[..100_000], total).await,
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
        put_fragment(bad, &up, 0, &body[..FRAG], total).await,
        416,
        "invalidRange",
    )
    .await;
    assert!(inner_codes(&b).contains(&"fragmentOverlap".into()), "{b}");
    let gap = put_fragment(bad, &up, 2 * FRAG, &body[2 * FRAG..3 * FRAG], total).await;
    let b = graph_error(gap, 416, "invalidRange").await;
    assert!(
        inner_codes(&b).contains(&"fragmentOutOfOrder".into()),
        "{b}"
    );
    let grow = put_fragment(bad, &up, FRAG, &body[FRAG..2 * FRAG], total + 1).await;
    let b = graph_error(grow, 400, "invalidRequest").await;
    assert!(
        inner_codes(&b).contains(&"fragmentLengthMismatch".into()),
        "{b}"
    );
    let short = bad
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
    let resp = oneshot_client()
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

/// Sends a 10 MiB fragment the simulator refuses; the reply must be readable and the pooled
/// client must keep working.
async fn refused_10_mib(ctx: &Ctx, up: &str, start: usize, auth: bool, want: &[u16]) {
    let http = &ctx.sim.http;
    let total = 64 * FRAG;
    let len = 32 * FRAG;
    let mut req = http
        .put(up)
        .header(
            "Content-Range",
            format!("bytes {start}-{}/{total}", start + len - 1),
        )
        .body(data(len, 12));
    if auth {
        req = req.bearer_auth(&ctx.token);
    }
    let what = format!("refused fragment at {start} (auth {auth})");
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no readable reply: {e:?}"));
    let code = resp.status().as_u16();
    assert!(want.contains(&code), "{what}: {code}");
    let closes = resp
        .headers()
        .get("connection")
        .is_some_and(|v| v == "close");
    resp.bytes().await.unwrap();
    for _ in 0..3 {
        ctx.sim
            .http
            .get(ctx.d("/root"))
            .bearer_auth(&ctx.token)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("{what}: next request failed (Connection: close sent: {closes}): {e:?}")
            });
    }
}

#[tokio::test]
async fn refused_fragments_leave_the_connection_usable() {
    // Refusing a fragment before reading its body is fine, but then the body must be drained
    // or the reply must say `Connection: close`: otherwise a client gets a broken pipe instead
    // of the reply (and cannot tell a 416 or 404 from a network error), or reuses a connection
    // the simulator is closing.
    let ctx = Ctx::new().await;
    let item = json!({"@microsoft.graph.conflictBehavior": "fail"});
    let up = check_session(&ctx.create_session("conn.bin", item).await);
    refused_10_mib(&ctx, &up, 0, true, &[401]).await;
    let first = put_fragment(&oneshot_client(), &up, 0, &data(FRAG, 1), 64 * FRAG).await;
    assert_eq!(first.status(), 202);
    refused_10_mib(&ctx, &up, 0, false, &[416]).await;
    refused_10_mib(&ctx, &up, 2 * FRAG, false, &[416]).await;
    ctx.sim.control("/uploads/expire", json!({})).await;
    refused_10_mib(&ctx, &up, FRAG, false, &[401, 404]).await;
}

#[tokio::test]
async fn dropped_fragment_answers_500_and_keeps_the_first_half() {
    let ctx = Ctx::new().await;
    ctx.sim.faults(json!({"drop_fragment_every": 1})).await;
    let total = 16 * FRAG;
    let body = data(total, 13);
    let item = json!({"@microsoft.graph.conflictBehavior": "fail"});
    let up = check_session(&ctx.create_session("drop.bin", item).await);
    let (mut pos, fresh) = (0, oneshot_client());
    for round in 0..3 {
        let len = 4 * FRAG;
        let resp = try_put_fragment(&fresh, &up, pos, &body[pos..pos + len], total)
            .await
            .unwrap_or_else(|e| {
                panic!("round {round}: no readable 500 for a dropped fragment: {e:?}")
            });
        graph_error(resp, 500, "generalException").await;
        pos += len / 2;
        let st = session_status(&fresh, &up).await;
        assert_eq!(st["nextExpectedRanges"], json!([format!("{pos}-")]), "{st}");
    }
}
