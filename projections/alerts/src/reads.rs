//! What the gateway reads (through the read-only role, so names are schema-qualified).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::Sample;

/// Filters of `GET /api/monitoring/metrics`; `organization_id` is always set by the gateway.
#[derive(Debug, Default)]
pub struct SampleFilter<'a> {
    pub organization_id: &'a str,
    pub metric: Option<&'a str>,
}

/// Latest first; `after` is the (sampled_at, event_id) of the previous page's last row.
pub async fn list_samples(
    db: impl PgExecutor<'_>,
    filter: &SampleFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Sample>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_id, organization_id, metric, labels, value, sampled_at \
         FROM alerts.metric_samples \
         WHERE organization_id = $1 \
           AND ($2::text IS NULL OR metric = $2) \
           AND ($3::timestamptz IS NULL OR (sampled_at, event_id) < ($3, $4)) \
         ORDER BY sampled_at DESC, event_id DESC \
         LIMIT $5",
    )
    .bind(filter.organization_id)
    .bind(filter.metric)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// An alert rule as `GET /api/monitoring/alerts` shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleView {
    pub rule_id: String,
    pub name: String,
    pub severity: String,
    pub enabled: bool,
    /// The rule as alerts holds it (kind, metric, matchers, window_ms, for_ms, op, threshold, …).
    pub definition: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

pub async fn list_rules(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    limit: i64,
) -> Result<Vec<RuleView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT rule_id, name, severity, enabled, definition, updated_at FROM alerts.alert_rules \
         WHERE organization_id = $1 ORDER BY rule_id LIMIT $2",
    )
    .bind(organization_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A silence as `GET /api/monitoring/silences` shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SilenceView {
    pub silence_id: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
    /// `pending` (not started), `active` or `expired`, at the time of the query.
    pub status: String,
    /// The matchers, as `[{name, op, value}]`.
    pub matchers: serde_json::Value,
}

pub async fn list_silences(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<SilenceView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT silence_id, starts_at, ends_at, created_by, comment, \
           CASE WHEN ends_at <= $2 THEN 'expired' WHEN starts_at > $2 THEN 'pending' ELSE 'active' END AS status, \
           definition -> 'matchers' AS matchers \
         FROM alerts.silences WHERE organization_id = $1 ORDER BY starts_at DESC, silence_id LIMIT $3",
    )
    .bind(organization_id)
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// An alert as `GET /api/monitoring/alerts/active` shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertView {
    pub fingerprint: String,
    pub rule_id: String,
    /// `pending` or `firing` (`resolved` and `inactive` in the history).
    pub state: String,
    pub severity: String,
    pub labels: serde_json::Value,
    pub active_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub value: Option<f64>,
    /// Why it is not notified, if it is not: `silenced:sil_…`, `inhibited:inh_…`, `muted:rte_…`,
    /// `no_receivers`.
    pub suppressed: Option<String>,
}

pub async fn list_alerts(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    only_live: bool,
    limit: i64,
) -> Result<Vec<AlertView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT fingerprint, rule_id, state, severity, labels, active_at, fired_at, resolved_at, value, suppressed \
         FROM alerts.alerts WHERE organization_id = $1 AND (NOT $2 OR state IN ('pending', 'firing')) \
         ORDER BY active_at DESC, fingerprint LIMIT $3",
    )
    .bind(organization_id)
    .bind(only_live)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// One entry of an alert's history: a state change or a notification decision.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryEntry {
    pub fingerprint: String,
    pub rule_id: String,
    /// `state` or `notification`.
    pub kind: String,
    /// For a state change: `from→to`; for a notification: `fired`, `resolved` or `suppressed`.
    pub what: String,
    /// The suppression reason, if any.
    pub reason: Option<String>,
    pub receivers: Option<serde_json::Value>,
    pub value: Option<f64>,
    pub at: DateTime<Utc>,
}

/// State changes and notification decisions, oldest first; of one rule if `rule_id` is set.
pub async fn list_history(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    rule_id: Option<&str>,
    limit: i64,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT fingerprint, rule_id, kind, what, reason, receivers, value, at FROM ( \
           SELECT fingerprint, rule_id, 'state' AS kind, from_state || '→' || to_state AS what, \
             NULL::text AS reason, NULL::jsonb AS receivers, value, at, 0 AS part, id \
           FROM alerts.alert_history WHERE organization_id = $1 AND ($2::text IS NULL OR rule_id = $2) \
           UNION ALL \
           SELECT fingerprint, rule_id, 'notification', decision, reason, receivers, NULL, at, 1, id \
           FROM alerts.alert_notifications WHERE organization_id = $1 AND ($2::text IS NULL OR rule_id = $2) \
         ) h ORDER BY at, part, id LIMIT $3",
    )
    .bind(organization_id)
    .bind(rule_id)
    .bind(limit)
    .fetch_all(db)
    .await
}
