-- Attendance projection. Lives in the `attendance` schema (search_path); one writer: the consumer.

CREATE TABLE venue_occupancy (
    organization_id text        NOT NULL,
    venue_id        text        NOT NULL,
    occupancy       integer     NOT NULL CHECK (occupancy >= 0),
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, venue_id)
);

CREATE TABLE sessions (
    session_id      text        PRIMARY KEY,
    organization_id text        NOT NULL,
    member_id       text        NOT NULL,
    venue_id        text        NOT NULL,
    seat_id         text,
    checked_in_at   timestamptz NOT NULL,
    checked_out_at  timestamptz
);
-- One open session per member, enforced where it cannot be raced.
CREATE UNIQUE INDEX sessions_one_open_per_member ON sessions (organization_id, member_id) WHERE checked_out_at IS NULL;
CREATE INDEX sessions_by_venue ON sessions (organization_id, venue_id, checked_in_at);
