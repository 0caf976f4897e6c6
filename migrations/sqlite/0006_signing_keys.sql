-- The Ed25519 keys access tokens are signed with, shared by every instance.
-- private_key is sealed (XChaCha20-Poly1305) with a key-encryption key that
-- is never stored here; kek_id says which. generation orders the keys and
-- decides races between rotations.
CREATE TABLE signing_keys (
    generation   INTEGER NOT NULL PRIMARY KEY,
    kid          TEXT    NOT NULL UNIQUE,
    algorithm    TEXT    NOT NULL,
    private_key  TEXT    NOT NULL,
    kek_id       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    activates_at INTEGER NOT NULL
);

-- What an event was about when it is not a user or session (e.g. a key id).
ALTER TABLE audit_events ADD COLUMN detail TEXT;
