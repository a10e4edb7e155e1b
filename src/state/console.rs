//! The web console's accounts and sign-ins: administrators (name and argon2id hash), their
//! signed-in sessions (keyed by the SHA-256 of the cookie's value, so a copy of the store opens
//! no session) and the "Sign in with Microsoft" flows under way (the PKCE verifier sealed).
//! Every instance on the store shares them: a browser may reach any of them.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store};
use crate::config::Secret;

/// One administrator, without the hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Admin {
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A signed-in console session.
#[derive(Debug, Clone)]
pub struct AdminSession {
    /// The SHA-256 (hex) of the cookie's value.
    pub id: String,
    pub admin: String,
    /// The token every form of this session carries.
    pub csrf: String,
    pub address: String,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub seen_ms: i64,
}

/// A "Sign in with Microsoft" under way.
#[derive(Debug, Clone)]
pub struct Flow {
    pub session_id: String,
    /// The SHA-256 (hex) of the cookie the browser that started it holds.
    pub browser: String,
    pub connection: String,
    pub verifier: Secret,
    pub redirect_uri: String,
    pub created_ms: i64,
}

pub(super) fn verifier_place(state: &str) -> String {
    format!("console_flows/{state}/verifier")
}

fn session(row: &AnyRow) -> Result<AdminSession> {
    Ok(AdminSession {
        id: row.try_get("id")?,
        admin: row.try_get("admin")?,
        csrf: row.try_get("csrf")?,
        address: row.try_get("address")?,
        created_ms: row.try_get("created_ms")?,
        seen_ms: row.try_get("seen_ms")?,
    })
}

impl Store {
    /// Every administrator, by name.
    pub async fn admins(&self) -> Result<Vec<Admin>> {
        let rows = sqlx::query("SELECT name, created_at, updated_at FROM admins ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Admin {
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The password hash of administrator `name`, if there is one.
    pub async fn admin_hash(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT password_hash FROM admins WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("password_hash")).transpose()?)
    }

    /// Adds administrator `name`, or gives it a new hash: true when it was added. A new hash
    /// ends the administrator's sessions.
    pub async fn put_admin(&self, name: &str, password_hash: &str) -> Result<bool> {
        let now = chrono::Utc::now().timestamp();
        let mut tx = self.pool().begin().await?;
        let updated =
            sqlx::query("UPDATE admins SET password_hash = $2, updated_at = $3 WHERE name = $1")
                .bind(name)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if updated == 0 {
            sqlx::query(
                "INSERT INTO admins (name, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $3)",
            )
            .bind(name)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM admin_sessions WHERE admin = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(updated == 0)
    }

    /// Removes administrator `name` and ends its sessions: false when there was none.
    pub async fn delete_admin(&self, name: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let gone = sqlx::query("DELETE FROM admins WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM admin_sessions WHERE admin = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// Records a new signed-in session, and forgets sessions last seen before `before_ms`
    /// (ended by their idle time).
    pub async fn add_admin_session(&self, s: &AdminSession, before_ms: i64) -> Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE seen_ms < $1")
            .bind(before_ms)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO admin_sessions (id, admin, csrf, address, created_ms, seen_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.id)
        .bind(&s.admin)
        .bind(&s.csrf)
        .bind(&s.address)
        .bind(s.created_ms)
        .bind(s.seen_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session `id` (the SHA-256 of its cookie), if it is still open: seen at or after
    /// `idle_since_ms` and created at or after `created_since_ms`.
    pub async fn admin_session(
        &self,
        id: &str,
        idle_since_ms: i64,
        created_since_ms: i64,
    ) -> Result<Option<AdminSession>> {
        let row = sqlx::query(
            "SELECT id, admin, csrf, address, created_ms, seen_ms FROM admin_sessions
             WHERE id = $1 AND seen_ms >= $2 AND created_ms >= $3",
        )
        .bind(id)
        .bind(idle_since_ms)
        .bind(created_since_ms)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(session).transpose()
    }

    /// Marks session `id` as seen at `now_ms`.
    pub async fn touch_admin_session(&self, id: &str, now_ms: i64) -> Result<()> {
        sqlx::query("UPDATE admin_sessions SET seen_ms = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends session `id` (signing out), and forgets sessions last seen before `before_ms`.
    pub async fn end_admin_session(&self, id: &str, before_ms: i64) -> Result<()> {
        sqlx::query("DELETE FROM admin_sessions WHERE id = $1 OR seen_ms < $2")
            .bind(id)
            .bind(before_ms)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records a sign-in under way, keyed by its OAuth `state`; flows older than `before_ms`
    /// are forgotten.
    pub async fn add_flow(&self, state: &str, flow: &Flow, before_ms: i64) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM console_flows WHERE created_ms < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_flows (state, session_id, browser, connection, verifier, redirect_uri, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(state)
        .bind(&flow.session_id)
        .bind(&flow.browser)
        .bind(&flow.connection)
        .bind(self.sealer().seal(&verifier_place(state), flow.verifier.expose()))
        .bind(&flow.redirect_uri)
        .bind(flow.created_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the sign-in under way whose OAuth state is `state`: it can be taken once.
    pub async fn take_flow(&self, state: &str) -> Result<Option<Flow>> {
        let row = sqlx::query(
            "DELETE FROM console_flows WHERE state = $1
             RETURNING session_id, browser, connection, verifier, redirect_uri, created_ms",
        )
        .bind(state)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed: String = row.try_get("verifier")?;
        Ok(Some(Flow {
            session_id: row.try_get("session_id")?,
            browser: row.try_get("browser")?,
            connection: row.try_get("connection")?,
            verifier: self.sealer().open(&verifier_place(state), &sealed)?,
            redirect_uri: row.try_get("redirect_uri")?,
            created_ms: row.try_get("created_ms")?,
        }))
    }
}
