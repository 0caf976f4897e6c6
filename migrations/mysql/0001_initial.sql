-- Times are Unix milliseconds (UTC). Refresh tokens are stored only as the
-- hex SHA-256 of the token; the plaintext never reaches the database.
-- Usernames compare byte for byte (utf8mb4_bin), exactly as on SQLite.
CREATE TABLE users (
    id            CHAR(36)     CHARACTER SET ascii NOT NULL PRIMARY KEY,
    username      VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    email         VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    password_hash VARCHAR(255) CHARACTER SET ascii NOT NULL,
    created_at    BIGINT       NOT NULL,
    UNIQUE KEY users_username (username)
) ENGINE = InnoDB;

-- A session is one refresh-token family: one login and every rotation after it.
CREATE TABLE sessions (
    id           CHAR(36)     CHARACTER SET ascii NOT NULL PRIMARY KEY,
    user_id      CHAR(36)     CHARACTER SET ascii NOT NULL,
    client_id    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    scope        VARCHAR(255) CHARACTER SET ascii NOT NULL,
    user_agent   VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    ip           VARCHAR(64)  CHARACTER SET ascii NULL,
    created_at   BIGINT       NOT NULL,
    last_used_at BIGINT       NOT NULL,
    expires_at   BIGINT       NOT NULL,
    revoked_at   BIGINT       NULL,
    KEY sessions_user_id (user_id),
    CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- rotated_at is written once, by the rotation that retires the token, and by
-- nothing else: the reuse grace window is measured from it.
CREATE TABLE refresh_tokens (
    token_hash CHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
    session_id CHAR(36) CHARACTER SET ascii NOT NULL,
    created_at BIGINT   NOT NULL,
    rotated_at BIGINT   NULL,
    KEY refresh_tokens_session_id (session_id),
    CONSTRAINT refresh_tokens_session_fk FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- Server-side secrets that every instance must share (for example the key
-- that derives a refresh token's successor). Created once, never updated.
CREATE TABLE server_secrets (
    name       VARCHAR(64)  CHARACTER SET ascii NOT NULL PRIMARY KEY,
    secret     VARCHAR(255) CHARACTER SET ascii NOT NULL,
    created_at BIGINT       NOT NULL
) ENGINE = InnoDB;
