-- Invoice numbers in an order a replay reproduces. A finalized invoice asks for its number on
-- billing's catalog command topic, where an organization has one partition: the series below is
-- advanced only in that partition's order (with invoice_counters), and the number goes back to
-- the invoice in a command on the invoice's own partition. Charges wait for the number.
CREATE TABLE invoice_numbers (
    organization_id text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence > 0),
    number          text        NOT NULL,
    invoice_id      text        NOT NULL UNIQUE,
    member_id       text        NOT NULL,
    assigned_at     timestamptz NOT NULL,
    PRIMARY KEY (organization_id, sequence),
    UNIQUE (organization_id, number)
);

-- A subscription invoice to be charged to the stored method once it has its number.
ALTER TABLE invoices ADD COLUMN charge_on_number boolean NOT NULL DEFAULT false;
