-- spgate's state store, version 7: several instances on one store.

-- Every `spgate serve` on the store, by its state directory's id: a heartbeat every few
-- seconds with what it serves, so that `spgate cluster status` shows the cluster. A row whose
-- heartbeat is old is an instance gone; a stopped instance says so.
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    version TEXT NOT NULL,
    admin TEXT,
    started BIGINT NOT NULL,
    heartbeat BIGINT NOT NULL,
    stopped BIGINT,
    sessions BIGINT NOT NULL,
    uploads BIGINT NOT NULL
);

-- The folder each sync job's local side was first synced from: a random id, also written into
-- a marker file in that folder. An instance whose folder does not hold the marker (or holds
-- another one) is not looking at the same folder, and refuses to run the job.
CREATE TABLE sync_folders (
    job TEXT PRIMARY KEY,
    folder_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The access token that came with a device-code connection's last refresh (sealed), shared
-- by every instance until it is about to expire: one refresh serves them all.
ALTER TABLE grants ADD COLUMN access_token TEXT;
ALTER TABLE grants ADD COLUMN access_expires BIGINT;
