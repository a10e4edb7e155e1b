//! File content: the `/content` redirect, the pre-authenticated download URL with `Range` and
//! `If-None-Match`, simple uploads, and the streaming of request bodies to blobs on disk.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query as QueryParams, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;

use super::drive::{Blob, Conflict};
use super::error::{GraphError, GraphResult};
use super::graph::Request;
use super::items::{Address, download_url, drive_for, render};
use super::listener::Peer;
use super::state::Sim;
use crate::wire::QuickXor;

/// Simple uploads above this size are refused, as Graph does.
const SIMPLE_UPLOAD_MAX: u64 = 250 * 1024 * 1024;
const STREAM_CHUNK: usize = 256 * 1024;

/// `GET .../content`: 302 to the pre-authenticated URL, or 304 for a matching `If-None-Match`.
pub fn redirect(r: Request, address: Address) -> GraphResult<Response> {
    let mut world = r.sim.world.lock();
    let drive = drive_for(&r, &mut world, &address.drive, false)?;
    let item = address.locate(drive)?;
    if item.is_folder() {
        return Err(GraphError::invalid(
            "Cannot download the content of a folder.",
        ));
    }
    if let Some(tag) = r.header(header::IF_NONE_MATCH.as_str())
        && item.matches(Some(tag))
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let location = download_url(&r.sim, &drive.id, &item.id);
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

/// `GET /_layouts/15/download.aspx?UniqueId=&drive=&tempauth=`: the pre-authenticated download.
pub async fn download(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    QueryParams(query): QueryParams<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match serve_download(&sim, peer.addr, &query, &headers).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn serve_download(
    sim: &Sim,
    peer: SocketAddr,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> GraphResult<Response> {
    // An `Authorization` header is ignored here, as SharePoint does: the URL's `tempauth` is
    // the credential (clients that follow the 302 of `/content` often still send one).
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
    let (item_id, drive_id, tempauth) = (get("UniqueId"), get("drive"), get("tempauth"));
    let expires: i64 = tempauth
        .split('.')
        .next()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    if sim.tempauth(drive_id, item_id, expires) != tempauth
        || expires < chrono::Utc::now().timestamp()
    {
        return Err(GraphError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "The download URL is not valid or has expired.",
        ));
    }
    let (blob, etag) = {
        let world = sim.world.lock();
        let drive = world
            .drives
            .get(drive_id)
            .ok_or_else(GraphError::not_found)?;
        let item = drive.get(item_id)?;
        if let Some(tag) = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            && item.matches(Some(tag))
        {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
        (
            item.blob().cloned().ok_or_else(GraphError::not_found)?,
            item.etag(),
        )
    };
    let total = blob.len;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| parse_range(r, total));
    let (start, len, status) = match range {
        None => (0, total, StatusCode::OK),
        Some(Ok((a, b))) => {
            sim.stats.count_ranged_download(peer);
            (a, b - a + 1, StatusCode::PARTIAL_CONTENT)
        }
        Some(Err(())) => {
            let mut response = GraphError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "invalidRange",
                "The requested range is not satisfiable.",
            )
            .into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{total}")).expect("ascii"),
            );
            return Ok(response);
        }
    };
    let mut file = tokio::fs::File::open(&blob.path)
        .await
        .map_err(|_| GraphError::not_found())?;
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(|_| GraphError::not_found())?;
    let reader = tokio::io::AsyncReadExt::take(file, len);
    let mut response = Response::new(Body::from_stream(ReaderStream::with_capacity(
        reader,
        STREAM_CHUNK,
    )));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("ascii"));
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{total}", start + len - 1);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).expect("ascii"),
        );
    }
    Ok(response)
}

/// One `bytes=` range against `total`: `None` to ignore (multiple or malformed ranges are
/// answered with the whole file), `Err` when unsatisfiable.
fn parse_range(value: &str, total: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let suffix: u64 = b.parse().ok()?;
        if suffix == 0 {
            return Some(Err(()));
        }
        (total.saturating_sub(suffix), total.checked_sub(1)?)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            total.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(total.saturating_sub(1))
        };
        if b.parse::<u64>().is_ok_and(|e| e < start) {
            return None;
        }
        (start, end)
    };
    if range.0 >= total {
        return Some(Err(()));
    }
    Some(Ok(range))
}

/// Reads and discards a refused body of up to 64 MiB; false when it was larger or broke.
pub async fn drain(body: Body) -> bool {
    let mut stream = body.into_data_stream();
    let mut left: u64 = 64 * 1024 * 1024;
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        match chunk {
            Ok(chunk) if (chunk.len() as u64) <= left => left -= chunk.len() as u64,
            _ => return false,
        }
    }
    true
}

/// What a body stream delivered before it ended or broke.
pub struct Received {
    pub bytes: u64,
    pub complete: bool,
}

