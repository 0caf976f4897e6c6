-- Failed logins per account and per client address, shared by every
-- instance. A row counts the failures of its current window; blocked_until
-- (Unix ms) refuses further attempts until then.
CREATE TABLE login_throttle (
    throttle_key  TEXT    NOT NULL PRIMARY KEY,
    failures      INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,
    blocked_until INTEGER
);
