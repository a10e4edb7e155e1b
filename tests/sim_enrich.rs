//! GRAPH.md section 7: SharePoint rewrites Office/PDF/HTML files after upload (`enrich_office`),
//! and drive quotas end uploads with 507 quotaLimitReached.

mod common;

use common::*;
use serde_json::{Value, json};

/// The stored file differs from what was sent, and the item describes the stored bytes.
async fn check_enriched(ctx: &Ctx, item: &Value, sent: &[u8]) {
    let size = item["size"].as_u64().unwrap() as usize;
    assert!(size > sent.len(), "enriched file grows: {item}");
    let hash = item["file"]["hashes"]["quickXorHash"].as_str().unwrap();
    assert_ne!(hash, qxh(sent), "hash differs from what was sent");
    let stored = ctx.download(item["id"].as_str().unwrap()).await;
    assert_eq!(stored.len(), size, "reported size is the stored size");
    assert_eq!(qxh(&stored), hash, "reported hash is the stored hash");
    let again = ctx.item_by_id(item["id"].as_str().unwrap()).await;
    assert_eq!(again["size"], item["size"]);
    assert_eq!(again["file"]["hashes"]["quickXorHash"], hash);
}

#[tokio::test]
async fn enrich_office_changes_size_and_hash() {
    let ctx = Ctx::new().await;
    ctx.sim.faults(json!({"enrich_office": true})).await;
    let sent = data(10_000, 4);
    for name in [
        "report.docx",
        "sheet.XLSX",
        "deck.pptx",
        "scan.pdf",
        "page.html",
        "old.htm",
    ] {
        let item = ctx.put(name, &sent).await;
        check_enriched(&ctx, &item, &sent).await;
    }
    // Upload sessions are enriched too.
    let total = 2 * FRAG + 10;
    let body = data(total, 8);
    let s = ctx
        .create_session(
            "big.pdf",
            json!({"@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await;
    let up = s["uploadUrl"].as_str().unwrap();
    let http = &ctx.sim.http;
    assert_eq!(
        put_fragment(http, up, 0, &body[..2 * FRAG], total)
            .await
            .status(),
        202
    );
    let item = json_status(
        put_fragment(http, up, 2 * FRAG, &body[2 * FRAG..], total).await,
        201,
    )
    .await;
    check_enriched(&ctx, &item, &body).await;
    // Off again: stored as sent.
    let resp = ctx
        .sim
        .http
        .delete(ctx.sim.ctl("/faults"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let plain = ctx.put("after.docx", &sent).await;
    assert_eq!(plain["size"], sent.len());
}

#[tokio::test]
async fn enrich_office_leaves_other_types_alone() {
    let ctx = Ctx::new().await;
    ctx.sim.faults(json!({"enrich_office": true})).await;
    let sent = data(10_000, 4);
    // Only the extensions .docx .xlsx .pptx .pdf .html .htm are rewritten.
    for name in ["notes.txt", "data.bin", "docx", "archive.docx.zip"] {
        let item = ctx.put(name, &sent).await;
        assert_eq!(item["size"], sent.len(), "{name}");
        assert_eq!(
            item["file"]["hashes"]["quickXorHash"],
            qxh(&sent).as_str(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn quota_exceeded_is_507() {
    let more = "quota_bytes = 1000000\n";
    let ctx = Ctx::with_seed(&seed("", more)).await;
    ctx.put("first.bin", &data(600_000, 1)).await;
    let resp = ctx.put_raw("second.bin", data(600_000, 2), "").await;
    graph_error(resp, 507, "quotaLimitReached").await;
    graph_error(ctx.get(&ctx.p("second.bin", "")).await, 404, "itemNotFound").await;
    // Sessions fail too, at the latest with the fragment that crosses the quota.
    let total = 2 * FRAG;
    let body = data(total, 3);
    let url = ctx.p("third.bin", "/createUploadSession");
    let req = ctx.req(reqwest::Method::POST, &url);
    let resp = req
        .json(&json!({"item": {"@microsoft.graph.conflictBehavior": "fail"}}))
        .send()
        .await;
    let resp = resp.unwrap();
    if resp.status() == 200 {
        let s: Value = resp.json().await.unwrap();
        let up = s["uploadUrl"].as_str().unwrap();
        let http = &ctx.sim.http;
        let first = put_fragment(http, up, 0, &body[..FRAG], total).await;
        let resp = if first.status() == 202 {
            put_fragment(http, up, FRAG, &body[FRAG..], total).await
        } else {
            first
        };
        graph_error(resp, 507, "quotaLimitReached").await;
    } else {
        graph_error(resp, 507, "quotaLimitReached").await;
    }
}
