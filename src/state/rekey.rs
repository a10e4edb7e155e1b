//! `spgate rekey`: every sealed value opened with the key in force and sealed again with a new
//! one, in one transaction (a failure changes nothing). Stop every spgate using the store first:
//! a running instance still holds the old key and could neither open what is sealed anew nor
//! seal what it writes with the new one.

use sqlx::Row;

use super::seal::Sealer;
use super::{KEY_CHECK, KEY_CHECK_PLACE, Result, Store};
use crate::config::{Secret, Section};

/// A sealed column: its table, the column naming the row, the column itself, and the place a
/// row's value is sealed for.
struct Sealed {
    table: &'static str,
    key: &'static str,
    column: &'static str,
    place: fn(&str) -> String,
}

const SEALED: &[Sealed] = &[
    Sealed {
        table: "connections",
        key: "name",
        column: "secret",
        place: |name| super::records::secret_place(Section::Connections, name),
    },
    Sealed {
        table: "host_keys",
        key: "algorithm",
        column: "private_key",
        place: super::host_keys::place,
    },
    Sealed {
        table: "grants",
        key: "connection",
        column: "refresh_token",
        place: super::grants::place,
    },
    Sealed {
        table: "grants",
        key: "connection",
        column: "access_token",
        place: super::grants::access_place,
    },
    Sealed {
        table: "console_flows",
        key: "state",
        column: "verifier",
        place: super::console::verifier_place,
    },
];

impl Store {
    /// Seals every secret again with `new` (and the key check): how many secrets were sealed
    /// again. The store keeps the old key in force; open it again with the new one.
    pub async fn rekey(&self, new: &Secret) -> Result<usize> {
        let new = Sealer::new(new)?;
        let mut tx = self.pool().begin().await?;
        if self.engine() == super::Engine::Postgres {
            // No instance may seal or rotate anything while the key changes under it.
            sqlx::query(
                "LOCK TABLE connections, host_keys, grants, upload_queue IN EXCLUSIVE MODE",
            )
            .execute(&mut *tx)
            .await?;
        }
        let mut count = 0;
        for sealed in SEALED {
            let Sealed {
                table,
                key,
                column,
                place,
            } = sealed;
            // The names are the constants above, never input.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL"
            )))
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                let id: String = row.try_get(0)?;
                let value: String = row.try_get(1)?;
                let place = place(&id);
                let secret = self.sealer().open(&place, &value)?;
                let update = format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2");
                sqlx::query(sqlx::AssertSqlSafe(update))
                    .bind(new.seal(&place, secret.expose()))
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                count += 1;
            }
        }
        // Queued uploads' session URLs are not sealed again but forgotten: a session is short
        // lived, and its upload simply starts a new one.
        count +=
            sqlx::query("UPDATE upload_queue SET upload_url = NULL WHERE upload_url IS NOT NULL")
                .execute(&mut *tx)
                .await?
                .rows_affected() as usize;
        sqlx::query("UPDATE spgate_meta SET value = $1 WHERE key = $2")
            .bind(new.seal(KEY_CHECK_PLACE, "spgate"))
            .bind(KEY_CHECK)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(count)
    }
}

impl Store {
    /// Rekeys an SQLite store that keeps its own key (`[state] secret_key` not set) to `new`,
    /// and replaces `<state dir>/secret.key` with it; the old key is kept as
    /// `secret.key.<old id>` (backups taken before need it): its path is answered with the
    /// count. The new key is written beside the old one first; a crash after the commit is
    /// finished at the next opening (see `settle_rekey`).
    pub async fn rekey_own(
        &self,
        state_dir: &std::path::Path,
        new: &Secret,
    ) -> Result<(usize, std::path::PathBuf)> {
        let key_file = super::key_file(state_dir);
        let old = state_dir.join(format!("secret.key.{}", self.key_id()));
        std::fs::copy(&key_file, &old)?;
        let pending = super::pending_key_file(state_dir);
        crate::fsio::write_private(&pending, new.expose().as_bytes())?;
        let count = match self.rekey(new).await {
            Ok(count) => count,
            Err(e) => {
                // Rolled back: the pending key was never in force.
                let _ = std::fs::remove_file(&pending);
                return Err(e);
            }
        };
        match std::fs::rename(&pending, &key_file) {
            Ok(()) => Ok((count, old)),
            // Another process opening the store finished the swap first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::read_to_string(&key_file) {
                    Ok(text) if text == new.expose() => Ok((count, old)),
                    _ => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}
