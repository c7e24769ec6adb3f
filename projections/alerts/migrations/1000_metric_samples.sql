-- Alerts projection, in the `alerts` schema. One writer: the alerts consumer.
CREATE TABLE metric_samples (
    id              bigserial        PRIMARY KEY,
    event_id        text             NOT NULL UNIQUE,
    organization_id text             NOT NULL,
    metric          text             NOT NULL,
    labels          jsonb            NOT NULL,
    value           double precision NOT NULL,
    sampled_at      timestamptz      NOT NULL
);
CREATE INDEX metric_samples_by_metric ON metric_samples (organization_id, metric, sampled_at);
