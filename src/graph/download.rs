//! Downloads. `GET .../content` answers 302 with a pre-authenticated URL, fetched without the
//! Authorization header (its `tempauth` is the credential; it lives about an hour):
//!
//! - [`Drive::download`]: one streaming GET from an offset to the end (or `len` bytes): sync,
//!   the SharePoint backend's sequential reads of small files, the content a resumed upload
//!   keeps;
//! - [`Ranges`]: exact byte ranges of one file on one pre-authenticated URL, any number at
//!   once (parallel downloads), renewing the URL when it has expired and refusing a range that
//!   comes from another version of the file than the first one did.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use reqwest::{Response, StatusCode, header};

use super::drive::Drive;
use super::error::{Error, Kind, Result};

/// A response body: chunks in order; an error ends it.
pub type Body = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A download in progress: the total size of the item and the requested bytes.
pub struct Download {
    pub total: u64,
    pub body: Body,
}

impl Drive {
    /// Bytes from `offset` (to the end, or `len` of them) of the file at `path`: the content
    /// URL answers 302 to a pre-authenticated URL, fetched without the Authorization header.
    pub async fn download(&self, path: &str, offset: u64, len: Option<u64>) -> Result<Download> {
        let url = self.item_url(path, "/content");
        let first = self.client.send(|http| http.get(&url), true).await?;
        let response = if first.status().is_redirection() {
            let location = location(&first)?;
            let range = match len {
                Some(0) => {
                    return Ok(Download {
                        total: self.stat(path).await?.size,
                        body: Box::pin(futures_util::stream::empty()),
                    });
                }
                Some(n) => format!("bytes={offset}-{}", offset + n - 1),
                None => format!("bytes={offset}-"),
            };
            let wants_range = offset > 0 || len.is_some();
            let sent = self
                .client
                .send(
                    |http| {
                        let request = http.get(&location);
                        if wants_range {
                            request.header(header::RANGE, &range)
                        } else {
                            request
                        }
                    },
                    false,
                )
                .await;
            match sent {
                Err(e) if e.code.as_deref() == Some("invalidRange") => {
                    return Ok(Download {
                        total: offset,
                        body: Box::pin(futures_util::stream::empty()),
                    });
                }
                other => other?,
            }
        } else {
            first
        };
        let total = match content_range(&response) {
            Some((_, _, total)) => total,
            None => response.content_length().unwrap_or(0),
        };
        let skip = if response.status() == StatusCode::PARTIAL_CONTENT {
            0
        } else {
            offset
        };
        Ok(Download {
            total,
            body: slice(response, skip, len.unwrap_or(u64::MAX)),
        })
    }

    /// The pre-authenticated URL that the content URL of `path` redirects to (one request),
    /// or `None` when the content URL answers with the content itself.
    async fn download_url(&self, path: &str) -> Result<Option<String>> {
        let url = self.item_url(path, "/content");
        let first = self.client.send(|http| http.get(&url), true).await?;
        if first.status().is_redirection() {
            location(&first).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The `Location` of a redirect.
fn location(response: &Response) -> Result<String> {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| Error::new(Kind::Invalid, "the download redirect has no Location"))
}

/// `Content-Range: bytes a-b/total` as `(a, b, total)`.
fn content_range(response: &Response) -> Option<(u64, u64, u64)> {
    let value = response
        .headers()
        .get(header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

/// The body of `response` without its first `skip` bytes and cut after `left` more.
fn slice(response: Response, mut skip: u64, mut left: u64) -> Body {
    let body = response
        .bytes_stream()
        // The pre-authenticated URL (`tempauth=`) must not reach the logs with the error.
        .map_err(|e| std::io::Error::other(e.without_url()))
        .try_filter_map(move |mut chunk: Bytes| {
            if skip > 0 {
                let n = skip.min(chunk.len() as u64);
                chunk = chunk.slice(n as usize..);
                skip -= n;
            }
            let take = left.min(chunk.len() as u64);
            left -= take;
            let chunk = chunk.slice(..take as usize);
            futures_util::future::ready(Ok((!chunk.is_empty()).then_some(chunk)))
        });
    Box::pin(body)
}

/// `body`, failing with `UnexpectedEof` if it ends before `len` bytes.
fn exact(body: Body, len: u64) -> Body {
    let checked = futures_util::stream::unfold(Some((body, 0u64)), move |state| async move {
        let (mut body, got) = state?;
        match body.next().await {
            Some(Ok(chunk)) => {
                let got = got + chunk.len() as u64;
                Some((Ok(chunk), Some((body, got))))
            }
            Some(Err(e)) => Some((Err(e), None)),
            None if got < len => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the range ended after {got} of {len} bytes"),
                )),
                None,
            )),
            None => None,
        }
    });
    Box::pin(checked)
}

/// What an answer says about the version of the file it comes from.
#[derive(Debug, Clone, PartialEq)]
struct Version {
    total: Option<u64>,
    etag: Option<String>,
}

