-- The OAuth client registry (issue 23); the MySQL migration of the same
-- name explains each column.
CREATE TABLE clients (
    client_id     TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    confidential  INTEGER NOT NULL,
    first_party   INTEGER NOT NULL,
    grant_types   TEXT    NOT NULL,
    redirect_uris TEXT    NOT NULL,
    scopes        TEXT    NOT NULL,
    secret_hash   TEXT,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
);
ALTER TABLE sessions ADD COLUMN client_confidential INTEGER NOT NULL DEFAULT 0;
