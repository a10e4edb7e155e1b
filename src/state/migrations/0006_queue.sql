-- spgate's state store, version 6: the upload queue (before, <state dir>/queue/queue.db). Each
-- row is a file spooled under one state directory (`owner`: that directory's queue id), on its
-- way to SharePoint; only the instance holding that directory uploads it. The upload session's
-- URL is pre-authenticated: it is sealed. Times are RFC 3339 text.
CREATE TABLE upload_queue (
    owner TEXT NOT NULL,
    id BIGINT NOT NULL,
    connection TEXT NOT NULL,
    path TEXT NOT NULL,
    target TEXT,
    size BIGINT NOT NULL,
    modified TEXT,
    replace_existing BIGINT NOT NULL,
    file TEXT NOT NULL,
    upload_url TEXT,
    uploaded BIGINT NOT NULL,
    failed TEXT,
    attempts BIGINT NOT NULL,
    queued_at TEXT NOT NULL,
    origin TEXT NOT NULL,
    PRIMARY KEY (owner, id)
);

-- The third change counter: bumped when another process (`spgate queue retry|discard`)
-- changes queued uploads, so that the server holding them takes the change up.
INSERT INTO spgate_changes (id, counter) VALUES (3, 0);
