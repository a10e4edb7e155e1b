//! GRAPH.md section 7 faults through the control API: throttling with Retry-After, rotating
//! 5xx, the faults document itself, and request statistics by kind.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn statuses(ctx: &Ctx, n: usize) -> Vec<(u16, Option<String>, Value)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let resp = ctx.get(&ctx.d("/root/children")).await;
        let code = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let body = resp.json().await.unwrap_or(Value::Null);
        out.push((code, retry, body));
    }
    out
}

#[tokio::test]
async fn throttle_every_with_retry_after() {
    let ctx = Ctx::new().await;
    let before = ctx.sim.stats().await;
    ctx.sim
        .faults(json!({"throttle_every": 3, "retry_after_s": 2}))
        .await;
    let got = statuses(&ctx, 9).await;
    let hits: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, g)| g.0 == 429)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 3, "every 3rd request throttled: {got:?}");
    assert!(hits[1] - hits[0] == 3 && hits[2] - hits[1] == 3, "{hits:?}");
    for (code, retry, body) in &got {
        if *code == 429 {
            assert_eq!(retry.as_deref(), Some("2"), "Retry-After seconds");
            check_error_shape(body);
            let c = body["error"]["code"].as_str().unwrap();
            assert!(
                c == "activityLimitReached" || c == "throttledRequest",
                "{body}"
            );
        } else {
            assert_eq!(*code, 200, "{body}");
        }
    }
    let after = ctx.sim.stats().await;
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    assert_eq!(delta("throttled"), 3, "{after}");
    assert_eq!(
        delta("requests"),
        9,
        "throttled requests still count: {after}"
    );
    // Default Retry-After is 1 s; token requests are never throttled.
    let del = ctx
        .sim
        .http
        .delete(ctx.sim.ctl("/faults"))
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success());
    ctx.sim.faults(json!({"throttle_every": 1})).await;
    let got = statuses(&ctx, 2).await;
    for (code, retry, _) in &got {
        assert_eq!((*code, retry.as_deref()), (429, Some("1")));
    }
    let token = ctx.sim.app_token().await;
    assert!(!token.is_empty());
}

#[tokio::test]
async fn fail_5xx_every_rotates_without_retry_after() {
    let ctx = Ctx::new().await;
    ctx.sim.faults(json!({"fail_5xx_every": 1})).await;
    let got = statuses(&ctx, 6).await;
    let codes: Vec<u16> = got.iter().map(|g| g.0).collect();
    let mut first: Vec<u16> = codes[..3].to_vec();
    first.sort();
    assert_eq!(first, vec![500, 502, 504], "rotating 5xx: {codes:?}");
    assert_eq!(codes[..3], codes[3..], "rotation repeats: {codes:?}");
    assert!(
        got.iter().all(|g| g.1.is_none()),
        "no Retry-After on 5xx: {got:?}"
    );
    ctx.sim
        .http
        .delete(ctx.sim.ctl("/faults"))
        .send()
        .await
        .unwrap();
    ctx.sim.faults(json!({"fail_5xx_every": 2})).await;
    let got = statuses(&ctx, 6).await;
    assert_eq!(got.iter().filter(|g| g.0 >= 500).count(), 3, "{got:?}");
    assert_eq!(got.iter().filter(|g| g.0 == 200).count(), 3, "{got:?}");
}

