//! Payments: one row each, its whole state (status, attempts, provider, fees, refunds).

use sqlx::PgConnection;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Payment {
    pub payment_id: String,
    pub organization_id: String,
    pub member_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub method: String,
    pub description: Option<String>,
    /// created, processing, requires_action, succeeded, failed, partially_refunded or refunded.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub invoice_id: Option<String>,
    pub payment_method_id: Option<String>,
    /// How many times it was sent to a provider.
    pub attempts: i32,
    /// The provider call whose answer the payment waits for.
    #[serde(skip)]
    pub pending_call_id: Option<String>,
    /// stripe, paypal, razorpay or manual: who charged it.
    pub connector: Option<String>,
    pub provider_payment_id: Option<String>,
    pub gateway_fee_minor: i64,
    pub processing_fee_minor: i64,
    pub refunded_minor: i64,
    /// Refunds accepted and not yet answered by the provider.
    pub reserved_minor: i64,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    /// What must happen before it completes: redirect, upi_intent, upi_qr or staff_confirmation.
    pub action_kind: Option<String>,
    pub action_url: Option<String>,
    pub succeeded_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
}

pub(crate) const COLUMNS: &str = "payment_id, organization_id, member_id, amount_minor, currency, method, \
    description, status, created_at, updated_at, invoice_id, payment_method_id, attempts, pending_call_id, \
    connector, provider_payment_id, gateway_fee_minor, processing_fee_minor, refunded_minor, reserved_minor, \
    failure_code, failure_message, action_kind, action_url, succeeded_at, failed_at";

/// Whether the organization has a payment of that id (another organization's is not seen).
pub async fn payment_exists(
    tx: &mut PgConnection,
    organization_id: &str,
    payment_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM payments WHERE organization_id = $1 AND payment_id = $2)",
    )
    .bind(organization_id)
    .bind(payment_id)
    .fetch_one(tx)
    .await
}

/// The organization's payment, locked for the rest of the transaction.
pub async fn load(
    tx: &mut PgConnection,
    organization_id: &str,
    payment_id: &str,
) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM payments WHERE organization_id = $1 AND payment_id = $2 FOR UPDATE"
    )))
    .bind(organization_id)
    .bind(payment_id)
    .fetch_optional(tx)
    .await
}

pub async fn insert_payment(tx: &mut PgConnection, p: &Payment) -> Result<(), sqlx::Error> {
    save(tx, p).await
}

/// Inserts or overwrites the whole row.
pub async fn save(tx: &mut PgConnection, p: &Payment) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO payments ({COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26) \
         ON CONFLICT (organization_id, payment_id) DO UPDATE SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, \
           attempts = EXCLUDED.attempts, pending_call_id = EXCLUDED.pending_call_id, connector = EXCLUDED.connector, \
           provider_payment_id = EXCLUDED.provider_payment_id, gateway_fee_minor = EXCLUDED.gateway_fee_minor, \
           processing_fee_minor = EXCLUDED.processing_fee_minor, refunded_minor = EXCLUDED.refunded_minor, \
           reserved_minor = EXCLUDED.reserved_minor, failure_code = EXCLUDED.failure_code, \
           failure_message = EXCLUDED.failure_message, action_kind = EXCLUDED.action_kind, \
           action_url = EXCLUDED.action_url, succeeded_at = EXCLUDED.succeeded_at, failed_at = EXCLUDED.failed_at"
    )))
    .bind(&p.payment_id)
    .bind(&p.organization_id)
    .bind(&p.member_id)
    .bind(p.amount_minor)
    .bind(&p.currency)
    .bind(&p.method)
    .bind(&p.description)
    .bind(&p.status)
    .bind(p.created_at)
    .bind(p.updated_at)
    .bind(&p.invoice_id)
    .bind(&p.payment_method_id)
    .bind(p.attempts)
    .bind(&p.pending_call_id)
    .bind(&p.connector)
    .bind(&p.provider_payment_id)
    .bind(p.gateway_fee_minor)
    .bind(p.processing_fee_minor)
    .bind(p.refunded_minor)
    .bind(p.reserved_minor)
    .bind(&p.failure_code)
    .bind(&p.failure_message)
    .bind(&p.action_kind)
    .bind(&p.action_url)
    .bind(p.succeeded_at)
    .bind(p.failed_at)
    .execute(tx)
    .await
    .map(drop)
}
