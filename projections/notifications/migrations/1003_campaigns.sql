-- Campaigns and the audience they are drawn from, digests, in-app read receipts, and the state of
-- webhook endpoints the delivery worker keeps.
ALTER TABLE notifications
    ADD COLUMN campaign_id text,
    -- A message collected into a digest: the digest's own notification id.
    ADD COLUMN digest_id   text,
    ADD COLUMN read_at     timestamptz;
ALTER TABLE notifications DROP CONSTRAINT notifications_status;
-- digested: collected into a digest, which is delivered in its place.
ALTER TABLE notifications ADD CONSTRAINT notifications_status
    CHECK (status IN ('queued', 'deferred', 'sent', 'failed', 'suppressed', 'cancelled', 'digested'));
CREATE INDEX notifications_by_campaign ON notifications (campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX notifications_by_digest ON notifications (digest_id) WHERE digest_id IS NOT NULL;

CREATE TABLE campaigns (
    organization_id     text        NOT NULL,
    campaign_id         text        NOT NULL,
    name                text        NOT NULL,
    kind                text        NOT NULL
        CHECK (kind IN ('broadcast', 'targeted', 'automated', 'transactional', 'marketing')),
    category            text        NOT NULL,
    channel             text        NOT NULL,
    template_id         text,
    subject             text,
    body                text        NOT NULL,
    variables           jsonb       NOT NULL,
    locale              text,
    segment             jsonb       NOT NULL,
    send_at_local       timestamp,
    send_at             timestamptz,
    throttle_per_minute integer,
    trigger             text,
    -- draft, launched (messages asked for; automated: reacting), cancelled.
    status              text        NOT NULL CHECK (status IN ('draft', 'launched', 'cancelled')),
    recipients          integer     NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL,
    launched_at         timestamptz,
    cancelled_at        timestamptz,
    PRIMARY KEY (organization_id, campaign_id)
);
CREATE INDEX campaigns_by_trigger ON campaigns (organization_id, trigger)
    WHERE trigger IS NOT NULL AND status = 'launched';

-- Who the organization's members are, as billing's and attendance's events tell: segments read it.
CREATE TABLE audience (
    organization_id     text        NOT NULL,
    member_id           text        NOT NULL,
    plan_id             text,
    subscription_status text,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (organization_id, member_id)
);
CREATE TABLE visits (
    organization_id text        NOT NULL,
    member_id       text        NOT NULL,
    venue_id        text        NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    PRIMARY KEY (organization_id, member_id, venue_id)
);

-- An open digest collects a recipient's messages of one key until it closes; its notification
-- (digest_id) is delivered then with every item in it.
CREATE TABLE digests (
    digest_id       text        PRIMARY KEY REFERENCES notifications,
    organization_id text        NOT NULL,
    recipient_id    text        NOT NULL,
    channel         text        NOT NULL,
    category        text        NOT NULL,
    digest_key      text        NOT NULL,
    closes_at       timestamptz NOT NULL
);
CREATE INDEX digests_open ON digests (organization_id, recipient_id, channel, category, digest_key, closes_at);

-- Webhook endpoints failing without a break since `failing_since`; disabled ones get nothing
-- until the owner sets their preferences again.
CREATE TABLE webhook_endpoints (
    organization_id text        NOT NULL,
    url             text        NOT NULL,
    recipient_id    text        NOT NULL,
    failing_since   timestamptz,
    last_error      text,
    disabled_at     timestamptz,
    PRIMARY KEY (organization_id, url)
);
