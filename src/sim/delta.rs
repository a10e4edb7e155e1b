//! `GET /drives/{id}/root/delta`: the initial enumeration, changes since a token, `token=latest`,
//! paging with `@odata.nextLink`, the final `@odata.deltaLink`, and 410 for stale tokens.
//!
//! Items look as SharePoint (OneDrive for Business) shows them in delta (Microsoft's
//! "driveItem: delta" page, remarks): `parentReference` without `path`, no `cTag`, deleted items
//! with a `deleted` facet and without `name`. Each page also carries the folders above its items
//! up to the root (unless already on the page), as SharePoint returns "all of the items in the
//! hierarchy above the modified items" so that a client can place them; they do not count
//! towards `$top`.
//!
//! A token names the drive's delta epoch and a sequence number; paging tokens add the upper
//! bound of the round and a cursor, so pages of one round stay consistent while the drive keeps
//! changing (later changes fall into the next round).

use std::collections::HashSet;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::utf8_percent_encode;

use super::drive::{Change, Drive, Item};
use super::error::{GraphError, GraphResult};
use super::graph::{Request, SEGMENT};
use super::items::{Address, drive_for, render};
use super::state::Sim;
use crate::wire::{Collection, DeletedFacet, DriveItem, ItemReference};

/// The position a delta request continues from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Position {
    epoch: u64,
    since: u64,
    /// Upper bound and cursor of a round in progress.
    round: Option<(u64, usize, u64)>,
}

impl Position {
    fn encode(&self) -> String {
        let text = match self.round {
            None => format!("{}.{}", self.epoch, self.since),
            Some((upto, depth, seq)) => {
                format!("{}.{}.{upto}.{depth}.{seq}", self.epoch, self.since)
            }
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    fn decode(token: &str) -> Option<Position> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let numbers: Vec<u64> = text
            .split('.')
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        match numbers[..] {
            [epoch, since] => Some(Position {
                epoch,
                since,
                round: None,
            }),
            [epoch, since, upto, depth, seq] => Some(Position {
                epoch,
                since,
                round: Some((upto, depth as usize, seq)),
            }),
            _ => None,
        }
    }
}

fn resync() -> GraphError {
    GraphError::new(StatusCode::GONE, "resyncRequired", "Resync required. Replace any local items with the server's version (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd. Upload any local changes that the server doesn't know about.")
        .inner("resyncChangesApplyDifferences")
}

pub fn delta(r: Request, address: Address) -> GraphResult<Response> {
    let top = match r.query.get("$top") {
        None => 200,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| GraphError::invalid("Invalid $top value."))?,
    };
    let mut world = r.sim.world.lock();
    let drive = drive_for(&r, &mut world, &address.drive, false)?;
    if address.locate(drive)?.parent.is_some() {
        return Err(GraphError::invalid(
            "Delta is only supported on the root of a document library.",
        )
        .inner("notSupported"));
    }
    let position = match r.query.get("token").map(String::as_str) {
        None => Position {
            epoch: drive.delta_epoch,
            since: 0,
            round: None,
        },
        Some("latest") => Position {
            epoch: drive.delta_epoch,
            since: drive.seq,
            round: Some((drive.seq, usize::MAX, u64::MAX)),
        },
        Some(token) => Position::decode(token)
            .ok_or_else(|| GraphError::invalid("The delta token is malformed."))?,
    };
    if position.epoch != drive.delta_epoch {
        return Err(resync());
    }
    let (upto, cursor) = match position.round {
        Some((upto, depth, seq)) => (upto, (depth, seq)),
        None => (drive.seq, (0, 0)),
    };
    let changes = drive.changes(position.since, upto, cursor, top + 1);
    let more = changes.len() > top;
    let page = &changes[..changes.len().min(top)];
    let above = ancestors(drive, page)
        .into_iter()
        .map(|item| live(&r.sim, drive, item));
    let value: Vec<DriveItem> = above
        .chain(page.iter().map(|change| match change {
            Change::Live(_, item) => live(&r.sim, drive, item),
            Change::Gone(t) => DriveItem {
                id: t.id.clone(),
                deleted: Some(DeletedFacet {
                    state: Some("deleted".into()),
                }),
                parent_reference: Some(ItemReference {
                    drive_id: Some(drive.id.clone()),
                    drive_type: Some("documentLibrary".into()),
                    id: Some(t.parent.clone()),
                    path: None,
                }),
                folder: t.is_folder.then(Default::default),
                file: (!t.is_folder).then(Default::default),
                ..Default::default()
            },
        }))
        .collect();
    let top_param = r
        .query
        .get("$top")
        .map(|t| format!("&$top={t}"))
        .unwrap_or_default();
    let link = |p: Position| {
        format!(
            "{}/v1.0/drives/{}/root/delta?token={}{top_param}",
            r.sim.public_url,
            utf8_percent_encode(&drive.id, SEGMENT),
            p.encode()
        )
    };
    let (next_link, delta_link) = if more {
        let last = changes[top - 1].order();
        (
            Some(link(Position {
                round: Some((upto, last.0, last.1)),
                ..position
            })),
            None,
        )
    } else {
        (
            None,
            Some(link(Position {
                epoch: drive.delta_epoch,
                since: upto,
                round: None,
            })),
        )
    };
    Ok(Json(Collection {
        value,
        next_link,
        delta_link,
    })
    .into_response())
}

/// A live item as delta shows it: no `parentReference.path`, no `cTag`.
fn live(sim: &Sim, drive: &Drive, item: &Item) -> DriveItem {
    DriveItem {
        c_tag: None,
        ..render(sim, drive, item, false)
    }
}

/// The folders above the items of `page`, up to the root, that the page does not carry itself;
/// outermost first.
fn ancestors<'a>(drive: &'a Drive, page: &[Change<'a>]) -> Vec<&'a Item> {
    let on_page = |change: &Change<'a>| match change {
        Change::Live(_, item) => (item.id.as_str(), item.parent.as_deref()),
        Change::Gone(t) => (t.id.as_str(), Some(t.parent.as_str())),
    };
    let mut seen: HashSet<&str> = page.iter().map(|c| on_page(c).0).collect();
    let mut out = Vec::new();
    for change in page {
        let mut parent = on_page(change).1;
        // A folder seen before had its own ancestors added (or is on the page and will).
        while let Some(id) = parent.filter(|id| seen.insert(id)) {
            let Ok(folder) = drive.get(id) else { break };
            out.push(folder);
            parent = folder.parent.as_deref();
        }
    }
    out.sort_by_key(|folder| drive.depth(&folder.id));
    out
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn positions_round_trip() {
        for p in [
            Position {
                epoch: 1,
                since: 5,
                round: None,
            },
            Position {
                epoch: 2,
                since: 0,
                round: Some((9, 3, 7)),
            },
        ] {
            assert_eq!(Position::decode(&p.encode()), Some(p));
        }
        assert_eq!(Position::decode("garbage!"), None);
    }
}
