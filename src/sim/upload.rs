//! Upload sessions (shared/GRAPH.md section 4): create (replacing by default, on a path whose
//! missing folders appear with the file), fragments with every ordering and size rule, status,
//! cancel, expiry, `deferCommit`, and the atomic appearance of the file when the last fragment
//! is accepted.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::io::{AsyncSeekExt, BufWriter};

use super::content::{drain, enrich, hash_file, receive, storage_error};
use super::drive::{Blob, Conflict};
use super::error::{GraphError, GraphResult};
use super::graph::Request;
use super::items::{Address, drive_for, render};
use super::placement::Placement;
use super::state::{Caller, Sim};
use crate::wire::{QuickXor, UploadSession};

const FRAGMENT_UNIT: u64 = 327_680;
const FRAGMENT_MAX: u64 = 60 * 1024 * 1024;
const IDLE_EXPIRY: Duration = Duration::from_secs(15 * 60);
const HARD_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// Where a finished upload goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A path: a new file, or one replacing what holds its name by then.
    New(Placement),
    /// An item addressed by id: new content for it.
    Existing { id: String, name: String },
}

impl Destination {
    fn name(&self) -> &str {
        match self {
            Destination::New(placement) => &placement.name,
            Destination::Existing { name, .. } => name,
        }
    }
}

pub struct UploadState {
    pub drive: String,
    pub destination: Destination,
    pub conflict: Conflict,
    pub fs_modified: Option<DateTime<Utc>>,
    pub defer_commit: bool,
    pub caller: Caller,
    pub total: Option<u64>,
    pub received: u64,
    /// The partial content; taken over by the blob at commit, removed otherwise.
    pub path: Option<PathBuf>,
    pub created: Instant,
    pub last_activity: Instant,
    pub generation: u64,
}

impl Drop for UploadState {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl UploadState {
    /// Expired by `POST /_sim/uploads/expire`: gone, as if cleaned up long ago (404).
    pub fn cancelled(&self, sim: &Sim) -> bool {
        self.generation < sim.upload_generation.load(Ordering::Relaxed)
    }

    /// Expired by time (15 minutes idle, 24 hours in all), or cancelled.
    pub fn expired(&self, sim: &Sim) -> bool {
        self.cancelled(sim)
            || self.last_activity.elapsed() > IDLE_EXPIRY
            || self.created.elapsed() > HARD_EXPIRY
    }

    fn status(&self) -> UploadSession {
        let left = IDLE_EXPIRY.saturating_sub(self.last_activity.elapsed());
        UploadSession {
            upload_url: None,
            expiration_date_time: (Utc::now()
                + chrono::Duration::from_std(left).unwrap_or_default())
            .trunc_subsecs_secs(),
            next_expected_ranges: match self.total {
                Some(total) if self.received >= total => Vec::new(),
                _ => vec![format!("{}-", self.received)],
            },
        }
    }
}

trait TruncSecs {
    fn trunc_subsecs_secs(self) -> Self;
}

impl TruncSecs for DateTime<Utc> {
    fn trunc_subsecs_secs(self) -> Self {
        chrono::SubsecRound::trunc_subsecs(self, 0)
    }
}

/// `POST .../createUploadSession`.
pub async fn create(mut r: Request, address: Address) -> GraphResult<Response> {
    let bytes = axum::body::to_bytes(std::mem::take(&mut r.body), 1 << 20)
        .await
        .map_err(|_| GraphError::bad_json())?;
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|_| GraphError::bad_json())?
    };
    if !(body.is_null() || body.is_object()) || body.get("item").is_some_and(|i| !i.is_object()) {
        return Err(GraphError::bad_json());
    }
    let item = body.get("item");
    let behaviour = item
        .and_then(|i| {
            i.get("@microsoft.graph.conflictBehavior")
                .or_else(|| i.get("@name.conflictBehavior"))
        })
        .and_then(Value::as_str)
        .or(r
            .query
            .get("@microsoft.graph.conflictBehavior")
            .map(String::as_str));
    // Without a behaviour the session replaces an existing file, as SharePoint does (mature
    // clients create path-based sessions without one and overwrite), although Microsoft's
    // reference page names `fail` as the default.
    let conflict = Conflict::parse(behaviour, Conflict::Replace)?;
    let fs_modified = item
        .and_then(|i| i.pointer("/fileSystemInfo/lastModifiedDateTime"))
        .map(|v| {
            serde_json::from_value::<DateTime<Utc>>(v.clone()).map_err(|_| {
                GraphError::invalid("fileSystemInfo.lastModifiedDateTime is not a valid date.")
            })
        })
        .transpose()?;
    let defer_commit = body
        .get("deferCommit")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let destination = {
        let mut world = r.sim.world.lock();
        let drive = drive_for(&r, &mut world, &address.drive, true)?;
        if address.path.is_empty() {
            let existing = address.locate(drive)?;
            if existing.is_folder() {
                return Err(GraphError::invalid("Cannot upload content to a folder."));
            }
            if drive.locked.contains(&existing.id) {
                return Err(GraphError::locked());
            }
            Destination::Existing {
                id: existing.id.clone(),
                name: existing.name.clone(),
            }
        } else {
            let placement = address.placement(drive)?;
            let existing = placement
                .parent()
                .and_then(|parent| drive.child(parent, &placement.name));
            match existing {
                Some(_) if conflict == Conflict::Fail => return Err(GraphError::name_exists()),
                Some(existing) if existing.is_folder() && conflict == Conflict::Replace => {
                    return Err(GraphError::name_exists());
                }
                Some(existing)
                    if drive.locked.contains(&existing.id) && conflict == Conflict::Replace =>
                {
                    return Err(GraphError::locked());
                }
                Some(_) => {}
                None => {
                    if let Some(parent) = placement.parent() {
                        drive.check_name(parent, &placement.name, false, 0)?;
                    }
                }
            }
            Destination::New(placement)
        }
    };
    let id = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        rand::random::<[u8; 24]>(),
    );
    let state = UploadState {
        drive: address.drive.clone(),
        destination,
        conflict,
        fs_modified,
        defer_commit,
        caller: r.caller.clone(),
        total: None,
        received: 0,
        path: Some(r.sim.blob_path()),
        created: Instant::now(),
        last_activity: Instant::now(),
        generation: r.sim.upload_generation.load(Ordering::Relaxed),
    };
    let mut answer = state.status();
    answer.upload_url = Some(format!("{}/_upload/{id}", r.sim.public_url));
    r.sim
        .sessions
        .insert(id, Arc::new(tokio::sync::Mutex::new(state)));
    Ok(Json(answer).into_response())
}

