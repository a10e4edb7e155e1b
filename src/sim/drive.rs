//! One simulated document library: its item tree, versions (eTag/cTag), quota, locks and the
//! change log that delta reads.
//!
//! Names are case-insensitive and case-preserving: each folder indexes its children by the
//! lower-cased name. Every change bumps the drive's sequence number and stamps it on the item
//! (or on a tombstone for deletions), which is all delta needs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use super::error::{GraphError, GraphResult};
use super::names;

/// Immutable stored content; the file is removed when the last holder lets go.
#[derive(Debug)]
pub struct Blob {
    pub path: PathBuf,
    pub len: u64,
    pub hash: String,
}

impl Drop for Blob {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[derive(Debug)]
pub enum Kind {
    File(Arc<Blob>),
    /// Children by lower-cased name.
    Folder(BTreeMap<String, String>),
}

#[derive(Debug)]
pub struct Item {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    pub kind: Kind,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub fs_created: DateTime<Utc>,
    pub fs_modified: DateTime<Utc>,
    pub guid: Uuid,
    pub version: u64,
    pub content_version: u64,
    pub seq: u64,
}

impl Item {
    pub fn is_folder(&self) -> bool {
        matches!(self.kind, Kind::Folder(_))
    }

    pub fn blob(&self) -> Option<&Arc<Blob>> {
        match &self.kind {
            Kind::File(blob) => Some(blob),
            Kind::Folder(_) => None,
        }
    }

    pub fn size(&self) -> u64 {
        self.blob().map_or(0, |b| b.len)
    }

    pub fn etag(&self) -> String {
        format!(
            "\"{{{}}},{}\"",
            self.guid.to_string().to_uppercase(),
            self.version
        )
    }

    pub fn ctag(&self) -> String {
        format!(
            "\"c:{{{}}},{}\"",
            self.guid.to_string().to_uppercase(),
            self.content_version
        )
    }

    /// `If-Match` accepts the eTag or the cTag, with or without quotes, or `*`.
    pub fn matches(&self, if_match: Option<&str>) -> bool {
        let Some(wanted) = if_match else { return true };
        let wanted = wanted.trim();
        wanted == "*"
            || [self.etag(), self.ctag()]
                .iter()
                .any(|tag| tag == wanted || tag.trim_matches('"') == wanted.trim_matches('"'))
    }
}

/// A deleted item, as delta reports it.
#[derive(Debug, Clone)]
pub struct Tombstone {
    pub id: String,
    pub parent: String,
    pub seq: u64,
    pub depth: usize,
    pub is_folder: bool,
}

/// What to do when a name is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Fail,
    Replace,
    Rename,
}

impl Conflict {
    pub fn parse(value: Option<&str>, default: Conflict) -> GraphResult<Conflict> {
        match value.map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("fail") => Ok(Conflict::Fail),
            Some("replace") => Ok(Conflict::Replace),
            Some("rename") => Ok(Conflict::Rename),
            Some(other) => Err(GraphError::invalid(format!(
                "Invalid value '{other}' for @microsoft.graph.conflictBehavior"
            ))),
        }
    }
}

/// A detached copy of a subtree, for copies (also between drives).
pub struct Snapshot {
    pub name: String,
    pub blob: Option<Arc<Blob>>,
    pub fs_created: DateTime<Utc>,
    pub fs_modified: DateTime<Utc>,
    pub children: Vec<Snapshot>,
}

pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// A new opaque item id: 34 characters, like SharePoint's.
pub fn new_item_id() -> String {
    let hex = Uuid::new_v4().simple().to_string().to_uppercase();
    format!("01{}", &hex[..32])
}

pub fn key(name: &str) -> String {
    name.to_lowercase()
}

#[derive(Debug)]
pub struct Drive {
    pub id: String,
    pub name: String,
    pub url_name: String,
    pub site_id: String,
    pub site_name: String,
    pub hostname: String,
    pub quota_total: u64,
    pub used: u64,
    pub root_id: String,
    pub delta_epoch: u64,
    pub seq: u64,
    pub locked: HashSet<String>,
    items: HashMap<String, Item>,
    tombstones: Vec<Tombstone>,
}

