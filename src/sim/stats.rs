//! Request statistics by kind (`GET /_sim/stats`) and the classification of requests.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::Method;
use serde_json::{Value, json};

/// The request kinds the statistics count, in the order they are reported.
pub const KINDS: [&str; 15] = [
    "token",
    "authorize",
    "site",
    "list",
    "get_item",
    "download",
    "simple_upload",
    "create_session",
    "upload_fragment",
    "mkdir",
    "move",
    "delete",
    "copy",
    "delta",
    "other",
];

#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    /// Counted non-token requests, the clock of `throttle_every` and `fail_5xx_every`.
    pub api_requests: AtomicU64,
    pub fragments: AtomicU64,
    by_kind: [AtomicU64; KINDS.len()],
    /// Downloads of a pre-authenticated URL answered with a range (206).
    ranged_downloads: AtomicU64,
    /// The TCP connections (client address and port) those came on.
    download_peers: parking_lot::Mutex<HashSet<SocketAddr>>,
}

impl Stats {
    pub fn count(&self, kind: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            self.by_kind[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a ranged download that came on the connection from `peer`.
    pub fn count_ranged_download(&self, peer: SocketAddr) {
        self.ranged_downloads.fetch_add(1, Ordering::Relaxed);
        self.download_peers.lock().insert(peer);
    }

    pub fn reset(&self) {
        self.download_peers.lock().clear();
        for counter in [
            &self.requests,
            &self.throttled,
            &self.api_requests,
            &self.fragments,
            &self.ranged_downloads,
        ]
        .into_iter()
        .chain(self.by_kind.iter())
        {
            counter.store(0, Ordering::Relaxed);
        }
    }

    pub fn to_json(&self) -> Value {
        let by_kind: serde_json::Map<String, Value> = KINDS
            .iter()
            .zip(self.by_kind.iter())
            .map(|(k, c)| (k.to_string(), json!(c.load(Ordering::Relaxed))))
            .collect();
        json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "throttled": self.throttled.load(Ordering::Relaxed),
            "by_kind": by_kind,
            "ranged_downloads": self.ranged_downloads.load(Ordering::Relaxed),
            "download_connections": self.download_peers.lock().len(),
        })
    }
}

/// Whether requests of `kind` go to the identity platform (token endpoints, sign-in pages),
/// which Graph's injected faults leave alone.
pub fn is_identity(kind: &str) -> bool {
    kind == "token" || kind == "authorize"
}

/// The kind of a request, from its method and raw path; `None` for control calls.
pub fn classify(method: &Method, path: &str) -> Option<&'static str> {
    if path.starts_with("/_sim/") || path == "/_sim" {
        return None;
    }
    if path.ends_with("/oauth2/v2.0/authorize") {
        return Some("authorize");
    }
    if path.contains("/oauth2/") {
        return Some("token");
    }
    if path.starts_with("/_layouts/15/download.aspx") {
        return Some("download");
    }
    if path.starts_with("/_upload/") {
        return Some(if method == Method::PUT {
            "upload_fragment"
        } else {
            "other"
        });
    }
    if !path.starts_with("/v1.0/") {
        return Some("other");
    }
    if path.starts_with("/v1.0/sites/") {
        return Some("site");
    }
    let tail = path.rsplit(['/', ':']).next().unwrap_or("");
    let kind = match (method.as_str(), tail) {
        (_, t) if t.starts_with("delta") => "delta",
        ("GET", "children") => "list",
        ("POST", "children") => "mkdir",
        ("GET", "content") => "download",
        ("PUT", "content") => "simple_upload",
        ("POST", "createUploadSession") => "create_session",
        ("POST", "copy") => "copy",
        _ if !path.contains("/root") && !path.contains("/items/") => "other",
        ("GET", _) => "get_item",
        ("PATCH", _) => "move",
        ("DELETE", _) => "delete",
        _ => "other",
    };
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::classify;
    use axum::http::Method;

    #[test]
    fn kinds_follow_method_and_suffix() {
        let cases = [
            (Method::POST, "/contoso/oauth2/v2.0/token", "token"),
            (Method::GET, "/contoso/oauth2/v2.0/authorize", "authorize"),
            (Method::POST, "/contoso/oauth2/v2.0/authorize", "authorize"),
            (
                Method::GET,
                "/v1.0/sites/contoso.sharepoint.com:/sites/partners",
                "site",
            ),
            (Method::GET, "/v1.0/drives/b!x/root:/a:/children", "list"),
            (
                Method::POST,
                "/v1.0/drives/b!x/items/01AB/children",
                "mkdir",
            ),
            (
                Method::GET,
                "/v1.0/drives/b!x/root:/a.txt:/content",
                "download",
            ),
            (
                Method::PUT,
                "/v1.0/drives/b!x/items/01AB:/a.txt:/content",
                "simple_upload",
            ),
            (
                Method::POST,
                "/v1.0/drives/b!x/root:/a.txt:/createUploadSession",
                "create_session",
            ),
            (Method::PUT, "/_upload/abc", "upload_fragment"),
            (Method::PATCH, "/v1.0/drives/b!x/items/01AB", "move"),
            (Method::DELETE, "/v1.0/drives/b!x/items/01AB", "delete"),
            (Method::GET, "/v1.0/drives/b!x/root:/a.txt", "get_item"),
            (Method::POST, "/v1.0/drives/b!x/items/01AB/copy", "copy"),
            (Method::GET, "/v1.0/drives/b!x/root/delta?token=x", "delta"),
            (Method::GET, "/v1.0/drives/b!x", "other"),
        ];
        for (method, path, kind) in cases {
            let path = path.split('?').next().unwrap();
            assert_eq!(classify(&method, path), Some(kind), "{method} {path}");
        }
        assert_eq!(classify(&Method::GET, "/_sim/stats"), None);
    }
}
