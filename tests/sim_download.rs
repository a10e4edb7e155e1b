//! GRAPH.md section 3: `/content` answers 302 to a pre-authenticated URL that ignores an
//! Authorization header; `Range` -> 206 with `Content-Range`; `If-None-Match` -> 304. Also the
//! simulator's counters of ranged downloads and its expiry of download URLs.

mod common;

use common::*;
use reqwest::Response;
use serde_json::Value;

const SIZE: usize = 300_001;

async fn fixture() -> (Ctx, Value, Vec<u8>) {
    let ctx = Ctx::new().await;
    ctx.mkdirs("dl").await;
    let body = data(SIZE, 11);
    let file = ctx.put("dl/blob.bin", &body).await;
    (ctx, file, body)
}

async fn location(ctx: &Ctx, url: &str) -> String {
    let resp = ctx.get(url).await;
    assert_eq!(resp.status(), 302, "{url} redirects");
    let loc = resp
        .headers()
        .get("location")
        .expect("Location")
        .to_str()
        .unwrap()
        .to_string();
    assert!(loc.starts_with("http://"), "absolute Location: {loc}");
    loc
}

async fn ranged(ctx: &Ctx, url: &str, range: &str) -> Response {
    ctx.sim
        .http
        .get(url)
        .header("Range", range)
        .send()
        .await
        .unwrap()
}

fn content_range(resp: &Response) -> String {
    let h = resp
        .headers()
        .get("content-range")
        .expect("Content-Range on 206");
    h.to_str().unwrap().to_string()
}

#[tokio::test]
async fn content_redirects_to_preauthenticated_url() {
    let (ctx, file, body) = fixture().await;
    let id = file["id"].as_str().unwrap();
    let by_id = location(&ctx, &ctx.d(&format!("/items/{id}/content"))).await;
    let by_path = location(&ctx, &ctx.p("dl/blob.bin", "/content")).await;
    let listed = file["@microsoft.graph.downloadUrl"]
        .as_str()
        .unwrap()
        .to_string();
    for url in [by_id, by_path, listed] {
        let resp = ctx.sim.http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let len = resp
            .headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(len.as_deref(), Some(SIZE.to_string().as_str()));
        assert_eq!(resp.bytes().await.unwrap().as_ref(), body.as_slice());
        // An Authorization header is ignored there, as SharePoint does (clients that follow
        // the 302 often still send one), also with a Range.
        let resp = ctx
            .sim
            .http
            .get(&url)
            .bearer_auth(&ctx.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "download URL with Authorization: {url}");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), body.as_slice());
        let resp = ctx
            .sim
            .http
            .get(&url)
            .bearer_auth("not-even-a-token")
            .header("Range", "bytes=0-9")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206, "ranged download with Authorization");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), &body[..10]);
    }
    // Without a Graph token, /content itself is 401.
    let resp = ctx
        .sim
        .http
        .get(ctx.d(&format!("/items/{id}/content")))
        .send()
        .await
        .unwrap();
    graph_error(resp, 401, "InvalidAuthenticationToken").await;
}

#[tokio::test]
async fn range_gives_206_with_content_range() {
    let (ctx, file, body) = fixture().await;
    let url = location(
        &ctx,
        &ctx.d(&format!("/items/{}/content", file["id"].as_str().unwrap())),
    )
    .await;
    let last = SIZE - 1;
    for (range, start, end) in [
        ("bytes=10-19".to_string(), 10, 19),
        ("bytes=0-0".to_string(), 0, 0),
        (format!("bytes=100000-{last}"), 100_000, last),
        ("bytes=200000-".to_string(), 200_000, last),
        (format!("bytes={last}-{last}"), last, last),
    ] {
        let resp = ranged(&ctx, &url, &range).await;
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            content_range(&resp),
            format!("bytes {start}-{end}/{SIZE}"),
            "{range}"
        );
        assert_eq!(
            resp.bytes().await.unwrap().as_ref(),
            &body[start..=end],
            "{range}"
        );
    }
    // Ranges past the end: clamped (206) or ignored (200), never wrong bytes.
    let resp = ranged(&ctx, &url, "bytes=300000-999999999").await;
    match resp.status().as_u16() {
        206 => {
            assert_eq!(content_range(&resp), format!("bytes 300000-{last}/{SIZE}"));
            assert_eq!(resp.bytes().await.unwrap().as_ref(), &body[300_000..]);
        }
        200 => assert_eq!(resp.bytes().await.unwrap().as_ref(), body.as_slice()),
        other => panic!("bytes=300000-999999999 -> {other}"),
    }
    // Unsatisfiable: 416, or the range ignored.
    let resp = ranged(&ctx, &url, &format!("bytes={SIZE}-")).await;
    match resp.status().as_u16() {
        416 => {}
        200 => assert_eq!(resp.bytes().await.unwrap().as_ref(), body.as_slice()),
        other => panic!("unsatisfiable range -> {other}"),
    }
}