#[tokio::test]
async fn faults_document_merges_and_clears() {
    let sim = Sim::start();
    sim.faults(json!({"throttle_every": 5})).await;
    sim.faults(json!({"retry_after_s": 7, "enrich_office": true}))
        .await;
    let resp = sim.http.get(sim.ctl("/faults")).send().await.unwrap();
    let f = json_status(resp, 200).await;
    assert_eq!(f["throttle_every"], 5, "{f}");
    assert_eq!(f["retry_after_s"], 7, "{f}");
    assert_eq!(f["enrich_office"], true, "{f}");
    let resp = sim.http.delete(sim.ctl("/faults")).send().await.unwrap();
    assert!(resp.status().is_success());
    let f = json_status(sim.http.get(sim.ctl("/faults")).send().await.unwrap(), 200).await;
    let off = |v: &Value| v.is_null() || v == 0 || v == false;
    for key in [
        "throttle_every",
        "fail_5xx_every",
        "drop_fragment_every",
        "enrich_office",
    ] {
        assert!(off(&f[key]), "{key} cleared: {f}");
    }
    // Bad faults documents are refused without effect.
    let resp = sim
        .http
        .post(sim.ctl("/faults"))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = sim
        .http
        .post(sim.ctl("/faults"))
        .json(&json!({"throttle_every": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let token = sim.app_token().await;
    let (_, drive) = sim.site_drive(&token, "partners").await;
    let url = sim.graph(&format!("/drives/{drive}/root"));
    for _ in 0..5 {
        assert_eq!(
            sim.http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

#[tokio::test]
async fn stats_count_requests_by_kind() {
    let ctx = Ctx::new().await;
    let file = ctx.put("s.txt", b"stats").await;
    let id = file["id"].as_str().unwrap().to_string();
    ctx.sim.control("/stats/reset", json!({})).await;
    let zero = ctx.sim.stats().await;
    assert_eq!(zero["requests"], 0, "{zero}");
    ctx.sim.app_token().await;
    ctx.get_json(&ctx.sim.graph(&format!("/sites/{HOST}:/sites/partners")))
        .await;
    ctx.get_json(&ctx.d("/root/children")).await;
    ctx.item_by_id(&id).await;
    ctx.download(&id).await;
    ctx.put("t.txt", b"t").await;
    let dir = ctx.mkdir("root", "dir").await;
    let url = ctx.d(&format!("/items/{id}"));
    let body = json!({"parentReference": {"id": dir["id"]}});
    json_status(
        ctx.req(Method::PATCH, &url)
            .json(&body)
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let session = ctx
        .create_session(
            "u.bin",
            json!({"@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await;
    let up = session["uploadUrl"].as_str().unwrap();
    let bytes = data(FRAG + 5, 1);
    assert_eq!(
        put_fragment(&ctx.sim.http, up, 0, &bytes[..FRAG], bytes.len())
            .await
            .status(),
        202
    );
    assert_eq!(
        put_fragment(&ctx.sim.http, up, FRAG, &bytes[FRAG..], bytes.len())
            .await
            .status(),
        201
    );
    let copy = json!({"parentReference": {"driveId": ctx.drive, "id": dir["id"]}, "name": "c.txt"});
    let resp = ctx
        .req(Method::POST, &format!("{url}/copy"))
        .json(&copy)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    ctx.get_json(&ctx.d("/root/delta?token=latest")).await;
    let t = ctx.put("gone.txt", b"x").await;
    let del = ctx.d(&format!("/items/{}", t["id"].as_str().unwrap()));
    assert_eq!(
        ctx.req(Method::DELETE, &del).send().await.unwrap().status(),
        204
    );
    ctx.sim.faults(json!({})).await;
    let s = ctx.sim.stats().await;
    let k = |name: &str| {
        s["by_kind"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {s}"))
    };
    for (kind, n) in [
        ("token", 1),
        ("site", 1),
        ("list", 1),
        ("get_item", 1),
        ("simple_upload", 2),
        ("mkdir", 1),
        ("move", 1),
        ("create_session", 1),
        ("upload_fragment", 2),
        ("copy", 1),
        ("delta", 1),
        ("delete", 1),
    ] {
        assert_eq!(k(kind), n, "{kind}: {s}");
    }
    // /content and the download URL: both downloads, or the URL fetch counted as other.
    assert_eq!(k("download") + k("other"), 2, "{s}");
    assert!(k("download") >= 1, "{s}");
    let sum: u64 = s["by_kind"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        s["requests"].as_u64(),
        Some(sum),
        "requests is the sum of kinds: {s}"
    );
    assert_eq!(s["throttled"], 0);
}
