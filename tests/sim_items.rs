//! GRAPH.md sections 1-2: sites and drives, addressing by id and by path, the driveItem JSON,
//! eTag/cTag rules, case-insensitive names, `$select` and `$expand`.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn site_and_drives() {
    let ctx = Ctx::new().await;
    let parts: Vec<&str> = ctx.site.split(',').collect();
    assert_eq!(parts.len(), 3, "site id host,guid,guid: {}", ctx.site);
    assert_eq!(parts[0], HOST);
    assert!(
        is_guid(parts[1]) && is_guid(parts[2]),
        "site id: {}",
        ctx.site
    );
    assert!(
        ctx.drive.starts_with("b!"),
        "business drive id: {}",
        ctx.drive
    );
    let drive = ctx
        .get_json(&ctx.sim.graph(&format!("/sites/{}/drive", ctx.site)))
        .await;
    assert_eq!(drive["name"], "Documents");
    assert_eq!(drive["driveType"], "documentLibrary");
    let drives = ctx
        .get_json(&ctx.sim.graph(&format!("/sites/{}/drives", ctx.site)))
        .await;
    let list = drives["value"].as_array().expect("value");
    assert_eq!(list.len(), 1, "{drives}");
    assert_eq!(list[0]["id"], ctx.drive.as_str());
    assert_eq!(list[0]["name"], "Documents");
    assert_eq!(list[0]["driveType"], "documentLibrary");
    // Unknown site and unknown drive.
    let url = ctx.sim.graph(&format!("/sites/{HOST}:/sites/nope"));
    graph_error(ctx.get(&url).await, 404, "itemNotFound").await;
    let url = ctx.sim.graph("/drives/b!doesNotExist/root");
    graph_error(ctx.get(&url).await, 404, "itemNotFound").await;
}

#[tokio::test]
async fn root_by_both_aliases() {
    let ctx = Ctx::new().await;
    let root = ctx.get_json(&ctx.d("/root")).await;
    let alias = ctx.get_json(&ctx.d("/items/root")).await;
    assert_eq!(root["id"], alias["id"]);
    assert!(root["root"].is_object(), "root facet: {root}");
    assert!(root["folder"]["childCount"].is_u64(), "{root}");
    let by_id = ctx.item_by_id(root["id"].as_str().unwrap()).await;
    assert_eq!(by_id["id"], root["id"]);
}

#[tokio::test]
async fn item_json_shape_and_addressing() {
    let ctx = Ctx::new().await;
    let a = ctx.mkdirs("a").await;
    let b = ctx.mkdirs("a/b").await;
    let body = data(5000, 7);
    let file = ctx.put("a/b/file.txt", &body).await;
    check_item(&file);
    assert_eq!(file["name"], "file.txt");
    assert_eq!(file["size"], 5000);
    assert_eq!(file["file"]["hashes"]["quickXorHash"], qxh(&body).as_str());
    assert!(
        file["file"]["hashes"].get("sha1Hash").is_none(),
        "only quickXorHash on SharePoint"
    );
    check_parent(&file, &ctx.drive, b["id"].as_str().unwrap(), "a/b");
    let id = file["id"].as_str().unwrap();
    // The same item by id, by path with and without the closing colon, relative to a parent.
    let urls = [
        ctx.d(&format!("/items/{id}")),
        ctx.p("a/b/file.txt", ""),
        ctx.d("/root:/a/b/file.txt"),
        ctx.d(&format!("/items/{}:/file.txt:", b["id"].as_str().unwrap())),
        ctx.d(&format!("/items/{}:/b/file.txt", a["id"].as_str().unwrap())),
    ];
    for url in urls {
        let got = ctx.get_json(&url).await;
        assert_eq!(got["id"], id, "{url}");
        check_item(&got);
        check_parent(&got, &ctx.drive, b["id"].as_str().unwrap(), "a/b");
    }
    // Folders: childCount, no cTag, parentReference.path of a root child.
    let a = ctx.item("a").await;
    check_item(&a);
    check_parent(
        &a,
        &ctx.drive,
        ctx.get_json(&ctx.d("/root")).await["id"].as_str().unwrap(),
        "",
    );
    assert_eq!(a["folder"]["childCount"], 1);
    let b = ctx.item("a/b").await;
    assert_eq!(b["folder"]["childCount"], 1);
    assert_eq!(ctx.download(id).await, body);
    // Missing items.
    graph_error(
        ctx.get(&ctx.p("a/b/missing.txt", "")).await,
        404,
        "itemNotFound",
    )
    .await;
    graph_error(
        ctx.get(&ctx.p("nope/file.txt", "")).await,
        404,
        "itemNotFound",
    )
    .await;
    let url = ctx.d("/items/0123456789ABCDEFGHIJKLMNOPQRSTUVWX");
    graph_error(ctx.get(&url).await, 404, "itemNotFound").await;
}

