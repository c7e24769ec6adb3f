-- Addresses a provider refused for good (hard bounce, invalid or unsubscribed number, unregistered
-- push token, a webhook endpoint answering 4xx): nothing more is sent to them until the recipient
-- sets their preferences again.
CREATE TABLE marked_addresses (
    organization_id text        NOT NULL,
    channel         text        NOT NULL,
    address         text        NOT NULL,
    recipient_id    text        NOT NULL,
    code            text        NOT NULL,
    notification_id text        NOT NULL,
    marked_at       timestamptz NOT NULL,
    PRIMARY KEY (organization_id, channel, address)
);
CREATE INDEX marked_addresses_by_recipient ON marked_addresses (organization_id, recipient_id);
