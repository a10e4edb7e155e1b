//! Seeded worlds: folders and files from the seed, `Sites.Selected` apps (403 outside their
//! sites, `/sites?search=` refused) and read-only apps (403 accessDenied on every change).

mod common;

use common::*;
use reqwest::{Method, Response};
use serde_json::json;

const APPS: &str = r#"
[[tenants.apps]]
client_id = "selected-app"
secret = "selected-secret"
sites = ["partners"]
[[tenants.apps]]
client_id = "reader"
secret = "reader-secret"
access = "read"
"#;

const MORE: &str = r#"
folders = ["Inbound", "Outbound/Archive"]
[[tenants.sites.drives.files]]
path = "Outbound/hello.txt"
content = "hello"
[[tenants.sites.drives.files]]
path = "Inbound/big.bin"
size = 1048576
[[tenants.sites]]
hostname = "contoso.sharepoint.com"
name = "private"
[[tenants.sites.drives]]
name = "Secret Stuff"
"#;

async fn world() -> Ctx {
    let seed = seed(APPS, MORE);
    Ctx::with_seed(&seed).await
}

#[tokio::test]
async fn seeded_folders_and_files() {
    let ctx = world().await;
    for dir in ["Inbound", "Outbound", "Outbound/Archive"] {
        let item = ctx.item(dir).await;
        check_item(&item);
        assert!(item["folder"].is_object(), "{dir}: {item}");
    }
    let hello = ctx.item("Outbound/hello.txt").await;
    check_item(&hello);
    assert_eq!(hello["size"], 5);
    assert_eq!(
        hello["file"]["hashes"]["quickXorHash"],
        qxh(b"hello").as_str()
    );
    assert_eq!(ctx.download(hello["id"].as_str().unwrap()).await, b"hello");
    let big = ctx.item("Inbound/big.bin").await;
    assert_eq!(big["size"], 1_048_576);
    let bytes = ctx.download(big["id"].as_str().unwrap()).await;
    assert_eq!(bytes.len(), 1_048_576);
    assert_eq!(big["file"]["hashes"]["quickXorHash"], qxh(&bytes).as_str());
    assert_eq!(ctx.item("Outbound").await["folder"]["childCount"], 2);
    // The second site and its library.
    let (_, drive) = ctx.sim.site_drive(&ctx.token, "private").await;
    let url = ctx.sim.graph(&format!("/drives/{drive}"));
    let d = ctx.get_json(&url).await;
    assert_eq!(d["name"], "Secret Stuff");
}

#[tokio::test]
async fn sites_selected_app_sees_only_granted_sites() {
    let ctx = world().await;
    let (private_site, private_drive) = ctx.sim.site_drive(&ctx.token, "private").await;
    let sim = &ctx.sim;
    let token = sim.app_token_for("selected-app", "selected-secret").await;
    let (site, drive) = sim.site_drive(&token, "partners").await;
    assert_eq!(
        (site.as_str(), drive.as_str()),
        (ctx.site.as_str(), ctx.drive.as_str())
    );
    let get = |url: String| {
        let req = sim.http.get(url).bearer_auth(&token);
        async move { req.send().await.unwrap() }
    };
    let ok = get(sim.graph(&format!("/drives/{drive}/root:/Outbound/hello.txt"))).await;
    json_status(ok, 200).await;
    for url in [
        sim.graph(&format!("/sites/{HOST}:/sites/private")),
        sim.graph(&format!("/sites/{private_site}/drive")),
        sim.graph(&format!("/sites/{private_site}/drives")),
        sim.graph(&format!("/drives/{private_drive}/root")),
        sim.graph(&format!("/drives/{private_drive}/root/children")),
        sim.graph("/sites?search=partners"),
        sim.graph("/sites?search=*"),
    ] {
        graph_error(get(url.clone()).await, 403, "accessDenied").await;
    }
}

async fn expect_denied(resp: Response, what: &str) {
    let body = json_status(resp, 403).await;
    check_error_shape(&body);
    assert_eq!(body["error"]["code"], "accessDenied", "{what}: {body}");
}

#[tokio::test]
async fn read_only_app_cannot_change_anything() {
    let ctx = world().await;
    let token = ctx.sim.app_token_for("reader", "reader-secret").await;
    let req = |m: Method, url: &str| ctx.sim.http.request(m, url).bearer_auth(&token);
    let hello = ctx.item("Outbound/hello.txt").await;
    let id = hello["id"].as_str().unwrap();
    let item = ctx.d(&format!("/items/{id}"));
    json_status(
        req(Method::GET, &ctx.d("/root/children"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let resp = req(Method::GET, &format!("{item}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "reads are allowed");
    let folder = json!({"name": "new", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"});
    let url = ctx.d("/root/children");
    expect_denied(
        req(Method::POST, &url).json(&folder).send().await.unwrap(),
        "mkdir",
    )
    .await;
    let url = ctx.p("Outbound/hello.txt", "/content");
    expect_denied(
        req(Method::PUT, &url).body("x").send().await.unwrap(),
        "replace",
    )
    .await;
    let url = ctx.p("Outbound/new.txt", "/content");
    expect_denied(
        req(Method::PUT, &url).body("x").send().await.unwrap(),
        "upload",
    )
    .await;
    let rename = json!({"name": "renamed.txt"});
    expect_denied(
        req(Method::PATCH, &item)
            .json(&rename)
            .send()
            .await
            .unwrap(),
        "rename",
    )
    .await;
    expect_denied(req(Method::DELETE, &item).send().await.unwrap(), "delete").await;
    let url = ctx.p("Outbound/s.bin", "/createUploadSession");
    let body = json!({"item": {"@microsoft.graph.conflictBehavior": "fail"}});
    expect_denied(
        req(Method::POST, &url).json(&body).send().await.unwrap(),
        "session",
    )
    .await;
    let parent = ctx.item("Outbound").await;
    let copy =
        json!({"parentReference": {"driveId": ctx.drive, "id": parent["id"]}, "name": "copy.txt"});
    let url = format!("{item}/copy");
    expect_denied(
        req(Method::POST, &url).json(&copy).send().await.unwrap(),
        "copy",
    )
    .await;
    let after = ctx.item("Outbound/hello.txt").await;
    assert_eq!(after["eTag"], hello["eTag"], "nothing changed");
    assert_eq!(ctx.list_all(&ctx.p("Outbound", "/children")).await.len(), 2);
}
