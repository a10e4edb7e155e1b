//! Open problems: paths a run skipped, repeated each run until fixed.

use std::collections::HashSet;

use rusqlite::params;
use rusqlite::types::Type;

use super::{Result, Store, now};
use crate::sync::Problem;

impl Store {
    /// Replaces the job's open problems; one that persists (same side and path) keeps its
    /// `first_seen`.
    pub fn set_problems(&self, job: &str, problems: &[Problem]) -> Result<()> {
        let now = now();
        self.with("recording problems", true, |tx| {
            let mut gone: HashSet<(String, String)> = tx
                .prepare("SELECT side, path FROM problem WHERE job = ?1")?
                .query_map([job], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut put = tx.prepare(
                "INSERT INTO problem (job, side, path, reason, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (job, side, path) DO UPDATE SET reason = excluded.reason,
                    last_seen = excluded.last_seen",
            )?;
            for p in problems {
                gone.remove(&(p.side.to_owned(), p.path.clone()));
                put.execute(params![job, p.side, p.path, p.reason, now])?;
            }
            let mut remove =
                tx.prepare("DELETE FROM problem WHERE job = ?1 AND side = ?2 AND path = ?3")?;
            for (side, path) in &gone {
                remove.execute(params![job, side, path])?;
            }
            Ok(())
        })
    }

    /// The job's open problems with when each was first and last seen, by side and path.
    pub fn problems(&self, job: &str) -> Result<Vec<(Problem, i64, i64)>> {
        self.with("reading problems", false, |tx| {
            tx.prepare(
                "SELECT side, path, reason, first_seen, last_seen FROM problem
                 WHERE job = ?1 ORDER BY side, path",
            )?
            .query_map([job], |row| {
                let side = match row.get_ref(0)?.as_str()? {
                    "local" => "local",
                    "remote" => "remote",
                    other => {
                        let why = format!("unknown problem side '{other}'");
                        return Err(rusqlite::Error::FromSqlConversionFailure(
                            0,
                            Type::Text,
                            why.into(),
                        ));
                    }
                };
                let problem = Problem {
                    side,
                    path: row.get(1)?,
                    reason: row.get(2)?,
                };
                Ok((problem, row.get(3)?, row.get(4)?))
            })?
            .collect()
        })
    }
}
