//! GRAPH.md section 1 name rules and section 4/5 conflict behaviour: illegal characters,
//! reserved names, the 400-character path limit, percent-encoded segments, fail/replace/rename,
//! and the parent folders an upload by path creates (checked by the same rules first).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const ILLEGAL: &[&str] = &[
    "a\"b",
    "a*b",
    "a:b",
    "a<b",
    "a>b",
    "a?b",
    "a\\b",
    "a|b",
    " lead",
    "trail ",
    "trail.",
    "~$lock.docx",
    "_vti_",
    "x_vti_y.txt",
    "bell\u{7}",
    "tab\there",
    "nl\nx",
    "\u{1f}x",
    ".lock",
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "COM0",
    "COM1",
    "COM5",
    "COM9",
    "LPT0",
    "LPT1",
    "LPT9",
    "desktop.ini",
    "CON.txt",
    "nul.log",
    "com1.txt",
    "Desktop.INI",
];

const LEGAL: &[&str] = &[
    "CONSOLE.txt",
    "COM10",
    "my com1 file.txt",
    "_vti.txt",
    "a~$b.docx",
    "x.y.z",
    "~tilde",
    "a b#c%d.txt",
    "ünïcødé.txt",
    "plus+and&amp=.txt",
];

async fn post_folder(ctx: &Ctx, parent: &str, name: &str) -> reqwest::Response {
    let body = json!({"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"});
    let url = ctx.d(&format!("/items/{parent}/children"));
    ctx.req(Method::POST, &url)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn expect_invalid(resp: reqwest::Response, what: &str) -> Value {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 400, "{what} must be refused: {text}");
    let body: Value = serde_json::from_str(&text).expect("JSON error");
    check_error_shape(&body);
    assert_eq!(body["error"]["code"], "invalidRequest", "{what}: {body}");
    body
}

#[tokio::test]
async fn illegal_names_are_refused() {
    let ctx = Ctx::new().await;
    for name in ILLEGAL {
        expect_invalid(
            post_folder(&ctx, "root", name).await,
            &format!("folder {name:?}"),
        )
        .await;
        let resp = ctx.put_raw(name, b"x".to_vec(), "").await;
        expect_invalid(resp, &format!("file {name:?}")).await;
    }
    // A slash can only be smuggled in through JSON.
    expect_invalid(post_folder(&ctx, "root", "a/b").await, "folder a/b").await;
    expect_invalid(post_folder(&ctx, "root", "").await, "empty name").await;
    let children = ctx.list_all(&ctx.d("/root/children")).await;
    assert!(children.is_empty(), "nothing was created: {children:?}");
}

#[tokio::test]
async fn illegal_names_refused_on_rename_and_session() {
    let ctx = Ctx::new().await;
    let file = ctx.put("ok.txt", b"x").await;
    let url = ctx.d(&format!("/items/{}", file["id"].as_str().unwrap()));
    for name in ["a|b.txt", "CON", "trail.", "~$x.docx"] {
        let resp = ctx
            .req(Method::PATCH, &url)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        expect_invalid(resp, &format!("rename to {name:?}")).await;
        let url = ctx.p(name, "/createUploadSession");
        let body = json!({"item": {"@microsoft.graph.conflictBehavior": "fail"}});
        let resp = ctx
            .req(Method::POST, &url)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_invalid(resp, &format!("session for {name:?}")).await;
    }
    assert_eq!(ctx.item("ok.txt").await["id"], file["id"]);
}

#[tokio::test]
async fn legal_names_round_trip() {
    let ctx = Ctx::new().await;
    for name in LEGAL {
        let file = ctx.put(name, name.as_bytes()).await;
        assert_eq!(file["name"], *name);
        let got = ctx.item(name).await;
        assert_eq!(got["id"], file["id"], "{name}");
        assert_eq!(
            ctx.download(file["id"].as_str().unwrap()).await,
            name.as_bytes()
        );
    }
    let names: Vec<Value> = ctx
        .list_all(&ctx.d("/root/children"))
        .await
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    for name in LEGAL {
        assert!(names.contains(&json!(name)), "{name} listed in {names:?}");
    }
}

#[tokio::test]
async fn forms_folder_only_refused_at_library_root() {
    let ctx = Ctx::new().await;
    expect_invalid(post_folder(&ctx, "root", "forms").await, "forms at root").await;
    expect_invalid(post_folder(&ctx, "root", "Forms").await, "Forms at root").await;
    let sub = ctx.mkdirs("sub").await;
    let forms = post_folder(&ctx, sub["id"].as_str().unwrap(), "forms").await;
    json_status(forms, 201).await;
}

