-- Mail, password reset and email verification (issue 22); the MySQL
-- migration of the same name explains each column.
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
CREATE INDEX users_email ON users (email);

CREATE TABLE account_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    purpose    TEXT    NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose);

CREATE TABLE mail_outbox (
    id              TEXT    NOT NULL PRIMARY KEY,
    kind            TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    user_id         TEXT,
    lookup          TEXT,
    recipient       TEXT,
    sealed_token    TEXT,
    ip              TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    finished_at     INTEGER,
    last_error      TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (state, next_attempt_at);
CREATE INDEX mail_outbox_user ON mail_outbox (user_id, created_at);