#[tokio::test]
async fn if_none_match_current_etag_is_304() {
    let (ctx, file, body) = fixture().await;
    let id = file["id"].as_str().unwrap();
    let etag = file["eTag"].as_str().unwrap();
    let content = ctx.d(&format!("/items/{id}/content"));
    let resp = ctx
        .req(reqwest::Method::GET, &content)
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304, "/content with the current eTag");
    assert!(resp.bytes().await.unwrap().is_empty());
    let url = location(&ctx, &content).await;
    let resp = ctx
        .sim
        .http
        .get(&url)
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304, "download URL with the current eTag");
    // A stale eTag downloads.
    let newer = ctx.put("dl/blob.bin", b"changed").await;
    assert_ne!(newer["eTag"], file["eTag"]);
    let resp = ctx
        .req(reqwest::Method::GET, &content)
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "stale eTag: redirect to the content");
    let url = location(&ctx, &content).await;
    let resp = ctx
        .sim
        .http
        .get(&url)
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"changed");
    assert_ne!(body.len(), 7);
}

#[tokio::test]
async fn zero_byte_and_missing_downloads() {
    let (ctx, file, _) = fixture().await;
    let empty = ctx.put("dl/empty.txt", b"").await;
    assert_eq!(empty["size"], 0);
    assert_eq!(
        empty["file"]["hashes"]["quickXorHash"],
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    );
    assert!(ctx.download(empty["id"].as_str().unwrap()).await.is_empty());
    // The single byte 0x4A, the other vector of GRAPH.md.
    let j = ctx.put("dl/j.txt", b"J").await;
    assert_eq!(
        j["file"]["hashes"]["quickXorHash"],
        "SgAAAAAAAAAAAAAAAQAAAAAAAAA="
    );
    assert_eq!(qxh(b"J"), "SgAAAAAAAAAAAAAAAQAAAAAAAAA=");
    // A folder has no content; a deleted file's download URL stops working.
    let url = location(
        &ctx,
        &ctx.d(&format!("/items/{}/content", file["id"].as_str().unwrap())),
    )
    .await;
    let dir = ctx.item("dl").await;
    let resp = ctx
        .get(&ctx.d(&format!("/items/{}/content", dir["id"].as_str().unwrap())))
        .await;
    assert!(
        resp.status().is_client_error(),
        "folder content: {}",
        resp.status()
    );
    check_error_shape(&resp.json().await.unwrap());
    let del = ctx.d(&format!("/items/{}", file["id"].as_str().unwrap()));
    assert_eq!(
        ctx.req(reqwest::Method::DELETE, &del)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let resp = ctx.sim.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 404, "download URL of a deleted item");
    // A tampered download URL is refused.
    let tampered = format!("{url}x");
    let resp = ctx.sim.http.get(&tampered).send().await.unwrap();
    assert!(
        resp.status().is_client_error(),
        "tampered URL: {}",
        resp.status()
    );
}

/// The simulator's own controls for parallel-download tests: ranged downloads and their
/// connections are counted, and `/_sim/downloads/expire` expires every URL handed out.
#[tokio::test]
async fn ranged_downloads_are_counted_and_urls_expire_on_demand() {
    let (ctx, _file, body) = fixture().await;
    let url = location(&ctx, &ctx.p("dl/blob.bin", "/content")).await;
    ctx.sim.control("/stats/reset", serde_json::json!({})).await;
    // Two ranges on two fresh connections, one whole download (not counted).
    for range in ["bytes=0-9", "bytes=10-19"] {
        let client = oneshot_client();
        let resp = client
            .get(&url)
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206);
    }
    assert_eq!(ctx.sim.http.get(&url).send().await.unwrap().status(), 200);
    let stats = ctx.sim.stats().await;
    assert_eq!(stats["ranged_downloads"], 2, "{stats}");
    assert_eq!(stats["download_connections"], 2, "{stats}");
    assert_eq!(stats["by_kind"]["download"], 3, "{stats}");

    ctx.sim
        .control("/downloads/expire", serde_json::json!({}))
        .await;
    let resp = ranged(&ctx, &url, "bytes=0-9").await;
    assert_eq!(resp.status(), 401);
    let fresh = location(&ctx, &ctx.p("dl/blob.bin", "/content")).await;
    let resp = ranged(&ctx, &fresh, "bytes=0-9").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &body[..10]);
}
