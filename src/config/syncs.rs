//! Stage two for `[[syncs]]`: mirrored-folder jobs, their connection and paths, direction,
//! schedule, conflict policy and deletion guard.

use std::collections::HashSet;
use std::time::Duration;

use super::types::{AfterCopy, Conflict, Connection, Direction, MaxDelete, SyncJob};
use super::validate::{Context, choice, known_connection, names, required, unique};
use super::{Error, raw, values};

const SYNC_INTERVAL: Duration = Duration::from_secs(300);
const MAX_DELETE_PERCENT: u8 = 50;

/// Validates every sync job; names are unique and connections must exist.
pub(super) fn syncs(
    raw: Vec<raw::SyncJob>,
    connections: &[Connection],
    cx: &Context<'_>,
) -> Result<Vec<SyncJob>, Error> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("syncs[{i}].{field}");
        let name = values::name(&at("name"), &required(s.name, &at("name"))?)?;
        unique(&mut seen, &at("name"), &name)?;
        let local = cx.path(&at("local"), &required(s.local, &at("local"))?)?;
        let connection = known_connection(
            &at("connection"),
            required(s.connection, &at("connection"))?,
            connections,
        )?;
        let remote = values::slash_path(&at("remote"), &required(s.remote, &at("remote"))?, false)?;
        let names = names(&at("names"), s.names.as_deref())?;
        let direction = choice(
            &at("direction"),
            &required(s.direction, &at("direction"))?,
            &[
                ("push", Direction::Push),
                ("pull", Direction::Pull),
                ("two-way", Direction::TwoWay),
            ],
        )?;
        let after_copy = choice(
            &at("after_copy"),
            s.after_copy.as_deref().unwrap_or("keep"),
            &[("keep", AfterCopy::Keep), ("delete", AfterCopy::Delete)],
        )?;
        if after_copy == AfterCopy::Delete && direction == Direction::TwoWay {
            return Err(Error::invalid(
                at("after_copy"),
                "\"delete\" only works with direction \"push\" or \"pull\"",
            ));
        }
        let interval = match s.interval {
            Some(text) => values::duration(&at("interval"), &text)?,
            None => SYNC_INTERVAL,
        };
        let conflict = choice(
            &at("conflict"),
            s.conflict.as_deref().unwrap_or("keep-both"),
            &[
                ("keep-both", Conflict::KeepBoth),
                ("prefer-local", Conflict::PreferLocal),
                ("prefer-remote", Conflict::PreferRemote),
                ("newer", Conflict::Newer),
            ],
        )?;
        let max_delete = MaxDelete {
            percent: s
                .max_delete
                .as_ref()
                .and_then(|m| m.percent)
                .unwrap_or(MAX_DELETE_PERCENT),
            count: s.max_delete.as_ref().and_then(|m| m.count),
        };
        if max_delete.percent > 100 {
            return Err(Error::invalid(
                at("max_delete.percent"),
                "must be between 0 and 100",
            ));
        }
        for (j, pattern) in s.exclude.iter().enumerate() {
            values::non_empty(&at(&format!("exclude[{j}]")), pattern)?;
        }
        out.push(SyncJob {
            name,
            local,
            connection,
            remote,
            names,
            direction,
            after_copy,
            interval,
            conflict,
            max_delete,
            exclude: s.exclude,
            enabled: s.enabled.unwrap_or(true),
        });
    }
    Ok(out)
}
