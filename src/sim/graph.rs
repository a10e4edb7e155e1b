//! The Graph URL grammar under `/v1.0` and the dispatch of each request to its handler.
//!
//! Paths are parsed from the raw (still percent-encoded) URI: the path form
//! `root:/a/b:/content` is split on its colons first and each segment decoded afterwards, so an
//! encoded `/` or `:` inside a name stays part of the name (and is then refused as illegal).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use super::error::{GraphError, GraphResult};
use super::state::{Caller, Sim};
use super::{content, delta, items, sites, upload};

pub type Query = HashMap<String, String>;

/// What to percent-encode in a path segment or query value of a URL the simulator hands out:
/// everything but RFC 3986's unreserved characters.
pub const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where an item address starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Base {
    Root,
    Id(String),
}

/// What is asked of an item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Item,
    Children,
    Content,
    CreateUploadSession,
    Copy,
    Delta,
}

#[derive(Debug, PartialEq)]
pub enum Target {
    /// `sites/{hostname}:/sites/{name}` or `sites/{id}`, then nothing, `/drive` or `/drives`.
    Site {
        host: Option<String>,
        key: String,
        suffix: SiteSuffix,
    },
    /// `sites?search=`: refused to apps limited by Sites.Selected.
    SiteSearch,
    Drive(String),
    Item {
        drive: String,
        base: Base,
        path: Vec<String>,
        action: Action,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SiteSuffix {
    None,
    Drive,
    Drives,
}

fn decode(segment: &str) -> GraphResult<String> {
    let bytes = segment.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && !(bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)))
    });
    if malformed {
        return Err(GraphError::invalid(
            "The path contains a malformed percent-encoding.",
        ));
    }
    percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| GraphError::invalid("The path is not valid UTF-8 after percent-decoding."))
}

fn unknown_segment(segment: &str) -> GraphError {
    GraphError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("Resource not found for the segment '{segment}'."),
    )
}

/// Parses a raw `/v1.0/...` path.
pub fn parse(raw: &str) -> GraphResult<Target> {
    let rest = raw
        .strip_prefix("/v1.0")
        .ok_or_else(|| unknown_segment(raw))?;
    if rest == "/sites" || rest == "/sites/" {
        return Ok(Target::SiteSearch);
    }
    if let Some(site) = rest.strip_prefix("/sites/") {
        return parse_site(site);
    }
    let Some(drive_part) = rest.strip_prefix("/drives/") else {
        let first = rest.trim_start_matches('/').split('/').next().unwrap_or("");
        return Err(unknown_segment(first));
    };
    let (drive, tail) = drive_part.split_at(drive_part.find('/').unwrap_or(drive_part.len()));
    let drive = decode(drive)?;
    if tail.is_empty() || tail == "/" {
        return Ok(Target::Drive(drive));
    }
    let (base, after) = if let Some(after) = tail.strip_prefix("/root") {
        (Base::Root, after)
    } else if let Some(after) = tail.strip_prefix("/items/") {
        let end = after.find(['/', ':']).unwrap_or(after.len());
        let id = decode(&after[..end])?;
        let base = if id == "root" {
            Base::Root
        } else {
            Base::Id(id)
        };
        (base, &after[end..])
    } else {
        return Err(unknown_segment(
            tail.trim_start_matches('/').split('/').next().unwrap_or(""),
        ));
    };
    let (path, suffix) = match after.strip_prefix(':') {
        Some(path_form) => {
            let (path, suffix) = match path_form.find(':') {
                Some(i) => (&path_form[..i], &path_form[i + 1..]),
                None => (path_form, ""),
            };
            // An empty segment inside the path (`a//b`) names nothing; an upload must not read
            // it as `a/b` and create folders there.
            if path.trim_matches('/').contains("//") {
                return Err(GraphError::invalid("The path contains an empty segment."));
            }
            let segments = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(decode)
                .collect::<GraphResult<Vec<_>>>()?;
            (segments, suffix)
        }
        None => (Vec::new(), after),
    };
    let action = match suffix.trim_end_matches('/') {
        "" => Action::Item,
        "/children" => Action::Children,
        "/content" => Action::Content,
        "/createUploadSession" | "/microsoft.graph.createUploadSession" => {
            Action::CreateUploadSession
        }
        "/copy" | "/microsoft.graph.copy" => Action::Copy,
        "/delta" | "/delta()" | "/microsoft.graph.delta()" => Action::Delta,
        other => return Err(unknown_segment(other.trim_start_matches('/'))),
    };
    Ok(Target::Item {
        drive,
        base,
        path,
        action,
    })
}

