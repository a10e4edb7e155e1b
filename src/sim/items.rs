//! Item handlers: get (with `$select`/`$expand=children`), list children with paging, create
//! folders, rename/move/set times (`PATCH` with `If-Match`), delete, copy with a monitor URL.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::utf8_percent_encode;

use super::graph::SEGMENT;
use serde::Deserialize;
use serde_json::{Value, json};

use super::drive::{Conflict, Drive, Item, Kind, precondition_failed};
use super::error::{GraphError, GraphResult};
use super::graph::{Base, Query, Request, read_json};
use super::placement::Placement;
use super::state::{CopyJob, Sim, World};
use crate::wire::{
    Collection, DriveItem, FileFacet, FileSystemInfo, FolderFacet, Hashes, ItemReference,
};

/// An item address: a base (root or id) and a decoded path below it.
#[derive(Debug, Clone)]
pub struct Address {
    pub drive: String,
    pub base: Base,
    pub path: Vec<String>,
}

impl Address {
    pub fn locate<'a>(&self, drive: &'a Drive) -> GraphResult<&'a Item> {
        drive.resolve(self.base_id(drive), &self.path)
    }

    fn base_id<'a>(&'a self, drive: &'a Drive) -> &'a str {
        match &self.base {
            Base::Root => &drive.root_id,
            Base::Id(id) => id,
        }
    }

    /// For uploads by path: where the file lands, with the parent folders still to create.
    pub fn placement(&self, drive: &Drive) -> GraphResult<Placement> {
        Placement::find(drive, self.base_id(drive), &self.path)
    }
}

/// The drive of `address`, checked for the caller (`write` for changes).
pub fn drive_for<'a>(
    r: &Request,
    world: &'a mut World,
    drive: &str,
    write: bool,
) -> GraphResult<&'a mut Drive> {
    r.sim.authorize(world, &r.caller, drive, write)?;
    world
        .drives
        .get_mut(drive)
        .ok_or_else(GraphError::not_found)
}

fn mime_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "xml" => "application/xml",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "htm" | "html" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

/// The pre-authenticated download URL of a file, valid for an hour.
pub fn download_url(sim: &Sim, drive: &str, item: &str) -> String {
    let expires = chrono::Utc::now().timestamp() + 3600;
    format!(
        "{}/_layouts/15/download.aspx?UniqueId={item}&drive={}&tempauth={}",
        sim.public_url,
        utf8_percent_encode(drive, SEGMENT),
        sim.tempauth(drive, item, expires)
    )
}

/// The driveItem JSON of `item`; `with_path` adds `parentReference.path` (not in delta).
pub fn render(sim: &Sim, drive: &Drive, item: &Item, with_path: bool) -> DriveItem {
    let is_root = item.parent.is_none();
    let path = drive.path_of(&item.id);
    let web_path: String = path
        .split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/");
    let size = match &item.kind {
        Kind::File(blob) => blob.len,
        Kind::Folder(_) if is_root => drive.used,
        Kind::Folder(_) => drive
            .subtree(&item.id)
            .iter()
            .filter_map(|id| drive.get(id).ok())
            .map(Item::size)
            .sum(),
    };
    DriveItem {
        id: item.id.clone(),
        name: Some(item.name.clone()),
        size: Some(size),
        e_tag: Some(item.etag()),
        c_tag: (!item.is_folder()).then(|| item.ctag()),
        created_date_time: Some(item.created),
        last_modified_date_time: Some(item.modified),
        web_url: Some(format!(
            "https://{}/sites/{}/{}{web_path}",
            drive.hostname,
            drive.site_name,
            drive.url_name.replace(' ', "%20")
        )),
        parent_reference: item.parent.as_ref().map(|parent| ItemReference {
            drive_id: Some(drive.id.clone()),
            drive_type: Some("documentLibrary".into()),
            id: Some(parent.clone()),
            path: with_path.then(|| format!("/drive/root:{}", drive.path_of(parent))),
        }),
        file_system_info: Some(FileSystemInfo {
            created_date_time: Some(item.fs_created),
            last_modified_date_time: Some(item.fs_modified),
        }),
        folder: item.is_folder().then(|| FolderFacet {
            child_count: drive.child_count(item),
        }),
        file: item.blob().map(|blob| FileFacet {
            mime_type: Some(mime_type(&item.name).into()),
            hashes: Some(Hashes {
                quick_xor_hash: Some(blob.hash.clone()),
            }),
        }),
        deleted: None,
        root: is_root.then(serde_json::Map::new),
        download_url: item.blob().map(|_| download_url(sim, &drive.id, &item.id)),
        children: None,
    }
}

/// Applies `$select` (a comma-separated list of properties) to rendered JSON.
pub fn select<T: serde::Serialize>(value: &T, query: &Query) -> Value {
    let mut json = serde_json::to_value(value).unwrap_or(Value::Null);
    if let (Some(select), Value::Object(map)) = (query.get("$select"), &mut json) {
        let wanted: Vec<String> = select
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        map.retain(|key, _| {
            wanted.contains(&key.to_ascii_lowercase())
                || (key == "@microsoft.graph.downloadUrl"
                    && wanted.iter().any(|w| w == "content.downloadurl"))
        });
    }
    json
}

