-- Notifications projection, in the `notifications` schema. One writer: the notifications consumer.
CREATE TABLE notifications (
    notification_id text        PRIMARY KEY,
    organization_id text        NOT NULL,
    recipient_id    text        NOT NULL,
    channel         text        NOT NULL,
    category        text        NOT NULL,
    subject         text,
    body            text        NOT NULL,
    status          text        NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX notifications_by_recipient ON notifications (organization_id, recipient_id, created_at);
