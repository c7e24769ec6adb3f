-- The gateway's ledger of accepted commands (schema "gateway"): what a command-status request
-- answers from, and what makes a retried request with the same Idempotency-Key return the first
-- answer. Domain state lives in the consumers' projections, never here.
CREATE TABLE commands (
    command_id        uuid        PRIMARY KEY,
    organization_id   text        NOT NULL,
    actor             text        NOT NULL,
    -- The member the command concerns: a member may see the status of their own commands only.
    member_id         text,
    -- The consumer that decides it; its schema holds the outcome.
    domain            text        NOT NULL,
    command_type      text        NOT NULL,
    -- The 202 body, returned again to a retry.
    response          jsonb       NOT NULL,
    idempotency_key   text,
    request_hash      bytea,
    accepted_at       timestamptz NOT NULL DEFAULT now(),
    produced_at       timestamptz,
    produce_failed_at timestamptz,
    -- The record as produced, kept until the broker has it so a retry re-sends it byte for byte
    -- (same event id: consumers apply it once).
    topic             text,
    record_key        text,
    payload           bytea,
    headers           jsonb,
    UNIQUE (organization_id, actor, idempotency_key)
);
CREATE INDEX commands_accepted_at ON commands (accepted_at);