/// `GET` an item.
pub fn get(r: Request, address: Address) -> GraphResult<Response> {
    let mut world = r.sim.world.lock();
    let drive = drive_for(&r, &mut world, &address.drive, false)?;
    let item = address.locate(drive)?;
    let mut rendered = render(&r.sim, drive, item, true);
    if r.query
        .get("$expand")
        .is_some_and(|e| e.eq_ignore_ascii_case("children"))
    {
        let children = drive.children(&item.id)?;
        rendered.children = Some(
            children
                .iter()
                .take(200)
                .map(|c| render(&r.sim, drive, c, true))
                .collect(),
        );
    }
    Ok(Json(select(&rendered, &r.query)).into_response())
}

fn page_size(query: &Query) -> GraphResult<usize> {
    match query.get("$top") {
        None => Ok(200),
        Some(top) => match top.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(GraphError::invalid(format!(
                "Invalid $top value '{top}': it must be an integer between 1 and 1000."
            ))),
        },
    }
}

/// `GET .../children`, paged with `$top` and `$skiptoken`.
pub fn children(r: Request, address: Address) -> GraphResult<Response> {
    if r.query.contains_key("$filter") {
        return Err(
            GraphError::invalid("$filter is not supported on this collection.")
                .inner("notSupported"),
        );
    }
    let top = page_size(&r.query)?;
    let descending = match r
        .query
        .get("$orderby")
        .map(|o| o.trim().to_ascii_lowercase())
    {
        None => false,
        Some(o) if o == "name" || o == "name asc" => false,
        Some(o) if o == "name desc" => true,
        Some(o) => return Err(GraphError::invalid(format!("Unsupported $orderby '{o}'."))),
    };
    let skip = match r.query.get("$skiptoken") {
        None => 0,
        Some(token) => URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.strip_prefix("Paged=TRUE&p_ID=")
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .ok_or_else(|| GraphError::invalid("Invalid $skiptoken."))?,
    };
    let mut world = r.sim.world.lock();
    let drive = drive_for(&r, &mut world, &address.drive, false)?;
    let folder = address.locate(drive)?;
    let mut all = drive.children(&folder.id)?;
    if descending {
        all.reverse();
    }
    let value: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(top)
        .map(|c| select(&render(&r.sim, drive, c, true), &r.query))
        .collect();
    let next = skip + value.len();
    let next_link = (next < all.len()).then(|| {
        let token = URL_SAFE_NO_PAD.encode(format!("Paged=TRUE&p_ID={next}"));
        let mut link = format!(
            "{}/v1.0/drives/{}/items/{}/children?$top={top}&$skiptoken={token}",
            r.sim.public_url,
            utf8_percent_encode(&drive.id, SEGMENT),
            folder.id
        );
        for key in ["$select", "$orderby"] {
            if let Some(v) = r.query.get(key) {
                link.push_str(&format!("&{key}={}", utf8_percent_encode(v, SEGMENT)));
            }
        }
        link
    });
    Ok(Json(Collection {
        value,
        next_link,
        delta_link: None,
    })
    .into_response())
}

fn conflict_of(r: &Request, body: Option<&Value>, default: Conflict) -> GraphResult<Conflict> {
    let from_body = body
        .and_then(|b| {
            b.get("@microsoft.graph.conflictBehavior")
                .or_else(|| b.get("@name.conflictBehavior"))
        })
        .and_then(Value::as_str);
    let from_query = r
        .query
        .get("@microsoft.graph.conflictBehavior")
        .map(String::as_str);
    Conflict::parse(from_body.or(from_query), default)
}

