//! Bad input never crashes the simulator and gets the Graph-style error a real service sends:
//! malformed JSON, wrong Content-Range, unknown routes, huge headers, odd paths.

mod common;

use common::*;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

async fn send_json(req: RequestBuilder, body: &'static str) -> Response {
    req.header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The simulator is alive and still serves control and Graph requests.
async fn still_answers(ctx: &Ctx) {
    ctx.sim.assert_alive();
    ctx.sim.stats().await;
    ctx.get_json(&ctx.d("/root")).await;
}

async fn client_error_json(resp: Response, what: &str) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_client_error(), "{what}: {status} {text}");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: JSON: {text}"));
    check_error_shape(&body);
    body
}

/// A simulator with one file; returns the context and the file's item URL.
async fn with_file() -> (Ctx, String) {
    let ctx = Ctx::new().await;
    let file = ctx.put("f.txt", b"x").await;
    let item = ctx.d(&format!("/items/{}", file["id"].as_str().unwrap()));
    (ctx, item)
}

#[tokio::test]
async fn malformed_json_on_post_children_is_400() {
    let (ctx, _) = with_file().await;
    let children = ctx.d("/root/children");
    for body in [
        "{not json",
        "",
        "[]",
        "null",
        "{\"name\": 5, \"folder\": {}}",
        "{\"folder\": {}}",
    ] {
        let resp = send_json(ctx.req(Method::POST, &children), body).await;
        graph_error(resp, 400, "invalidRequest").await;
    }
    let resp = ctx
        .req(Method::POST, &children)
        .header("Content-Type", "application/json");
    let resp = resp
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    graph_error(resp, 400, "invalidRequest").await;
    let children_left = ctx.list_all(&children).await;
    assert_eq!(children_left.len(), 1, "nothing created: {children_left:?}");
    still_answers(&ctx).await;
}

#[tokio::test]
async fn malformed_json_on_create_upload_session_is_400() {
    let (ctx, _) = with_file().await;
    let session = ctx.p("s.bin", "/createUploadSession");
    for body in ["{bad", "[1,2", "{\"item\": 5}"] {
        let resp = send_json(ctx.req(Method::POST, &session), body).await;
        graph_error(resp, 400, "invalidRequest").await;
    }
    still_answers(&ctx).await;
}

#[tokio::test]
async fn malformed_json_on_patch_and_copy_is_400() {
    let (ctx, item) = with_file().await;
    for body in [
        "{bad",
        "\"name\"",
        "{\"name\": []}",
        "{\"parentReference\": 7}",
    ] {
        let resp = send_json(ctx.req(Method::PATCH, &item), body).await;
        graph_error(resp, 400, "invalidRequest").await;
    }
    let resp = send_json(ctx.req(Method::POST, &format!("{item}/copy")), "{bad").await;
    graph_error(resp, 400, "invalidRequest").await;
    assert_eq!(ctx.item("f.txt").await["name"], "f.txt");
    still_answers(&ctx).await;
}

#[tokio::test]
async fn oversized_json_body_is_refused() {
    let (ctx, _) = with_file().await;
    let children = ctx.d("/root/children");
    let huge = format!(
        "{{\"name\": \"{}\", \"folder\": {{}}}}",
        "a".repeat(20 << 20)
    );
    let resp = ctx
        .req(Method::POST, &children)
        .header("Content-Type", "application/json");
    // A refusal before the body is read may close the connection; that is acceptable here.
    if let Ok(resp) = resp.body(huge).send().await {
        let code = resp.status().as_u16();
        assert!(code == 400 || code == 413, "20 MiB JSON body: {code}");
    }
    let listed = ctx.list_all(&children).await;
    assert_eq!(listed.len(), 1, "nothing created");
    still_answers(&ctx).await;
}

