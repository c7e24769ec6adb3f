-- Plans and coupons per organization; subscriptions with their periods, trials, pauses, dunning
-- and coupons; usage counted per period; credit notes; and each subscription's history of status
-- and MRR, from which the dashboard answers "as of" any instant.
CREATE TABLE plans (
    organization_id text        NOT NULL,
    plan_id         text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    name            text        NOT NULL,
    tier            text        NOT NULL CHECK (tier IN ('basic', 'premium', 'enterprise', 'custom')),
    cycle           text        NOT NULL CHECK (cycle IN ('daily', 'weekly', 'monthly', 'quarterly', 'yearly')),
    price_minor     bigint      NOT NULL CHECK (price_minor >= 0),
    currency        char(3)     NOT NULL,
    trial_days      integer     NOT NULL CHECK (trial_days >= 0),
    tax_rate_bps    integer     NOT NULL CHECK (tax_rate_bps BETWEEN 0 AND 10000),
    -- [{metric, included, overage_unit_minor}]
    allowances      jsonb       NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, plan_id, version)
);

CREATE TABLE coupons (
    organization_id  text        NOT NULL,
    coupon_id        text        NOT NULL,
    name             text        NOT NULL,
    percent_off_bps  integer     CHECK (percent_off_bps BETWEEN 1 AND 10000),
    amount_off_minor bigint      CHECK (amount_off_minor > 0),
    currency         char(3),
    duration         text        NOT NULL CHECK (duration IN ('once', 'repeating', 'forever')),
    duration_cycles  integer,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (organization_id, coupon_id),
    CHECK ((percent_off_bps IS NULL) <> (amount_off_minor IS NULL))
);

CREATE TABLE subscriptions (
    subscription_id      text        PRIMARY KEY,
    organization_id      text        NOT NULL,
    member_id            text        NOT NULL,
    plan_id              text        NOT NULL,
    plan_version         integer     NOT NULL,
    currency             char(3)     NOT NULL,
    status               text        NOT NULL CHECK (status IN
        ('trialing', 'active', 'past_due', 'paused', 'suspended', 'cancelled')),
    -- Periods are anchor + n cycles (calendar months clamp to the month's last day).
    anchor               timestamptz NOT NULL,
    period_index         integer     NOT NULL,
    current_period_start timestamptz NOT NULL,
    current_period_end   timestamptz NOT NULL,
    -- What the current period's plan coverage was charged, for [covered_from, period end):
    -- the base of proration credits.
    covered_from         timestamptz NOT NULL,
    covered_value_minor  bigint      NOT NULL,
    trial_end            timestamptz,
    trial_notice_sent    boolean     NOT NULL DEFAULT false,
    cancel_at_period_end boolean     NOT NULL DEFAULT false,
    cancelled_at         timestamptz,
    cancel_reason        text,
    paused_at            timestamptz,
    resume_at            timestamptz,
    coupon_id            text,
    coupon_percent_bps   integer,
    coupon_amount_minor  bigint,
    -- Invoiced periods the coupon still discounts; NULL is forever.
    coupon_cycles_left   integer,
    payment_method_id    text,
    -- Dunning of the renewal invoice that failed: retries at dunning_started_at + schedule[n].
    dunning_invoice_id   text,
    dunning_attempt      integer     NOT NULL DEFAULT 0,
    dunning_started_at   timestamptz,
    next_retry_at        timestamptz,
    -- The latest instant applied; commands before it are refused (history is not rewritten).
    applied_through      timestamptz NOT NULL,
    -- The earliest instant at which billing has work for it (renewal, trial end, resume, retry).
    next_due_at          timestamptz,
    mrr_minor            bigint      NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX subscriptions_by_member ON subscriptions (organization_id, member_id, created_at);
CREATE INDEX subscriptions_due ON subscriptions (organization_id, next_due_at) WHERE next_due_at IS NOT NULL;

-- Charges waiting for the subscription's next invoice (proration, overage of a cancelled period).
CREATE TABLE subscription_items (
    subscription_id text        NOT NULL REFERENCES subscriptions,
    item_no         integer     NOT NULL,
    description     text        NOT NULL,
    amount_minor    bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    invoice_id      text,
    PRIMARY KEY (subscription_id, item_no)
);
CREATE INDEX subscription_items_pending ON subscription_items (subscription_id) WHERE invoice_id IS NULL;

ALTER TABLE invoices
    ADD COLUMN subscription_id      text,
    ADD COLUMN period_start         timestamptz,
    ADD COLUMN period_end           timestamptz,
    -- Credit notes drawn on; the invoice is paid when payments and credits cover its total.
    ADD COLUMN credit_applied_minor bigint NOT NULL DEFAULT 0 CHECK (credit_applied_minor >= 0);
CREATE INDEX invoices_by_subscription ON invoices (subscription_id, created_at) WHERE subscription_id IS NOT NULL;

CREATE TABLE credit_notes (
    credit_note_id  text        PRIMARY KEY,
    organization_id text        NOT NULL,
    member_id       text        NOT NULL,
    subscription_id text        NOT NULL REFERENCES subscriptions,
    currency        char(3)     NOT NULL,
    amount_minor    bigint      NOT NULL CHECK (amount_minor > 0),
    remaining_minor bigint      NOT NULL CHECK (remaining_minor >= 0 AND remaining_minor <= amount_minor),
    reason          text        NOT NULL CHECK (reason IN ('proration', 'cancellation', 'pause', 'goodwill')),
    memo            text,
    created_at      timestamptz NOT NULL
);
CREATE INDEX credit_notes_open ON credit_notes (subscription_id, created_at) WHERE remaining_minor > 0;

CREATE TABLE credit_applications (
    credit_note_id text   NOT NULL REFERENCES credit_notes,
    invoice_id     text   NOT NULL REFERENCES invoices,
    amount_minor   bigint NOT NULL CHECK (amount_minor > 0),
    PRIMARY KEY (credit_note_id, invoice_id)
);

-- One row per usage record: a redelivered or repeated usage_id counts once.
CREATE TABLE usage_records (
    usage_id        text        PRIMARY KEY,
    subscription_id text        NOT NULL REFERENCES subscriptions,
    metric          text        NOT NULL,
    quantity        bigint      NOT NULL CHECK (quantity > 0),
    period_start    timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL
);

CREATE TABLE usage_counters (
    subscription_id text        NOT NULL REFERENCES subscriptions,
    period_start    timestamptz NOT NULL,
    metric          text        NOT NULL,
    used            bigint      NOT NULL,
    PRIMARY KEY (subscription_id, period_start, metric)
);

-- Every change of a subscription's status or MRR, at the instant it took effect.
CREATE TABLE subscription_history (
    subscription_id text        NOT NULL REFERENCES subscriptions,
    seq             bigserial,
    organization_id text        NOT NULL,
    effective_at    timestamptz NOT NULL,
    status          text        NOT NULL,
    mrr_minor       bigint      NOT NULL,
    currency        char(3)     NOT NULL,
    PRIMARY KEY (subscription_id, seq)
);
CREATE INDEX subscription_history_by_organization ON subscription_history (organization_id, effective_at);
