//! GRAPH.md section 6: delta at the root, paging to a deltaLink, changes since a token, deleted
//! items without names, `token=latest`, and 410 resyncRequired after a reset. Items carry
//! neither `parentReference.path` nor `cTag`, and come with the folders above them (Microsoft's
//! "driveItem: delta" remarks; OneDrive API docs issue 295).

mod common;

use std::collections::HashMap;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Follows nextLinks to the deltaLink; returns the items (id -> last state) and the deltaLink.
async fn delta(ctx: &Ctx, first: &str) -> (HashMap<String, Value>, String) {
    let mut items = HashMap::new();
    let mut url = first.to_string();
    for _ in 0..10_000 {
        let page = ctx.get_json(&url).await;
        for item in page["value"].as_array().expect("value") {
            assert!(
                item["parentReference"].get("path").is_none(),
                "no path in delta: {item}"
            );
            assert!(item.get("cTag").is_none(), "no cTag in delta: {item}");
            let id = item["id"].as_str().expect("id").to_string();
            items.insert(id, item.clone());
        }
        match (
            page["@odata.nextLink"].as_str(),
            page["@odata.deltaLink"].as_str(),
        ) {
            (Some(next), None) => url = next.to_string(),
            (None, Some(link)) => {
                assert!(
                    link.starts_with("http://") && link.contains("token="),
                    "{link}"
                );
                return (items, link.to_string());
            }
            _ => panic!("a page has exactly one of nextLink/deltaLink: {page}"),
        }
    }
    panic!("delta paging does not terminate");
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn check_live(items: &HashMap<String, Value>, item: &Value, name: &str) -> Value {
    let got = items
        .get(&id(item))
        .unwrap_or_else(|| panic!("{name} in delta: {items:?}"));
    assert_eq!(got["name"], name, "{got}");
    assert!(got.get("deleted").is_none(), "{got}");
    assert!(
        got["parentReference"]["id"].is_string(),
        "parentReference.id: {got}"
    );
    got.clone()
}

#[tokio::test]
async fn initial_then_two_changes() {
    let ctx = Ctx::new().await;
    let d = ctx.mkdirs("D").await;
    let one = ctx.put("D/one.txt", b"1").await;
    let two = ctx.put("two.txt", b"22").await;
    let untouched = ctx.put("untouched.txt", b"u").await;
    ctx.mkdirs("E").await;
    let mut many = Vec::new();
    for i in 0..40 {
        many.push(ctx.put(&format!("E/{i}.txt"), b"e").await);
    }
    // Initial enumeration: every item, latest state.
    let (items, link1) = delta(&ctx, &ctx.d("/root/delta")).await;
    check_live(&items, &d, "D");
    check_live(&items, &one, "one.txt");
    check_live(&items, &two, "two.txt");
    check_live(&items, &untouched, "untouched.txt");
    for (i, e) in many.iter().enumerate() {
        check_live(&items, e, &format!("{i}.txt"));
    }
    let one_state = &items[&id(&one)];
    assert_eq!(
        one_state["file"]["hashes"]["quickXorHash"],
        qxh(b"1").as_str()
    );
    // Change A: new content for one.txt, a new file in D.
    ctx.put("D/one.txt", b"one, changed").await;
    let three = ctx.put("D/three.txt", b"3").await;
    let (items, link2) = delta(&ctx, &link1).await;
    let got = check_live(&items, &one, "one.txt");
    assert_eq!(got["size"], 12);
    assert_eq!(
        got["file"]["hashes"]["quickXorHash"],
        qxh(b"one, changed").as_str()
    );
    check_live(&items, &three, "three.txt");
    for quiet in [&two, &untouched, &many[0]] {
        assert!(
            !items.contains_key(&id(quiet)),
            "unchanged item in delta: {quiet}"
        );
    }
    // Change B: delete two.txt, rename folder D (its children are not emitted).
    let url = ctx.d(&format!("/items/{}", id(&two)));
    assert_eq!(
        ctx.req(Method::DELETE, &url).send().await.unwrap().status(),
        204
    );
    let url = ctx.d(&format!("/items/{}", id(&d)));
    let resp = ctx
        .req(Method::PATCH, &url)
        .json(&json!({"name": "D2"}))
        .send()
        .await
        .unwrap();
    json_status(resp, 200).await;
    let (items, link3) = delta(&ctx, &link2).await;
    let gone = items
        .get(&id(&two))
        .unwrap_or_else(|| panic!("deleted item in delta: {items:?}"));
    assert!(gone["deleted"].is_object(), "deleted facet: {gone}");
    assert!(
        gone.get("name").is_none(),
        "deleted items carry no name on SharePoint: {gone}"
    );
    check_live(&items, &d, "D2");
    for quiet in [&one, &three, &untouched] {
        assert!(!items.contains_key(&id(quiet)), "not emitted: {quiet}");
    }
    // No changes: nothing but possibly the root.
    let (items, _) = delta(&ctx, &link3).await;
    assert!(
        items.values().all(|i| i.get("root").is_some()),
        "no changes: {items:?}"
    );
}

#[tokio::test]
async fn token_latest_gives_only_a_link() {
    let ctx = Ctx::new().await;
    ctx.put("before.txt", b"b").await;
    let page = ctx.get_json(&ctx.d("/root/delta?token=latest")).await;
    assert_eq!(page["value"].as_array().map(Vec::len), Some(0), "{page}");
    assert!(page.get("@odata.nextLink").is_none());
    let link = page["@odata.deltaLink"]
        .as_str()
        .expect("deltaLink")
        .to_string();
    let after = ctx.put("after.txt", b"a").await;
    let (items, _) = delta(&ctx, &link).await;
    check_live(&items, &after, "after.txt");
    assert!(
        items.values().all(|i| i["name"] != "before.txt"),
        "only changes after token=latest: {items:?}"
    );
}

#[tokio::test]
async fn reset_makes_old_tokens_410() {
    let ctx = Ctx::new().await;
    ctx.put("x.txt", b"x").await;
    let (_, link) = delta(&ctx, &ctx.d("/root/delta")).await;
    let (_, latest) = delta(&ctx, &ctx.d("/root/delta?token=latest")).await;
    ctx.sim
        .control("/delta/reset", json!({"drive_id": ctx.drive}))
        .await;
    for old in [&link, &latest] {
        graph_error(ctx.get(old).await, 410, "resyncRequired").await;
    }
    // Start over without a token: everything again, and the new link works.
    let (items, fresh) = delta(&ctx, &ctx.d("/root/delta")).await;
    assert!(items.values().any(|i| i["name"] == "x.txt"), "{items:?}");
    let y = ctx.put("y.txt", b"y").await;
    let (items, _) = delta(&ctx, &fresh).await;
    check_live(&items, &y, "y.txt");
    // A reset without drive_id resets every drive.
    ctx.sim.control("/delta/reset", json!({})).await;
    graph_error(ctx.get(&fresh).await, 410, "resyncRequired").await;
}

#[tokio::test]
async fn delta_only_at_root_and_bad_tokens() {
    let ctx = Ctx::new().await;
    let sub = ctx.mkdirs("sub").await;
    let url = ctx.d(&format!("/items/{}/delta", id(&sub)));
    let resp = ctx.get(&url).await;
    assert!(
        resp.status().is_client_error(),
        "subfolder delta: {}",
        resp.status()
    );
    check_error_shape(&resp.json().await.unwrap());
    let resp = ctx.get(&ctx.d("/root/delta?token=not-a-token")).await;
    assert!(
        resp.status().is_client_error(),
        "garbage token: {}",
        resp.status()
    );
    check_error_shape(&resp.json().await.unwrap());
}

#[tokio::test]
async fn delta_pages_and_loses_no_change_made_while_paging() {
    use futures_util::StreamExt;
    let ctx = Ctx::new().await;
    ctx.mkdirs("many").await;
    let created: Vec<u16> = futures_util::stream::iter(0..600)
        .map(|i| {
            let ctx = &ctx;
            async move {
                let resp = ctx
                    .put_raw(&format!("many/{i:03}.txt"), vec![b'x'], "")
                    .await;
                resp.status().as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(created.iter().all(|s| *s == 201));
    // First page by hand, then change the drive, then the rest.
    let first = ctx.get_json(&ctx.d("/root/delta")).await;
    let next = first["@odata.nextLink"]
        .as_str()
        .expect("600 items take more than one page");
    assert!(first.get("@odata.deltaLink").is_none());
    let seen_first: Vec<Value> = first["value"].as_array().unwrap().clone();
    let early = seen_first
        .iter()
        .find(|i| i.get("file").is_some())
        .expect("a file on the first page")
        .clone();
    let early_name = early["name"].as_str().unwrap().to_string();
    ctx.put(&format!("many/{early_name}"), b"changed while paging")
        .await;
    let late = ctx.put("many/late.txt", b"late").await;
    let (rest, link) = delta(&ctx, next).await;
    let mut all: HashMap<String, Value> = seen_first.into_iter().map(|i| (id(&i), i)).collect();
    all.extend(rest);
    let files = all.values().filter(|i| i.get("file").is_some()).count();
    assert!(files >= 600, "every file enumerated: {files}");
    // Whatever this round missed, the next round carries.
    let (changes, _) = delta(&ctx, &link).await;
    let merged_late = changes.get(&id(&late)).or(all.get(&id(&late)));
    assert!(merged_late.is_some(), "late.txt reached the client");
    let early_now = changes.get(&id(&early)).or(all.get(&id(&early))).unwrap();
    let changed_seen = changes.contains_key(&id(&early)) || early_now["size"] == 20;
    assert!(
        changed_seen,
        "the change to {early_name} reached the client: {early_now}"
    );
}

/// The ids of one delta page's items, in order.
fn page_ids(page: &Value) -> Vec<String> {
    page["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(id)
        .collect()
}

#[tokio::test]
async fn changes_come_with_their_ancestors_and_deletions_without_names() {
    let ctx = Ctx::new().await;
    let root = ctx.get_json(&ctx.d("/root")).await;
    let a = ctx.mkdirs("A").await;
    let b = ctx.mkdirs("A/B").await;
    let f = ctx.put("A/B/f.txt", b"f").await;
    let g = ctx.put("A/B/g.txt", b"g").await;
    ctx.put("elsewhere.txt", b"e").await;
    let (_, link) = delta(&ctx, &ctx.d("/root/delta")).await;
    ctx.put("A/B/f.txt", b"f, changed").await;
    ctx.put("A/B/g.txt", b"g, changed").await;
    // One changed item a page: each page carries the folders above it, outermost first.
    let mut url = format!("{link}&$top=1");
    let mut pages = Vec::new();
    loop {
        let page = ctx.get_json(&url).await;
        pages.push(page_ids(&page));
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    let above = [id(&root), id(&a), id(&b)];
    assert_eq!(pages.len(), 2, "{pages:?}");
    for (page, changed) in pages.iter().zip([&f, &g]) {
        let want: Vec<String> = above.iter().cloned().chain([id(changed)]).collect();
        assert_eq!(page, &want, "ancestors then the change");
    }
    let (items, link) = delta(&ctx, &link).await;
    let got = check_live(&items, &f, "f.txt");
    assert_eq!(got["parentReference"]["id"], id(&b).as_str(), "{got}");
    assert_eq!(
        got["parentReference"]["driveId"],
        ctx.drive.as_str(),
        "{got}"
    );
    assert!(
        items[&id(&root)].get("root").is_some(),
        "the root: {items:?}"
    );
    assert!(
        items.values().all(|i| i["name"] != "elsewhere.txt"),
        "unrelated items stay out: {items:?}"
    );
    // A deletion: the deleted facet, no name, the parent's id, and the folders above it.
    let url = ctx.d(&format!("/items/{}", id(&g)));
    assert_eq!(
        ctx.req(Method::DELETE, &url).send().await.unwrap().status(),
        204
    );
    let (items, _) = delta(&ctx, &link).await;
    let gone = &items[&id(&g)];
    assert!(gone["deleted"].is_object(), "{gone}");
    assert!(gone.get("name").is_none(), "{gone}");
    assert_eq!(gone["parentReference"]["id"], id(&b).as_str(), "{gone}");
    let mut ids: Vec<String> = items.keys().cloned().collect();
    ids.sort();
    let mut want: Vec<String> = above.iter().cloned().chain([id(&g)]).collect();
    want.sort();
    assert_eq!(ids, want, "the deletion and the folders above it");
}
