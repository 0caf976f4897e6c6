-- The Ed25519 keys access tokens are signed with, shared by every instance.
-- private_key is sealed (XChaCha20-Poly1305) with a key-encryption key that
-- is never stored here; kek_id says which. generation orders the keys and
-- decides races between rotations.
CREATE TABLE signing_keys (
    generation   BIGINT       NOT NULL PRIMARY KEY,
    kid          VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    algorithm    VARCHAR(16)  CHARACTER SET ascii NOT NULL,
    private_key  VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    kek_id       VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at   BIGINT       NOT NULL,
    activates_at BIGINT       NOT NULL,
    UNIQUE KEY signing_keys_kid (kid)
) ENGINE = InnoDB;

-- What an event was about when it is not a user or session (e.g. a key id).
ALTER TABLE audit_events ADD COLUMN detail VARCHAR(255) CHARACTER SET ascii NULL;
