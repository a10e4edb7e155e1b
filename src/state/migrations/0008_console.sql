-- spgate's state store, version 8: the web console.

-- The console's administrators: a name and an argon2id password hash (`spgate admins add`).
CREATE TABLE admins (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Signed-in console sessions, shared by every instance: keyed by the SHA-256 of the cookie's
-- value (the value itself is never stored), with the session's CSRF token.
CREATE TABLE admin_sessions (
    id TEXT PRIMARY KEY,
    admin TEXT NOT NULL,
    csrf TEXT NOT NULL,
    address TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    seen_ms BIGINT NOT NULL
);

-- "Sign in with Microsoft" under way: the OAuth state sent to the authorize endpoint, the
-- console session that started it, the SHA-256 of the cookie given to the browser that
-- started it, the connection it is for and the PKCE verifier (sealed). The browser may come
-- back to another instance.
CREATE TABLE console_flows (
    state TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    browser TEXT NOT NULL,
    connection TEXT NOT NULL,
    verifier TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
