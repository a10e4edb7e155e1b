//! The remote side of a sync run: the job's folder on SharePoint as a snapshot kept in the
//! state store and brought up to date from `root/delta` each run.
//!
//! Delta reports the whole drive, by item id, without paths (GRAPH.md §6), so the snapshot keeps
//! every item of the job's subtree with its parent id, and paths are rebuilt from parent links.
//! A run collects all delta pages first, then applies them and stores the new delta link in one
//! transaction. A full scan (first run, `410 resyncRequired`, a changed root, or once a day as a
//! true-up) takes a `token=latest` link first and then lists the subtree folder by folder, so
//! that changes made while it lists are replayed by the next delta.
//!
//! The snapshot keeps names as SharePoint stores them; a [`View`] has job paths, decoded for a
//! job with `names = "encode"` ([`crate::graph::lookalike`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use chrono::Utc;

use super::store::{RemoteChange, Store};
use super::{Error, Problem, RemoteEntry, RemoteItem, Result};
use crate::config::Names;
use crate::graph::{self, Drive, Entry, Kind, lookalike};
use crate::wire::DriveItem;

/// How often the snapshot is rebuilt from a full listing even when delta works.
pub const FULL_SCAN_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The remote side as a run sees it.
#[derive(Debug)]
pub struct View {
    pub root_id: String,
    /// Every item under the root, placed at its job-relative path (the local name of each
    /// step), sorted by path.
    pub entries: Vec<RemoteEntry>,
    /// Whether this refresh listed the subtree in full.
    pub full_scan: bool,
    /// Items left out of `entries`, each with why: names that cannot be local file names
    /// ([`local_safe`]) or that `names = "encode"` cannot reach.
    pub problems: Vec<Problem>,
}

/// What became of the job's remote folder.
pub enum Refresh {
    Ready(View),
    /// The folder does not exist (or was deleted or moved away).
    RootMissing,
}

pub fn item(entry: &Entry, parent_id: &str) -> RemoteItem {
    RemoteItem {
        id: entry.id.clone(),
        parent_id: parent_id.to_string(),
        name: entry.name.clone(),
        is_dir: entry.is_dir,
        size: if entry.is_dir { 0 } else { entry.size },
        etag: entry.etag.clone(),
        ctag: entry.ctag.clone(),
        hash: entry.quick_xor_hash.clone(),
        modified: entry.modified.timestamp(),
    }
}

/// Brings the snapshot of `job` (remote folder `root`) up to date. With `create`, a missing
/// root folder is created (first run of a job). `names`: the job's, for the view's paths.
pub async fn refresh(
    drive: &Drive,
    store: &Store,
    job: &str,
    root: &str,
    create: bool,
    names: Names,
) -> Result<Refresh> {
    Ok(
        match refresh_stored(drive, store, job, root, create).await? {
            Refresh::Ready(view) if names == Names::Encode => {
                // Checked before decoding too, for the precise reason.
                Refresh::Ready(checked(decoded(checked(view), root)))
            }
            Refresh::Ready(view) => Refresh::Ready(checked(view)),
            other => other,
        },
    )
}

/// The view without the items [`local_safe`] leaves out, which become problems.
fn checked(mut view: View) -> View {
    let (entries, problems) = local_safe(std::mem::take(&mut view.entries));
    view.entries = entries;
    view.problems.extend(problems);
    view
}

/// The view with decoded paths. Stored names no encoding produces are left out (problems):
/// they could not be reached again under their decoded names.
fn decoded(mut view: View, root: &str) -> View {
    let library = lookalike::is_library_root(root);
    let mut unreachable = Vec::new();
    view.entries.retain_mut(|e| {
        let shown = lookalike::decode_reachable(&e.path, library);
        if shown.is_none() {
            unreachable.push(Problem {
                side: "remote",
                path: e.path.clone(),
                reason: "not synced: names = \"encode\" cannot reach this SharePoint name"
                    .to_string(),
            });
        }
        shown.map(|path| e.path = path).is_some()
    });
    view.problems.extend(unreachable);
    view.entries.sort_by(|a, b| a.path.cmp(&b.path));
    view
}

