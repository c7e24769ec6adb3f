//! Billing's projection: payments (invoices, refunds and subscriptions follow).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, migrate::Migrator};

pub mod reads;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Payment {
    pub payment_id: String,
    pub organization_id: String,
    pub member_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub method: String,
    pub description: Option<String>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn payment_exists(tx: &mut PgConnection, payment_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM payments WHERE payment_id = $1)")
        .bind(payment_id)
        .fetch_one(tx)
        .await
}

pub async fn insert_payment(tx: &mut PgConnection, p: &Payment) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payments (payment_id, organization_id, member_id, amount_minor, currency, method, description, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
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
    .execute(tx)
    .await
    .map(drop)
}
