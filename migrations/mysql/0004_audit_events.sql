-- What happened to accounts and sessions, for investigations. Never a
-- password or a token. No foreign keys: the trail outlives what it is about.
CREATE TABLE audit_events (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    occurred_at BIGINT       NOT NULL,
    event       VARCHAR(64)  CHARACTER SET ascii NOT NULL,
    user_id     CHAR(36)     CHARACTER SET ascii NULL,
    session_id  CHAR(36)     CHARACTER SET ascii NULL,
    ip          VARCHAR(64)  CHARACTER SET ascii NULL,
    user_agent  VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    KEY audit_events_user (user_id, occurred_at)
) ENGINE = InnoDB;
