//! The delegated sign-ins of device-code connections: the rotating refresh token (sealed), the
//! app and tenant it was issued for, and when it was last saved. A rotated token is saved
//! before the access token that came with it is used, so a crash never loses the only valid one.

use sqlx::{Any, Executor, Row};

use super::{Engine, Error, Result, Store};
use crate::config::Secret;

/// One connection's saved sign-in.
#[derive(Debug, Clone)]
pub struct Grant {
    pub refresh_token: Secret,
    pub client_id: String,
    pub tenant: String,
    /// Who signed in, when known.
    pub account: Option<String>,
    /// Unix seconds.
    pub updated_at: i64,
    /// The access token that came with the last refresh, shared by every instance until it
    /// is about to expire.
    pub access: Option<SharedAccess>,
}

/// An access token every instance may use, and when it expires.
#[derive(Debug, Clone)]
pub struct SharedAccess {
    pub token: Secret,
    /// Unix seconds.
    pub expires: i64,
}

/// The refreshes under way in this process, by connection (SQLite stores).
static REFRESHING: std::sync::LazyLock<
    dashmap::DashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>,
> = std::sync::LazyLock::new(Default::default);

pub(super) fn place(connection: &str) -> String {
    format!("grants/{connection}/refresh_token")
}

pub(super) fn access_place(connection: &str) -> String {
    format!("grants/{connection}/access_token")
}

impl Store {
    /// The saved sign-in of `connection`, if any.
    pub async fn grant(&self, connection: &str) -> Result<Option<Grant>> {
        self.read_grant(self.pool(), connection).await
    }

    /// Every saved sign-in, by connection.
    pub async fn grants(&self) -> Result<Vec<(String, Grant)>> {
        let rows = sqlx::query(
            "SELECT connection, refresh_token, client_id, tenant, account, updated_at,
                 access_token, access_expires FROM grants ORDER BY connection",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let connection: String = row.try_get("connection")?;
                let grant = self.grant_of(&connection, row)?;
                Ok((connection, grant))
            })
            .collect()
    }

    /// Saves the sign-in of `connection` unless one is saved already: whether it was saved.
    pub async fn add_grant(&self, connection: &str, grant: &Grant) -> Result<bool> {
        self.write_grant(self.pool(), connection, grant, false)
            .await
    }

    /// Saves (or replaces) the sign-in of `connection`.
    pub async fn put_grant(&self, connection: &str, grant: &Grant) -> Result<()> {
        self.write_grant(self.pool(), connection, grant, true)
            .await
            .map(drop)
    }

    /// Runs `rotate` on the sign-in of `connection` and saves the grant it answers, holding the
    /// sign-in locked on PostgreSQL (its row, from a first write to the commit) so that two
    /// instances never spend the same refresh token: the second waits, then reads the token
    /// the first saved. An SQLite store has one server: its refreshes of a connection (the
    /// gateway's, an API test's) take turns in the process, without holding the database's
    /// write lock through a token request.
    pub async fn rotate_grant<T, E: From<Error>>(
        &self,
        connection: &str,
        rotate: impl AsyncFnOnce(Option<Grant>) -> std::result::Result<(T, Option<Grant>), E>,
    ) -> std::result::Result<T, E> {
        if self.engine() == Engine::Sqlite {
            let lock = REFRESHING
                .entry(connection.to_string())
                .or_default()
                .clone();
            let _held = lock.lock().await;
            let (answer, rotated) = rotate(self.grant(connection).await?).await?;
            if let Some(grant) = rotated {
                self.put_grant(connection, &grant).await?;
            }
            return Ok(answer);
        }
        let mut tx = self.pool().begin().await.map_err(Error::from)?;
        sqlx::query("UPDATE grants SET updated_at = updated_at WHERE connection = $1")
            .bind(connection)
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        let saved = self.read_grant(&mut *tx, connection).await?;
        let (answer, rotated) = rotate(saved).await?;
        if let Some(grant) = rotated {
            self.write_grant(&mut *tx, connection, &grant, true).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(answer)
    }

    async fn read_grant<'e>(
        &self,
        executor: impl Executor<'e, Database = Any>,
        connection: &str,
    ) -> Result<Option<Grant>> {
        let row = sqlx::query(
            "SELECT refresh_token, client_id, tenant, account, updated_at, access_token,
                 access_expires FROM grants WHERE connection = $1",
        )
        .bind(connection)
        .fetch_optional(executor)
        .await?;
        row.map(|row| self.grant_of(connection, &row)).transpose()
    }

    /// The grant of `connection` a row of `grants` holds, its token opened.
    fn grant_of(&self, connection: &str, row: &sqlx::any::AnyRow) -> Result<Grant> {
        let sealed: String = row.try_get("refresh_token")?;
        let access: Option<String> = row.try_get("access_token")?;
        let expires: Option<i64> = row.try_get("access_expires")?;
        let access = match (access, expires) {
            (Some(sealed), Some(expires)) => Some(SharedAccess {
                token: self.sealer().open(&access_place(connection), &sealed)?,
                expires,
            }),
            _ => None,
        };
        Ok(Grant {
            refresh_token: self.sealer().open(&place(connection), &sealed)?,
            client_id: row.try_get("client_id")?,
            tenant: row.try_get("tenant")?,
            account: row.try_get("account")?,
            updated_at: row.try_get("updated_at")?,
            access,
        })
    }

    /// Writes the sign-in of `connection`, replacing a saved one when `replace`: whether it
    /// was written.
    async fn write_grant<'e>(
        &self,
        executor: impl Executor<'e, Database = Any>,
        connection: &str,
        grant: &Grant,
        replace: bool,
    ) -> Result<bool> {
        let sealed = self
            .sealer()
            .seal(&place(connection), grant.refresh_token.expose());
        let access = grant.access.as_ref().map(|a| {
            self.sealer()
                .seal(&access_place(connection), a.token.expose())
        });
        let on_conflict = match replace {
            true => {
                "DO UPDATE SET refresh_token = excluded.refresh_token,
                 client_id = excluded.client_id, tenant = excluded.tenant,
                 account = excluded.account, updated_at = excluded.updated_at,
                 access_token = excluded.access_token, access_expires = excluded.access_expires"
            }
            false => "DO NOTHING",
        };
        let sql = format!(
            "INSERT INTO grants (connection, refresh_token, client_id, tenant, account, updated_at,
                 access_token, access_expires)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (connection) {on_conflict}"
        );
        // The statement is one of the two texts above, never input.
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(connection)
            .bind(sealed)
            .bind(&grant.client_id)
            .bind(&grant.tenant)
            .bind(&grant.account)
            .bind(grant.updated_at)
            .bind(access)
            .bind(grant.access.as_ref().map(|a| a.expires))
            .execute(executor)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets the sign-in of `connection` (the connection was deleted).
    pub async fn delete_grant(&self, connection: &str) -> Result<()> {
        sqlx::query("DELETE FROM grants WHERE connection = $1")
            .bind(connection)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