#[tokio::test]
async fn percent_encoded_names() {
    let ctx = Ctx::new().await;
    let dir = ctx.mkdirs("x y#z%").await;
    let url = ctx.d("/root:/x%20y%23z%25/a%20b%23c%25d.txt:/content");
    let resp = ctx
        .req(Method::PUT, &url)
        .body("hello")
        .send()
        .await
        .unwrap();
    let file = json_status(resp, 201).await;
    assert_eq!(file["name"], "a b#c%d.txt");
    assert_eq!(file["parentReference"]["id"], dir["id"]);
    // Item-relative addressing with the same encoding.
    let url = ctx.d(&format!(
        "/items/{}:/a%20b%23c%25d.txt:",
        dir["id"].as_str().unwrap()
    ));
    assert_eq!(ctx.get_json(&url).await["id"], file["id"]);
    let listed = ctx.list_all(&ctx.p("x y#z%", "/children")).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "a b#c%d.txt");
    assert_eq!(ctx.download(file["id"].as_str().unwrap()).await, b"hello");
}

/// Folders nested to reach exactly `len` characters of library-relative path.
async fn deep_path(ctx: &Ctx, len: usize) -> (String, String) {
    let seg = format!("{} {}", "d".repeat(50), "d".repeat(49));
    let dirs = [seg.clone(), seg.clone(), seg];
    let dir_path = dirs.join("/");
    ctx.mkdirs(&dir_path).await;
    let name_len = len - dir_path.len() - 1;
    let name = format!("{}.txt", &"n%".repeat(name_len / 2)[..name_len - 4]);
    (dir_path, name)
}

#[tokio::test]
async fn path_limit_counts_site_and_library_prefix() {
    let ctx = Ctx::new().await;
    let prefix = "sites/partners/Shared Documents/";
    assert_eq!(prefix.len(), 32);
    let (dir, name) = deep_path(&ctx, 400 - prefix.len()).await;
    let at_limit = format!("{dir}/{name}");
    assert_eq!(prefix.len() + at_limit.len(), 400);
    let ok = ctx.put(&at_limit, b"fits").await;
    assert_eq!(ok["name"], name.as_str());
    let over = format!("{dir}/x{name}");
    let body = expect_invalid(ctx.put_raw(&over, b"x".to_vec(), "").await, "401 chars").await;
    assert!(
        inner_codes(&body).contains(&"pathIsTooLong".to_string()),
        "{body}"
    );
    // The same limit for folders, upload sessions and renames.
    let parent = ctx.item(&dir).await;
    let resp = post_folder(&ctx, parent["id"].as_str().unwrap(), &format!("x{name}")).await;
    let body = expect_invalid(resp, "folder at 401").await;
    assert!(
        inner_codes(&body).contains(&"pathIsTooLong".to_string()),
        "{body}"
    );
    let resp = ctx
        .req(Method::POST, &ctx.p(&over, "/createUploadSession"))
        .json(&json!({"item": {"@microsoft.graph.conflictBehavior": "fail"}}))
        .send()
        .await
        .unwrap();
    let body = expect_invalid(resp, "session at 401").await;
    assert!(
        inner_codes(&body).contains(&"pathIsTooLong".to_string()),
        "{body}"
    );
    let url = ctx.d(&format!("/items/{}", ok["id"].as_str().unwrap()));
    let resp = ctx
        .req(Method::PATCH, &url)
        .json(&json!({"name": format!("x{name}")}))
        .send()
        .await
        .unwrap();
    let body = expect_invalid(resp, "rename to 401").await;
    assert!(
        inner_codes(&body).contains(&"pathIsTooLong".to_string()),
        "{body}"
    );
}

#[tokio::test]
async fn upload_by_path_creates_missing_parents() {
    let ctx = Ctx::new().await;
    let file = json_status(ctx.put_raw("a/b/c.txt", b"abc".to_vec(), "").await, 201).await;
    let b = ctx.item("a/b").await;
    assert!(b["folder"].is_object(), "{b}");
    check_parent(&file, &ctx.drive, b["id"].as_str().unwrap(), "a/b");
    // Part of the path exists; names match case-insensitively.
    json_status(ctx.put_raw("A/x/y.txt", b"y".to_vec(), "").await, 201).await;
    assert_eq!(ctx.child_names("").await, ["a"]);
    assert_eq!(ctx.child_names("a").await, ["b", "x"]);
    let again = json_status(ctx.put_raw("A/B/c.txt", b"new".to_vec(), "").await, 200).await;
    assert_eq!(again["id"], file["id"], "replaced in place: {again}");
    // Relative to an item.
    let a = ctx.item("a").await;
    let url = ctx.d(&format!(
        "/items/{}:/rel/deep/f.txt:/content",
        a["id"].as_str().unwrap()
    ));
    let resp = ctx.req(Method::PUT, &url).body("f").send().await.unwrap();
    let deep = json_status(resp, 201).await;
    let folder = ctx.item("a/rel/deep").await;
    check_parent(
        &deep,
        &ctx.drive,
        folder["id"].as_str().unwrap(),
        "a/rel/deep",
    );
    // A file where a folder should be.
    let resp = ctx
        .put_raw("a/b/c.txt/under/u.txt", b"u".to_vec(), "")
        .await;
    expect_invalid(resp, "a file as a parent").await;
}

