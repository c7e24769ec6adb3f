//! Health checks and structured logs: the consumer's writes and the gateway's reads (the reads
//! go through the read-only role, so their names are schema-qualified).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

/// A health check's definition, as `DefineHealthCheck` carries it.
pub struct HealthCheckRow<'a> {
    pub organization_id: &'a str,
    pub health_check_id: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub target: &'a str,
    pub expected_status: i32,
    pub interval_seconds: i64,
    pub timeout_ms: i64,
    pub failure_threshold: i32,
    pub labels: Value,
    pub severity: &'a str,
    pub enabled: bool,
    pub at: DateTime<Utc>,
}

pub async fn upsert_health_check(tx: &mut PgConnection, c: &HealthCheckRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO health_checks (organization_id, health_check_id, name, kind, target, expected_status, \
           interval_seconds, timeout_ms, failure_threshold, labels, severity, enabled, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (organization_id, health_check_id) DO UPDATE SET name = EXCLUDED.name, \
           kind = EXCLUDED.kind, target = EXCLUDED.target, expected_status = EXCLUDED.expected_status, \
           interval_seconds = EXCLUDED.interval_seconds, timeout_ms = EXCLUDED.timeout_ms, \
           failure_threshold = EXCLUDED.failure_threshold, labels = EXCLUDED.labels, \
           severity = EXCLUDED.severity, enabled = EXCLUDED.enabled, updated_at = EXCLUDED.updated_at",
    )
    .bind(c.organization_id)
    .bind(c.health_check_id)
    .bind(c.name)
    .bind(c.kind)
    .bind(c.target)
    .bind(c.expected_status)
    .bind(c.interval_seconds)
    .bind(c.timeout_ms)
    .bind(c.failure_threshold)
    .bind(&c.labels)
    .bind(c.severity)
    .bind(c.enabled)
    .bind(c.at)
    .execute(tx)
    .await
    .map(drop)
}

/// A health check with its status now: what the prober probes and the gateway shows.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthCheckView {
    pub organization_id: String,
    pub health_check_id: String,
    pub name: String,
    /// `http` or `tcp`.
    pub kind: String,
    /// An http(s) URL or `host:port`.
    pub target: String,
    pub expected_status: i32,
    pub interval_seconds: i64,
    pub timeout_ms: i64,
    pub failure_threshold: i32,
    pub labels: Value,
    pub severity: String,
    pub enabled: bool,
    /// `unknown` (never probed), `up` or `down` (its last `failure_threshold` probes failed).
    pub status: String,
    pub consecutive_failures: i32,
    pub last_probed_at: Option<DateTime<Utc>>,
    pub last_success: Option<bool>,
    pub last_latency_ms: Option<i64>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    /// When it entered its current status.
    pub status_since: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! check_columns {
    () => {
        "organization_id, health_check_id, name, kind, target, expected_status, \
    interval_seconds, timeout_ms, failure_threshold, labels, severity, enabled, status, \
    consecutive_failures, last_probed_at, last_success, last_latency_ms, last_status_code, last_error, \
    status_since, updated_at"
    };
}

/// For the consumer (its own schema), locked for the probe result being applied.
pub async fn load_health_check_for_update(
    tx: &mut PgConnection,
    organization_id: &str,
    health_check_id: &str,
) -> Result<Option<HealthCheckView>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        check_columns!(),
        " FROM health_checks WHERE organization_id = $1 AND health_check_id = $2 FOR UPDATE"
    ))
    .bind(organization_id)
    .bind(health_check_id)
    .fetch_optional(tx)
    .await
}

/// Every enabled check of every organization: what the prober works through (its own schema).
pub async fn enabled_health_checks(db: impl PgExecutor<'_>) -> Result<Vec<HealthCheckView>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        check_columns!(),
        " FROM health_checks WHERE enabled ORDER BY organization_id, health_check_id"
    ))
    .fetch_all(db)
    .await
}

/// One applied probe and the check's status after it.
pub struct ProbeRow<'a> {
    pub event_id: &'a str,
    pub organization_id: &'a str,
    pub health_check_id: &'a str,
    pub success: bool,
    pub latency_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<&'a str>,
    pub status: &'a str,
    pub consecutive_failures: i32,
    /// Set when the status changed at this probe.
    pub status_changed: bool,
    pub probed_at: DateTime<Utc>,
}

