//! Uploads by path (`root:/a/b/c.txt:/content`, or a session on such a path): where the file
//! lands. SharePoint creates the missing parent folders. The simulator checks every name still
//! to create, and the full path's length, before it reads any content, and creates the folders
//! only when the file is stored, so that a refused or abandoned upload leaves nothing behind.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::drive::{Blob, Conflict, Drive, invalid_name};
use super::error::{GraphError, GraphResult};
use super::names;

/// Where an upload by path puts its file.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The deepest folder of the path that exists.
    pub folder: String,
    /// The folders still to create below it, outermost first.
    pub missing: Vec<String>,
    pub name: String,
}

impl Placement {
    /// Walks `segments` (the last one names the file) down from the item `base`.
    pub fn find(drive: &Drive, base: &str, segments: &[String]) -> GraphResult<Placement> {
        let (name, parents) = segments
            .split_last()
            .ok_or_else(|| GraphError::invalid("A name is required in the path."))?;
        let mut folder = drive.get(base)?;
        let mut rest = parents;
        while let Some((next, deeper)) = rest.split_first() {
            let Some(child) = drive.child(&folder.id, next) else {
                break;
            };
            folder = child;
            rest = deeper;
        }
        if !folder.is_folder() {
            return Err(GraphError::invalid("The parent item is not a folder."));
        }
        let placement = Placement {
            folder: folder.id.clone(),
            missing: rest.to_vec(),
            name: name.clone(),
        };
        placement.check_missing(drive)?;
        Ok(placement)
    }

    /// The parent folder, when it exists already.
    pub fn parent(&self) -> Option<&str> {
        self.missing.is_empty().then_some(self.folder.as_str())
    }

    /// Checks the folder names still to create, the file's name below them, and the length of
    /// the whole path (nothing to check here when the parent exists: the store checks that).
    fn check_missing(&self, drive: &Drive) -> GraphResult<()> {
        let Some((first, deeper)) = self.missing.split_first() else {
            return Ok(());
        };
        let below: usize = deeper
            .iter()
            .chain([&self.name])
            .map(|segment| 1 + segment.chars().count())
            .sum();
        drive.check_name(&self.folder, first, true, below)?;
        for folder in deeper {
            names::check(folder, true, false).map_err(|rule| invalid_name(folder, &rule))?;
        }
        names::check(&self.name, false, false).map_err(|rule| invalid_name(&self.name, &rule))
    }

    /// Stores `blob` here, creating the missing folders first (reusing any made meanwhile);
    /// answers the item id and whether it was created.
    pub fn store(
        &self,
        drive: &mut Drive,
        blob: Arc<Blob>,
        conflict: Conflict,
        fs_modified: Option<DateTime<Utc>>,
    ) -> GraphResult<(String, bool)> {
        if !self.missing.is_empty() {
            // New folders would stay behind if the file then did not fit.
            drive.check_room(blob.len)?;
        }
        let mut folder = self.folder.clone();
        for name in &self.missing {
            folder = match drive.child(&folder, name) {
                Some(existing) if existing.is_folder() => existing.id.clone(),
                Some(_) => return Err(GraphError::name_exists()),
                None => drive.create_folder(&folder, name, Conflict::Fail)?,
            };
        }
        drive.put_file(&folder, &self.name, blob, conflict, fs_modified)
    }
}