async fn session_at(ctx: &Ctx, path: &str) -> reqwest::Response {
    let url = ctx.p(path, "/createUploadSession");
    ctx.req(Method::POST, &url)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn missing_parents_are_checked_before_anything_is_created() {
    let ctx = Ctx::new().await;
    ctx.mkdirs("ok").await;
    for name in ILLEGAL {
        for path in [
            format!("{name}/f.txt"),
            format!("ok/new/{name}/f.txt"),
            format!("ok/new/{name}"),
        ] {
            let resp = ctx.put_raw(&path, b"x".to_vec(), "").await;
            expect_invalid(resp, &format!("upload to {path:?}")).await;
            let resp = session_at(&ctx, &path).await;
            expect_invalid(resp, &format!("session on {path:?}")).await;
        }
    }
    expect_invalid(
        ctx.put_raw("Forms/f.txt", b"x".to_vec(), "").await,
        "forms as a folder at the root",
    )
    .await;
    json_status(ctx.put_raw("sub/forms/f.txt", b"x".to_vec(), "").await, 201).await;
    // 32 characters of prefix + 4 x 100 + 3 + 4: over the limit, with every parent missing.
    let seg = "s".repeat(100);
    let long = format!("{seg}/{seg}/{seg}/{seg}.txt");
    let body = expect_invalid(ctx.put_raw(&long, b"x".to_vec(), "").await, "long path").await;
    assert!(
        inner_codes(&body).contains(&"pathIsTooLong".to_string()),
        "{body}"
    );
    let body = expect_invalid(session_at(&ctx, &long).await, "long session path").await;
    assert!(
        inner_codes(&body).contains(&"pathIsTooLong".to_string()),
        "{body}"
    );
    assert_eq!(
        ctx.child_names("").await,
        ["ok", "sub"],
        "nothing else created"
    );
    assert!(ctx.child_names("ok").await.is_empty());
}

#[tokio::test]
async fn conflict_behavior_on_simple_upload() {
    let ctx = Ctx::new().await;
    let first = ctx.put_raw("c.txt", b"one".to_vec(), "").await;
    let first = json_status(first, 201).await;
    let q = "?@microsoft.graph.conflictBehavior=";
    let resp = ctx
        .put_raw("c.txt", b"two".to_vec(), &format!("{q}fail"))
        .await;
    graph_error(resp, 409, "nameAlreadyExists").await;
    let replaced = json_status(
        ctx.put_raw("c.txt", b"three".to_vec(), &format!("{q}replace"))
            .await,
        200,
    )
    .await;
    assert_eq!(replaced["id"], first["id"]);
    assert_eq!(replaced["size"], 5);
    let default = json_status(ctx.put_raw("c.txt", b"four".to_vec(), "").await, 200).await;
    assert_eq!(default["id"], first["id"], "default behaviour is replace");
    let renamed = json_status(
        ctx.put_raw("c.txt", b"five!".to_vec(), &format!("{q}rename"))
            .await,
        201,
    )
    .await;
    let new_name = renamed["name"].as_str().unwrap();
    assert_ne!(new_name.to_lowercase(), "c.txt");
    assert!(
        new_name.ends_with(".txt") && new_name.starts_with('c'),
        "renamed to {new_name}"
    );
    assert_ne!(renamed["id"], first["id"]);
    assert_eq!(ctx.download(first["id"].as_str().unwrap()).await, b"four");
    assert_eq!(
        ctx.download(renamed["id"].as_str().unwrap()).await,
        b"five!"
    );
}

#[tokio::test]
async fn conflict_behavior_on_folders() {
    let ctx = Ctx::new().await;
    let first = json_status(post_folder(&ctx, "root", "Dir").await, 201).await;
    graph_error(
        post_folder(&ctx, "root", "dir").await,
        409,
        "nameAlreadyExists",
    )
    .await;
    let body = json!({"name": "Dir", "folder": {}, "@microsoft.graph.conflictBehavior": "rename"});
    let resp = ctx
        .req(Method::POST, &ctx.d("/root/children"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let second = json_status(resp, 201).await;
    assert_ne!(second["id"], first["id"]);
    assert_ne!(second["name"].as_str().unwrap().to_lowercase(), "dir");
    // A file name also blocks a folder of the same name.
    ctx.put("thing", b"x").await;
    graph_error(
        post_folder(&ctx, "root", "THING").await,
        409,
        "nameAlreadyExists",
    )
    .await;
    // Folder by path-addressed parent.
    let body = json!({"name": "inner", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"});
    let resp = ctx
        .req(Method::POST, &ctx.p("Dir", "/children"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let inner = json_status(resp, 201).await;
    check_item(&inner);
    check_parent(&inner, &ctx.drive, first["id"].as_str().unwrap(), "Dir");
}