fn parse_site(site: &str) -> GraphResult<Target> {
    let suffix_of = |s: &str| match s.trim_end_matches('/') {
        "" => Ok(SiteSuffix::None),
        "/drive" => Ok(SiteSuffix::Drive),
        "/drives" => Ok(SiteSuffix::Drives),
        other => Err(unknown_segment(other.trim_start_matches('/'))),
    };
    if let Some(colon) = site.find(':') {
        let host = decode(&site[..colon])?;
        let after = &site[colon + 1..];
        let (path, suffix) = match after.find(':') {
            Some(i) => (&after[..i], &after[i + 1..]),
            None => (after, ""),
        };
        return Ok(Target::Site {
            host: Some(host),
            key: decode(path.trim_end_matches('/'))?,
            suffix: suffix_of(suffix)?,
        });
    }
    let (id, suffix) = site.split_at(site.find('/').unwrap_or(site.len()));
    Ok(Target::Site {
        host: None,
        key: decode(id)?,
        suffix: suffix_of(suffix)?,
    })
}

/// Everything a Graph handler gets.
pub struct Request {
    pub sim: Arc<Sim>,
    pub caller: Caller,
    pub method: Method,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A JSON request body of at most 1 MiB; malformed JSON is a Graph `invalidRequest`.
pub async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> GraphResult<T> {
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|_| GraphError::invalid("The request body is too large or was interrupted."))?;
    serde_json::from_slice(&bytes).map_err(|_| GraphError::bad_json())
}

/// `ANY /v1.0/*`.
pub async fn dispatch(
    State(sim): State<Arc<Sim>>,
    caller: Caller,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let query: Query = serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let request = Request {
        sim,
        caller,
        method,
        query,
        headers,
        body,
    };
    match route(uri.path(), request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn route(path: &str, r: Request) -> GraphResult<Response> {
    let target = parse(path)?;
    let method = r.method.clone();
    match target {
        Target::Site { host, key, suffix } if method == Method::GET => {
            sites::site(r, host, key, suffix)
        }
        Target::SiteSearch if method == Method::GET => sites::search(r),
        Target::Drive(drive) if method == Method::GET => sites::drive(r, &drive),
        Target::Item {
            drive,
            base,
            path,
            action,
        } => {
            let target = items::Address { drive, base, path };
            match (action, method) {
                (Action::Item, Method::GET) => items::get(r, target),
                (Action::Item, Method::PATCH) => items::update(r, target).await,
                (Action::Item, Method::DELETE) => items::delete(r, target),
                (Action::Children, Method::GET) => items::children(r, target),
                (Action::Children, Method::POST) => items::create_folder(r, target).await,
                (Action::Content, Method::GET) => content::redirect(r, target),
                (Action::Content, Method::PUT) => content::simple_upload(r, target).await,
                (Action::CreateUploadSession, Method::POST) => upload::create(r, target).await,
                (Action::Copy, Method::POST) => items::copy(r, target).await,
                (Action::Delta, Method::GET) => delta::delta(r, target),
                _ => Err(method_not_allowed()),
            }
        }
        _ => Err(method_not_allowed()),
    }
}

fn method_not_allowed() -> GraphError {
    GraphError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "methodNotAllowed",
        "The HTTP method is not allowed for this resource.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(drive: &str, base: Base, path: &[&str], action: Action) -> Target {
        Target::Item {
            drive: drive.into(),
            base,
            path: path.iter().map(|s| s.to_string()).collect(),
            action,
        }
    }

    #[test]
    fn path_forms_parse() {
        assert_eq!(
            parse("/v1.0/drives/b!x/root").unwrap(),
            item("b!x", Base::Root, &[], Action::Item)
        );
        assert_eq!(
            parse("/v1.0/drives/b!x/items/root/children").unwrap(),
            item("b!x", Base::Root, &[], Action::Children)
        );
        assert_eq!(
            parse("/v1.0/drives/b!x/root:/a%20b/c%23d.txt:/content").unwrap(),
            item("b!x", Base::Root, &["a b", "c#d.txt"], Action::Content)
        );
        assert_eq!(
            parse("/v1.0/drives/b!x/root:/a/b").unwrap(),
            item("b!x", Base::Root, &["a", "b"], Action::Item)
        );
        assert_eq!(
            parse("/v1.0/drives/b!x/items/01AB:/n.txt:/createUploadSession").unwrap(),
            item(
                "b!x",
                Base::Id("01AB".into()),
                &["n.txt"],
                Action::CreateUploadSession
            )
        );
        assert_eq!(
            parse("/v1.0/drives/b!x/items/01AB:/a%2Fb:").unwrap(),
            item("b!x", Base::Id("01AB".into()), &["a/b"], Action::Item)
        );
        assert_eq!(
            parse("/v1.0/sites/contoso.sharepoint.com:/sites/partners:/drives").unwrap(),
            Target::Site {
                host: Some("contoso.sharepoint.com".into()),
                key: "/sites/partners".into(),
                suffix: SiteSuffix::Drives
            }
        );
        assert!(parse("/v1.0/drives/b!x/root:/a//b.txt:/content").is_err());
        assert!(parse("/v1.0/drives/b!x/root/bogus").is_err());
        assert!(parse("/v1.0/users").is_err());
    }
}
