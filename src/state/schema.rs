//! The store's schema, versioned: each migration is a file of portable SQL, applied once, in
//! order, in one transaction with its row in `spgate_schema`, at every start. A store whose
//! schema is newer than this binary knows is refused (a downgrade would misread it).
//! Concurrent starts (several instances on one PostgreSQL) take turns: an advisory lock on
//! PostgreSQL, the database's write lock on SQLite.

use sqlx::{Any, AnyPool, Executor, Row};

use super::{Engine, Error, Result};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "grants",
        sql: include_str!("migrations/0002_grants.sql"),
    },
    Migration {
        version: 3,
        name: "audit",
        sql: include_str!("migrations/0003_audit.sql"),
    },
    Migration {
        version: 4,
        name: "health",
        sql: include_str!("migrations/0004_health.sql"),
    },
    Migration {
        version: 5,
        name: "sync",
        sql: include_str!("migrations/0005_sync.sql"),
    },
    Migration {
        version: 6,
        name: "queue",
        sql: include_str!("migrations/0006_queue.sql"),
    },
    Migration {
        version: 7,
        name: "cluster",
        sql: include_str!("migrations/0007_cluster.sql"),
    },
    Migration {
        version: 8,
        name: "console",
        sql: include_str!("migrations/0008_console.sql"),
    },
];

/// The schema version this binary writes.
pub const VERSION: i64 = 8;

/// Any number, as long as it is spgate's own: the advisory lock migrations take on PostgreSQL.
const MIGRATION_LOCK: i64 = 0x5367_6174_6531;

/// Brings the schema to [`VERSION`]; answers the version found before.
pub(super) async fn migrate(pool: &AnyPool, engine: Engine) -> Result<i64> {
    let mut tx = pool.begin().await?;
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS spgate_schema (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await?;
    let found = applied(&mut *tx).await?;
    if found > VERSION {
        return Err(Error::Newer {
            found,
            known: VERSION,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(m.sql))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO spgate_schema (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(chrono::Utc::now().timestamp())
            .execute(&mut *tx)
            .await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "state store: schema migrated"
        );
    }
    tx.commit().await?;
    Ok(found)
}

/// The newest version applied (0 for a new store).
pub(super) async fn applied<'e>(executor: impl Executor<'e, Database = Any>) -> Result<i64> {
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM spgate_schema")
        .fetch_one(executor)
        .await?;
    Ok(row.try_get("v")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_by_one_up_to_the_version() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(VERSION));
    }
}