fn session_gone() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "itemNotFound",
        "The upload session was not found.",
    )
    .inner("uploadSessionNotFound")
}

fn fragment_error(status: StatusCode, inner: &'static str, message: &str) -> GraphError {
    let code = if status == StatusCode::RANGE_NOT_SATISFIABLE {
        "invalidRange"
    } else {
        "invalidRequest"
    };
    GraphError::new(status, code, message).inner(inner)
}

/// `PUT|GET|DELETE|POST /_upload/{id}`: a fragment, the status, cancel, or commit.
pub async fn session(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut body = Some(body);
    match handle(&sim, &id, method, &headers, &mut body).await {
        Ok(response) => response,
        Err(e) => {
            let mut response = e.into_response();
            // Read what the client is still sending, so that it sees this answer rather than a
            // reset connection; past a bound, close the connection instead.
            if let Some(body) = body
                && !drain(body).await
            {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

async fn handle(
    sim: &Arc<Sim>,
    id: &str,
    method: Method,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> GraphResult<Response> {
    // "Only send the Authorization header and bearer token when issuing the POST during the
    // first step" (driveItem: createUploadSession, remarks): the upload URL carries its own.
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(GraphError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "An upload URL carries its own credentials: do not send an Authorization header.",
        ));
    }
    let session = sim
        .sessions
        .get(id)
        .map(|s| s.clone())
        .ok_or_else(session_gone)?;
    let mut state = session.lock().await;
    if state.cancelled(sim) {
        drop(state);
        sim.sessions.remove(id);
        return Err(session_gone());
    }
    if state.expired(sim) {
        drop(state);
        sim.sessions.remove(id);
        return Err(GraphError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "The upload session has expired.",
        )
        .inner("expiredToken"));
    }
    match method {
        Method::GET => Ok(Json(state.status()).into_response()),
        Method::DELETE => {
            drop(state);
            sim.sessions.remove(id);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::POST if state.defer_commit && state.total == Some(state.received) => {
            let outcome = commit(sim, &mut state).await;
            drop(state);
            sim.sessions.remove(id);
            outcome
        }
        Method::PUT => {
            let outcome = fragment(sim, &mut state, headers, body).await;
            // A commit, successful or not, consumes the session's file and ends it.
            let finished = state.path.is_none();
            drop(state);
            if finished {
                sim.sessions.remove(id);
            }
            outcome
        }
        _ => Err(GraphError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "methodNotAllowed",
            "The HTTP method is not allowed for an upload session.",
        )),
    }
}

fn content_range(headers: &HeaderMap) -> GraphResult<(u64, u64, u64)> {
    let bad = || {
        fragment_error(
            StatusCode::BAD_REQUEST,
            "invalidContentRange",
            "The Content-Range header is missing or malformed; expected 'bytes start-end/total'.",
        )
    };
    let value = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(bad)?;
    let spec = value.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = spec.split_once('/').ok_or_else(bad)?;
    let (start, end) = range.split_once('-').ok_or_else(bad)?;
    let parse = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    let (start, end, total) = (parse(start)?, parse(end)?, parse(total)?);
    if end < start || end >= total {
        return Err(bad());
    }
    Ok((start, end, total))
}

async fn fragment(
    sim: &Arc<Sim>,
    state: &mut UploadState,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> GraphResult<Response> {
    let (start, end, total) = content_range(headers)?;
    let len = end - start + 1;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared != Some(len) {
        return Err(fragment_error(
            StatusCode::BAD_REQUEST,
            "invalidContentLength",
            "Content-Length must be present and match the Content-Range.",
        ));
    }
    match state.total {
        Some(known) if known != total => {
            return Err(fragment_error(
                StatusCode::BAD_REQUEST,
                "fragmentLengthMismatch",
                "The declared total length differs from earlier fragments.",
            ));
        }
        None => {
            let world = sim.world.lock();
            world
                .drives
                .get(&state.drive)
                .ok_or_else(session_gone)?
                .check_room(total)?;
        }
        _ => {}
    }
    if start < state.received {
        return Err(fragment_error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "fragmentOverlap",
            "The uploaded fragment overlaps with data that has already been received.",
        ));
    }
    if start > state.received {
        return Err(fragment_error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "fragmentOutOfOrder",
            "The fragment starts after the next expected byte.",
        ));
    }
    if len >= FRAGMENT_MAX {
        return Err(fragment_error(
            StatusCode::BAD_REQUEST,
            "fragmentTooLarge",
            "A fragment must be smaller than 60 MiB.",
        ));
    }
    if end + 1 < total && len % FRAGMENT_UNIT != 0 {
        return Err(fragment_error(
            StatusCode::BAD_REQUEST,
            "fragmentSizeNotMultiple",
            "Fragments other than the last must be a multiple of 320 KiB (327,680 bytes).",
        ));
    }
    state.total = Some(total);
    let n = sim.stats.fragments.fetch_add(1, Ordering::Relaxed) + 1;
    let drop_every = sim.faults.lock().drop_fragment_every.unwrap_or(0);
    let stop_after = (drop_every > 0 && n.is_multiple_of(drop_every)).then_some(len / 2);
    let path = state.path.clone().expect("an open session has its file");
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .await
        .map_err(storage_error)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(storage_error)?;
    let body = body.take().unwrap_or_default();
    // The file's hash is taken from the assembled file at commit.
    let mut unused = QuickXor::new();
    let received = receive(body, &mut out, &mut unused, len, stop_after).await?;
    state.received += received.bytes;
    state.last_activity = Instant::now();
    if stop_after.is_some() {
        let mut response = GraphError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "generalException",
            "The connection was reset while receiving the fragment.",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(response);
    }
    if !received.complete || received.bytes != len {
        return Err(fragment_error(
            StatusCode::BAD_REQUEST,
            "incompleteFragment",
            "The fragment body ended before Content-Length bytes arrived.",
        ));
    }
    if state.received < total || state.defer_commit {
        return Ok((StatusCode::ACCEPTED, Json(state.status())).into_response());
    }
    commit(sim, state).await
}

/// Makes the uploaded file visible: 201 for a new item, 200 for replaced content.
async fn commit(sim: &Arc<Sim>, state: &mut UploadState) -> GraphResult<Response> {
    let path = state.path.clone().expect("an open session has its file");
    let mut len = state.received;
    let mut hash = hash_file(&path).await?;
    enrich(sim, state.destination.name(), &path, &mut hash, &mut len).await?;
    let blob = Arc::new(Blob {
        path: state.path.take().expect("checked above"),
        len,
        hash: hash.finish(),
    });
    let mut world = sim.world.lock();
    sim.authorize(&world, &state.caller, &state.drive, true)?;
    let drive = world
        .drives
        .get_mut(&state.drive)
        .ok_or_else(session_gone)?;
    let (id, created) = match &state.destination {
        Destination::New(placement) => {
            placement.store(drive, blob, state.conflict, state.fs_modified)?
        }
        Destination::Existing { id, .. } => {
            drive.replace_content(id, blob, state.fs_modified)?;
            (id.clone(), false)
        }
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(render(sim, drive, drive.get(&id)?, true))).into_response())
}

/// Forgets sessions that expired by time (their partial files go with them).
pub fn sweep(sim: &Sim) {
    sim.sessions.retain(|_, session| match session.try_lock() {
        Ok(state) => !state.expired(sim),
        Err(_) => true,
    });
}