#[tokio::test]
async fn etag_and_ctag_rules() {
    let ctx = Ctx::new().await;
    let folder = ctx.mkdirs("f").await;
    let file = ctx.put("f/x.txt", b"one").await;
    let folder_after = ctx.item("f").await;
    assert_eq!(
        folder["eTag"], folder_after["eTag"],
        "a folder's eTag ignores its children"
    );
    assert_eq!(folder_after["folder"]["childCount"], 1);
    // A rename keeps the cTag (no content change) and changes the eTag.
    let url = ctx.d(&format!("/items/{}", file["id"].as_str().unwrap()));
    let resp = ctx
        .req(Method::PATCH, &url)
        .json(&json!({"name": "y.txt"}))
        .send()
        .await
        .unwrap();
    let renamed = json_status(resp, 200).await;
    check_item(&renamed);
    assert_eq!(renamed["name"], "y.txt");
    assert_eq!(
        renamed["cTag"], file["cTag"],
        "cTag changes only with content"
    );
    assert_ne!(renamed["eTag"], file["eTag"], "eTag changes on rename");
    // New content changes both.
    let replaced = ctx.put("f/y.txt", b"two!").await;
    assert_eq!(replaced["id"], file["id"], "replace keeps the item");
    assert_ne!(replaced["cTag"], renamed["cTag"]);
    assert_ne!(replaced["eTag"], renamed["eTag"]);
    assert_eq!(replaced["size"], 4);
    assert_eq!(ctx.item("f").await["eTag"], folder["eTag"]);
}

