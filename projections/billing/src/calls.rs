//! Calls to payment providers: decided in a batch, worked off by billing's provider worker.
//!
//! The worker leases due calls, calls the provider with the call's idempotency key, and in one
//! transaction puts the answer in the outbox (as a `Record…Outcome` command) and moves the call
//! on. A crash before that transaction repeats the provider call with the same key, which the
//! provider answers without charging twice.

use sqlx::{PgConnection, PgPool};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProviderCall {
    pub call_id: String,
    /// charge or refund.
    pub kind: String,
    pub organization_id: String,
    pub member_id: String,
    pub payment_id: String,
    pub refund_id: Option<String>,
    /// pending, awaiting, reported or settled.
    pub status: String,
    /// What the provider needs (amount, currency, method, token, correlation id…), as JSON.
    pub request: serde_json::Value,
    pub connector: Option<String>,
    pub provider_payment_id: Option<String>,
    pub attempts: i32,
    pub reports: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "call_id, kind, organization_id, member_id, payment_id, refund_id, status, request, connector, \
    provider_payment_id, attempts, reports, last_error, next_attempt_at, first_attempt_at, created_at";

/// Records a call to make; `created_at` is the deciding record's time (due at once).
pub async fn insert(tx: &mut PgConnection, call: &ProviderCall) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO provider_calls (call_id, kind, organization_id, member_id, payment_id, refund_id, status, request, \
         connector, provider_payment_id, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $10) ON CONFLICT (organization_id, call_id) DO NOTHING",
    )
    .bind(&call.call_id)
    .bind(&call.kind)
    .bind(&call.organization_id)
    .bind(&call.member_id)
    .bind(&call.payment_id)
    .bind(&call.refund_id)
    .bind(&call.request)
    .bind(&call.connector)
    .bind(&call.provider_payment_id)
    .bind(call.created_at)
    .execute(tx)
    .await
    .map(drop)
}

/// The answer was applied; nothing more to do for this call.
pub async fn settle(tx: &mut PgConnection, organization_id: &str, call_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provider_calls SET status = 'settled', leased_until = NULL \
         WHERE organization_id = $1 AND call_id = $2",
    )
    .bind(organization_id)
    .bind(call_id)
    .execute(tx)
    .await
    .map(drop)
}

/// The refund's call needs nothing more (its answer came by webhook).
pub async fn settle_refund(
    tx: &mut PgConnection,
    organization_id: &str,
    refund_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provider_calls SET status = 'settled', leased_until = NULL \
         WHERE organization_id = $1 AND kind = 'refund' AND refund_id = $2",
    )
    .bind(organization_id)
    .bind(refund_id)
    .execute(tx)
    .await
    .map(drop)
}

/// Makes a call the provider has news about due at `at`: one waiting for the provider is asked
/// again at once. Calls not yet made, or already answered for good, are left as they are.
pub async fn wake(
    tx: &mut PgConnection,
    organization_id: &str,
    call_id: &str,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE provider_calls SET next_attempt_at = LEAST(next_attempt_at, $3) \
         WHERE organization_id = $1 AND call_id = $2 AND status = 'awaiting'",
    )
    .bind(organization_id)
    .bind(call_id)
    .bind(at)
    .execute(tx)
    .await
    .map(|r| r.rows_affected() > 0)
}

/// Takes up to `limit` due calls for `lease_secs` seconds, so a second worker (or this one after
/// a crash, once the lease ends) does not call the provider for them at the same time.
pub async fn lease_due(pool: &PgPool, limit: i64, lease_secs: f64) -> Result<Vec<ProviderCall>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE provider_calls SET leased_until = now() + make_interval(secs => $2), \
           attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, now()) \
         WHERE (organization_id, call_id) IN (SELECT organization_id, call_id FROM provider_calls \
             WHERE status IN ('pending', 'awaiting') AND next_attempt_at <= now() \
               AND (leased_until IS NULL OR leased_until < now()) \
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING {COLUMNS}"
    )))
    .bind(limit)
    .bind(lease_secs)
    .fetch_all(pool)
    .await
}

/// The provider could not be reached (or is still working): try again after `delay_secs`.
pub async fn retry_later(
    pool: &PgPool,
    organization_id: &str,
    call_id: &str,
    status: &str,
    delay_secs: f64,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE provider_calls SET status = $2, next_attempt_at = now() + make_interval(secs => $3), \
           last_error = COALESCE($4, last_error), leased_until = NULL WHERE call_id = $1 AND organization_id = $5",
    )
    .bind(call_id)
    .bind(status)
    .bind(delay_secs)
    .bind(error)
    .bind(organization_id)
    .execute(pool)
    .await
    .map(drop)
}

/// An answer went into the outbox in this transaction. `awaiting` calls are asked again after
/// `poll_secs`; `reported` ones wait for the answer to be applied. Returns the report's number.
pub async fn reported(
    tx: &mut PgConnection,
    organization_id: &str,
    call_id: &str,
    status: &str,
    connector: &str,
    provider_payment_id: Option<&str>,
    poll_secs: f64,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE provider_calls SET status = $2, connector = $3, provider_payment_id = COALESCE($4, provider_payment_id), \
           reports = reports + 1, next_attempt_at = now() + make_interval(secs => $5), leased_until = NULL, \
           last_error = NULL \
         WHERE call_id = $1 AND organization_id = $6 RETURNING reports",
    )
    .bind(call_id)
    .bind(status)
    .bind(connector)
    .bind(provider_payment_id)
    .bind(poll_secs)
    .bind(organization_id)
    .fetch_one(tx)
    .await
}

/// How many calls wait for the provider, by status (for metrics and tests).
pub async fn backlog(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, count(*) FROM provider_calls WHERE status <> 'settled' GROUP BY status")
        .fetch_all(pool)
        .await
}
