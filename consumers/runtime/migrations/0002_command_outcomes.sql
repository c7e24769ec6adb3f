-- What became of each command this consumer handled, written in the batch's transaction: the
-- gateway's command status reads it (through the read-only role) and is woken by
-- NOTIFY studyspot_command_outcomes with the command ids.
CREATE TABLE command_outcomes (
    command_id      text        PRIMARY KEY,
    command_type    text        NOT NULL,
    organization_id text        NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('applied', 'rejected', 'dead_lettered')),
    code            text,
    reason          text,
    -- Ids of the follow-on events the command caused.
    events          text[]      NOT NULL DEFAULT '{}',
    decided_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX command_outcomes_decided_at ON command_outcomes (decided_at);
