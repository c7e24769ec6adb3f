-- Payments through providers, refunds, stored payment methods, invoices numbered per
-- organization without gaps, and the provider calls billing's worker makes.
ALTER TABLE payments
    ADD COLUMN invoice_id           text,
    ADD COLUMN payment_method_id    text,
    ADD COLUMN attempts             integer NOT NULL DEFAULT 0,
    -- The provider call whose answer the payment waits for (the ProcessPayment command's id).
    ADD COLUMN pending_call_id      text,
    ADD COLUMN connector            text,
    ADD COLUMN provider_payment_id  text,
    ADD COLUMN gateway_fee_minor    bigint  NOT NULL DEFAULT 0 CHECK (gateway_fee_minor >= 0),
    ADD COLUMN processing_fee_minor bigint  NOT NULL DEFAULT 0 CHECK (processing_fee_minor >= 0),
    ADD COLUMN refunded_minor       bigint  NOT NULL DEFAULT 0,
    -- Refunds accepted but not yet answered by the provider.
    ADD COLUMN reserved_minor       bigint  NOT NULL DEFAULT 0,
    ADD COLUMN failure_code         text,
    ADD COLUMN failure_message      text,
    ADD COLUMN action_kind          text,
    ADD COLUMN action_url           text,
    ADD COLUMN succeeded_at         timestamptz,
    ADD COLUMN failed_at            timestamptz,
    ADD CONSTRAINT payments_status CHECK (status IN
        ('created', 'processing', 'requires_action', 'succeeded', 'failed', 'partially_refunded', 'refunded')),
    ADD CONSTRAINT payments_refunds_within_amount CHECK
        (refunded_minor >= 0 AND reserved_minor >= 0 AND refunded_minor + reserved_minor <= amount_minor);
CREATE INDEX payments_succeeded ON payments (organization_id, succeeded_at) WHERE succeeded_at IS NOT NULL;
CREATE INDEX payments_failed ON payments (organization_id, failed_at) WHERE failed_at IS NOT NULL;

CREATE TABLE refunds (
    refund_id          text        PRIMARY KEY,
    organization_id    text        NOT NULL,
    payment_id         text        NOT NULL REFERENCES payments,
    member_id          text        NOT NULL,
    amount_minor       bigint      NOT NULL CHECK (amount_minor > 0),
    currency           char(3)     NOT NULL,
    status             text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    reason             text,
    provider_refund_id text,
    failure_code       text,
    failure_message    text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX refunds_by_payment ON refunds (payment_id);
CREATE INDEX refunds_by_organization ON refunds (organization_id, created_at);

CREATE TABLE payment_methods (
    payment_method_id text        PRIMARY KEY,
    organization_id   text        NOT NULL,
    member_id         text        NOT NULL,
    method            text        NOT NULL,
    provider_token    text,
    label             text,
    is_default        boolean     NOT NULL,
    created_at        timestamptz NOT NULL
);
CREATE INDEX payment_methods_by_member ON payment_methods (organization_id, member_id, created_at);

CREATE TABLE invoices (
    invoice_id        text        PRIMARY KEY,
    organization_id   text        NOT NULL,
    member_id         text        NOT NULL,
    -- Set when finalized; per organization, consecutive, never reused.
    number            text,
    currency          char(3)     NOT NULL,
    subtotal_minor    bigint      NOT NULL,
    tax_minor         bigint      NOT NULL,
    total_minor       bigint      NOT NULL,
    amount_paid_minor bigint      NOT NULL DEFAULT 0,
    status            text        NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    due_at            timestamptz NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    issued_at         timestamptz,
    paid_at           timestamptz,
    UNIQUE (organization_id, number)
);
CREATE INDEX invoices_by_member ON invoices (organization_id, member_id, created_at);

CREATE TABLE invoice_lines (
    invoice_id        text    NOT NULL REFERENCES invoices,
    line_no           integer NOT NULL,
    description       text    NOT NULL,
    quantity          bigint  NOT NULL,
    unit_amount_minor bigint  NOT NULL,
    amount_minor      bigint  NOT NULL,
    tax_rate_bps      integer NOT NULL,
    tax_name          text,
    tax_minor         bigint  NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);

CREATE TABLE invoice_counters (
    organization_id text   PRIMARY KEY,
    last_number     bigint NOT NULL
);

-- Calls to payment providers, written in the batch that decided them and worked off by the
-- billing process's provider worker, which reports each answer back as a command.
CREATE TABLE provider_calls (
    call_id             text        PRIMARY KEY,
    kind                text        NOT NULL CHECK (kind IN ('charge', 'refund')),
    organization_id     text        NOT NULL,
    member_id           text        NOT NULL,
    payment_id          text        NOT NULL,
    refund_id           text,
    -- pending: to call; awaiting: the provider is still working (or the payer must act), to poll;
    -- reported: the answer is in the outbox; settled: the answer was applied.
    status              text        NOT NULL CHECK (status IN ('pending', 'awaiting', 'reported', 'settled')),
    request             jsonb       NOT NULL,
    connector           text,
    provider_payment_id text,
    attempts            integer     NOT NULL DEFAULT 0,
    -- Answers reported so far; numbers each report's event id.
    reports             integer     NOT NULL DEFAULT 0,
    last_error          text,
    next_attempt_at     timestamptz NOT NULL,
    first_attempt_at    timestamptz,
    leased_until        timestamptz,
    created_at          timestamptz NOT NULL
);
CREATE INDEX provider_calls_due ON provider_calls (next_attempt_at) WHERE status IN ('pending', 'awaiting');