/// Streams `body` into `out` (up to `limit` bytes, refusing more), hashing as it goes; with
/// `stop_after` it keeps only that many bytes, as if the connection broke there. A broken body
/// keeps what arrived: the caller decides what it means.
pub async fn receive(
    body: Body,
    out: &mut BufWriter<tokio::fs::File>,
    hash: &mut QuickXor,
    limit: u64,
    stop_after: Option<u64>,
) -> GraphResult<Received> {
    let mut stream = body.into_data_stream();
    let mut bytes = 0u64;
    let mut complete = true;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            complete = false;
            break;
        };
        let chunk = match stop_after {
            Some(stop) if bytes + chunk.len() as u64 >= stop => {
                let keep = chunk.slice(..(stop - bytes) as usize);
                out.write_all(&keep).await.map_err(storage_error)?;
                hash.update(&keep);
                bytes = stop;
                complete = false;
                break;
            }
            _ => chunk,
        };
        if bytes + chunk.len() as u64 > limit {
            return Err(GraphError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalidRequest",
                "The request body is larger than allowed.",
            ));
        }
        out.write_all(&chunk).await.map_err(storage_error)?;
        hash.update(&chunk);
        bytes += chunk.len() as u64;
    }
    out.flush().await.map_err(storage_error)?;
    Ok(Received { bytes, complete })
}

/// The quickXorHash of a stored file, read from disk: a session's fragments may have been sent
/// more than once (a client resuming after a crash), and only the assembled bytes count.
pub async fn hash_file(path: &FsPath) -> GraphResult<QuickXor> {
    let file = tokio::fs::File::open(path).await.map_err(storage_error)?;
    let mut chunks = ReaderStream::with_capacity(file, 1 << 20);
    let mut hash = QuickXor::new();
    while let Some(chunk) = chunks.next().await {
        hash.update(&chunk.map_err(storage_error)?);
    }
    Ok(hash)
}

pub fn storage_error(e: std::io::Error) -> GraphError {
    tracing::error!(error = %e, "simulator storage failed");
    GraphError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "generalException",
        "An error occurred storing the content.",
    )
}

/// With the `enrich_office` fault, SharePoint "adds metadata" to Office/PDF/HTML files.
pub async fn enrich(
    sim: &Sim,
    name: &str,
    path: &FsPath,
    hash: &mut QuickXor,
    len: &mut u64,
) -> GraphResult<()> {
    let enrich = sim.faults.lock().enrich_office.unwrap_or(false);
    let ext = FsPath::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !enrich || !["docx", "xlsx", "pptx", "pdf", "html", "htm"].contains(&ext.as_str()) {
        return Ok(());
    }
    let trailer = format!(
        "\n<!-- SharePoint metadata: ContentTypeId=0x0101 {} -->\n",
        uuid::Uuid::new_v4()
    );
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await
        .map_err(storage_error)?;
    file.write_all(trailer.as_bytes())
        .await
        .map_err(storage_error)?;
    file.sync_data().await.map_err(storage_error)?;
    hash.update(trailer.as_bytes());
    *len += trailer.len() as u64;
    Ok(())
}

/// `PUT .../content`: a simple upload (replace by default).
pub async fn simple_upload(mut r: Request, address: Address) -> GraphResult<Response> {
    let conflict = Conflict::parse(
        r.query
            .get("@microsoft.graph.conflictBehavior")
            .map(String::as_str),
        Conflict::Replace,
    )?;
    let declared: Option<u64> = r
        .header(header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.parse().ok());
    if declared.is_some_and(|len| len > SIMPLE_UPLOAD_MAX) {
        return Err(GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalidRequest",
            "Simple uploads are limited to 250 MB; use an upload session.",
        ));
    }
    // Where the content goes: an existing item by id, or a name below a folder (missing parent
    // folders are created when the content is stored).
    let (target, name) = {
        let mut world = r.sim.world.lock();
        let drive = drive_for(&r, &mut world, &address.drive, true)?;
        if address.path.is_empty() {
            let item = address.locate(drive)?;
            if item.is_folder() {
                return Err(GraphError::invalid("Cannot upload content to a folder."));
            }
            (Err(item.id.clone()), item.name.clone())
        } else {
            let placement = address.placement(drive)?;
            let taken = placement
                .parent()
                .is_some_and(|parent| drive.child(parent, &placement.name).is_some());
            if conflict == Conflict::Fail && taken {
                return Err(GraphError::name_exists());
            }
            let name = placement.name.clone();
            (Ok(placement), name)
        }
    };
    let path = r.sim.blob_path();
    let file = tokio::fs::File::create(&path)
        .await
        .map_err(storage_error)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut hash = QuickXor::new();
    let received = receive(
        std::mem::take(&mut r.body),
        &mut out,
        &mut hash,
        SIMPLE_UPLOAD_MAX,
        None,
    )
    .await;
    drop(out);
    let received = match received {
        Ok(received) if received.complete => received,
        Ok(_) | Err(_) => {
            let _ = tokio::fs::remove_file(&path).await;
            return received.and(Err(GraphError::invalid(
                "The request body was interrupted.",
            )));
        }
    };
    let mut len = received.bytes;
    enrich(&r.sim, &name, &path, &mut hash, &mut len).await?;
    let blob = Arc::new(Blob {
        path,
        len,
        hash: hash.finish(),
    });
    let mut world = r.sim.world.lock();
    let drive = drive_for(&r, &mut world, &address.drive, true)?;
    let (id, created) = match target {
        Ok(placement) => placement.store(drive, blob, conflict, None)?,
        Err(id) => {
            drive.replace_content(&id, blob, None)?;
            (id, false)
        }
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(render(&r.sim, drive, drive.get(&id)?, true)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
