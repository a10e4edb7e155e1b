//! Harness for the simulator conformance suite: starts `spgate sim` on port 0 in a temp dir,
//! talks to it over plain HTTP with reqwest, and checks Graph JSON shapes. Independent of the
//! spgate library on purpose: the suite checks the simulator against shared/GRAPH.md, not
//! against spgate's own Graph client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Client, Method, RequestBuilder, Response, redirect::Policy};
use serde_json::{Value, json};

pub const HOST: &str = "contoso.sharepoint.com";
pub const APP: &str = "spgate-demo";
pub const SECRET: &str = "demo-secret";
pub const FRAG: usize = 327_680;

/// Seed equivalent to the default world, to which tests append apps, sites and drives.
pub const BASE_SEED: &str = r#"
[[tenants]]
name = "contoso"
id = "2f0b6c8e-1d7a-4c53-9a57-5f1e8a0c9d11"
[[tenants.apps]]
client_id = "spgate-demo"
secret = "demo-secret"
"#;

const PARTNERS: &str = r#"
[[tenants.sites]]
hostname = "contoso.sharepoint.com"
name = "partners"
[[tenants.sites.drives]]
name = "Documents"
"#;

/// A seed like the default world plus `apps` (TOML `[[tenants.apps]]` tables) and `more`
/// (appended after the partners site: more drives for it, or more sites).
pub fn seed(apps: &str, more: &str) -> String {
    format!("{BASE_SEED}{apps}{PARTNERS}{more}")
}

/// A running simulator; killed on drop (its log is printed when the test failed).
pub struct Sim {
    child: Mutex<Child>,
    pub base: String,
    pub pid: u32,
    pub http: Client,
    pub dir: tempfile::TempDir,
}

impl Sim {
    pub fn start() -> Sim {
        Sim::spawn(None)
    }

    pub fn with_seed(seed: &str) -> Sim {
        Sim::spawn(Some(seed))
    }

    fn spawn(seed: Option<&str>) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spgate"));
        cmd.arg("sim")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(&data);
        if let Some(seed) = seed {
            let path = dir.path().join("seed.toml");
            std::fs::write(&path, seed).expect("write seed");
            cmd.arg("--seed").arg(path);
        }
        let log = std::fs::File::create(dir.path().join("sim.log")).expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("spawn spgate sim");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let pid = child.id();
        let http = Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client");
        let mut sim = Sim {
            child: Mutex::new(child),
            base: String::new(),
            pid,
            http,
            dir,
        };
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Some(addr) = line.trim_end().strip_prefix("listening on ") else {
            panic!(
                "simulator did not announce its address: {line:?}\n{}",
                sim.log_tail()
            );
        };
        assert!(addr.starts_with("http://"), "announced {addr:?}");
        sim.base = addr.trim_end_matches('/').to_string();
        sim
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sim.log")
    }

    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut text);
        }
        let start = text.len().saturating_sub(6000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text[start..].to_string()
    }

    /// Panics if the simulator process has exited.
    pub fn assert_alive(&self) {
        let status = self.child.lock().unwrap().try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "simulator exited: {status:?}\n{}",
            self.log_tail()
        );
    }

    /// Peak resident set size of the simulator (VmHWM), in KiB.
    pub fn vm_hwm_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("proc");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM line");
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .expect("VmHWM number")
    }

    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base)
    }

    pub async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.token_url(tenant))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    /// Client-credentials token with a secret; panics unless 200.
    pub async fn app_token_for(&self, client_id: &str, secret: &str) -> String {
        let resp = self
            .token_request(
                "contoso",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", secret),
                    ("scope", "https://graph.microsoft.com/.default"),
                ],
            )
            .await;
        let body = json_status(resp, 200).await;
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn app_token(&self) -> String {
        self.app_token_for(APP, SECRET).await
    }

    pub fn graph(&self, rel: &str) -> String {
        format!("{}/v1.0{rel}", self.base)
    }

    pub fn ctl(&self, rel: &str) -> String {
        format!("{}/_sim{rel}", self.base)
    }

    /// POST to the control API; panics unless 2xx.
    pub async fn control(&self, rel: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(self.ctl(rel))
            .json(&body)
            .send()
            .await
            .expect("control");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "control {rel}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn stats(&self) -> Value {
        let resp = self
            .http
            .get(self.ctl("/stats"))
            .send()
            .await
            .expect("stats");
        json_status(resp, 200).await
    }

    pub async fn faults(&self, body: Value) {
        self.control("/faults", body).await;
    }

    /// Resolves the partners site and returns (site id, default drive id).
    pub async fn site_drive(&self, token: &str, site: &str) -> (String, String) {
        let url = self.graph(&format!("/sites/{HOST}:/sites/{site}"));
        let resp = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("site");
        let site = json_status(resp, 200).await;
        let site_id = site["id"].as_str().expect("site id").to_string();
        let url = self.graph(&format!("/sites/{site_id}/drive"));
        let resp = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("drive");
        let drive = json_status(resp, 200).await;
        (site_id, drive["id"].as_str().expect("drive id").to_string())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- simulator log tail ----\n{}", self.log_tail());
        }
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A simulator plus an app token and the partners drive: the usual starting point.
pub struct Ctx {
    pub sim: Sim,
    pub token: String,
    pub site: String,
    pub drive: String,
}

