-- When the session's user authenticated; the MySQL migration of the same
-- name explains it.
ALTER TABLE sessions ADD COLUMN auth_time INTEGER;
