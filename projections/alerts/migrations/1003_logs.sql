-- Structured log records. Text search is PostgreSQL full-text search with the `simple`
-- configuration (no stemming, no stop words: logs are identifiers as much as English), over the
-- message and the field values; `websearch_to_tsquery` gives people quoted phrases and `-word`.
CREATE TABLE log_records (
    log_id          text        PRIMARY KEY,
    organization_id text        NOT NULL,
    logged_at       timestamptz NOT NULL,
    level           text        NOT NULL,
    -- trace 0, debug 1, info 2, warn 3, error 4, fatal 5: "at least warn" is level_rank >= 3.
    level_rank      smallint    NOT NULL,
    service         text        NOT NULL,
    message         text        NOT NULL,
    fields          jsonb       NOT NULL,
    search          tsvector    NOT NULL GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig, message || ' ' || jsonb_path_query_array(fields, '$.*')::text)
    ) STORED
);
CREATE INDEX log_records_by_time ON log_records (organization_id, logged_at DESC, log_id DESC);
CREATE INDEX log_records_by_service ON log_records (organization_id, service, logged_at DESC);
CREATE INDEX log_records_search ON log_records USING gin (search);
