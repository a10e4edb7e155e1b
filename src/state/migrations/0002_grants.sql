-- spgate's state store, version 2: the delegated sign-ins of device-code connections (before,
-- one file per connection in <state dir>/tokens/). The refresh token is sealed.
CREATE TABLE grants (
    connection TEXT PRIMARY KEY,
    refresh_token TEXT NOT NULL,
    client_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    account TEXT,
    updated_at BIGINT NOT NULL
);
