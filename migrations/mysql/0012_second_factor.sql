-- A second factor: TOTP (RFC 6238) with recovery codes (issue 26).

-- The account's confirmed TOTP secret, sealed with the key-encryption key
-- (bound to the user's id) and the id of that key; mfa_enabled_at: when it
-- was confirmed (logins need a second factor while it is set);
-- totp_last_step: the last 30-second step whose code was accepted, moved
-- on only by a conditional update, so a code is accepted once per account.
ALTER TABLE users
    ADD COLUMN totp_sealed    VARCHAR(255) CHARACTER SET ascii NULL,
    ADD COLUMN totp_kek_id    VARCHAR(64)  CHARACTER SET ascii NULL,
    ADD COLUMN mfa_enabled_at BIGINT       NULL,
    ADD COLUMN totp_last_step BIGINT       NULL;

-- An enrolment started and not yet confirmed: its sealed secret. A new
-- start replaces it; confirming moves it into users.
CREATE TABLE totp_enrolments (
    user_id    CHAR(36)     CHARACTER SET ascii NOT NULL PRIMARY KEY,
    sealed     VARCHAR(255) CHARACTER SET ascii NOT NULL,
    kek_id     VARCHAR(64)  CHARACTER SET ascii NOT NULL,
    created_at BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    CONSTRAINT totp_enrolments_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- Recovery codes, as the hex SHA-256 of their normalized form; used_at is
-- set once, by a conditional update.
CREATE TABLE mfa_recovery_codes (
    user_id    CHAR(36) CHARACTER SET ascii NOT NULL,
    code_hash  CHAR(64) CHARACTER SET ascii NOT NULL,
    created_at BIGINT   NOT NULL,
    used_at    BIGINT   NULL,
    PRIMARY KEY (user_id, code_hash),
    CONSTRAINT mfa_recovery_codes_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- A password step that needs a second factor (the `mfa_token`), stored
-- only as the hex SHA-256 of the token: for whom, from which client, for
-- which scope, when the password was given (auth_time) and the account's
-- session epoch then (a password change voids it). failures: wrong codes
-- given with it (a few are allowed); used_at is set once, when a code is
-- accepted.
CREATE TABLE mfa_challenges (
    token_hash          CHAR(64)      CHARACTER SET ascii NOT NULL PRIMARY KEY,
    user_id             CHAR(36)      CHARACTER SET ascii NOT NULL,
    client_id           VARCHAR(255)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    client_confidential BIGINT        NOT NULL,
    scope               VARCHAR(1024) CHARACTER SET ascii NOT NULL,
    auth_time           BIGINT        NOT NULL,
    user_epoch          BIGINT        NOT NULL,
    created_at          BIGINT        NOT NULL,
    expires_at          BIGINT        NOT NULL,
    failures            BIGINT        NOT NULL DEFAULT 0,
    used_at             BIGINT        NULL,
    KEY mfa_challenges_expires (expires_at),
    CONSTRAINT mfa_challenges_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- How the user authenticated (RFC 8176 amr values, space-separated) for the
-- sign-in page's browser sessions and the codes they hand out, carried to
-- the session a code opens.
ALTER TABLE browser_sessions ADD COLUMN amr VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT 'pwd';
ALTER TABLE authorization_codes ADD COLUMN amr VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT 'pwd';
