//! GRAPH.md section 2 listing: 200-item default pages, `$top` 1..1000, `@odata.nextLink` with
//! `$skiptoken` across 2,500 children, `$orderby=name`.

mod common;

use std::collections::HashSet;

use common::*;
use futures_util::StreamExt;
use serde_json::Value;

const N: usize = 2500;

async fn big_folder(ctx: &Ctx) -> Value {
    let folder = ctx.mkdirs("big").await;
    let names: Vec<String> = (0..N).map(|i| format!("f{i:04}.txt")).collect();
    let results: Vec<u16> = futures_util::stream::iter(names)
        .map(|name| async move {
            let resp = ctx.put_raw(&format!("big/{name}"), Vec::new(), "").await;
            resp.status().as_u16()
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        results.iter().all(|s| *s == 201),
        "all created: {:?}",
        &results[..10]
    );
    folder
}

/// Pages of a listing, each page's values (asserting nextLink hygiene on the way).
async fn pages(ctx: &Ctx, first: &str) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(url) = next {
        let page = ctx.get_json(&url).await;
        assert!(
            page.get("@odata.deltaLink").is_none(),
            "listings carry no deltaLink"
        );
        next = page["@odata.nextLink"].as_str().map(str::to_string);
        if let Some(link) = &next {
            assert!(link.starts_with("http://"), "absolute nextLink: {link}");
            assert!(
                link.contains("$skiptoken=") || link.contains("%24skiptoken="),
                "{link}"
            );
        }
        out.push(page["value"].as_array().expect("value").clone());
        assert!(out.len() <= N + 1, "paging does not terminate");
    }
    out
}

fn names(pages: &[Vec<Value>]) -> Vec<String> {
    pages
        .iter()
        .flatten()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn paging_2500_children() {
    let ctx = Ctx::new().await;
    big_folder(&ctx).await;
    let folder = ctx.item("big").await;
    assert_eq!(folder["folder"]["childCount"], N);

    let default = pages(&ctx, &ctx.p("big", "/children")).await;
    let sizes: Vec<usize> = default.iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        [vec![200; 12], vec![100]].concat(),
        "default page size is 200"
    );
    let got = names(&default);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), N, "every child exactly once");
    let ids: HashSet<String> = default
        .iter()
        .flatten()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), N);
    for i in [0, 1, 999, 2499] {
        assert!(
            unique.contains(&format!("f{i:04}.txt")),
            "f{i:04}.txt listed"
        );
    }
    for child in default.iter().flatten().take(3) {
        check_item(child);
    }

    let url = format!("{}?$top=1000", ctx.p("big", "/children"));
    let big = pages(&ctx, &url).await;
    let sizes: Vec<usize> = big.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1000, 1000, 500], "nextLink keeps $top");

    let url = format!("{}?$orderby=name&$top=999", ctx.p("big", "/children"));
    let ordered = names(&pages(&ctx, &url).await);
    let mut sorted = ordered.clone();
    sorted.sort();
    assert_eq!(ordered.len(), N);
    assert_eq!(ordered, sorted, "$orderby=name across pages");
}

#[tokio::test]
async fn top_bounds() {
    let ctx = Ctx::new().await;
    ctx.mkdirs("t").await;
    for i in 0..3 {
        ctx.put(&format!("t/{i}.txt"), b"x").await;
    }
    let base = ctx.p("t", "/children");
    for bad in ["0", "1001", "-1", "abc", "5000000000"] {
        let resp = ctx.get(&format!("{base}?$top={bad}")).await;
        graph_error(resp, 400, "invalidRequest").await;
    }
    let one = pages(&ctx, &format!("{base}?$top=1")).await;
    assert_eq!(one.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1, 1]);
    let all = pages(&ctx, &format!("{base}?$top=1000")).await;
    assert_eq!(all.len(), 1, "no nextLink when everything fits");
    assert_eq!(all[0].len(), 3);
    let exact = pages(&ctx, &format!("{base}?$top=3")).await;
    assert_eq!(exact.iter().map(Vec::len).sum::<usize>(), 3);
}

#[tokio::test]
async fn listing_root_and_empty_folder() {
    let ctx = Ctx::new().await;
    let empty = ctx.mkdirs("empty").await;
    let page = ctx
        .get_json(&ctx.d(&format!(
            "/items/{}/children",
            empty["id"].as_str().unwrap()
        )))
        .await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(0));
    assert!(page.get("@odata.nextLink").is_none());
    let root = ctx.get_json(&ctx.d("/root/children")).await;
    assert_eq!(root["value"][0]["name"], "empty");
    let alias = ctx.get_json(&ctx.d("/items/root/children")).await;
    assert_eq!(alias["value"], root["value"]);
    // Children of a missing folder.
    graph_error(
        ctx.get(&ctx.p("nope", "/children")).await,
        404,
        "itemNotFound",
    )
    .await;
}
