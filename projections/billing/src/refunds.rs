//! Refunds: pending until the provider answers, then succeeded or failed.

use sqlx::PgConnection;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Refund {
    pub refund_id: String,
    pub organization_id: String,
    pub payment_id: String,
    pub member_id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// pending, succeeded or failed.
    pub status: String,
    pub reason: Option<String>,
    pub provider_refund_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const COLUMNS: &str = "refund_id, organization_id, payment_id, member_id, amount_minor, currency, status, \
    reason, provider_refund_id, failure_code, failure_message, created_at, updated_at";

pub async fn exists(
    tx: &mut PgConnection,
    organization_id: &str,
    refund_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM refunds WHERE organization_id = $1 AND refund_id = $2)")
        .bind(organization_id)
        .bind(refund_id)
        .fetch_one(tx)
        .await
}

pub async fn load(
    tx: &mut PgConnection,
    organization_id: &str,
    refund_id: &str,
) -> Result<Option<Refund>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM refunds WHERE organization_id = $1 AND refund_id = $2 FOR UPDATE"
    )))
    .bind(organization_id)
    .bind(refund_id)
    .fetch_optional(tx)
    .await
}

pub async fn save(tx: &mut PgConnection, r: &Refund) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO refunds ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (organization_id, refund_id) DO UPDATE SET status = EXCLUDED.status, provider_refund_id = EXCLUDED.provider_refund_id, \
           failure_code = EXCLUDED.failure_code, failure_message = EXCLUDED.failure_message, updated_at = EXCLUDED.updated_at"
    )))
    .bind(&r.refund_id)
    .bind(&r.organization_id)
    .bind(&r.payment_id)
    .bind(&r.member_id)
    .bind(r.amount_minor)
    .bind(&r.currency)
    .bind(&r.status)
    .bind(&r.reason)
    .bind(&r.provider_refund_id)
    .bind(&r.failure_code)
    .bind(&r.failure_message)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(tx)
    .await
    .map(drop)
}

/// The refund of the organization's payment that a provider names by its own id.
pub async fn load_by_provider_id(
    tx: &mut PgConnection,
    organization_id: &str,
    payment_id: &str,
    provider_refund_id: &str,
) -> Result<Option<Refund>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM refunds \
         WHERE organization_id = $1 AND payment_id = $2 AND provider_refund_id = $3 FOR UPDATE"
    )))
    .bind(organization_id)
    .bind(payment_id)
    .bind(provider_refund_id)
    .fetch_optional(tx)
    .await
}
