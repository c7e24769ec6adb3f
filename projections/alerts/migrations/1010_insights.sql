-- Alerts' insights: what derived metrics remember, alert groups, dashboards and report runs.

-- Retention drops samples by age, across metrics.
CREATE INDEX metric_samples_by_age ON metric_samples (organization_id, sampled_at);

-- Each venue's capacity as attendance last defined it: occupancy ratio = occupancy / capacity.
CREATE TABLE venue_capacities (
    organization_id text        NOT NULL,
    venue_id        text        NOT NULL,
    capacity        integer     NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, venue_id)
);

-- Alertmanager-style groups per route and group_by values, between ticks.
CREATE TABLE alert_groups (
    organization_id text        NOT NULL,
    group_key       text        NOT NULL,
    route_id        text        NOT NULL,
    body            jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, group_key)
);

-- Every group notification: to whom, which alerts.
CREATE TABLE alert_group_notifications (
    id              bigserial   PRIMARY KEY,
    organization_id text        NOT NULL,
    group_key       text        NOT NULL,
    route_id        text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    receivers       jsonb       NOT NULL,
    alerts          jsonb       NOT NULL,
    repeat          boolean     NOT NULL,
    at              timestamptz NOT NULL,
    event_id        text        NOT NULL
);
CREATE INDEX alert_group_notifications_by_group ON alert_group_notifications (organization_id, group_key, id);

CREATE TABLE dashboards (
    organization_id text        NOT NULL,
    dashboard_id    text        NOT NULL,
    name            text        NOT NULL,
    definition      jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, dashboard_id)
);

-- A report and the end of the last period rendered (the next run covers the period after it).
CREATE TABLE reports (
    organization_id text        NOT NULL,
    report_id       text        NOT NULL,
    name            text        NOT NULL,
    schedule        text        NOT NULL CHECK (schedule IN ('daily', 'weekly')),
    time_zone       text        NOT NULL,
    definition      jsonb       NOT NULL,
    defined_at      timestamptz NOT NULL,
    last_period_end timestamptz,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, report_id)
);

CREATE TABLE report_runs (
    organization_id text        NOT NULL,
    report_id       text        NOT NULL,
    run_id          text        NOT NULL,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    figures         jsonb       NOT NULL,
    csv             text        NOT NULL,
    html            text        NOT NULL,
    generated_at    timestamptz NOT NULL,
    PRIMARY KEY (organization_id, report_id, run_id)
);
