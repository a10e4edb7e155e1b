-- spgate's state store, version 4: alerts and failed-login locks (before, alerts.jsonl and one
-- file per connection in <state dir>/connections/, and locks in each process's memory).

-- Every alert, raised and later cleared, kept as history. `source` is what it is about: a
-- connection's name (an open alert disables that connection), `sync:JOB`, `queue:ID`. At most
-- one alert per source is open (not cleared) at a time, whichever instance raises it.
-- `fingerprint` is the configuration a connection was disabled under: a connection whose
-- configuration changed since starts enabled again. Times are Unix milliseconds.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    action TEXT NOT NULL,
    fingerprint TEXT,
    raised_ms BIGINT NOT NULL,
    cleared_ms BIGINT,
    cleared_why TEXT
);
CREATE UNIQUE INDEX alerts_open ON alerts (source) WHERE cleared_ms IS NULL;
CREATE INDEX alerts_by_time ON alerts (raised_ms);

-- Failed logins in a row per user and address group (an IPv4 address, an IPv6 /64).
CREATE TABLE lockouts (
    user_name TEXT NOT NULL,
    addresses TEXT NOT NULL,
    failures BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    PRIMARY KEY (user_name, addresses)
);

-- The second change counter: bumped by every alert raised or cleared, so that running
-- instances put a connection disabled or enabled elsewhere in force.
INSERT INTO spgate_changes (id, counter) VALUES (2, 0);
