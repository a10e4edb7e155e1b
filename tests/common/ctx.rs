//! [`Ctx`]: a running simulator with an app token and the partners drive, plus helpers that
//! build Graph URLs and do the common requests (mkdir, simple upload, download, sessions).

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};

use super::{Sim, enc_path, json_status};

/// A simulator plus an app token and the partners drive: the usual starting point.
pub struct Ctx {
    pub sim: Sim,
    pub token: String,
    pub site: String,
    pub drive: String,
}

impl Ctx {
    /// The `[[connections]]` table `name` of a spgate configuration for this simulator's
    /// partners site (client secret `demo-secret`), ending with a newline.
    pub fn connection_toml(&self, name: &str) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        format!(
            "[[connections]]\nname = {}\ntenant = \"contoso\"\nclient_id = \"spgate-demo\"\n\
             client_secret = \"demo-secret\"\nsite = \"https://contoso.sharepoint.com/sites/partners\"\n\
             authority = {sim}\ngraph_url = {sim}\n",
            q(name),
            sim = q(&self.sim.base),
        )
    }

    /// Revokes the app's credentials in the simulator (`revoked`), or gives them back; the
    /// tokens already issued expire either way, so the next request shows the change.
    pub async fn revoke_app(&self, revoked: bool) {
        let what = if revoked { "revoke" } else { "restore" };
        self.sim
            .control(&format!("/apps/spgate-demo/{what}"), json!({}))
            .await;
        self.sim.control("/tokens/expire", json!({})).await;
    }

    pub async fn new() -> Ctx {
        Ctx::from_sim(Sim::start()).await
    }

    pub async fn with_seed(seed: &str) -> Ctx {
        Ctx::from_sim(Sim::with_seed(seed)).await
    }

    pub async fn from_sim(sim: Sim) -> Ctx {
        let token = sim.app_token().await;
        let (site, drive) = sim.site_drive(&token, "partners").await;
        Ctx {
            sim,
            token,
            site,
            drive,
        }
    }

    /// `{base}/v1.0/drives/{drive}{rel}`.
    pub fn d(&self, rel: &str) -> String {
        self.sim.graph(&format!("/drives/{}{rel}", self.drive))
    }

    /// URL of `/root:/{path}:{suffix}` with each segment percent-encoded.
    pub fn p(&self, path: &str, suffix: &str) -> String {
        self.d(&format!("/root:/{}:{suffix}", enc_path(path)))
    }

    pub fn req(&self, method: Method, url: &str) -> RequestBuilder {
        self.sim.http.request(method, url).bearer_auth(&self.token)
    }

    pub async fn get(&self, url: &str) -> Response {
        self.req(Method::GET, url).send().await.expect("GET")
    }

    pub async fn get_json(&self, url: &str) -> Value {
        json_status(self.get(url).await, 200).await
    }

    pub async fn item(&self, path: &str) -> Value {
        self.get_json(&self.p(path, "")).await
    }

    pub async fn item_by_id(&self, id: &str) -> Value {
        self.get_json(&self.d(&format!("/items/{id}"))).await
    }

    /// Creates folder `name` in the folder with id `parent` (fail on conflict); expects 201.
    pub async fn mkdir(&self, parent: &str, name: &str) -> Value {
        let body = json!({"name": name, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"});
        let url = self.d(&format!("/items/{parent}/children"));
        let resp = self
            .req(Method::POST, &url)
            .json(&body)
            .send()
            .await
            .expect("mkdir");
        json_status(resp, 201).await
    }

    /// Creates every folder of `path` (missing ones only); returns the last one.
    pub async fn mkdirs(&self, path: &str) -> Value {
        let mut parent = self.get_json(&self.d("/root")).await;
        let mut done = String::new();
        for seg in path.split('/') {
            done = if done.is_empty() {
                seg.to_string()
            } else {
                format!("{done}/{seg}")
            };
            let resp = self.get(&self.p(&done, "")).await;
            parent = if resp.status() == 200 {
                resp.json().await.unwrap()
            } else {
                self.mkdir(parent["id"].as_str().unwrap(), seg).await
            };
        }
        parent
    }

    /// Simple upload by path, returns the raw response.
    pub async fn put_raw(&self, path: &str, bytes: Vec<u8>, query: &str) -> Response {
        let url = format!("{}{query}", self.p(path, "/content"));
        self.req(Method::PUT, &url)
            .body(bytes)
            .send()
            .await
            .expect("PUT content")
    }

    /// Simple upload by path; expects 200 or 201 and returns the driveItem.
    pub async fn put(&self, path: &str, bytes: &[u8]) -> Value {
        let resp = self.put_raw(path, bytes.to_vec(), "").await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert!(
            status == 200 || status == 201,
            "PUT {path}: {status} {text}"
        );
        serde_json::from_str(&text).expect("driveItem JSON")
    }

    /// Downloads an item's content via the 302 and the pre-authenticated URL (no auth).
    pub async fn download(&self, id: &str) -> Vec<u8> {
        let resp = self.get(&self.d(&format!("/items/{id}/content"))).await;
        assert_eq!(resp.status(), 302, "content should redirect");
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        let resp = self.sim.http.get(&loc).send().await.expect("download");
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap().to_vec()
    }

    /// Names in a folder, following every nextLink.
    pub async fn list_all(&self, first: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(first.to_string());
        while let Some(url) = next {
            let page = self.get_json(&url).await;
            out.extend(page["value"].as_array().expect("value").iter().cloned());
            next = page["@odata.nextLink"].as_str().map(str::to_string);
        }
        out
    }

    /// The children of library folder `path` ("" or "/" for the root), every page.
    pub async fn children(&self, path: &str) -> Vec<Value> {
        let path = path.trim_matches('/');
        let url = if path.is_empty() {
            self.d("/root/children")
        } else {
            self.p(path, "/children")
        };
        self.list_all(&url).await
    }

    /// The child names of library folder `path`, sorted.
    pub async fn child_names(&self, path: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .children(path)
            .await
            .iter()
            .map(|i| i["name"].as_str().expect("name").to_string())
            .collect();
        names.sort();
        names
    }

    /// The item at library path `path`, or `None` when the simulator answers 404.
    pub async fn item_at(&self, path: &str) -> Option<Value> {
        let resp = self.get(&self.p(path.trim_matches('/'), "")).await;
        match resp.status().as_u16() {
            404 => None,
            _ => Some(json_status(resp, 200).await),
        }
    }

    pub async fn create_session(&self, path: &str, item: Value) -> Value {
        let url = self.p(path, "/createUploadSession");
        let body = json!({"item": item, "deferCommit": false});
        let resp = self
            .req(Method::POST, &url)
            .json(&body)
            .send()
            .await
            .expect("session");
        json_status(resp, 200).await
    }
}

/// PUT one fragment to an upload URL (no Authorization header); panics on transport errors.
pub async fn put_fragment(
    http: &Client,
    url: &str,
    start: usize,
    data: &[u8],
    total: usize,
) -> Response {
    try_put_fragment(http, url, start, data, total)
        .await
        .unwrap_or_else(|e| panic!("fragment at {start}: {e:?}"))
}

/// PUT one fragment to an upload URL (no Authorization header).
pub async fn try_put_fragment(
    http: &Client,
    url: &str,
    start: usize,
    data: &[u8],
    total: usize,
) -> reqwest::Result<Response> {
    let end = start + data.len() - 1;
    http.put(url)
        .header("Content-Range", format!("bytes {start}-{end}/{total}"))
        .body(data.to_vec())
        .send()
        .await
}

/// Checks a createUploadSession answer and returns its uploadUrl.
pub fn check_session(s: &Value) -> String {
    assert!(
        super::is_time(&s["expirationDateTime"]),
        "expirationDateTime: {s}"
    );
    assert_eq!(s["nextExpectedRanges"], json!(["0-"]), "{s}");
    let url = s["uploadUrl"].as_str().expect("uploadUrl").to_string();
    assert!(url.starts_with("http://"), "absolute uploadUrl: {url}");
    url
}

/// `GET {uploadUrl}` (no Authorization); expects 200.
pub async fn session_status(http: &Client, url: &str) -> Value {
    json_status(http.get(url).send().await.unwrap(), 200).await
}
