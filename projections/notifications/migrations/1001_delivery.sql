-- Templates (versioned per channel and locale), recipients' preferences, deliveries worked off by
-- the notifications process's delivery worker, and what each recipient was sent per local day.
ALTER TABLE notifications
    ADD COLUMN template_id      text,
    ADD COLUMN template_version integer,
    ADD COLUMN locale           text,
    ADD COLUMN html             text,
    ADD COLUMN critical         boolean     NOT NULL DEFAULT false,
    ADD COLUMN transaction_id   text,
    ADD COLUMN address          text,
    ADD COLUMN not_before       timestamptz,
    ADD COLUMN reason           text,
    ADD COLUMN attempts         integer     NOT NULL DEFAULT 0,
    ADD COLUMN provider_message_id text,
    ADD COLUMN failure_code     text,
    ADD COLUMN failure_message  text,
    ADD COLUMN sent_at          timestamptz,
    ADD COLUMN updated_at       timestamptz;
-- queued (waiting for its delivery), deferred (quiet hours / scheduled), sent, failed,
-- suppressed (opted out, capped, no address), cancelled.
ALTER TABLE notifications ADD CONSTRAINT notifications_status
    CHECK (status IN ('queued', 'deferred', 'sent', 'failed', 'suppressed', 'cancelled'));
CREATE INDEX notifications_by_transaction ON notifications (recipient_id, transaction_id)
    WHERE transaction_id IS NOT NULL;

CREATE TABLE templates (
    organization_id text        NOT NULL,
    template_id     text        NOT NULL,
    channel         text        NOT NULL,
    locale          text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    subject         text,
    body            text        NOT NULL,
    html            text,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, template_id, channel, locale, version)
);

CREATE TABLE preferences (
    organization_id      text        NOT NULL,
    recipient_id         text        NOT NULL,
    email                text,
    phone                text,
    whatsapp             text,
    push_token           text,
    webhook_url          text,
    webhook_secret       text,
    time_zone            text        NOT NULL,
    quiet_start          time,
    quiet_end            time,
    opted_out_channels   text[]      NOT NULL,
    opted_out_categories text[]      NOT NULL,
    category_caps        jsonb       NOT NULL,
    daily_cap            integer,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (organization_id, recipient_id)
);

-- One per notification that goes out: the delivery worker leases due rows, sends, and reports.
CREATE TABLE deliveries (
    notification_id text        PRIMARY KEY REFERENCES notifications,
    organization_id text        NOT NULL,
    recipient_id    text        NOT NULL,
    channel         text        NOT NULL,
    -- pending: to send; reported: the answer is in the outbox; settled; cancelled.
    status          text        NOT NULL CHECK (status IN ('pending', 'reported', 'settled', 'cancelled')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    leased_until    timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE sent_counts (
    organization_id text    NOT NULL,
    recipient_id    text    NOT NULL,
    local_day       date    NOT NULL,
    category        text    NOT NULL,
    sent            integer NOT NULL,
    PRIMARY KEY (organization_id, recipient_id, local_day, category)
);