pub async fn record_probe(tx: &mut PgConnection, p: &ProbeRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO health_check_results (event_id, organization_id, health_check_id, success, latency_ms, \
           status_code, error, status, probed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(p.event_id)
    .bind(p.organization_id)
    .bind(p.health_check_id)
    .bind(p.success)
    .bind(p.latency_ms)
    .bind(p.status_code)
    .bind(p.error)
    .bind(p.status)
    .bind(p.probed_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE health_checks SET status = $3, consecutive_failures = $4, last_probed_at = $5, \
           last_success = $6, last_latency_ms = $7, last_status_code = $8, last_error = $9, \
           status_since = CASE WHEN $10 THEN $5 ELSE status_since END \
         WHERE organization_id = $1 AND health_check_id = $2",
    )
    .bind(p.organization_id)
    .bind(p.health_check_id)
    .bind(p.status)
    .bind(p.consecutive_failures)
    .bind(p.probed_at)
    .bind(p.success)
    .bind(p.latency_ms)
    .bind(p.status_code)
    .bind(p.error)
    .bind(p.status_changed)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn list_health_checks(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    limit: i64,
) -> Result<Vec<HealthCheckView>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        check_columns!(),
        " FROM alerts.health_checks WHERE organization_id = $1 \
         ORDER BY health_check_id LIMIT $2"
    ))
    .bind(organization_id)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn health_check(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    health_check_id: &str,
) -> Result<Option<HealthCheckView>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        check_columns!(),
        " FROM alerts.health_checks WHERE organization_id = $1 AND health_check_id = $2"
    ))
    .bind(organization_id)
    .bind(health_check_id)
    .fetch_optional(db)
    .await
}

/// One probe as the history shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProbeView {
    pub event_id: String,
    pub success: bool,
    pub latency_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// The check's status after this probe.
    pub status: String,
    pub probed_at: DateTime<Utc>,
}

/// Latest first; `after` is the (probed_at, event_id) of the previous page's last row.
pub async fn probe_history(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    health_check_id: &str,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<ProbeView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_id, success, latency_ms, status_code, error, status, probed_at \
         FROM alerts.health_check_results \
         WHERE organization_id = $1 AND health_check_id = $2 \
           AND ($3::timestamptz IS NULL OR (probed_at, event_id) < ($3, $4)) \
         ORDER BY probed_at DESC, event_id DESC LIMIT $5",
    )
    .bind(organization_id)
    .bind(health_check_id)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

// ---------------------------------------------------------------------------------------------
// Logs

pub struct LogRow<'a> {
    pub log_id: String,
    pub organization_id: &'a str,
    pub logged_at: DateTime<Utc>,
    pub level: &'a str,
    pub level_rank: i16,
    pub service: &'a str,
    pub message: &'a str,
    pub fields: Value,
}

/// Stores a batch in one statement; a record already stored (a redelivery) is kept as it was.
pub async fn insert_logs(tx: &mut PgConnection, rows: &[LogRow<'_>]) -> Result<u64, sqlx::Error> {
    let mut q = sqlx::QueryBuilder::new(
        "INSERT INTO log_records (log_id, organization_id, logged_at, level, level_rank, service, message, fields) ",
    );
    q.push_values(rows, |mut b, r| {
        b.push_bind(&r.log_id)
            .push_bind(r.organization_id)
            .push_bind(r.logged_at)
            .push_bind(r.level)
            .push_bind(r.level_rank)
            .push_bind(r.service)
            .push_bind(r.message)
            .push_bind(&r.fields);
    });
    q.push(" ON CONFLICT (log_id) DO NOTHING");
    Ok(q.build().execute(tx).await?.rows_affected())
}

/// Drops the organization's records logged before `before`; how many went.
pub async fn delete_logs_before(
    tx: &mut PgConnection,
    organization_id: &str,
    before: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM log_records WHERE organization_id = $1 AND logged_at < $2")
        .bind(organization_id)
        .bind(before)
        .execute(tx)
        .await?
        .rows_affected())
}

/// Organizations holding log records: the retention ticks go to these (the consumer's schema).
pub async fn organizations_with_logs(db: impl PgExecutor<'_>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT organization_id FROM log_records ORDER BY organization_id")
        .fetch_all(db)
        .await
}

/// A stored log record.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogView {
    pub log_id: String,
    pub logged_at: DateTime<Utc>,
    pub level: String,
    pub service: String,
    pub message: String,
    pub fields: Value,
}

/// Filters of `GET /api/monitoring/logs`; `organization_id` is always set by the gateway.
#[derive(Debug, Default)]
pub struct LogFilter<'a> {
    pub organization_id: &'a str,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// At least this level rank.
    pub min_level_rank: Option<i16>,
    pub service: Option<&'a str>,
    /// A web-search style query (`words`, `"a phrase"`, `-not`) over the message and field values.
    pub text: Option<&'a str>,
}

/// Latest first; `after` is the (logged_at, log_id) of the previous page's last row.
pub async fn search_logs(
    db: impl PgExecutor<'_>,
    f: &LogFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<LogView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT log_id, logged_at, level, service, message, fields FROM alerts.log_records \
         WHERE organization_id = $1 \
           AND ($2::timestamptz IS NULL OR logged_at >= $2) \
           AND ($3::timestamptz IS NULL OR logged_at < $3) \
           AND ($4::smallint IS NULL OR level_rank >= $4) \
           AND ($5::text IS NULL OR service = $5) \
           AND ($6::text IS NULL OR search @@ websearch_to_tsquery('simple'::regconfig, $6)) \
           AND ($7::timestamptz IS NULL OR (logged_at, log_id) < ($7, $8)) \
         ORDER BY logged_at DESC, log_id DESC LIMIT $9",
    )
    .bind(f.organization_id)
    .bind(f.from)
    .bind(f.to)
    .bind(f.min_level_rank)
    .bind(f.service)
    .bind(f.text)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}
