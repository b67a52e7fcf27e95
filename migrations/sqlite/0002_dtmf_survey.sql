-- Sapa store schema 0002, SQLite flavour (keep in step with migrations/postgres/0002_dtmf_survey.sql):
-- what the call record keeps of the queue-entry menu, the post-call survey, hold and mute, and
-- the first response time. Metrics read these columns (docs/architecture.md, "Metrics seeds").

-- How often the caller was put on hold (hold_ms, from 0001, is the total time).
ALTER TABLE calls ADD COLUMN hold_count INTEGER NOT NULL DEFAULT 0;
-- Total time the agent's microphone was muted during the call.
ALTER TABLE calls ADD COLUMN mute_ms INTEGER NOT NULL DEFAULT 0;
-- First offer (an agent's phone starts ringing) to answer; NULL for calls never answered.
ALTER TABLE calls ADD COLUMN first_response_ms INTEGER;
-- The queue-entry menu the caller went through, and the key that chose the queue
-- ('1', '#', ... or 'timeout' when the default queue was taken).
ALTER TABLE calls ADD COLUMN menu TEXT;
ALTER TABLE calls ADD COLUMN menu_choice TEXT;
-- How the post-call survey ended; the score itself is csat (from 0001). NULL: not asked.
ALTER TABLE calls ADD COLUMN survey TEXT CHECK (survey IN ('answered', 'invalid', 'no_answer'));
