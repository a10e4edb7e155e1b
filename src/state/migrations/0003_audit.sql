-- spgate's state store, version 3: the transfer audit (logins, uploads, downloads, deletes,
-- renames), kept for `[audit] retention`. The event is the audit line's JSON; the columns
-- beside it are what queries filter on. Times are Unix milliseconds; `seq` (random) orders the
-- events of one millisecond, so that pages neither skip nor repeat them.
CREATE TABLE audit (
    time_ms BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (time_ms, seq);
CREATE INDEX audit_by_user ON audit (user_name, time_ms);
