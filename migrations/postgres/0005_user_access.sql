-- Sapa store schema 0005, PostgreSQL flavour (keep in step with migrations/sqlite/0005_user_access.sql):
-- an account can be disabled (an agent who left) without deleting it, so the calls,
-- dispositions and reports that name the user keep their name. A disabled user cannot log in.
-- When it was disabled (epoch ms); NULL: the account is in use.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