#[tokio::test]
async fn names_are_case_insensitive_and_case_preserving() {
    let ctx = Ctx::new().await;
    let folder = ctx.mkdirs("Folder").await;
    let file = ctx.put("Folder/A.txt", b"abc").await;
    assert_eq!(file["name"], "A.txt");
    for path in ["folder/a.txt", "FOLDER/A.TXT", "Folder/a.Txt"] {
        let got = ctx.item(path).await;
        assert_eq!(got["id"], file["id"], "{path}");
        assert_eq!(got["name"], "A.txt", "case preserved for {path}");
    }
    assert_eq!(ctx.item("folder").await["name"], "Folder");
    // A.txt and a.txt cannot coexist: fail -> 409, default replace -> same item.
    let resp = ctx
        .put_raw(
            "Folder/a.txt",
            b"x".to_vec(),
            "?@microsoft.graph.conflictBehavior=fail",
        )
        .await;
    graph_error(resp, 409, "nameAlreadyExists").await;
    let replaced = ctx.put("Folder/a.TXT", b"xyz1").await;
    assert_eq!(replaced["id"], file["id"]);
    let body = json!({"name": "FOLDER", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"});
    let resp = ctx
        .req(Method::POST, &ctx.d("/root/children"))
        .json(&body)
        .send()
        .await
        .unwrap();
    graph_error(resp, 409, "nameAlreadyExists").await;
    let children = ctx.list_all(&ctx.p("Folder", "/children")).await;
    assert_eq!(children.len(), 1, "{children:?}");
    assert_eq!(
        ctx.item_by_id(folder["id"].as_str().unwrap()).await["folder"]["childCount"],
        1
    );
    // A case-only rename works and is preserved.
    let url = ctx.d(&format!("/items/{}", file["id"].as_str().unwrap()));
    let resp = ctx
        .req(Method::PATCH, &url)
        .json(&json!({"name": "a.TXT"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_status(resp, 200).await["name"], "a.TXT");
}

fn flip_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

#[tokio::test]
async fn ids_are_case_sensitive() {
    let ctx = Ctx::new().await;
    let file = ctx.put("id.txt", b"abc").await;
    let id = file["id"].as_str().unwrap();
    let flipped = flip_case(id);
    assert_ne!(flipped, id, "item id has letters: {id}");
    graph_error(
        ctx.get(&ctx.d(&format!("/items/{flipped}"))).await,
        404,
        "itemNotFound",
    )
    .await;
    let drive = flip_case(&ctx.drive);
    let url = ctx.sim.graph(&format!("/drives/{drive}/items/{id}"));
    graph_error(ctx.get(&url).await, 404, "itemNotFound").await;
}

#[tokio::test]
async fn select_and_expand() {
    let ctx = Ctx::new().await;
    ctx.mkdirs("s").await;
    ctx.put("s/one.txt", b"1").await;
    ctx.put("s/two.txt", b"22").await;
    let item = ctx
        .get_json(&format!("{}?$select=id,name", ctx.p("s/one.txt", "")))
        .await;
    assert!(
        item["id"].is_string() && item["name"] == "one.txt",
        "{item}"
    );
    for absent in ["size", "eTag", "file", "parentReference", "fileSystemInfo"] {
        assert!(
            item.get(absent).is_none(),
            "$select=id,name returned {absent}: {item}"
        );
    }
    let page = ctx
        .get_json(&format!("{}?$select=name,size", ctx.p("s", "/children")))
        .await;
    for child in page["value"].as_array().unwrap() {
        assert!(
            child["name"].is_string() && child["size"].is_u64(),
            "{child}"
        );
        assert!(
            child.get("eTag").is_none() && child.get("file").is_none(),
            "{child}"
        );
    }
    let folder = ctx
        .get_json(&format!("{}?$expand=children", ctx.p("s", "")))
        .await;
    let mut names: Vec<_> = folder["children"]
        .as_array()
        .expect("children")
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    names.sort_by_key(|n| n.to_string());
    assert_eq!(names, vec![json!("one.txt"), json!("two.txt")]);
}

#[tokio::test]
async fn file_system_info_is_client_settable_to_the_second() {
    let ctx = Ctx::new().await;
    let file = ctx.put("fsi.txt", b"x").await;
    let url = ctx.d(&format!("/items/{}", file["id"].as_str().unwrap()));
    let body = json!({"fileSystemInfo": {"lastModifiedDateTime": "2021-06-07T08:09:10.789Z"}});
    let resp = ctx
        .req(Method::PATCH, &url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let patched = json_status(resp, 200).await;
    check_item(&patched);
    assert_eq!(patched["cTag"], file["cTag"], "metadata only");
    let want = chrono::DateTime::parse_from_rfc3339("2021-06-07T08:09:10Z").unwrap();
    for item in [&patched, &ctx.item("fsi.txt").await] {
        let got = item["fileSystemInfo"]["lastModifiedDateTime"]
            .as_str()
            .unwrap();
        let got = chrono::DateTime::parse_from_rfc3339(got).unwrap();
        let diff = (got - want).num_milliseconds();
        assert!(diff == 0 || diff == 1000, "1 s precision: {got} for {want}");
        assert_eq!(got.timestamp_subsec_nanos(), 0, "1 s precision: {got}");
    }
}
