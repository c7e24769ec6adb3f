-- Venues, zones' occupancy, bookings, entitlements (from billing's events), passes, spent QR
-- tokens, and occupancy over time. One writer: the attendance consumer.

CREATE TABLE venues (
    organization_id text        NOT NULL,
    venue_id        text        NOT NULL,
    name            text        NOT NULL,
    time_zone       text        NOT NULL,
    capacity        integer     NOT NULL CHECK (capacity > 0),
    zones           jsonb       NOT NULL,
    seats           jsonb       NOT NULL,
    opening_hours   jsonb       NOT NULL,
    limits          jsonb       NOT NULL,
    qr_required     boolean     NOT NULL,
    version         integer     NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, venue_id)
);

CREATE TABLE zone_occupancy (
    organization_id text        NOT NULL,
    venue_id        text        NOT NULL,
    zone_id         text        NOT NULL,
    occupancy       integer     NOT NULL CHECK (occupancy >= 0),
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, venue_id, zone_id)
);

-- Every change of a venue's (zone_id = '') or zone's occupancy, for the dashboard.
CREATE TABLE occupancy_samples (
    organization_id text        NOT NULL,
    venue_id        text        NOT NULL,
    zone_id         text        NOT NULL DEFAULT '',
    at              timestamptz NOT NULL,
    occupancy       integer     NOT NULL CHECK (occupancy >= 0),
    session_id      text        NOT NULL
);
CREATE INDEX occupancy_samples_by_venue ON occupancy_samples (organization_id, venue_id, at);

ALTER TABLE sessions
    ADD COLUMN zone_id              text,
    ADD COLUMN booking_id           text,
    ADD COLUMN subscription_id      text,
    ADD COLUMN pass_id              text,
    ADD COLUMN auto_checkout_at     timestamptz,
    ADD COLUMN auto_checkout_reason text,
    ADD COLUMN checkout_reason      text,
    ADD COLUMN duration_seconds     bigint;
CREATE INDEX sessions_due ON sessions (auto_checkout_at) WHERE checked_out_at IS NULL;
CREATE INDEX sessions_open_by_seat ON sessions (organization_id, venue_id, seat_id) WHERE checked_out_at IS NULL;

CREATE TABLE bookings (
    booking_id      text        PRIMARY KEY,
    organization_id text        NOT NULL,
    member_id       text        NOT NULL,
    venue_id        text        NOT NULL,
    seat_id         text,
    zone_id         text,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL CHECK (ends_at > starts_at),
    series_id       text,
    -- booked → checked_in | cancelled | no_show
    status          text        NOT NULL,
    no_show_at      timestamptz NOT NULL,
    session_id      text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX bookings_by_venue ON bookings (organization_id, venue_id, starts_at);
CREATE INDEX bookings_by_member ON bookings (organization_id, member_id, starts_at);
CREATE INDEX bookings_no_show_due ON bookings (no_show_at) WHERE status = 'booked';

-- Attendance's view of billing's subscriptions (from SubscriptionCreated / …StatusChanged).
CREATE TABLE entitlements (
    subscription_id text        PRIMARY KEY,
    organization_id text        NOT NULL,
    member_id       text        NOT NULL,
    status          text        NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX entitlements_by_member ON entitlements (organization_id, member_id);

CREATE TABLE passes (
    pass_id         text        PRIMARY KEY,
    organization_id text        NOT NULL,
    member_id       text        NOT NULL,
    venue_id        text        NOT NULL,
    valid_from      timestamptz NOT NULL,
    valid_until     timestamptz NOT NULL
);
CREATE INDEX passes_by_member ON passes (organization_id, member_id);

-- Single-use QR tokens already used: a second use is a replay.
CREATE TABLE spent_tokens (
    nonce           text        PRIMARY KEY,
    organization_id text        NOT NULL,
    member_id       text        NOT NULL,
    session_id      text        NOT NULL,
    spent_at        timestamptz NOT NULL
);
