-- Transfers and callbacks (issue 6, part 2), PostgreSQL flavour. Keep in step with
-- migrations/sqlite/0003_transfers_callbacks.sql (BIGINT here, INTEGER there).

-- The notes the previous agent handed over with the call when this leg began (a transfer,
-- an escalation), so the record shows what travelled with the caller.
ALTER TABLE call_legs ADD COLUMN notes TEXT;

-- A promise to call a customer back: made by a disposition with resolution follow_up.
CREATE TABLE callbacks (
    id             TEXT PRIMARY KEY,
    call_id        TEXT NOT NULL REFERENCES calls (id),  -- the call whose wrap-up promised it
    number         TEXT NOT NULL,                        -- whom to call
    name           TEXT,
    queue          TEXT NOT NULL,                        -- where it goes if its agent is away
    agent          TEXT,                                 -- who promised it (offered to first)
    notes          TEXT NOT NULL DEFAULT '',
    due_at         BIGINT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'dialing', 'done', 'failed')),
    created_at     BIGINT NOT NULL,
    dialed_call_id TEXT,                                 -- the outbound call that carried it out
    completed_at   BIGINT
);
-- The scheduler: pending callbacks by due time.
CREATE INDEX callbacks_due ON callbacks (status, due_at);
-- An agent's pending callbacks.
CREATE INDEX callbacks_by_agent ON callbacks (agent, status, due_at);