/// `POST .../children` with a folder facet.
pub async fn create_folder(mut r: Request, address: Address) -> GraphResult<Response> {
    let body: Value = read_json(std::mem::take(&mut r.body)).await?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::invalid("The 'name' property is required."))?;
    if body.get("folder").is_none() {
        return Err(GraphError::invalid(
            "A 'folder' facet is required to create an item here.",
        ));
    }
    let conflict = conflict_of(&r, Some(&body), Conflict::Fail)?;
    let mut world = r.sim.world.lock();
    let drive = drive_for(&r, &mut world, &address.drive, true)?;
    let parent = address.locate(drive)?.id.clone();
    let id = drive.create_folder(&parent, name, conflict)?;
    let item = render(&r.sim, drive, drive.get(&id)?, true);
    Ok((StatusCode::CREATED, Json(item)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Patch {
    name: Option<String>,
    parent_reference: Option<ItemReference>,
    file_system_info: Option<FileSystemInfo>,
}

/// Resolves a `parentReference` to a folder id of `drive`.
fn parent_ref(drive: &Drive, reference: &ItemReference) -> GraphResult<String> {
    if let Some(other) = reference.drive_id.as_deref().filter(|d| *d != drive.id) {
        return Err(GraphError::invalid(format!(
            "Moving items to another drive ({other}) is not supported; copy them instead."
        ))
        .inner("notSupported"));
    }
    if let Some(id) = &reference.id {
        return Ok(drive.get(id)?.id.clone());
    }
    if let Some(path) = &reference.path {
        let rest = path
            .split_once("root:")
            .map(|(_, rest)| rest)
            .ok_or_else(|| {
                GraphError::invalid("parentReference.path must look like /drive/root:/folder.")
            })?;
        let segments: Vec<String> = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        return Ok(drive.resolve(&drive.root_id, &segments)?.id.clone());
    }
    Err(GraphError::invalid(
        "parentReference needs an id or a path.",
    ))
}

/// `PATCH` an item: rename, move, set `fileSystemInfo`.
pub async fn update(mut r: Request, address: Address) -> GraphResult<Response> {
    let raw: Value = read_json(std::mem::take(&mut r.body)).await?;
    let patch: Patch = serde_json::from_value(raw.clone()).map_err(|_| GraphError::bad_json())?;
    let replace = conflict_of(&r, Some(&raw), Conflict::Fail)? == Conflict::Replace;
    let if_match = r.header(header::IF_MATCH.as_str()).map(str::to_string);
    let mut world = r.sim.world.lock();
    let drive = drive_for(&r, &mut world, &address.drive, true)?;
    let item = address.locate(drive)?;
    if !item.matches(if_match.as_deref()) {
        return Err(precondition_failed());
    }
    let id = item.id.clone();
    let parent = patch
        .parent_reference
        .as_ref()
        .map(|p| parent_ref(drive, p))
        .transpose()?;
    let modified = patch
        .file_system_info
        .and_then(|f| f.last_modified_date_time);
    drive.update(
        &id,
        patch.name.as_deref(),
        parent.as_deref(),
        modified,
        replace,
    )?;
    Ok(Json(render(&r.sim, drive, drive.get(&id)?, true)).into_response())
}

/// `DELETE` an item (to the recycle bin, as far as the API shows).
pub fn delete(r: Request, address: Address) -> GraphResult<Response> {
    let if_match = r.header(header::IF_MATCH.as_str()).map(str::to_string);
    let mut world = r.sim.world.lock();
    let drive = drive_for(&r, &mut world, &address.drive, true)?;
    let id = address.locate(drive)?.id.clone();
    drive.delete(&id, if_match.as_deref())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST .../copy`: answers 202 with a monitor URL; the copy runs in the background.
pub async fn copy(mut r: Request, address: Address) -> GraphResult<Response> {
    let body: Value = read_json(std::mem::take(&mut r.body)).await?;
    let reference: ItemReference = body
        .get("parentReference")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|_| GraphError::bad_json())?
        .ok_or_else(|| GraphError::invalid("parentReference is required."))?;
    let new_name = body.get("name").and_then(Value::as_str).map(str::to_string);
    let conflict = conflict_of(&r, None, Conflict::Fail)?;
    let target_drive = reference
        .drive_id
        .clone()
        .unwrap_or_else(|| address.drive.clone());
    let snapshot = {
        let mut world = r.sim.world.lock();
        let drive = drive_for(&r, &mut world, &address.drive, false)?;
        let mut snapshot = drive.snapshot(&address.locate(drive)?.id)?;
        drive_for(&r, &mut world, &target_drive, true)?;
        if let Some(name) = new_name {
            snapshot.name = name;
        }
        snapshot
    };
    let job = uuid::Uuid::new_v4().to_string();
    r.sim.copies.insert(
        job.clone(),
        CopyJob {
            status: "inProgress",
            percentage_complete: 0,
            resource_id: None,
            error: None,
        },
    );
    let sim = r.sim.clone();
    let job_id = job.clone();
    tokio::spawn(async move {
        let outcome = {
            let mut world = sim.world.lock();
            match world.drives.get_mut(&target_drive) {
                Some(drive) => {
                    let reference = ItemReference {
                        drive_id: None,
                        ..reference
                    };
                    parent_ref(drive, &reference)
                        .and_then(|parent| drive.restore(&parent, &snapshot, conflict))
                }
                None => Err(GraphError::not_found()),
            }
        };
        let finished = match outcome {
            Ok(id) => CopyJob {
                status: "completed",
                percentage_complete: 100,
                resource_id: Some(id),
                error: None,
            },
            Err(e) => CopyJob {
                status: "failed",
                percentage_complete: 0,
                resource_id: None,
                error: Some(json!({"code": e.code, "message": e.message})),
            },
        };
        sim.copies.insert(job_id, finished);
    });
    let monitor = format!("{}/_monitor/{job}", r.sim.public_url);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, monitor)]).into_response())
}

/// `GET /_monitor/{job}`: the state of a copy; needs no authentication.
pub async fn monitor(State(sim): State<Arc<Sim>>, Path(job): Path<String>) -> Response {
    match sim.copies.get(&job).map(|j| j.clone()) {
        Some(job) if job.status == "inProgress" => {
            (StatusCode::ACCEPTED, Json(job)).into_response()
        }
        Some(job) => Json(job).into_response(),
        None => GraphError::not_found().into_response(),
    }
}
