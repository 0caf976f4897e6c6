-- Usernames are unique case-insensitively: username_key is the NFKC,
-- lower-cased form, and carries the unique index. (If two existing names
-- differ only in case, this migration fails and names both: rename one.)
ALTER TABLE users ADD COLUMN username_key VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL;
UPDATE users SET username_key = LOWER(username);
ALTER TABLE users MODIFY username_key VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    ADD UNIQUE KEY users_username_key (username_key);
