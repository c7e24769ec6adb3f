-- The consumer runtime's own tables, created in the consumer's schema (search_path).

-- The next offset to read per partition. This, not Kafka's committed offset, is where the
-- consumer resumes: it is written in the same transaction as the projection.
CREATE TABLE consumer_offsets (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- Event ids already applied: a record published twice (outbox re-publish after a crash) has
-- its effect once.
CREATE TABLE applied_events (
    event_id   text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Follow-on events and dead letters, written with the projection and published after commit.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    event_id     text        NOT NULL,
    topic        text        NOT NULL,
    key          bytea,
    payload      bytea,
    headers      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