impl Ctx {
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

/// PUT one fragment to an upload URL (no Authorization header).
pub async fn put_fragment(
    http: &Client,
    url: &str,
    start: usize,
    data: &[u8],
    total: usize,
) -> Response {
    let end = start + data.len() - 1;
    http.put(url)
        .header("Content-Range", format!("bytes {start}-{end}/{total}"))
        .body(data.to_vec())
        .send()
        .await
        .expect("fragment")
}

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub fn enc(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

pub fn enc_path(path: &str) -> String {
    path.split('/').map(enc).collect::<Vec<_>>().join("/")
}

pub fn qxh(bytes: &[u8]) -> String {
    let mut h = quickxorhash::QuickXorHash::new();
    h.update(bytes);
    b64(&h.finalize())
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Deterministic pseudo-random bytes (xorshift), so large bodies need no storage.
pub fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    fill(&mut v, seed);
    v
}

/// Asserts the status and returns the JSON body (printing the body on mismatch).
pub async fn json_status(resp: Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let url = resp.url().to_string();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "{url}: body {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {text}"))
}

/// Asserts a Graph error: status, `error.code`, message and innerError date/request-id.
pub async fn graph_error(resp: Response, status: u16, code: &str) -> Value {
    let body = json_status(resp, status).await;
    check_error_shape(&body);
    assert_eq!(body["error"]["code"], code, "error code in {body}");
    body
}

pub fn check_error_shape(body: &Value) {
    let err = &body["error"];
    assert!(err["code"].is_string(), "error.code missing: {body}");
    assert!(err["message"].is_string(), "error.message missing: {body}");
    let inner = inner_of(err).unwrap_or_else(|| panic!("innerError missing: {body}"));
    assert!(inner["date"].is_string(), "innerError.date missing: {body}");
    assert!(
        inner["request-id"].is_string(),
        "innerError.request-id missing: {body}"
    );
}

fn inner_of(v: &Value) -> Option<&Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("innererror"))
        .map(|(_, v)| v)
}

/// Every nested inner error code, outermost first.
pub fn inner_codes(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = inner_of(&body["error"]);
    while let Some(v) = cur {
        if let Some(c) = v["code"].as_str() {
            out.push(c.to_string());
        }
        cur = inner_of(v);
    }
    out
}

/// `"{GUID},N"` with an optional prefix inside the quotes (`c:` for cTags).
pub fn is_tag(tag: &str, prefix: &str) -> bool {
    let Some(rest) = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(prefix).and_then(|t| t.strip_prefix('{')) else {
        return false;
    };
    let Some((guid, n)) = rest.split_once("},") else {
        return false;
    };
    is_guid(guid) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
}

pub fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

pub fn is_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

/// Checks the driveItem shape common to files and folders (GRAPH.md section 2).
pub fn check_item(item: &Value) {
    let id = item["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {item}"));
    assert_eq!(id.len(), 34, "item ids are 34 chars: {item}");
    assert!(item["name"].is_string(), "name: {item}");
    assert!(item["size"].is_u64(), "size: {item}");
    assert!(
        is_tag(item["eTag"].as_str().unwrap_or(""), ""),
        "eTag form: {item}"
    );
    assert!(is_time(&item["createdDateTime"]), "createdDateTime: {item}");
    assert!(
        is_time(&item["lastModifiedDateTime"]),
        "lastModifiedDateTime: {item}"
    );
    assert!(item["webUrl"].is_string(), "webUrl: {item}");
    let fsi = &item["fileSystemInfo"];
    assert!(is_time(&fsi["createdDateTime"]), "fileSystemInfo: {item}");
    assert!(
        is_time(&fsi["lastModifiedDateTime"]),
        "fileSystemInfo: {item}"
    );
    if item.get("file").is_some() {
        assert!(item.get("folder").is_none(), "file and folder: {item}");
        assert!(
            is_tag(item["cTag"].as_str().unwrap_or(""), "c:"),
            "cTag form: {item}"
        );
        assert!(item["file"]["mimeType"].is_string(), "mimeType: {item}");
        let h = item["file"]["hashes"]["quickXorHash"]
            .as_str()
            .expect("quickXorHash");
        assert_eq!(h.len(), 28, "quickXorHash is base64 of 20 bytes: {item}");
        assert!(
            item["@microsoft.graph.downloadUrl"].is_string(),
            "downloadUrl: {item}"
        );
    } else {
        assert!(
            item["folder"]["childCount"].is_u64(),
            "folder.childCount: {item}"
        );
        assert!(item.get("cTag").is_none(), "folders have no cTag: {item}");
    }
}

/// Checks parentReference for a non-root item in folder `parent_path` ("" for the root).
pub fn check_parent(item: &Value, drive: &str, parent_id: &str, parent_path: &str) {
    let pr = &item["parentReference"];
    assert_eq!(pr["driveId"], drive, "parentReference.driveId: {item}");
    assert_eq!(pr["driveType"], "documentLibrary", "driveType: {item}");
    assert_eq!(pr["id"], parent_id, "parentReference.id: {item}");
    let want = if parent_path.is_empty() {
        "/drive/root:".to_string()
    } else {
        format!("/drive/root:/{parent_path}")
    };
    assert_eq!(pr["path"], want.as_str(), "parentReference.path: {item}");
}
