-- What happened to accounts and sessions, for investigations. Never a
-- password or a token. No foreign keys: the trail outlives what it is about.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at INTEGER NOT NULL,
    event       TEXT    NOT NULL,
    user_id     TEXT,
    session_id  TEXT,
    ip          TEXT,
    user_agent  TEXT
);
CREATE INDEX audit_events_user ON audit_events (user_id, occurred_at);
