-- spgate's state store, version 5: the sync jobs' state (before, <state dir>/sync.db): per job
-- the baseline row of every synced path, the remote snapshot with its delta link, the run
-- history, the open problems and the run lock. Times are Unix seconds.

-- One row per synced path (`key`: the path's comparison key), as both sides were when it was
-- last synced.
CREATE TABLE sync_baseline (
    job TEXT NOT NULL,
    key TEXT NOT NULL,
    path TEXT NOT NULL,
    is_dir BIGINT NOT NULL,
    remote_id TEXT NOT NULL,
    remote_etag TEXT,
    remote_ctag TEXT,
    remote_size BIGINT NOT NULL,
    remote_hash TEXT,
    remote_modified BIGINT NOT NULL,
    local_size BIGINT NOT NULL,
    local_modified BIGINT NOT NULL,
    local_hash TEXT,
    PRIMARY KEY (job, key)
);

-- The job's SharePoint folder as last reported, item by item, and where to continue from.
CREATE TABLE sync_remote_items (
    job TEXT NOT NULL,
    id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    is_dir BIGINT NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT,
    ctag TEXT,
    hash TEXT,
    modified BIGINT NOT NULL,
    PRIMARY KEY (job, id)
);

CREATE TABLE sync_snapshots (
    job TEXT PRIMARY KEY,
    drive_id TEXT NOT NULL,
    root_id TEXT NOT NULL,
    delta_link TEXT,
    full_scan_at BIGINT
);

-- The run history: `id` counts each job's runs from 1 (runs of one job take turns under its
-- lock, so no two get the same number).
CREATE TABLE sync_runs (
    job TEXT NOT NULL,
    id BIGINT NOT NULL,
    started BIGINT NOT NULL,
    ended BIGINT,
    uploaded BIGINT NOT NULL DEFAULT 0,
    downloaded BIGINT NOT NULL DEFAULT 0,
    deleted_local BIGINT NOT NULL DEFAULT 0,
    deleted_remote BIGINT NOT NULL DEFAULT 0,
    conflicts BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    bytes_up BIGINT NOT NULL DEFAULT 0,
    bytes_down BIGINT NOT NULL DEFAULT 0,
    outcome TEXT,
    message TEXT,
    PRIMARY KEY (job, id)
);

-- Paths a run skipped, repeated each run until fixed.
CREATE TABLE sync_problems (
    job TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('local', 'remote')),
    path TEXT NOT NULL,
    reason TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (job, side, path)
);

-- The run lock: one run per job at a time, with its owner and heartbeat.
CREATE TABLE sync_locks (
    job TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    acquired BIGINT NOT NULL,
    heartbeat BIGINT NOT NULL
);
