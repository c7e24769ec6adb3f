//! Subscriptions, the charges waiting for their next invoice, and their history of status and MRR.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscription {
    pub subscription_id: String,
    pub organization_id: String,
    pub member_id: String,
    pub plan_id: String,
    pub plan_version: i32,
    pub currency: String,
    /// trialing, active, past_due, paused, suspended or cancelled.
    pub status: String,
    pub anchor: DateTime<Utc>,
    pub period_index: i32,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    pub covered_from: DateTime<Utc>,
    pub covered_value_minor: i64,
    pub trial_end: Option<DateTime<Utc>>,
    pub trial_notice_sent: bool,
    pub cancel_at_period_end: bool,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub paused_at: Option<DateTime<Utc>>,
    pub resume_at: Option<DateTime<Utc>>,
    pub coupon_id: Option<String>,
    pub coupon_percent_bps: Option<i32>,
    pub coupon_amount_minor: Option<i64>,
    pub coupon_cycles_left: Option<i32>,
    pub payment_method_id: Option<String>,
    pub dunning_invoice_id: Option<String>,
    pub dunning_attempt: i32,
    pub dunning_started_at: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub applied_through: DateTime<Utc>,
    pub next_due_at: Option<DateTime<Utc>>,
    pub mrr_minor: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A charge waiting for the subscription's next invoice.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PendingItem {
    pub item_no: i32,
    pub description: String,
    pub amount_minor: i64,
}

pub(crate) const COLUMNS: &str = "subscription_id, organization_id, member_id, plan_id, plan_version, currency, status, \
    anchor, period_index, current_period_start, current_period_end, covered_from, covered_value_minor, trial_end, \
    trial_notice_sent, cancel_at_period_end, cancelled_at, cancel_reason, paused_at, resume_at, coupon_id, \
    coupon_percent_bps, coupon_amount_minor, coupon_cycles_left, payment_method_id, dunning_invoice_id, \
    dunning_attempt, dunning_started_at, next_retry_at, applied_through, next_due_at, mrr_minor, created_at, updated_at";

/// The organization's subscription, locked for the rest of the transaction.
pub async fn load(
    tx: &mut PgConnection,
    organization_id: &str,
    subscription_id: &str,
) -> Result<Option<Subscription>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE organization_id = $1 AND subscription_id = $2 FOR UPDATE"
    )))
    .bind(organization_id)
    .bind(subscription_id)
    .fetch_optional(tx)
    .await
}

pub async fn save(tx: &mut PgConnection, s: &Subscription) -> Result<(), sqlx::Error> {
    let placeholders = (1..=34).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
    let updates = COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| !matches!(*c, "subscription_id" | "organization_id" | "member_id" | "created_at"))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO subscriptions ({COLUMNS}) VALUES ({placeholders}) \
         ON CONFLICT (organization_id, subscription_id) DO UPDATE SET {updates}"
    )))
    .bind(&s.subscription_id)
    .bind(&s.organization_id)
    .bind(&s.member_id)
    .bind(&s.plan_id)
    .bind(s.plan_version)
    .bind(&s.currency)
    .bind(&s.status)
    .bind(s.anchor)
    .bind(s.period_index)
    .bind(s.current_period_start)
    .bind(s.current_period_end)
    .bind(s.covered_from)
    .bind(s.covered_value_minor)
    .bind(s.trial_end)
    .bind(s.trial_notice_sent)
    .bind(s.cancel_at_period_end)
    .bind(s.cancelled_at)
    .bind(&s.cancel_reason)
    .bind(s.paused_at)
    .bind(s.resume_at)
    .bind(&s.coupon_id)
    .bind(s.coupon_percent_bps)
    .bind(s.coupon_amount_minor)
    .bind(s.coupon_cycles_left)
    .bind(&s.payment_method_id)
    .bind(&s.dunning_invoice_id)
    .bind(s.dunning_attempt)
    .bind(s.dunning_started_at)
    .bind(s.next_retry_at)
    .bind(s.applied_through)
    .bind(s.next_due_at)
    .bind(s.mrr_minor)
    .bind(s.created_at)
    .bind(s.updated_at)
    .execute(tx)
    .await
    .map(drop)
}

/// The organization's subscriptions with billing work due at or before `up_to`.
pub async fn due(
    tx: &mut PgConnection,
    organization_id: &str,
    up_to: DateTime<Utc>,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT subscription_id, member_id FROM subscriptions \
         WHERE organization_id = $1 AND next_due_at <= $2 ORDER BY next_due_at, subscription_id",
    )
    .bind(organization_id)
    .bind(up_to)
    .fetch_all(tx)
    .await
}

/// Organizations with subscriptions due at or before `up_to` (for the scheduler).
pub async fn organizations_due(
    pool: impl sqlx::PgExecutor<'_>,
    up_to: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT organization_id FROM subscriptions WHERE next_due_at <= $1 ORDER BY organization_id",
    )
    .bind(up_to)
    .fetch_all(pool)
    .await
}

pub async fn pending_items(
    tx: &mut PgConnection,
    organization_id: &str,
    subscription_id: &str,
) -> Result<Vec<PendingItem>, sqlx::Error> {
    sqlx::query_as(
        "SELECT item_no, description, amount_minor FROM subscription_items \
         WHERE organization_id = $1 AND subscription_id = $2 AND invoice_id IS NULL ORDER BY item_no",
    )
    .bind(organization_id)
    .bind(subscription_id)
    .fetch_all(tx)
    .await
}

pub async fn add_item(
    tx: &mut PgConnection,
    organization_id: &str,
    subscription_id: &str,
    description: &str,
    amount_minor: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscription_items (organization_id, subscription_id, item_no, description, amount_minor, created_at) \
         SELECT $5, $1, COALESCE(MAX(item_no), 0) + 1, $2, $3, $4 FROM subscription_items \
         WHERE organization_id = $5 AND subscription_id = $1",
    )
    .bind(subscription_id)
    .bind(description)
    .bind(amount_minor)
    .bind(at)
    .bind(organization_id)
    .execute(tx)
    .await
    .map(drop)
}

/// Marks every waiting charge as billed by `invoice_id`.
pub async fn invoice_items(
    tx: &mut PgConnection,
    organization_id: &str,
    subscription_id: &str,
    invoice_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE subscription_items SET invoice_id = $2 \
         WHERE organization_id = $3 AND subscription_id = $1 AND invoice_id IS NULL",
    )
    .bind(subscription_id)
    .bind(invoice_id)
    .bind(organization_id)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn record_history(
    tx: &mut PgConnection,
    s: &Subscription,
    effective_at: DateTime<Utc>,
    status: &str,
    mrr_minor: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO subscription_history (subscription_id, organization_id, effective_at, status, mrr_minor, currency) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&s.subscription_id)
    .bind(&s.organization_id)
    .bind(effective_at)
    .bind(status)
    .bind(mrr_minor)
    .bind(&s.currency)
    .execute(tx)
    .await
    .map(drop)
}
