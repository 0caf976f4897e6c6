-- A disabled user cannot log in; disabling also revokes every session.
ALTER TABLE users ADD COLUMN disabled_at BIGINT NULL;
