-- Alert rules, routes, inhibitions, silences, the alerts themselves and their history.
-- Definitions are the consumer's validated form as JSON; the columns beside them are what is
-- filtered on.
CREATE TABLE alert_rules (
    organization_id text        NOT NULL,
    rule_id         text        NOT NULL,
    name            text        NOT NULL,
    severity        text        NOT NULL,
    enabled         boolean     NOT NULL,
    definition      jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, rule_id)
);

CREATE TABLE alert_routes (
    organization_id text        NOT NULL,
    route_id        text        NOT NULL,
    definition      jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, route_id)
);

CREATE TABLE inhibit_rules (
    organization_id text        NOT NULL,
    inhibit_rule_id text        NOT NULL,
    definition      jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, inhibit_rule_id)
);

CREATE TABLE silences (
    organization_id text        NOT NULL,
    silence_id      text        NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    created_by      text        NOT NULL,
    comment         text        NOT NULL,
    definition      jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, silence_id)
);

-- One row per fingerprint: its current state (a resolved alert that fires again starts anew).
CREATE TABLE alerts (
    organization_id text        NOT NULL,
    fingerprint     text        NOT NULL,
    rule_id         text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('inactive', 'pending', 'firing', 'resolved')),
    severity        text        NOT NULL,
    labels          jsonb       NOT NULL,
    active_at       timestamptz NOT NULL,
    fired_at        timestamptz,
    resolved_at     timestamptz,
    value           double precision,
    suppressed      text,
    body            jsonb       NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, fingerprint)
);
CREATE INDEX alerts_live ON alerts (organization_id, state) WHERE state IN ('pending', 'firing');

-- Every state change, in order.
CREATE TABLE alert_history (
    id              bigserial        PRIMARY KEY,
    organization_id text             NOT NULL,
    fingerprint     text             NOT NULL,
    rule_id         text             NOT NULL,
    labels          jsonb            NOT NULL,
    from_state      text             NOT NULL,
    to_state        text             NOT NULL,
    value           double precision,
    at              timestamptz      NOT NULL,
    event_id        text             NOT NULL
);
CREATE INDEX alert_history_by_alert ON alert_history (organization_id, fingerprint, id);

-- Every notification decision: fired (to whom), resolved (to whom), or suppressed (why).
CREATE TABLE alert_notifications (
    id              bigserial   PRIMARY KEY,
    organization_id text        NOT NULL,
    fingerprint     text        NOT NULL,
    rule_id         text        NOT NULL,
    decision        text        NOT NULL CHECK (decision IN ('fired', 'resolved', 'suppressed')),
    reason          text,
    receivers       jsonb       NOT NULL,
    repeat          boolean     NOT NULL,
    at              timestamptz NOT NULL,
    event_id        text
);
CREATE INDEX alert_notifications_by_alert ON alert_notifications (organization_id, fingerprint, id);

-- The last tick applied per organization: an earlier one is refused.
CREATE TABLE evaluation_clock (
    organization_id text        PRIMARY KEY,
    last_up_to      timestamptz NOT NULL
);
