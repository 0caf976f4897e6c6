-- When the session's user authenticated (RFC 9068 `auth_time`), kept by
-- every refresh. A login authenticates when it opens its session; a session
-- from an authorization code was authenticated when its browser signed in
-- to the sign-in page, which may be earlier. NULL (sessions from before
-- this migration): their creation.
ALTER TABLE sessions ADD COLUMN auth_time BIGINT NULL;