impl Drive {
    pub fn new(name: &str, url_name: &str, site_id: &str, site_name: &str, hostname: &str) -> Self {
        let root_id = new_item_id();
        let at = now();
        let root = Item {
            id: root_id.clone(),
            name: "root".into(),
            parent: None,
            kind: Kind::Folder(BTreeMap::new()),
            created: at,
            modified: at,
            fs_created: at,
            fs_modified: at,
            guid: Uuid::new_v4(),
            version: 1,
            content_version: 1,
            seq: 1,
        };
        let id = format!(
            "b!{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                [
                    Uuid::new_v4().as_bytes().as_slice(),
                    Uuid::new_v4().as_bytes()
                ]
                .concat()
            )
        );
        Drive {
            id,
            name: name.into(),
            url_name: url_name.into(),
            site_id: site_id.into(),
            site_name: site_name.into(),
            hostname: hostname.into(),
            quota_total: 1 << 40,
            used: 0,
            root_id: root_id.clone(),
            delta_epoch: 1,
            seq: 1,
            locked: HashSet::new(),
            items: HashMap::from([(root_id, root)]),
            tombstones: Vec::new(),
        }
    }

    pub fn get(&self, id: &str) -> GraphResult<&Item> {
        self.items.get(id).ok_or_else(GraphError::not_found)
    }

    fn get_mut(&mut self, id: &str) -> GraphResult<&mut Item> {
        self.items.get_mut(id).ok_or_else(GraphError::not_found)
    }

    pub fn child(&self, folder: &str, name: &str) -> Option<&Item> {
        match &self.items.get(folder)?.kind {
            Kind::Folder(children) => self.items.get(children.get(&key(name))?),
            Kind::File(_) => None,
        }
    }

    pub fn children(&self, folder: &str) -> GraphResult<Vec<&Item>> {
        match &self.get(folder)?.kind {
            Kind::Folder(children) => Ok(children
                .values()
                .filter_map(|id| self.items.get(id))
                .collect()),
            Kind::File(_) => Ok(Vec::new()),
        }
    }

    pub fn child_count(&self, item: &Item) -> u64 {
        match &item.kind {
            Kind::Folder(children) => children.len() as u64,
            Kind::File(_) => 0,
        }
    }

    /// Walks `segments` (already decoded) from `base`.
    pub fn resolve(&self, base: &str, segments: &[String]) -> GraphResult<&Item> {
        let mut item = self.get(base)?;
        for segment in segments {
            item = self
                .child(&item.id, segment)
                .ok_or_else(GraphError::not_found)?;
        }
        Ok(item)
    }

    /// The item's path below the root, `""` for the root, else `/a/b`.
    pub fn path_of(&self, id: &str) -> String {
        let mut parts = Vec::new();
        let mut cursor = self.items.get(id);
        while let Some(item) = cursor {
            let Some(parent) = &item.parent else { break };
            parts.push(item.name.as_str());
            cursor = self.items.get(parent);
        }
        parts.iter().rev().map(|p| format!("/{p}")).collect()
    }

    pub fn depth(&self, id: &str) -> usize {
        let mut depth = 0;
        let mut cursor = self.items.get(id).and_then(|i| i.parent.as_deref());
        while let Some(parent) = cursor {
            depth += 1;
            cursor = self.items.get(parent).and_then(|i| i.parent.as_deref());
        }
        depth
    }

    fn is_within(&self, id: &str, ancestor: &str) -> bool {
        let mut cursor = Some(id);
        while let Some(current) = cursor {
            if current == ancestor {
                return true;
            }
            cursor = self.items.get(current).and_then(|i| i.parent.as_deref());
        }
        false
    }

    /// The decoded server-relative length SharePoint counts, `sites/NAME/LIBRARY/path`, of a
    /// path reaching `below` characters past `folder/`.
    fn full_path_len(&self, folder: &str, below: usize) -> usize {
        let prefix = format!("sites/{}/{}", self.site_name, self.url_name);
        prefix.chars().count() + self.path_of(folder).chars().count() + 1 + below
    }

    fn longest_below(&self, id: &str) -> usize {
        let base = self.path_of(id).chars().count();
        self.subtree(id)
            .iter()
            .map(|d| self.path_of(d).chars().count() - base)
            .max()
            .unwrap_or(0)
    }

    /// Validates a new name in `folder` for an item whose subtree reaches `extra` chars deeper.
    pub fn check_name(
        &self,
        folder: &str,
        name: &str,
        is_folder: bool,
        extra: usize,
    ) -> GraphResult<()> {
        names::check(name, is_folder, folder == self.root_id)
            .map_err(|rule| invalid_name(name, &rule))?;
        self.check_length(folder, name.chars().count() + extra)
    }

    /// Refuses a path reaching `below` characters past `folder/` beyond SharePoint's limit.
    fn check_length(&self, folder: &str, below: usize) -> GraphResult<()> {
        if self.full_path_len(folder, below) > names::MAX_PATH {
            return Err(GraphError::invalid(format!(
                "The path is too long: the full path may have at most {} characters.",
                names::MAX_PATH
            ))
            .inner("pathIsTooLong"));
        }
        Ok(())
    }

    fn folder_id(&self, id: &str) -> GraphResult<()> {
        if self.get(id)?.is_folder() {
            Ok(())
        } else {
            Err(GraphError::invalid("The parent item is not a folder."))
        }
    }

    /// All ids in the subtree of `id`, parents before children.
    pub fn subtree(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        let mut i = 0;
        while i < out.len() {
            if let Some(Item {
                kind: Kind::Folder(children),
                ..
            }) = self.items.get(&out[i])
            {
                out.extend(children.values().cloned());
            }
            i += 1;
        }
        out
    }

    fn ensure_unlocked(&self, ids: &[String]) -> GraphResult<()> {
        if ids.iter().any(|id| self.locked.contains(id)) {
            return Err(GraphError::locked());
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn touch(&mut self, id: &str, content: bool) -> GraphResult<()> {
        let seq = self.next_seq();
        let item = self.get_mut(id)?;
        item.version += 1;
        if content {
            item.content_version += 1;
        }
        item.modified = now();
        item.seq = seq;
        Ok(())
    }

    fn free_name(&self, folder: &str, name: &str) -> String {
        let (stem, ext) = match name.rfind('.') {
            Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
            _ => (name, ""),
        };
        (1..)
            .map(|n| format!("{stem} {n}{ext}"))
            .find(|candidate| self.child(folder, candidate).is_none())
            .expect("an unbounded range yields a free name")
    }

    fn insert(
        &mut self,
        folder: &str,
        name: &str,
        kind: Kind,
        fs: (DateTime<Utc>, DateTime<Utc>),
    ) -> String {
        let id = new_item_id();
        let at = now();
        let seq = self.next_seq();
        if let Kind::File(blob) = &kind {
            self.used += blob.len;
        }
        self.items.insert(
            id.clone(),
            Item {
                id: id.clone(),
                name: name.to_string(),
                parent: Some(folder.to_string()),
                kind,
                created: at,
                modified: at,
                fs_created: fs.0,
                fs_modified: fs.1,
                guid: Uuid::new_v4(),
                version: 1,
                content_version: 1,
                seq,
            },
        );
        if let Some(Item {
            kind: Kind::Folder(children),
            ..
        }) = self.items.get_mut(folder)
        {
            children.insert(key(name), id.clone());
        }
        id
    }

    /// Applies `conflict` when `name` is taken in `folder`: answers the name to create, after
    /// deleting what a replace removes.
    fn make_room(&mut self, folder: &str, name: &str, conflict: Conflict) -> GraphResult<String> {
        let Some(existing) = self.child(folder, name) else {
            return Ok(name.to_string());
        };
        match conflict {
            Conflict::Fail => Err(GraphError::name_exists()),
            Conflict::Rename => Ok(self.free_name(folder, name)),
            Conflict::Replace => {
                let id = existing.id.clone();
                self.delete(&id, None)?;
                Ok(name.to_string())
            }
        }
    }

    pub fn create_folder(
        &mut self,
        folder: &str,
        name: &str,
        conflict: Conflict,
    ) -> GraphResult<String> {
        self.folder_id(folder)?;
        let name = self.make_room(folder, name, conflict)?;
        self.check_name(folder, &name, true, 0)?;
        let at = now();
        Ok(self.insert(folder, &name, Kind::Folder(BTreeMap::new()), (at, at)))
    }

    fn check_quota(&self, adding: u64, removing: u64) -> GraphResult<()> {
        if self.used.saturating_sub(removing) + adding > self.quota_total {
            return Err(GraphError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "quotaLimitReached",
                "Insufficient Space Available",
            ));
        }
        Ok(())
    }

    /// Refuses an upload of `len` bytes that could never fit.
    pub fn check_room(&self, len: u64) -> GraphResult<()> {
        self.check_quota(len, 0)
    }

    /// Stores `blob` as `name` in `folder`; answers the item id and whether it was created.
    pub fn put_file(
        &mut self,
        folder: &str,
        name: &str,
        blob: Arc<Blob>,
        conflict: Conflict,
        fs_modified: Option<DateTime<Utc>>,
    ) -> GraphResult<(String, bool)> {
        self.folder_id(folder)?;
        let mut name = name.to_string();
        if let Some(existing) = self.child(folder, &name) {
            match conflict {
                Conflict::Fail => return Err(GraphError::name_exists()),
                Conflict::Rename => name = self.free_name(folder, &name),
                Conflict::Replace if existing.is_folder() => return Err(GraphError::name_exists()),
                Conflict::Replace => {
                    let id = existing.id.clone();
                    self.replace_content(&id, blob, fs_modified)?;
                    return Ok((id, false));
                }
            }
        }
        self.check_name(folder, &name, false, 0)?;
        self.check_quota(blob.len, 0)?;
        let at = fs_modified.unwrap_or_else(now);
        Ok((
            self.insert(folder, &name, Kind::File(blob), (now(), at)),
            true,
        ))
    }

    pub fn replace_content(
        &mut self,
        id: &str,
        blob: Arc<Blob>,
        fs_modified: Option<DateTime<Utc>>,
    ) -> GraphResult<()> {
        self.ensure_unlocked(&[id.to_string()])?;
        let old = match &self.get(id)?.kind {
            Kind::File(old) => old.len,
            Kind::Folder(_) => {
                return Err(GraphError::invalid("Cannot upload content to a folder."));
            }
        };
        self.check_quota(blob.len, old)?;
        self.used = self.used - old + blob.len;
        let item = self.get_mut(id)?;
        item.kind = Kind::File(blob);
        item.fs_modified = fs_modified.unwrap_or_else(now);
        self.touch(id, true)
    }

    /// Rename, move and/or set the modification time of an item.
    pub fn update(
        &mut self,
        id: &str,
        new_name: Option<&str>,
        new_parent: Option<&str>,
        fs_modified: Option<DateTime<Utc>>,
        replace: bool,
    ) -> GraphResult<()> {
        let item = self.get(id)?;
        if item.parent.is_none() && (new_name.is_some() || new_parent.is_some()) {
            return Err(GraphError::invalid(
                "The root of a drive cannot be renamed or moved.",
            ));
        }
        let old_parent = item.parent.clone().unwrap_or_default();
        let old_name = item.name.clone();
        let is_folder = item.is_folder();
        let name = new_name.unwrap_or(&old_name).to_string();
        let parent = new_parent.unwrap_or(&old_parent).to_string();
        if new_name.is_some() || new_parent.is_some() {
            self.ensure_unlocked(&[id.to_string()])?;
            self.folder_id(&parent)?;
            if self.is_within(&parent, id) {
                return Err(GraphError::invalid(
                    "An item cannot be moved into itself or one of its descendants.",
                ));
            }
            let extra = self.longest_below(id);
            self.check_name(&parent, &name, is_folder, extra)?;
            if let Some(existing) = self.child(&parent, &name).filter(|e| e.id != id) {
                if !replace || existing.is_folder() || is_folder {
                    return Err(GraphError::name_exists());
                }
                let existing = existing.id.clone();
                self.delete(&existing, None)?;
            }
            if let Some(Item {
                kind: Kind::Folder(children),
                ..
            }) = self.items.get_mut(&old_parent)
            {
                children.remove(&key(&old_name));
            }
            if let Some(Item {
                kind: Kind::Folder(children),
                ..
            }) = self.items.get_mut(&parent)
            {
                children.insert(key(&name), id.to_string());
            }
            let item = self.get_mut(id)?;
            item.name = name;
            item.parent = Some(parent);
        }
        if let Some(at) = fs_modified {
            self.get_mut(id)?.fs_modified = at.trunc_subsecs(0);
        }
        self.touch(id, false)
    }

    pub fn delete(&mut self, id: &str, if_match: Option<&str>) -> GraphResult<()> {
        let item = self.get(id)?;
        let Some(parent) = item.parent.clone() else {
            return Err(GraphError::access_denied());
        };
        if !item.matches(if_match) {
            return Err(precondition_failed());
        }
        let subtree = self.subtree(id);
        self.ensure_unlocked(&subtree)?;
        let name = key(&item.name);
        if let Some(Item {
            kind: Kind::Folder(children),
            ..
        }) = self.items.get_mut(&parent)
        {
            children.remove(&name);
        }
        let depths: Vec<(String, usize)> = subtree
            .into_iter()
            .map(|g| {
                let depth = self.depth(&g);
                (g, depth)
            })
            .collect();
        for (gone, depth) in depths {
            let seq = self.next_seq();
            if let Some(item) = self.items.remove(&gone) {
                let is_folder = item.is_folder();
                self.used -= item.size();
                self.locked.remove(&gone);
                self.tombstones.push(Tombstone {
                    id: gone,
                    parent: item.parent.unwrap_or_default(),
                    seq,
                    depth,
                    is_folder,
                });
            }
        }
        Ok(())
    }

    pub fn snapshot(&self, id: &str) -> GraphResult<Snapshot> {
        let item = self.get(id)?;
        let children = match &item.kind {
            Kind::Folder(children) => children
                .values()
                .map(|c| self.snapshot(c))
                .collect::<GraphResult<Vec<_>>>()?,
            Kind::File(_) => Vec::new(),
        };
        Ok(Snapshot {
            name: item.name.clone(),
            blob: item.blob().cloned(),
            fs_created: item.fs_created,
            fs_modified: item.fs_modified,
            children,
        })
    }

    /// Writes a snapshot below `folder`, as a copy does.
    pub fn restore(
        &mut self,
        folder: &str,
        snapshot: &Snapshot,
        conflict: Conflict,
    ) -> GraphResult<String> {
        self.folder_id(folder)?;
        let name = self.make_room(folder, &snapshot.name, conflict)?;
        self.check_name(folder, &name, snapshot.blob.is_none(), 0)?;
        let fs = (snapshot.fs_created, snapshot.fs_modified);
        let id = match &snapshot.blob {
            Some(blob) => {
                self.check_quota(blob.len, 0)?;
                self.insert(folder, &name, Kind::File(blob.clone()), fs)
            }
            None => self.insert(folder, &name, Kind::Folder(BTreeMap::new()), fs),
        };
        for child in &snapshot.children {
            self.restore(&id, child, Conflict::Fail)?;
        }
        Ok(id)
    }

    /// Changes in `(since, upto]` ordered by (depth, seq), after `cursor`, at most `limit`.
    /// With `since == 0` this is the initial enumeration: current items only.
    pub fn changes(
        &self,
        since: u64,
        upto: u64,
        cursor: (usize, u64),
        limit: usize,
    ) -> Vec<Change<'_>> {
        let mut out: Vec<Change<'_>> = self
            .items
            .values()
            .filter(|i| i.seq > since && i.seq <= upto)
            .map(|i| Change::Live(self.depth(&i.id), i))
            .collect();
        if since > 0 {
            out.extend(
                self.tombstones
                    .iter()
                    .filter(|t| t.seq > since && t.seq <= upto)
                    .map(Change::Gone),
            );
        }
        out.retain(|c| c.order() > cursor);
        out.sort_by_key(Change::order);
        out.truncate(limit);
        out
    }
}

pub enum Change<'a> {
    Live(usize, &'a Item),
    Gone(&'a Tombstone),
}

impl Change<'_> {
    pub fn order(&self) -> (usize, u64) {
        match self {
            Change::Live(depth, item) => (*depth, item.seq),
            Change::Gone(t) => (t.depth, t.seq),
        }
    }
}

/// The answer to a name that breaks one of SharePoint's rules.
pub fn invalid_name(name: &str, rule: &str) -> GraphError {
    GraphError::invalid(format!("The provided name '{name}' is not valid: {rule}."))
        .inner("invalidName")
}

pub fn precondition_failed() -> GraphError {
    GraphError::new(
        StatusCode::PRECONDITION_FAILED,
        "resourceModified",
        "ETag does not match current item's value",
    )
}
