//! Users, connections and sync jobs, as records: each is the JSON the configuration file would
//! declare for it (validated by the configuration's own code before it is written), with a
//! connection's secret sealed apart, and who manages it: the configuration file that declares
//! it (provisioned at start and on every reload; read-only through the API), or nobody (made
//! and changed through the API and the CLI). Every write bumps the record's revision.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Error, Result, Store};
use crate::config::{Entry, Records, Secret, SecretText};

/// Which records: users, connections or sync jobs (the configuration's sections; each has a
/// table of the same name).
pub use crate::config::Section as Kind;

pub(super) fn secret_place(kind: Kind, name: &str) -> String {
    format!("{}/{name}/secret", kind.key())
}

/// What a write does to a connection's secret.
#[derive(Debug, Clone, Copy)]
pub enum SecretWrite<'a> {
    /// Keeps the one stored (an API save that does not send it: secrets are write-only).
    Keep,
    /// Removes it (the connection now has another credential).
    Clear,
    Set(&'a Secret),
}

/// Who writes a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By<'a> {
    /// The API or the CLI: refused on a record the configuration file manages.
    Api,
    /// The configuration file at this path (provisioning): always wins.
    Config(&'a str),
}

/// One stored record.
#[derive(Debug, Clone)]
pub struct Record {
    pub name: String,
    /// The configuration's JSON of it.
    pub record: Value,
    /// A connection's secret (client secret or certificate key), opened.
    pub secret: Option<Secret>,
    /// The configuration file that manages it, if one does.
    pub managed_by: Option<String>,
    pub revision: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl Store {
    /// Every record of `kind`, by name.
    pub async fn list(&self, kind: Kind) -> Result<Vec<Record>> {
        let sql = format!("{} ORDER BY name", select(kind));
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|row| self.record(kind, row)).collect()
    }

