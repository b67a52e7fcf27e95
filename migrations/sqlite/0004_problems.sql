-- Sapa store schema 0004, SQLite flavour (keep in step with migrations/postgres/0004_problems.sql):
-- which customer problem a call belongs to, so that reports can measure resolution time (the
-- first call of a problem to the disposition that marks it resolved).
--
-- A call continues the problem of the same number's previous call when that call arrived in
-- the 7 days before it and its newest disposition is not 'resolved' (a follow-up, an
-- escalation, an abandoned or unfinished call); otherwise it starts a problem of its own.
-- Set once, when the call arrives. NULL for calls stored before this migration.
ALTER TABLE calls ADD COLUMN problem_call_id TEXT;
-- When the problem's first call arrived (epoch ms), copied so reports need no join.
ALTER TABLE calls ADD COLUMN problem_started_at INTEGER;