/// [`refresh`] with the paths as SharePoint stores them.
async fn refresh_stored(
    drive: &Drive,
    store: &Store,
    job: &str,
    root: &str,
    create: bool,
) -> Result<Refresh> {
    let snapshot = store.snapshot(job).await?;
    let now = Utc::now().timestamp();
    let due = snapshot
        .full_scan_at
        .is_none_or(|at| now - at >= FULL_SCAN_EVERY.as_secs() as i64);
    let usable = snapshot.drive_id.as_deref() == Some(drive.id.as_str())
        && snapshot.root_id.is_some()
        && snapshot.delta_link.is_some();
    if usable && !due {
        let root_id = snapshot.root_id.clone().unwrap_or_default();
        let link = snapshot.delta_link.clone().unwrap_or_default();
        match changes(drive, &link).await {
            Ok((items, link)) => {
                let root_name = graph::names::segments(root).last().map(|s| s.to_string());
                let moved = items.iter().any(|i| {
                    i.id == root_id
                        && (i.deleted.is_some()
                            || root_name.as_deref().is_some_and(|n| {
                                i.name
                                    .as_deref()
                                    .is_some_and(|m| !m.eq_ignore_ascii_case(n))
                            }))
                });
                if !moved {
                    let view =
                        apply(store, job, &drive.id, &root_id, snapshot.items, items, link).await?;
                    return Ok(Refresh::Ready(view));
                }
                // The root itself was deleted, renamed or moved: find it again by path below.
            }
            Err(Error::Graph(e)) if e.kind == Kind::ResyncRequired => {
                tracing::info!(job, "delta asked for a resync; listing the folder in full");
            }
            Err(e) => return Err(e),
        }
    }
    full_scan(drive, store, job, root, create).await
}

/// Every page from `link` to the next delta link; the last state of each item wins.
async fn changes(drive: &Drive, link: &str) -> Result<(Vec<DriveItem>, String)> {
    let mut items: Vec<DriveItem> = Vec::new();
    let mut next = link.to_string();
    loop {
        let page = drive.delta(Some(&next)).await?;
        items.extend(page.items);
        match (page.next_link, page.delta_link) {
            (Some(n), _) => next = n,
            (None, Some(d)) => return Ok((dedupe(items), d)),
            (None, None) => {
                return Err(graph::Error::new(
                    Kind::Invalid,
                    "a delta page carried neither a next nor a delta link",
                )
                .into());
            }
        }
    }
}

fn dedupe(items: Vec<DriveItem>) -> Vec<DriveItem> {
    let mut last: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        last.insert(item.id.clone(), i);
    }
    items
        .into_iter()
        .enumerate()
        .filter(|(i, item)| last.get(&item.id) == Some(i))
        .map(|(_, item)| item)
        .collect()
}

/// Applies delta items to the snapshot and stores it with the new link.
async fn apply(
    store: &Store,
    job: &str,
    drive_id: &str,
    root_id: &str,
    known: Vec<RemoteItem>,
    items: Vec<DriveItem>,
    link: String,
) -> Result<View> {
    let mut tree: HashMap<String, RemoteItem> =
        known.into_iter().map(|i| (i.id.clone(), i)).collect();
    // Folders reported in this batch, so that a child listed before its new parent is placed.
    let batch_folders: HashMap<&str, &str> = items
        .iter()
        .filter(|i| i.deleted.is_none() && i.folder.is_some())
        .filter_map(|i| {
            let parent = i.parent_reference.as_ref()?.id.as_deref()?;
            Some((i.id.as_str(), parent))
        })
        .collect();
    let mut upserts = Vec::new();
    let mut removals = Vec::new();
    for raw in &items {
        let parent = raw.parent_reference.as_ref().and_then(|p| p.id.clone());
        if raw.id == root_id {
            continue;
        }
        let placed = raw.deleted.is_none()
            && raw.name.is_some()
            && parent
                .as_deref()
                .is_some_and(|p| inside(&tree, &batch_folders, root_id, p));
        if placed {
            let entry = Entry::from(raw.clone());
            upserts.push(item(&entry, parent.as_deref().unwrap_or_default()));
        } else if tree.contains_key(&raw.id) {
            // Deleted, or moved out of the job's folder.
            removals.push(raw.id.clone());
        }
    }
    for upsert in &upserts {
        tree.insert(upsert.id.clone(), upsert.clone());
    }
    let removed = descendants(&tree, &removals);
    for id in &removed {
        tree.remove(id);
    }
    store
        .apply_remote(
            job,
            &RemoteChange {
                replace_all: false,
                upserts,
                removals: removed,
                drive_id: drive_id.to_string(),
                root_id: root_id.to_string(),
                delta_link: Some(link),
                full_scan_at: None,
            },
        )
        .await?;
    Ok(View {
        root_id: root_id.to_string(),
        entries: place(root_id, tree.into_values().collect()),
        full_scan: false,
        problems: Vec::new(),
    })
}

