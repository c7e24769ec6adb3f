-- Every billing key is scoped by organization. Ids come from commands (apps choose payment,
-- subscription, usage, method ids…), so a global key let one organization's id block or
-- duplicate another's (`payment_exists` told it the id was taken) and let a command reach
-- another organization's record by id. Keys, foreign keys and the lookups' indexes now lead with
-- organization_id; child tables carry it too, filled from their parent for existing rows.
-- Projections are rebuilt from the log, but a live schema migrates in place as well.

-- Child rows first learn their organization from the parent they name.
ALTER TABLE invoice_lines ADD COLUMN organization_id text;
UPDATE invoice_lines l SET organization_id = i.organization_id FROM invoices i WHERE i.invoice_id = l.invoice_id;
ALTER TABLE invoice_lines ALTER COLUMN organization_id SET NOT NULL;

ALTER TABLE subscription_items ADD COLUMN organization_id text;
UPDATE subscription_items t SET organization_id = s.organization_id
    FROM subscriptions s WHERE s.subscription_id = t.subscription_id;
ALTER TABLE subscription_items ALTER COLUMN organization_id SET NOT NULL;

ALTER TABLE credit_applications ADD COLUMN organization_id text;
UPDATE credit_applications a SET organization_id = n.organization_id
    FROM credit_notes n WHERE n.credit_note_id = a.credit_note_id;
ALTER TABLE credit_applications ALTER COLUMN organization_id SET NOT NULL;

ALTER TABLE usage_records ADD COLUMN organization_id text;
UPDATE usage_records u SET organization_id = s.organization_id
    FROM subscriptions s WHERE s.subscription_id = u.subscription_id;
ALTER TABLE usage_records ALTER COLUMN organization_id SET NOT NULL;

ALTER TABLE usage_counters ADD COLUMN organization_id text;
UPDATE usage_counters c SET organization_id = s.organization_id
    FROM subscriptions s WHERE s.subscription_id = c.subscription_id;
ALTER TABLE usage_counters ALTER COLUMN organization_id SET NOT NULL;

-- Foreign keys onto the global keys go before those keys do.
ALTER TABLE refunds DROP CONSTRAINT refunds_payment_id_fkey;
ALTER TABLE invoice_lines DROP CONSTRAINT invoice_lines_invoice_id_fkey;
ALTER TABLE subscription_items DROP CONSTRAINT subscription_items_subscription_id_fkey;
ALTER TABLE credit_notes DROP CONSTRAINT credit_notes_subscription_id_fkey;
ALTER TABLE credit_applications DROP CONSTRAINT credit_applications_credit_note_id_fkey;
ALTER TABLE credit_applications DROP CONSTRAINT credit_applications_invoice_id_fkey;
ALTER TABLE usage_records DROP CONSTRAINT usage_records_subscription_id_fkey;
ALTER TABLE usage_counters DROP CONSTRAINT usage_counters_subscription_id_fkey;
ALTER TABLE subscription_history DROP CONSTRAINT subscription_history_subscription_id_fkey;

ALTER TABLE payments DROP CONSTRAINT payments_pkey, ADD PRIMARY KEY (organization_id, payment_id);
ALTER TABLE refunds DROP CONSTRAINT refunds_pkey, ADD PRIMARY KEY (organization_id, refund_id);
ALTER TABLE payment_methods DROP CONSTRAINT payment_methods_pkey,
    ADD PRIMARY KEY (organization_id, payment_method_id);
ALTER TABLE invoices DROP CONSTRAINT invoices_pkey, ADD PRIMARY KEY (organization_id, invoice_id);
ALTER TABLE invoice_lines DROP CONSTRAINT invoice_lines_pkey,
    ADD PRIMARY KEY (organization_id, invoice_id, line_no);
ALTER TABLE invoice_numbers DROP CONSTRAINT invoice_numbers_invoice_id_key,
    ADD CONSTRAINT invoice_numbers_invoice UNIQUE (organization_id, invoice_id);
-- Call ids are command ids (UUIDs), unique anyway; scoped like everything else.
ALTER TABLE provider_calls DROP CONSTRAINT provider_calls_pkey, ADD PRIMARY KEY (organization_id, call_id);
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_pkey,
    ADD PRIMARY KEY (organization_id, subscription_id);
ALTER TABLE subscription_items DROP CONSTRAINT subscription_items_pkey,
    ADD PRIMARY KEY (organization_id, subscription_id, item_no);
ALTER TABLE credit_notes DROP CONSTRAINT credit_notes_pkey, ADD PRIMARY KEY (organization_id, credit_note_id);
ALTER TABLE credit_applications DROP CONSTRAINT credit_applications_pkey,
    ADD PRIMARY KEY (organization_id, credit_note_id, invoice_id);
ALTER TABLE usage_records DROP CONSTRAINT usage_records_pkey, ADD PRIMARY KEY (organization_id, usage_id);
ALTER TABLE usage_counters DROP CONSTRAINT usage_counters_pkey,
    ADD PRIMARY KEY (organization_id, subscription_id, period_start, metric);
ALTER TABLE subscription_history DROP CONSTRAINT subscription_history_pkey,
    ADD PRIMARY KEY (organization_id, subscription_id, seq);

ALTER TABLE refunds ADD FOREIGN KEY (organization_id, payment_id) REFERENCES payments (organization_id, payment_id);
ALTER TABLE invoice_lines
    ADD FOREIGN KEY (organization_id, invoice_id) REFERENCES invoices (organization_id, invoice_id);
ALTER TABLE subscription_items ADD FOREIGN KEY (organization_id, subscription_id)
    REFERENCES subscriptions (organization_id, subscription_id);
ALTER TABLE credit_notes ADD FOREIGN KEY (organization_id, subscription_id)
    REFERENCES subscriptions (organization_id, subscription_id);
ALTER TABLE credit_applications
    ADD FOREIGN KEY (organization_id, credit_note_id) REFERENCES credit_notes (organization_id, credit_note_id),
    ADD FOREIGN KEY (organization_id, invoice_id) REFERENCES invoices (organization_id, invoice_id);
ALTER TABLE usage_records ADD FOREIGN KEY (organization_id, subscription_id)
    REFERENCES subscriptions (organization_id, subscription_id);
ALTER TABLE usage_counters ADD FOREIGN KEY (organization_id, subscription_id)
    REFERENCES subscriptions (organization_id, subscription_id);
ALTER TABLE subscription_history ADD FOREIGN KEY (organization_id, subscription_id)
    REFERENCES subscriptions (organization_id, subscription_id);

-- The lookups by a parent, within its organization.
DROP INDEX refunds_by_payment;
CREATE INDEX refunds_by_payment ON refunds (organization_id, payment_id);
DROP INDEX invoices_by_subscription;
CREATE INDEX invoices_by_subscription ON invoices (organization_id, subscription_id, created_at)
    WHERE subscription_id IS NOT NULL;
DROP INDEX subscription_items_pending;
CREATE INDEX subscription_items_pending ON subscription_items (organization_id, subscription_id)
    WHERE invoice_id IS NULL;
DROP INDEX credit_notes_open;
CREATE INDEX credit_notes_open ON credit_notes (organization_id, subscription_id, created_at)
    WHERE remaining_minor > 0;
-- Provider webhooks find a payment by the provider's id, in whichever organization.
CREATE INDEX payments_by_provider_id ON payments (connector, provider_payment_id)
    WHERE provider_payment_id IS NOT NULL;
