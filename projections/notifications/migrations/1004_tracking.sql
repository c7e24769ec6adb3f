-- Delivery tracking: what became of a message after it was sent, from provider status callbacks
-- (delivered, undelivered, bounced) and from the recipient (opened through the pixel, clicked
-- through the redirect). One row per tracked notification with its firsts and totals, and every
-- applied status as it came.
CREATE TABLE tracking (
    notification_id   text        PRIMARY KEY REFERENCES notifications,
    organization_id   text        NOT NULL,
    delivered_at      timestamptz,
    undelivered_at    timestamptz,
    bounced_at        timestamptz,
    -- A click counts as an open too (images are often blocked); `opens` counts pixel loads only.
    first_opened_at   timestamptz,
    opens             integer     NOT NULL DEFAULT 0,
    first_clicked_at  timestamptz,
    clicks            integer     NOT NULL DEFAULT 0,
    provider_status   text,
    updated_at        timestamptz NOT NULL
);

CREATE TABLE tracking_events (
    -- The RecordDeliveryStatus command's id.
    event_id          text        PRIMARY KEY,
    notification_id   text        NOT NULL REFERENCES notifications,
    organization_id   text        NOT NULL,
    status            text        NOT NULL
        CHECK (status IN ('delivered', 'undelivered', 'opened', 'clicked', 'bounced')),
    url               text,
    provider_status   text,
    source            text        NOT NULL,
    occurred_at       timestamptz NOT NULL
);
CREATE INDEX tracking_events_by_notification ON tracking_events (notification_id, occurred_at);

-- Twilio status callbacks to the configured (unsigned) URL name the message by its sid.
CREATE INDEX notifications_by_provider_message ON notifications (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
