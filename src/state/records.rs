//! Users, connections and sync jobs, as records: each is the JSON the configuration file would
//! declare for it (validated by the configuration's own code before it is written), with a
//! connection's secret sealed apart, and who manages it: the configuration file that declares
//! it (provisioned at start and on every reload; read-only through the API), or nobody (made
//! and changed through the API and the CLI). Every write bumps the record's revision.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Error, Result, Store};
use crate::config::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Users,
    Connections,
    Syncs,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Users => "users",
            Kind::Connections => "connections",
            Kind::Syncs => "syncs",
        }
    }

    /// The word for one, in messages.
    pub fn one(self) -> &'static str {
        match self {
            Kind::Users => "user",
            Kind::Connections => "connection",
            Kind::Syncs => "sync job",
        }
    }

    fn secret_place(self, name: &str) -> String {
        format!("{}/{name}/secret", self.table())
    }
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

    /// Creates or replaces `name`: answers its new revision. Only connections have a secret;
    /// `None` keeps the one stored. Refused ([`Error::Managed`]) when the API writes a record
    /// the configuration file manages.
    pub async fn put(
        &self,
        kind: Kind,
        name: &str,
        record: &Value,
        secret: Option<&Secret>,
        by: By<'_>,
    ) -> Result<i64> {
        if secret.is_some() && kind != Kind::Connections {
            return Err(Error::Key(format!("a {} has no secret", kind.one())));
        }
        let table = kind.table();
        let managed_by = match by {
            By::Api => None,
            By::Config(file) => Some(file),
        };
        let sealed = secret.map(|s| self.sealer().seal(&kind.secret_place(name), s.expose()));
        let (secret_column, secret_value, secret_update) = match kind {
            Kind::Connections => (
                ", secret",
                ", $5",
                ", secret = COALESCE(excluded.secret, connections.secret)",
            ),
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
        match query.fetch_optional(self.pool()).await? {
            Some(row) => Ok(row.try_get("revision")?),
            None => Err(self.managed(kind, name).await),
        }
    }

    /// Deletes `name`: whether there was one. Refused when the API deletes a record the
    /// configuration file manages.
    pub async fn delete(&self, kind: Kind, name: &str, by: By<'_>) -> Result<bool> {
        let table = kind.table();
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
        if query.execute(self.pool()).await?.rows_affected() > 0 {
            return Ok(true);
        }
        match self.get(kind, name).await? {
            None => Ok(false),
            Some(_) => Err(self.managed(kind, name).await),
        }
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
                .map(|sealed| self.sealer().open(&kind.secret_place(&name), &sealed))
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

fn select(kind: Kind) -> String {
    let secret = if kind == Kind::Connections {
        ", secret"
    } else {
        ""
    };
    format!(
        "SELECT name, record, managed_by, revision, updated_at{secret} FROM {}",
        kind.table()
    )
}
