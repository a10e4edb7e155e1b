//! Assertions and small tools: Graph error and driveItem shapes, quickXorHash, per-segment
//! percent-encoding, deterministic test data.

use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Response;
use serde_json::Value;

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