    /// The record `name` of `kind`, if there is one.
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Option<Record>> {
        let sql = format!("{} WHERE name = $1", select(kind));
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| self.record(kind, &row)).transpose()
    }

    /// Creates or replaces `name`: answers its new revision. Only connections have a secret.
    /// Refused ([`Error::Managed`]) when the API writes a record the configuration file manages.
    pub async fn put(
        &self,
        kind: Kind,
        name: &str,
        record: &Value,
        secret: SecretWrite<'_>,
        by: By<'_>,
    ) -> Result<i64> {
        if !matches!(secret, SecretWrite::Keep) && kind != Kind::Connections {
            return Err(Error::Refused(format!("a {} has no secret", kind.one())));
        }
        let table = kind.key();
        let managed_by = match by {
            By::Api => None,
            By::Config(file) => Some(file),
        };
        let sealed = match secret {
            SecretWrite::Set(s) => Some(self.sealer().seal(&secret_place(kind, name), s.expose())),
            SecretWrite::Keep | SecretWrite::Clear => None,
        };
        let (secret_column, secret_value, secret_update) = match (kind, secret) {
            (Kind::Connections, SecretWrite::Keep) => (", secret", ", $5", ""),
            (Kind::Connections, _) => (", secret", ", $5", ", secret = excluded.secret"),
            _ => ("", "", ""),
        };
        // An API write to a record the file manages matches no row: nothing is written.
        let sql = format!(
            "INSERT INTO {table} (name, record, managed_by, updated_at, revision{secret_column})
             VALUES ($1, $2, $3, $4, 1{secret_value})
             ON CONFLICT (name) DO UPDATE SET record = excluded.record,
                 managed_by = excluded.managed_by, updated_at = excluded.updated_at,
                 revision = {table}.revision + 1{secret_update}
             WHERE {table}.managed_by IS NULL OR excluded.managed_by IS NOT NULL
             RETURNING revision"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .bind(record.to_string())
            .bind(managed_by)
            .bind(chrono::Utc::now().timestamp());
        if kind == Kind::Connections {
            query = query.bind(sealed);
        }
        let mut tx = self.pool().begin().await?;
        let Some(row) = query.fetch_optional(&mut *tx).await? else {
            drop(tx);
            return Err(self.managed(kind, name).await);
        };
        changed(&mut tx).await?;
        tx.commit().await?;
        Ok(row.try_get("revision")?)
    }

    /// Deletes `name`: whether there was one. Refused when the API deletes a record the
    /// configuration file manages.
    pub async fn delete(&self, kind: Kind, name: &str, by: By<'_>) -> Result<bool> {
        let table = kind.key();
        let (sql, file) = match by {
            By::Api => (
                format!("DELETE FROM {table} WHERE name = $1 AND managed_by IS NULL"),
                None,
            ),
            By::Config(file) => (
                format!("DELETE FROM {table} WHERE name = $1 AND managed_by = $2"),
                Some(file),
            ),
        };
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(name);
        if let Some(file) = file {
            query = query.bind(file);
        }
        let mut tx = self.pool().begin().await?;
        if query.execute(&mut *tx).await?.rows_affected() > 0 {
            changed(&mut tx).await?;
            tx.commit().await?;
            return Ok(true);
        }
        drop(tx);
        match self.get(kind, name).await? {
            None => Ok(false),
            Some(_) => Err(self.managed(kind, name).await),
        }
    }

    /// Puts the records the configuration file `file` declares (those unchanged are left as they
    /// are) and deletes those it managed and no longer declares. A record of the same name made
    /// through the API becomes the file's.
    pub async fn provision(&self, file: &str, declared: &Records) -> Result<Provisioned> {
        let mut done = Provisioned::default();
        for kind in Kind::ALL {
            let stored = self.list(kind).await?;
            for entry in declared.of(kind) {
                let before = stored.iter().find(|r| r.name == entry.name);
                if before
                    .is_some_and(|r| r.managed_by.as_deref() == Some(file) && r.entry() == *entry)
                {
                    continue;
                }
                let secret = entry
                    .secret
                    .as_ref()
                    .map(|text| Secret::new(text.0.clone()));
                let write = match &secret {
                    Some(secret) => SecretWrite::Set(secret),
                    None if kind == Kind::Connections => SecretWrite::Clear,
                    None => SecretWrite::Keep,
                };
                self.put(kind, &entry.name, &entry.record, write, By::Config(file))
                    .await?;
                done.written.push((kind, entry.name.clone()));
            }
            for gone in stored.iter().filter(|r| {
                r.managed_by.as_deref() == Some(file)
                    && !declared.of(kind).iter().any(|e| e.name == r.name)
            }) {
                self.delete(kind, &gone.name, By::Config(file)).await?;
                done.deleted.push((kind, gone.name.clone()));
            }
        }
        Ok(done)
    }

    /// Every record, as the configuration's records, each with the file managing it (if one
    /// does).
    pub async fn records(&self) -> Result<(Records, Vec<(Kind, String, Option<String>)>)> {
        let mut records = Records::default();
        let mut managers = Vec::new();
        for kind in Kind::ALL {
            for record in self.list(kind).await? {
                managers.push((kind, record.name.clone(), record.managed_by.clone()));
                records.of_mut(kind).push(record.entry());
            }
        }
        Ok((records, managers))
    }

    /// The change counter: it grows with every change to a record, wherever it was made.
    pub async fn changes(&self) -> Result<i64> {
        Ok(self.counters().await?.records)
    }

    /// The error for an API write to `name`, which the configuration file manages.
    async fn managed(&self, kind: Kind, name: &str) -> Error {
        let file = match self.get(kind, name).await {
            Ok(Some(r)) => r.managed_by.unwrap_or_default(),
            Ok(None) => String::new(),
            Err(e) => return e,
        };
        Error::Managed {
            kind: kind.one(),
            name: name.to_string(),
            file,
        }
    }

    fn record(&self, kind: Kind, row: &AnyRow) -> Result<Record> {
        let name: String = row.try_get("name")?;
        let text: String = row.try_get("record")?;
        let record = serde_json::from_str(&text).map_err(|e| {
            Error::Database(format!(
                "{} {name}: the stored record is not JSON: {e}",
                kind.one()
            ))
        })?;
        let secret = match kind {
            Kind::Connections => row
                .try_get::<Option<String>, _>("secret")?
                .map(|sealed| self.sealer().open(&secret_place(kind, &name), &sealed))
                .transpose()?,
            _ => None,
        };
        Ok(Record {
            record,
            secret,
            managed_by: row.try_get("managed_by")?,
            revision: row.try_get("revision")?,
            updated_at: row.try_get("updated_at")?,
            name,
        })
    }
}

/// What [`Store::provision`] changed.
#[derive(Debug, Default)]
pub struct Provisioned {
    pub written: Vec<(Kind, String)>,
    pub deleted: Vec<(Kind, String)>,
}

impl Record {
    /// The record as the configuration's entry.
    pub fn entry(&self) -> Entry {
        Entry {
            name: self.name.clone(),
            record: self.record.clone(),
            secret: self.secret.as_ref().map(SecretText::from),
        }
    }
}

/// Bumps the records' change counter within `tx` (see [`Store::changes`]).
async fn changed(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    super::bump(tx, super::Counter::Records).await
}

fn select(kind: Kind) -> String {
    let secret = if kind == Kind::Connections {
        ", secret"
    } else {
        ""
    };
    format!(
        "SELECT name, record, managed_by, revision, updated_at{secret} FROM {}",
        kind.key()
    )
}
