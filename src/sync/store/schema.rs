//! The schema, one step per version.

/// The schema, one step per version: step `i` takes the file from version `i` to `i + 1`.
/// Add a version by appending a step; never edit a released one.
pub(super) const MIGRATIONS: &[&str] = &[
    // Version 1.
    "CREATE TABLE baseline (
        job TEXT NOT NULL, key TEXT NOT NULL, path TEXT NOT NULL, is_dir INTEGER NOT NULL,
        remote_id TEXT NOT NULL, remote_etag TEXT, remote_ctag TEXT,
        remote_size INTEGER NOT NULL, remote_hash TEXT, remote_modified INTEGER NOT NULL,
        local_size INTEGER NOT NULL, local_modified INTEGER NOT NULL, local_hash TEXT,
        PRIMARY KEY (job, key)
    ) WITHOUT ROWID;
    CREATE TABLE remote_item (
        job TEXT NOT NULL, id TEXT NOT NULL, parent_id TEXT NOT NULL, name TEXT NOT NULL,
        is_dir INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT, ctag TEXT, hash TEXT,
        modified INTEGER NOT NULL,
        PRIMARY KEY (job, id)
    ) WITHOUT ROWID;
    CREATE TABLE remote_snapshot (
        job TEXT PRIMARY KEY, drive_id TEXT NOT NULL, root_id TEXT NOT NULL,
        delta_link TEXT, full_scan_at INTEGER
    );
    CREATE TABLE run (
        id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL,
        started INTEGER NOT NULL, ended INTEGER,
        uploaded INTEGER NOT NULL DEFAULT 0, downloaded INTEGER NOT NULL DEFAULT 0,
        deleted_local INTEGER NOT NULL DEFAULT 0, deleted_remote INTEGER NOT NULL DEFAULT 0,
        conflicts INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        bytes_up INTEGER NOT NULL DEFAULT 0, bytes_down INTEGER NOT NULL DEFAULT 0,
        outcome TEXT, message TEXT
    );
    CREATE INDEX run_by_job ON run (job, id);
    CREATE TABLE problem (
        job TEXT NOT NULL, side TEXT NOT NULL CHECK (side IN ('local', 'remote')),
        path TEXT NOT NULL, reason TEXT NOT NULL,
        first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
        PRIMARY KEY (job, side, path)
    ) WITHOUT ROWID;
    CREATE TABLE lock (
        job TEXT PRIMARY KEY, owner TEXT NOT NULL,
        acquired INTEGER NOT NULL, heartbeat INTEGER NOT NULL
    );",
];
