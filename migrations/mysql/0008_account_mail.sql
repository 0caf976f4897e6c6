-- Mail, password reset and email verification (issue 22).
-- When the account's current address was proven (a verification link, or a
-- password reset, which proves the mailbox); NULL: not proven.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT NULL;
-- Password reset by address looks accounts up by it.
CREATE INDEX users_email ON users (email);

-- Single-use tokens mailed to a user, stored only as the hex SHA-256 of the
-- token. purpose: password_reset, email_verification or email_change;
-- email: the address the token proves (for email_change, the new one).
-- used_at is set once, by the conditional update that consumes the token,
-- or when something retires it (a password change retires resets).
CREATE TABLE account_tokens (
    token_hash CHAR(64)     CHARACTER SET ascii NOT NULL PRIMARY KEY,
    purpose    VARCHAR(32)  CHARACTER SET ascii NOT NULL,
    user_id    CHAR(36)     CHARACTER SET ascii NOT NULL,
    email      VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    created_at BIGINT       NOT NULL,
    expires_at BIGINT       NOT NULL,
    used_at    BIGINT       NULL,
    KEY account_tokens_user (user_id, purpose),
    CONSTRAINT account_tokens_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB;

-- The transactional outbox: every mail is a row written with the change that
-- asks for it, then sent by whichever instance claims it.
-- state: requested (a password reset naming a username or address, not yet
-- looked up: the request path does the same work for every account),
-- queued (to send; due at next_attempt_at), sent, failed (the server
-- refused it for good, or it could no longer be useful), dropped (no such
-- account, or past the account's hourly allowance), resolved (a request
-- turned into the queued mails of its accounts).
-- lease_owner/lease_until: the instance sending it, until when; a crashed
-- sender's lease runs out and another sends it.
-- sealed_token: the link's token, sealed with the key-encryption key and
-- bound to the row's id, from the first attempt until the mail is sent.
CREATE TABLE mail_outbox (
    id              CHAR(36)     CHARACTER SET ascii NOT NULL PRIMARY KEY,
    kind            VARCHAR(32)  CHARACTER SET ascii NOT NULL,
    state           VARCHAR(16)  CHARACTER SET ascii NOT NULL,
    user_id         CHAR(36)     CHARACTER SET ascii NULL,
    lookup          VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    recipient       VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    sealed_token    VARCHAR(255) CHARACTER SET ascii NULL,
    ip              VARCHAR(64)  CHARACTER SET ascii NULL,
    attempts        INT          NOT NULL DEFAULT 0,
    created_at      BIGINT       NOT NULL,
    next_attempt_at BIGINT       NOT NULL,
    lease_owner     CHAR(36)     CHARACTER SET ascii NULL,
    lease_until     BIGINT       NULL,
    finished_at     BIGINT       NULL,
    last_error      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    KEY mail_outbox_due (state, next_attempt_at),
    KEY mail_outbox_user (user_id, created_at)
) ENGINE = InnoDB;
