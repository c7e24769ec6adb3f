-- Billing projection, in the `billing` schema. One writer: the billing consumer.
CREATE TABLE payments (
    payment_id      text        PRIMARY KEY,
    organization_id text        NOT NULL,
    member_id       text        NOT NULL,
    amount_minor    bigint      NOT NULL CHECK (amount_minor > 0),
    currency        char(3)     NOT NULL,
    method          text        NOT NULL,
    description     text,
    status          text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX payments_by_member ON payments (organization_id, member_id, created_at);