#[tokio::test]
async fn wrong_content_range_is_refused() {
    let ctx = Ctx::new().await;
    let session = ctx
        .create_session(
            "cr.bin",
            json!({"@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await;
    let up = session["uploadUrl"].as_str().unwrap();
    let ten = b"0123456789".to_vec();
    for range in [
        "garbage",
        "bytes=0-9/10",
        "bytes 9-0/10",
        "bytes 0-9/5",
        "bytes -1-8/10",
        "bytes 0-9/*",
        "bytes */10",
        "items 0-9/10",
        "bytes 0-18446744073709551616/18446744073709551617",
        "bytes 0-9/10/10",
    ] {
        let resp = ctx
            .sim
            .http
            .put(up)
            .header("Content-Range", range)
            .body(ten.clone())
            .send()
            .await;
        let resp = resp.unwrap();
        let status = resp.status().as_u16();
        let body = client_error_json(resp, range).await;
        assert!(status == 400 || status == 416, "{range}: {status} {body}");
    }
    // The session is untouched and still completes.
    let st = json_status(ctx.sim.http.get(up).send().await.unwrap(), 200).await;
    assert_eq!(st["nextExpectedRanges"], json!(["0-"]));
    let done = put_fragment(&ctx.sim.http, up, 0, &ten, 10).await;
    assert_eq!(json_status(done, 201).await["size"], 10);
    still_answers(&ctx).await;
}

#[tokio::test]
async fn unknown_routes_get_graph_errors() {
    let ctx = Ctx::new().await;
    let file = ctx.put("r.txt", b"x").await;
    let id = file["id"].as_str().unwrap();
    for rel in [
        "/nonsense".to_string(),
        "/".to_string(),
        format!("/drives/{}/bogus", ctx.drive),
        format!("/drives/{}/items/{id}/bogus", ctx.drive),
        format!("/sites/{}/bogus", ctx.site),
        "/me/drive/root".to_string(),
        format!("/drives/{}/root:/a:/bogus", ctx.drive),
    ] {
        let resp = ctx.get(&ctx.sim.graph(&rel)).await;
        let code = resp.status().as_u16();
        client_error_json(resp, &rel).await;
        assert!(code == 400 || code == 404, "{rel}: {code}");
    }
    // A known path with the wrong method.
    let resp = ctx
        .req(Method::PUT, &ctx.sim.graph(&format!("/sites/{}", ctx.site)))
        .send()
        .await;
    let resp = resp.unwrap();
    let code = resp.status().as_u16();
    client_error_json(resp, "PUT site").await;
    assert!([400, 404, 405].contains(&code), "wrong method: {code}");
    // Outside /v1.0 and /_sim: any client error, no crash.
    for path in [
        "/nope",
        "/v2.0/drives",
        "/_sim/nope",
        "/contoso/oauth2/v2.0/nope",
    ] {
        let resp = ctx
            .sim
            .http
            .get(format!("{}{path}", ctx.sim.base))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{path}: {}", resp.status());
    }
    still_answers(&ctx).await;
}

#[tokio::test]
async fn huge_headers_are_refused_not_fatal() {
    let ctx = Ctx::new().await;
    let url = ctx.d("/root/children");
    let big = "a".repeat(100 * 1024);
    let resp = ctx
        .req(Method::GET, &url)
        .header("X-Big", big.as_str())
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    assert!(code == 431 || code == 400, "100 KB header: {code}");
    let body: Value = resp
        .json()
        .await
        .expect("Graph-style JSON error for a 100 KB header");
    check_error_shape(&body);
    still_answers(&ctx).await;
    // Hundreds of headers, a 1 MiB header and a 100 KB URL: any refusal, even a closed
    // connection, but the simulator survives.
    let mut req = ctx.req(Method::GET, &url);
    for i in 0..500 {
        req = req.header(format!("x-h{i}"), "v");
    }
    if let Ok(resp) = req.send().await {
        assert!(
            !resp.status().is_success(),
            "500 headers: {}",
            resp.status()
        );
    }
    let huge = "b".repeat(1 << 20);
    if let Ok(resp) = ctx
        .req(Method::GET, &url)
        .header("X-Huge", huge)
        .send()
        .await
    {
        assert!(
            !resp.status().is_success(),
            "1 MiB header: {}",
            resp.status()
        );
    }
    let long = ctx.p(&"c".repeat(100 * 1024), "");
    if let Ok(resp) = ctx.req(Method::GET, &long).send().await {
        assert!(
            resp.status().is_client_error(),
            "100 KB URL: {}",
            resp.status()
        );
    }
    let odd = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
    let resp = ctx
        .sim
        .http
        .get(&url)
        .header("Authorization", odd)
        .send()
        .await
        .unwrap();
    graph_error(resp, 401, "InvalidAuthenticationToken").await;
    still_answers(&ctx).await;
}

#[tokio::test]
async fn odd_paths_stay_inside_the_drive() {
    let ctx = Ctx::new().await;
    for url in [
        ctx.d("/root:/..%2F..%2Fescape.txt:/content"),
        ctx.d("/root:/../escape.txt:/content"),
        ctx.d("/root:/a/../../escape.txt:/content"),
        ctx.d("/root:/%2E%2E/escape.txt:/content"),
        ctx.d("/root:/bad%ZZ.txt:/content"),
        ctx.d("/root:/bad%:/content"),
        ctx.d("/root:/a//b.txt:/content"),
    ] {
        let resp = ctx.req(Method::PUT, &url).body("x").send().await.unwrap();
        let code = resp.status().as_u16();
        assert!((400..500).contains(&code), "{url}: {code}");
    }
    for name in [".", ".."] {
        let body = json!({"name": name, "folder": {}});
        let resp = ctx
            .req(Method::POST, &ctx.d("/root/children"))
            .json(&body)
            .send()
            .await;
        client_error_json(resp.unwrap(), name).await;
    }
    let parent = ctx.sim.dir.path();
    assert!(!parent.join("escape.txt").exists() && !parent.join("data/../escape.txt").exists());
    let root = ctx.list_all(&ctx.d("/root/children")).await;
    assert!(root.is_empty(), "nothing created: {root:?}");
    // Token endpoint: JSON instead of a form, and an empty body.
    let token_url = ctx.sim.token_url("contoso");
    let resp = ctx
        .sim
        .http
        .post(&token_url)
        .json(&json!({"grant_type": "client_credentials"}));
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("AAD-style JSON error");
    assert!(body["error"].is_string(), "{body}");
    let resp = ctx.sim.http.post(&token_url).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    still_answers(&ctx).await;
}
