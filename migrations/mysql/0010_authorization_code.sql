-- The authorization code flow (issue 24).

-- Authorization codes (RFC 6749 §4.1), stored only as the hex SHA-256 of
-- the code, alive for a minute. code_challenge: the PKCE S256 challenge
-- (RFC 7636), required. redirect_uri: the one the authorization request
-- used, which the token request must repeat. used_at is set once, by the
-- conditional update that redeems the code; session_id is the session that
-- redemption opened (named in the same update), which a second redemption
-- revokes (RFC 6749 §4.1.2); replayed_at marks such a second redemption.
-- auth_time: when the user gave the password; user_epoch: the account's
-- session epoch then (a password change in between voids the code).
CREATE TABLE authorization_codes (
    token_hash     CHAR(64)      CHARACTER SET ascii NOT NULL PRIMARY KEY,
    client_id      VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    user_id        CHAR(36)      CHARACTER SET ascii NOT NULL,
    redirect_uri   VARCHAR(2000) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    scope          VARCHAR(1024) CHARACTER SET ascii NOT NULL,
    code_challenge CHAR(43)      CHARACTER SET ascii NOT NULL,
    auth_time      BIGINT        NOT NULL,
    user_epoch     BIGINT        NOT NULL,
    created_at     BIGINT        NOT NULL,
    expires_at     BIGINT        NOT NULL,
    used_at        BIGINT        NULL,
    session_id     CHAR(36)      CHARACTER SET ascii NULL,
    replayed_at    BIGINT        NULL,
    KEY authorization_codes_expires (expires_at),
    CONSTRAINT authorization_codes_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- A browser's sign-in to Gatehouse's own pages (the login page's cookie),
-- stored only as the hex SHA-256 of the cookie's value. user_epoch: the
-- account's session epoch at sign-in (a password change or reset ends it).
-- auth_time: when the password was given.
CREATE TABLE browser_sessions (
    token_hash CHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,
    user_id    CHAR(36) CHARACTER SET ascii NOT NULL,
    user_epoch BIGINT   NOT NULL,
    auth_time  BIGINT   NOT NULL,
    expires_at BIGINT   NOT NULL,
    revoked_at BIGINT   NULL,
    KEY browser_sessions_user (user_id),
    CONSTRAINT browser_sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- What a user allowed a client that is not first-party: the scopes
-- (space-separated) it may be granted without asking again.
CREATE TABLE consents (
    user_id    CHAR(36)      CHARACTER SET ascii NOT NULL,
    client_id  VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    scope      VARCHAR(1024) CHARACTER SET ascii NOT NULL,
    granted_at BIGINT        NOT NULL,
    PRIMARY KEY (user_id, client_id),
    CONSTRAINT consents_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;
