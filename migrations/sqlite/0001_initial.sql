-- Times are Unix milliseconds (UTC). Refresh tokens are stored only as the
-- hex SHA-256 of the token; the plaintext never reaches the database.
CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

-- A session is one refresh-token family: one login and every rotation after it.
CREATE TABLE sessions (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id    TEXT,
    scope        TEXT    NOT NULL,
    user_agent   TEXT,
    ip           TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- rotated_at is written once, by the rotation that retires the token, and by
-- nothing else: the reuse grace window is measured from it.
CREATE TABLE refresh_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    rotated_at INTEGER
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

-- Server-side secrets that every instance must share (for example the key
-- that derives a refresh token's successor). Created once, never updated.
CREATE TABLE server_secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    secret     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
