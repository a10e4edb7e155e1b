-- spgate's state store, version 1. Portable SQL: the same text runs on SQLite and PostgreSQL.
-- Times are Unix seconds (BIGINT); records are the configuration's own JSON; secrets are sealed
-- (see src/state/seal.rs) and never stored in clear.

-- One-row facts about the store itself (the sealed key check).
CREATE TABLE spgate_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Users, connections and sync jobs: the record as the configuration file would declare it
-- (JSON), its secret sealed apart, who manages it (NULL: the API and the CLI; otherwise the
-- configuration file that declares it) and a revision bumped by every change.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    managed_by TEXT,
    revision BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE connections (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    secret TEXT,
    managed_by TEXT,
    revision BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE syncs (
    name TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    managed_by TEXT,
    revision BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The SSH host keys: the public key in OpenSSH form, the private key sealed.
CREATE TABLE host_keys (
    algorithm TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Bumped by every change to users, connections or sync jobs, in the change's transaction:
-- running instances poll it to put in force what the CLI or another instance changed.
CREATE TABLE spgate_changes (
    id INTEGER PRIMARY KEY,
    counter BIGINT NOT NULL
);
INSERT INTO spgate_changes (id, counter) VALUES (1, 0);
