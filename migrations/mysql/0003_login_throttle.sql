-- Failed logins per account and per client address, shared by every
-- instance. A row counts the failures of its current window; blocked_until
-- (Unix ms) refuses further attempts until then.
CREATE TABLE login_throttle (
    throttle_key  VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    failures      INT          NOT NULL,
    window_start  BIGINT       NOT NULL,
    blocked_until BIGINT       NULL
) ENGINE = InnoDB;
