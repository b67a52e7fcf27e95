-- Sapa store schema, PostgreSQL flavour. Keep in step with migrations/sqlite/0001_initial.sql:
-- the two differ only where the databases must, in integer type names (BIGINT here, INTEGER
-- there) and auto-numbered keys (identity columns here, INTEGER PRIMARY KEY there).
-- All times are Unix epoch milliseconds; ids are text; enums are their snake_case names.

CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('agent', 'supervisor')),
    password_hash TEXT NOT NULL,               -- Argon2id, PHC string
    created_at    BIGINT NOT NULL
);

CREATE TABLE customers (
    number TEXT PRIMARY KEY,
    name   TEXT,
    notes  TEXT
);

CREATE TABLE calls (
    id            TEXT PRIMARY KEY,
    direction     TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    queue         TEXT NOT NULL,
    caller_number TEXT NOT NULL,
    caller_name   TEXT,
    agent         TEXT,                        -- the agent who answered
    arrived_at    BIGINT NOT NULL,
    answered_at   BIGINT,
    ended_at      BIGINT,
    end_reason    TEXT,
    wait_ms       BIGINT,
    talk_ms       BIGINT,
    hold_ms       BIGINT NOT NULL DEFAULT 0,
    csat          BIGINT CHECK (csat BETWEEN 1 AND 5)
);
-- Caller history: one number's calls, newest first.
CREATE INDEX calls_by_caller ON calls (caller_number, arrived_at, id);
-- Reports by time range.
CREATE INDEX calls_by_arrival ON calls (arrived_at);

CREATE TABLE offers (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id    TEXT NOT NULL REFERENCES calls (id),
    agent      TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    outcome    TEXT CHECK (outcome IN
        ('answered', 'ring_no_answer', 'declined', 'caller_hung_up', 'agent_logged_out'))
);
CREATE INDEX offers_by_call ON offers (call_id, started_at);
-- A call rings one agent at most once at a time.
CREATE UNIQUE INDEX offers_one_open ON offers (call_id, agent) WHERE ended_at IS NULL;

CREATE TABLE dispositions (
    request_id   TEXT PRIMARY KEY,             -- chosen by the client: makes submits idempotent
    call_id      TEXT NOT NULL REFERENCES calls (id),
    agent        TEXT NOT NULL,
    code         TEXT NOT NULL,
    resolution   TEXT NOT NULL CHECK (resolution IN ('resolved', 'escalated', 'follow_up')),
    notes        TEXT NOT NULL,
    follow_up_at BIGINT,
    submitted_at BIGINT NOT NULL,
    UNIQUE (call_id, agent),
    CHECK (resolution <> 'follow_up' OR follow_up_at IS NOT NULL)
);
-- A call's newest disposition, without a sort.
CREATE INDEX dispositions_by_call ON dispositions (call_id, submitted_at, request_id);

CREATE TABLE agent_state_log (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent  TEXT NOT NULL,
    state  TEXT NOT NULL,
    reason TEXT,
    at     BIGINT NOT NULL
);
CREATE INDEX agent_state_log_by_agent ON agent_state_log (agent, at);

CREATE TABLE monitor_sessions (
    id         TEXT PRIMARY KEY,
    supervisor TEXT NOT NULL,
    agent      TEXT NOT NULL,
    call_id    TEXT NOT NULL REFERENCES calls (id),
    mode       TEXT NOT NULL CHECK (mode IN ('listen', 'whisper', 'barge')),
    started_at BIGINT NOT NULL,
    ended_at   BIGINT
);

CREATE TABLE monitor_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES monitor_sessions (id),
    kind       TEXT NOT NULL CHECK (kind IN ('started', 'mode_changed', 'ended')),
    mode       TEXT CHECK (mode IN ('listen', 'whisper', 'barge')),
    at         BIGINT NOT NULL
);
CREATE INDEX monitor_events_by_session ON monitor_events (session_id, at);

CREATE TABLE call_legs (
    id         TEXT PRIMARY KEY,
    call_id    TEXT NOT NULL REFERENCES calls (id),
    party      TEXT NOT NULL,
    role       TEXT NOT NULL,
    why        TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX call_legs_by_call ON call_legs (call_id, started_at);