/// Whether the folder `parent` is the root or lies under it, through the snapshot or folders
/// reported in the same batch.
fn inside(
    tree: &HashMap<String, RemoteItem>,
    batch: &HashMap<&str, &str>,
    root_id: &str,
    parent: &str,
) -> bool {
    let mut at = parent.to_string();
    let mut seen = HashSet::new();
    loop {
        if at == root_id {
            return true;
        }
        if !seen.insert(at.clone()) {
            return false;
        }
        at = match (tree.get(&at), batch.get(at.as_str())) {
            (_, Some(p)) => p.to_string(),
            (Some(i), None) if i.is_dir => i.parent_id.clone(),
            _ => return false,
        };
    }
}

/// `ids` and everything below them.
fn descendants(tree: &HashMap<String, RemoteItem>, ids: &[String]) -> Vec<String> {
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for item in tree.values() {
        children
            .entry(item.parent_id.as_str())
            .or_default()
            .push(item.id.as_str());
    }
    let mut out = Vec::new();
    let mut queue: VecDeque<&str> = ids.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    while let Some(id) = queue.pop_front() {
        if !seen.insert(id) {
            continue;
        }
        out.push(id.to_string());
        queue.extend(children.get(id).into_iter().flatten());
    }
    out
}

/// Job-relative paths from parent links; items whose chain does not reach the root are dropped.
pub fn place(root_id: &str, items: Vec<RemoteItem>) -> Vec<RemoteEntry> {
    let by_id: HashMap<&str, &RemoteItem> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut paths: HashMap<String, Option<String>> = HashMap::new();
    fn path_of(
        id: &str,
        root_id: &str,
        by_id: &HashMap<&str, &RemoteItem>,
        paths: &mut HashMap<String, Option<String>>,
        depth: usize,
    ) -> Option<String> {
        if let Some(known) = paths.get(id) {
            return known.clone();
        }
        let item = by_id.get(id)?;
        let path = if item.parent_id == root_id {
            Some(item.name.clone())
        } else if depth > 1000 {
            None
        } else {
            path_of(&item.parent_id, root_id, by_id, paths, depth + 1)
                .map(|p| format!("{p}/{}", item.name))
        };
        paths.insert(id.to_string(), path.clone());
        path
    }
    let mut out: Vec<RemoteEntry> = items
        .iter()
        .filter_map(|item| {
            let path = path_of(&item.id, root_id, &by_id, &mut paths, 0)?;
            Some(RemoteEntry {
                path,
                item: item.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Lists the whole subtree after taking a current delta link.
async fn full_scan(
    drive: &Drive,
    store: &Store,
    job: &str,
    root: &str,
    create: bool,
) -> Result<Refresh> {
    let latest = format!(
        "{}?token=latest",
        drive.client.url(&format!(
            "/drives/{}/root/delta",
            graph::names::encode_segment(&drive.id)
        ))
    );
    let (_, link) = changes(drive, &latest).await?;
    let root_entry = match drive.stat(root).await {
        Ok(entry) if entry.is_dir => entry,
        Ok(_) => return Ok(Refresh::RootMissing),
        Err(e) if e.kind == Kind::NotFound && create => mkdir_all(drive, root).await?,
        Err(e) if e.kind == Kind::NotFound => return Ok(Refresh::RootMissing),
        Err(e) => return Err(e.into()),
    };
    let mut items = Vec::new();
    let mut folders = VecDeque::from([(root.to_string(), root_entry.id.clone())]);
    while let Some((path, id)) = folders.pop_front() {
        for entry in drive.list_all(&path).await? {
            // A folder whose name is not a path segment cannot be listed by path; it is kept
            // (and reported by `local_safe`), its content left unread.
            if entry.is_dir && unsafe_name(&entry.name).is_none() {
                folders.push_back((
                    format!("{}/{}", path.trim_end_matches('/'), entry.name),
                    entry.id.clone(),
                ));
            }
            items.push(item(&entry, &id));
        }
    }
    store
        .apply_remote(
            job,
            &RemoteChange {
                replace_all: true,
                upserts: items.clone(),
                removals: Vec::new(),
                drive_id: drive.id.clone(),
                root_id: root_entry.id.clone(),
                delta_link: Some(link),
                full_scan_at: Some(Utc::now().timestamp()),
            },
        )
        .await?;
    Ok(Refresh::Ready(View {
        entries: place(&root_entry.id, items),
        root_id: root_entry.id,
        full_scan: true,
        problems: Vec::new(),
    }))
}

/// Creates `path` and any missing parents; returns the folder.
pub async fn mkdir_all(drive: &Drive, path: &str) -> Result<Entry> {
    let mut at = String::new();
    let mut last = None;
    for part in graph::names::segments(path) {
        at = format!("{at}/{part}");
        let entry = match drive.mkdir(&at).await {
            Ok(entry) => entry,
            Err(e) if e.kind == Kind::AlreadyExists => drive.stat(&at).await?,
            Err(e) => return Err(e.into()),
        };
        last = Some(entry);
    }
    match last {
        Some(entry) => Ok(entry),
        None => Ok(drive.stat("/").await?),
    }
}

/// Why the SharePoint name `name` cannot be a local file name, if it cannot. Graph never
/// lists such names, but a run must not trust it to: joined to a local path, `..` or a name
/// with `/` would lead out of the job's folder or into another file.
fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("an empty name")
    } else if name == "." || name == ".." {
        Some("a name that means a folder itself or its parent")
    } else if name.contains('/') {
        Some("a name with a path separator")
    } else if crate::storage::unprintable(name) {
        Some("a name with a control character")
    } else {
        None
    }
}

/// `entries` without the items whose name cannot be a local file name (as SharePoint stores it,
/// or as the job's `names` decode it) and without what is inside them; a problem for each such
/// item (its content is not reported item by item).
fn local_safe(entries: Vec<RemoteEntry>) -> (Vec<RemoteEntry>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut bad: HashSet<String> = HashSet::new();
    for entry in &entries {
        let local_name = entry.path.rsplit('/').next().unwrap_or_default();
        if let Some(reason) = unsafe_name(&entry.item.name).or_else(|| unsafe_name(local_name)) {
            bad.insert(entry.item.id.clone());
            problems.push(Problem {
                side: "remote",
                path: entry.path.clone(),
                reason: format!(
                    "not synced: the SharePoint name {:?} is {reason}",
                    entry.item.name
                ),
            });
        }
    }
    if bad.is_empty() {
        return (entries, problems);
    }
    let parents: HashMap<&str, &str> = entries
        .iter()
        .map(|e| (e.item.id.as_str(), e.item.parent_id.as_str()))
        .collect();
    let tainted = |id: &str| {
        let mut at = id;
        for _ in 0..=parents.len() {
            if bad.contains(at) {
                return true;
            }
            match parents.get(at) {
                Some(parent) => at = parent,
                None => return false,
            }
        }
        true // a cycle: not placed under the root either
    };
    let kept = entries
        .iter()
        .filter(|e| !tainted(&e.item.id))
        .cloned()
        .collect();
    (kept, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, parent: &str, name: &str, path: &str) -> RemoteEntry {
        RemoteEntry {
            path: path.to_string(),
            item: RemoteItem {
                id: id.to_string(),
                parent_id: parent.to_string(),
                name: name.to_string(),
                is_dir: false,
                size: 0,
                etag: None,
                ctag: None,
                hash: None,
                modified: 0,
            },
        }
    }

    /// `..`, `/`, empty and control-character names are problems, and what is inside such a
    /// folder goes with it; a legitimate item at the same path as a `/` name stays.
    #[test]
    fn names_that_cannot_be_local_are_left_out() {
        let entries = vec![
            entry("up", "root", "..", ".."),
            entry("under", "up", "passwd", "../passwd"),
            entry("slash", "root", "a/b", "a/b"),
            entry("a", "root", "a", "a"),
            entry("b", "a", "b", "a/b"),
            entry("nul", "root", "x\0y", "x\0y"),
            entry("empty", "root", "", ""),
            entry("ok", "root", "report.pdf", "report.pdf"),
            entry("tab", "root", "tab\there.txt", "tab\there.txt"),
        ];
        let (kept, problems) = local_safe(entries);
        let ids: Vec<&str> = kept.iter().map(|e| e.item.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "ok", "tab"]);
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["..", "a/b", "x\0y", ""]);
        assert!(problems.iter().all(|p| p.side == "remote"));
        assert!(problems[0].reason.contains("parent"), "{:?}", problems[0]);
    }
}