impl Version {
    /// Whether two answers may come from the same version (what either leaves out is not
    /// compared).
    fn agrees(&self, other: &Version) -> bool {
        fn same<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
            a.is_none() || b.is_none() || a == b
        }
        same(self.total, other.total) && same(self.etag.as_ref(), other.etag.as_ref())
    }
}

/// Exact byte ranges of one file, fetched on its pre-authenticated URL. Shared by the tasks
/// fetching them at once; with HTTP/1.1 each range in flight has a connection of its own.
pub struct Ranges {
    drive: Arc<Drive>,
    path: String,
    /// The download URL and how many times it was renewed.
    url: tokio::sync::Mutex<(String, u32)>,
    /// The version the first answer came from; every later range must agree with it.
    version: OnceLock<Version>,
}

impl Ranges {
    /// The download URL of the file at `path` (one request: the 302 of its content URL);
    /// `None` when the content URL answers with the content itself (only
    /// [`Drive::download`] reads such a file).
    pub async fn open(drive: Arc<Drive>, path: &str) -> Result<Option<Ranges>> {
        let Some(url) = drive.download_url(path).await? else {
            return Ok(None);
        };
        Ok(Some(Ranges {
            drive,
            path: path.to_string(),
            url: tokio::sync::Mutex::new((url, 0)),
            version: OnceLock::new(),
        }))
    }

    /// Exactly `len` (> 0) bytes from `start`: the body yields them, or ends with an error
    /// (cut short, broken off). The request has the connection's retries; an expired URL
    /// (401, 403 or 410 from the download host) is renewed once and the range asked again.
    pub async fn fetch(&self, start: u64, len: u64) -> Result<Body> {
        let (url, renewals) = self.url.lock().await.clone();
        match self.get(&url, start, len).await {
            Err(e) if matches!(e.kind, Kind::PermissionDenied | Kind::ResyncRequired) => {
                tracing::debug!(path = %self.path, error = %crate::logging::chain(&e), "the download URL was refused; renewing it");
                let url = self.renew(renewals).await?;
                self.get(&url, start, len).await
            }
            other => other,
        }
    }

    /// A fresh URL after the one renewed `seen` times was refused: one request however many
    /// ranges met the refusal at once.
    async fn renew(&self, seen: u32) -> Result<String> {
        let mut current = self.url.lock().await;
        if current.1 == seen {
            let url =
                self.drive.download_url(&self.path).await?.ok_or_else(|| {
                    Error::new(Kind::Invalid, "the content URL no longer redirects")
                })?;
            *current = (url, seen + 1);
        }
        Ok(current.0.clone())
    }

    async fn get(&self, url: &str, start: u64, len: u64) -> Result<Body> {
        let end = start + len - 1;
        let range = format!("bytes={start}-{end}");
        let response = self
            .drive
            .client
            .send(|http| http.get(url).header(header::RANGE, &range), false)
            .await?;
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (skip, total) = if response.status() == StatusCode::PARTIAL_CONTENT {
            let (a, b, total) = content_range(&response).ok_or_else(|| {
                Error::new(Kind::Invalid, "a partial download without Content-Range")
            })?;
            if (a, b) != (start, end) {
                return Err(Error::new(
                    Kind::Modified,
                    format!(
                        "{}: asked for bytes {start}-{end}, SharePoint sent {a}-{b} of {total} \
                         (the file changed?)",
                        self.path
                    ),
                ));
            }
            (0, Some(total))
        } else {
            // The range was ignored: the whole file came.
            (start, response.content_length())
        };
        let version = Version { total, etag };
        let first = self.version.get_or_init(|| version.clone());
        if !first.agrees(&version) {
            return Err(Error::new(
                Kind::Modified,
                format!(
                    "{}: the file changed during the download ({first:?}, now {version:?})",
                    self.path
                ),
            ));
        }
        Ok(exact(slice(response, skip, len), len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&'static [u8]]) -> Body {
        let chunks: Vec<std::io::Result<Bytes>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Box::pin(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn an_exact_body_fails_when_cut_short() {
        let whole: Vec<_> = exact(body(&[b"abc", b"de"]), 5).collect().await;
        assert_eq!(whole.len(), 2);
        assert!(whole.iter().all(|c| c.is_ok()));

        let short: Vec<_> = exact(body(&[b"abc"]), 5).collect().await;
        assert_eq!(short.len(), 2);
        let e = short[1].as_ref().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("3 of 5"), "{e}");
    }

    #[test]
    fn versions_agree_on_what_both_know() {
        let v = |total, etag: Option<&str>| Version {
            total,
            etag: etag.map(str::to_string),
        };
        assert!(v(Some(5), Some("\"a\"")).agrees(&v(Some(5), Some("\"a\""))));
        assert!(v(Some(5), None).agrees(&v(Some(5), Some("\"a\""))));
        assert!(v(None, Some("\"a\"")).agrees(&v(Some(7), Some("\"a\""))));
        assert!(!v(Some(5), Some("\"a\"")).agrees(&v(Some(6), Some("\"a\""))));
        assert!(!v(Some(5), Some("\"a\"")).agrees(&v(Some(5), Some("\"b\""))));
    }
}
