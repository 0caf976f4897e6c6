-- Usernames are unique case-insensitively: username_key is the NFKC,
-- lower-cased form, and carries the unique index. (If two existing names
-- differ only in case, this migration fails and names both: rename one.)
ALTER TABLE users ADD COLUMN username_key TEXT;
UPDATE users SET username_key = lower(username);
CREATE UNIQUE INDEX users_username_key ON users (username_key);
