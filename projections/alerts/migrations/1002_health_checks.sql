-- Health checks: targets the alerts prober probes (StudySpot's own processes and any the
-- operators define), their status now and the history of every probe.
CREATE TABLE health_checks (
    organization_id      text        NOT NULL,
    health_check_id      text        NOT NULL,
    name                 text        NOT NULL,
    kind                 text        NOT NULL CHECK (kind IN ('http', 'tcp')),
    target               text        NOT NULL,
    expected_status      integer     NOT NULL,
    interval_seconds     bigint      NOT NULL,
    timeout_ms           bigint      NOT NULL,
    failure_threshold    integer     NOT NULL,
    labels               jsonb       NOT NULL,
    severity             text        NOT NULL,
    enabled              boolean     NOT NULL,
    -- `unknown` until the first probe, then `up` or `down` (failure_threshold failures in a row).
    status               text        NOT NULL DEFAULT 'unknown',
    consecutive_failures integer     NOT NULL DEFAULT 0,
    last_probed_at       timestamptz,
    last_success         boolean,
    last_latency_ms      bigint,
    last_status_code     integer,
    last_error           text,
    status_since         timestamptz,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (organization_id, health_check_id)
);
-- The prober reads every enabled check of every organization.
CREATE INDEX health_checks_enabled ON health_checks (organization_id, health_check_id) WHERE enabled;

CREATE TABLE health_check_results (
    id              bigserial   PRIMARY KEY,
    event_id        text        NOT NULL UNIQUE,
    organization_id text        NOT NULL,
    health_check_id text        NOT NULL,
    success         boolean     NOT NULL,
    latency_ms      bigint      NOT NULL,
    status_code     integer,
    error           text,
    -- The check's status after this probe.
    status          text        NOT NULL,
    probed_at       timestamptz NOT NULL
);
CREATE INDEX health_check_results_by_check ON health_check_results (organization_id, health_check_id, probed_at DESC);
