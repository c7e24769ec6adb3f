//! The write side of rules, routes, inhibitions, silences, alerts and their history.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

/// A configuration row: which table, its id column, the id and the definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    Route,
    InhibitRule,
}

impl ConfigKind {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Self::Route => ("alert_routes", "route_id"),
            Self::InhibitRule => ("inhibit_rules", "inhibit_rule_id"),
        }
    }
}

pub struct RuleRow<'a> {
    pub organization_id: &'a str,
    pub rule_id: &'a str,
    pub name: &'a str,
    pub severity: &'a str,
    pub enabled: bool,
    pub definition: Value,
    pub at: DateTime<Utc>,
}

pub async fn upsert_rule(tx: &mut PgConnection, r: &RuleRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_rules (organization_id, rule_id, name, severity, enabled, definition, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (organization_id, rule_id) DO UPDATE SET name = EXCLUDED.name, \
           severity = EXCLUDED.severity, enabled = EXCLUDED.enabled, definition = EXCLUDED.definition, \
           updated_at = EXCLUDED.updated_at",
    )
    .bind(r.organization_id)
    .bind(r.rule_id)
    .bind(r.name)
    .bind(r.severity)
    .bind(r.enabled)
    .bind(&r.definition)
    .bind(r.at)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn upsert_config(
    tx: &mut PgConnection,
    kind: ConfigKind,
    organization_id: &str,
    id: &str,
    definition: &Value,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let (table, column) = kind.table();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (organization_id, {column}, definition, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (organization_id, {column}) DO UPDATE SET definition = EXCLUDED.definition, \
           updated_at = EXCLUDED.updated_at"
    )))
    .bind(organization_id)
    .bind(id)
    .bind(definition)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

pub struct SilenceRow<'a> {
    pub organization_id: &'a str,
    pub silence_id: &'a str,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: &'a str,
    pub comment: &'a str,
    pub definition: Value,
    pub at: DateTime<Utc>,
}

pub async fn upsert_silence(tx: &mut PgConnection, s: &SilenceRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO silences (organization_id, silence_id, starts_at, ends_at, created_by, comment, definition, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (organization_id, silence_id) DO UPDATE SET starts_at = EXCLUDED.starts_at, \
           ends_at = EXCLUDED.ends_at, created_by = EXCLUDED.created_by, comment = EXCLUDED.comment, \
           definition = EXCLUDED.definition, updated_at = EXCLUDED.updated_at",
    )
    .bind(s.organization_id)
    .bind(s.silence_id)
    .bind(s.starts_at)
    .bind(s.ends_at)
    .bind(s.created_by)
    .bind(s.comment)
    .bind(&s.definition)
    .bind(s.at)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn load_silence(
    tx: &mut PgConnection,
    organization_id: &str,
    silence_id: &str,
) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT definition FROM silences WHERE organization_id = $1 AND silence_id = $2 FOR UPDATE",
    )
    .bind(organization_id)
    .bind(silence_id)
    .fetch_optional(tx)
    .await
}

/// Definitions of every rule, route and inhibition of the organization, and its silences still
/// active at or after `at` (in id order).
pub struct Config {
    pub rules: Vec<Value>,
    pub routes: Vec<Value>,
    pub inhibit_rules: Vec<Value>,
    pub silences: Vec<Value>,
}

pub async fn load_config(
    tx: &mut PgConnection,
    organization_id: &str,
    at: DateTime<Utc>,
) -> Result<Config, sqlx::Error> {
    let rules =
        sqlx::query_scalar("SELECT definition FROM alert_rules WHERE organization_id = $1 ORDER BY rule_id")
            .bind(organization_id)
            .fetch_all(&mut *tx)
            .await?;
    let routes = sqlx::query_scalar(
        "SELECT definition FROM alert_routes WHERE organization_id = $1 ORDER BY route_id",
    )
    .bind(organization_id)
    .fetch_all(&mut *tx)
    .await?;
    let inhibit_rules = sqlx::query_scalar(
        "SELECT definition FROM inhibit_rules WHERE organization_id = $1 ORDER BY inhibit_rule_id",
    )
    .bind(organization_id)
    .fetch_all(&mut *tx)
    .await?;
    let silences = sqlx::query_scalar(
        "SELECT definition FROM silences WHERE organization_id = $1 AND ends_at > $2 ORDER BY silence_id",
    )
    .bind(organization_id)
    .bind(at)
    .fetch_all(&mut *tx)
    .await?;
    Ok(Config { rules, routes, inhibit_rules, silences })
}

/// (metric, labels, value, sampled_at) of the organization's samples of `metrics` in `(from, to]`.
pub async fn samples_between(
    tx: &mut PgConnection,
    organization_id: &str,
    metrics: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, Value, f64, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT metric, labels, value, sampled_at FROM metric_samples \
         WHERE organization_id = $1 AND metric = ANY($2) AND sampled_at > $3 AND sampled_at <= $4 \
         ORDER BY sampled_at, id",
    )
    .bind(organization_id)
    .bind(metrics)
    .bind(from)
    .bind(to)
    .fetch_all(tx)
    .await
}

