-- The OAuth client registry (issue 23). grant_types, redirect_uris and
-- scopes are space-separated lists; secret_hash is the hex SHA-256 of a
-- confidential client's secret (256 random bits), NULL for a public client.
-- confidential and first_party are 0 or 1.
CREATE TABLE clients (
    client_id     VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    name          VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    confidential  BIGINT        NOT NULL,
    first_party   BIGINT        NOT NULL,
    grant_types   VARCHAR(255)  CHARACTER SET ascii NOT NULL,
    redirect_uris VARCHAR(4000) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    scopes        VARCHAR(1024) CHARACTER SET ascii NOT NULL,
    secret_hash   CHAR(64)      CHARACTER SET ascii NULL,
    created_at    BIGINT        NOT NULL,
    disabled_at   BIGINT        NULL
) ENGINE = InnoDB;
-- 1 when the session was granted to a confidential client: its refresh
-- tokens then refresh only for that client, authenticated (RFC 6749 §6).
ALTER TABLE sessions ADD COLUMN client_confidential BIGINT NOT NULL DEFAULT 0;