/// The bodies of the organization's pending and firing alerts, locked.
pub async fn live_alerts(tx: &mut PgConnection, organization_id: &str) -> Result<Vec<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT body FROM alerts WHERE organization_id = $1 AND state IN ('pending', 'firing') \
         ORDER BY fingerprint FOR UPDATE",
    )
    .bind(organization_id)
    .fetch_all(tx)
    .await
}

pub struct AlertRow<'a> {
    pub organization_id: &'a str,
    pub fingerprint: &'a str,
    pub rule_id: &'a str,
    pub state: &'a str,
    pub severity: &'a str,
    pub labels: Value,
    pub active_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub value: Option<f64>,
    pub suppressed: Option<&'a str>,
    pub body: Value,
    pub at: DateTime<Utc>,
}

pub async fn upsert_alert(tx: &mut PgConnection, a: &AlertRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alerts (organization_id, fingerprint, rule_id, state, severity, labels, active_at, \
           fired_at, resolved_at, value, suppressed, body, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (organization_id, fingerprint) DO UPDATE SET rule_id = EXCLUDED.rule_id, \
           state = EXCLUDED.state, severity = EXCLUDED.severity, labels = EXCLUDED.labels, \
           active_at = EXCLUDED.active_at, fired_at = EXCLUDED.fired_at, resolved_at = EXCLUDED.resolved_at, \
           value = EXCLUDED.value, suppressed = EXCLUDED.suppressed, body = EXCLUDED.body, \
           updated_at = EXCLUDED.updated_at",
    )
    .bind(a.organization_id)
    .bind(a.fingerprint)
    .bind(a.rule_id)
    .bind(a.state)
    .bind(a.severity)
    .bind(&a.labels)
    .bind(a.active_at)
    .bind(a.fired_at)
    .bind(a.resolved_at)
    .bind(a.value)
    .bind(a.suppressed)
    .bind(&a.body)
    .bind(a.at)
    .execute(tx)
    .await
    .map(drop)
}

pub struct HistoryRow<'a> {
    pub organization_id: &'a str,
    pub fingerprint: &'a str,
    pub rule_id: &'a str,
    pub labels: Value,
    pub from_state: &'a str,
    pub to_state: &'a str,
    pub value: Option<f64>,
    pub at: DateTime<Utc>,
    pub event_id: &'a str,
}

pub async fn insert_history(tx: &mut PgConnection, h: &HistoryRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_history (organization_id, fingerprint, rule_id, labels, from_state, to_state, value, at, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(h.organization_id)
    .bind(h.fingerprint)
    .bind(h.rule_id)
    .bind(&h.labels)
    .bind(h.from_state)
    .bind(h.to_state)
    .bind(h.value)
    .bind(h.at)
    .bind(h.event_id)
    .execute(tx)
    .await
    .map(drop)
}

pub struct NotificationRow<'a> {
    pub organization_id: &'a str,
    pub fingerprint: &'a str,
    pub rule_id: &'a str,
    pub decision: &'a str,
    pub reason: Option<&'a str>,
    pub receivers: Value,
    pub repeat: bool,
    pub at: DateTime<Utc>,
    /// The `AlertFired` / `AlertResolved` event, when one went out.
    pub event_id: Option<&'a str>,
}

pub async fn insert_notification(tx: &mut PgConnection, n: &NotificationRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_notifications (organization_id, fingerprint, rule_id, decision, reason, receivers, repeat, at, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(n.organization_id)
    .bind(n.fingerprint)
    .bind(n.rule_id)
    .bind(n.decision)
    .bind(n.reason)
    .bind(&n.receivers)
    .bind(n.repeat)
    .bind(n.at)
    .bind(n.event_id)
    .execute(tx)
    .await
    .map(drop)
}

/// The last tick the organization's rules were evaluated up to (locked until the transaction
/// ends), `None` before the first.
pub async fn evaluation_clock(
    tx: &mut PgConnection,
    organization_id: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT last_up_to FROM evaluation_clock WHERE organization_id = $1 FOR UPDATE")
        .bind(organization_id)
        .fetch_optional(tx)
        .await
}

/// Moves the organization's evaluation clock to `up_to`; false (and nothing changes) when a tick
/// at or after it was already applied.
pub async fn advance_clock(
    tx: &mut PgConnection,
    organization_id: &str,
    up_to: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let moved = sqlx::query(
        "INSERT INTO evaluation_clock (organization_id, last_up_to) VALUES ($1, $2) \
         ON CONFLICT (organization_id) DO UPDATE SET last_up_to = EXCLUDED.last_up_to \
         WHERE evaluation_clock.last_up_to < EXCLUDED.last_up_to",
    )
    .bind(organization_id)
    .bind(up_to)
    .execute(tx)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// Organizations with at least one enabled rule: the scheduler ticks for these.
pub async fn organizations_with_rules(db: impl sqlx::PgExecutor<'_>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT organization_id FROM alert_rules WHERE enabled ORDER BY organization_id",
    )
    .fetch_all(db)
    .await
}
