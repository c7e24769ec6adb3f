//! Credit notes and what invoices drew from them, oldest credit first.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreditNote {
    pub credit_note_id: String,
    pub organization_id: String,
    pub member_id: String,
    pub subscription_id: String,
    pub currency: String,
    pub amount_minor: i64,
    pub remaining_minor: i64,
    /// proration, cancellation, pause or goodwill.
    pub reason: String,
    pub memo: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub(crate) const COLUMNS: &str = "credit_note_id, organization_id, member_id, subscription_id, currency, amount_minor, \
    remaining_minor, reason, memo, created_at";

pub async fn exists(
    tx: &mut PgConnection,
    organization_id: &str,
    credit_note_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM credit_notes WHERE organization_id = $1 AND credit_note_id = $2)",
    )
    .bind(organization_id)
    .bind(credit_note_id)
    .fetch_one(tx)
    .await
}

pub async fn insert(tx: &mut PgConnection, n: &CreditNote) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO credit_notes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )))
    .bind(&n.credit_note_id)
    .bind(&n.organization_id)
    .bind(&n.member_id)
    .bind(&n.subscription_id)
    .bind(&n.currency)
    .bind(n.amount_minor)
    .bind(n.remaining_minor)
    .bind(&n.reason)
    .bind(&n.memo)
    .bind(n.created_at)
    .execute(tx)
    .await
    .map(drop)
}

/// Draws up to `amount_minor` from the subscription's open credit notes, oldest first, for
/// `invoice_id` (both of `organization_id`); returns what was drawn.
pub async fn apply(
    tx: &mut PgConnection,
    organization_id: &str,
    subscription_id: &str,
    invoice_id: &str,
    amount_minor: i64,
) -> Result<i64, sqlx::Error> {
    let open: Vec<(String, i64)> = sqlx::query_as(
        "SELECT credit_note_id, remaining_minor FROM credit_notes \
         WHERE organization_id = $1 AND subscription_id = $2 AND remaining_minor > 0 \
         ORDER BY created_at, credit_note_id FOR UPDATE",
    )
    .bind(organization_id)
    .bind(subscription_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut drawn = 0;
    for (note, remaining) in open {
        let take = remaining.min(amount_minor - drawn);
        if take <= 0 {
            break;
        }
        sqlx::query(
            "UPDATE credit_notes SET remaining_minor = remaining_minor - $2 \
             WHERE credit_note_id = $1 AND organization_id = $3",
        )
        .bind(&note)
        .bind(take)
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO credit_applications (organization_id, credit_note_id, invoice_id, amount_minor) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(organization_id)
        .bind(&note)
        .bind(invoice_id)
        .bind(take)
        .execute(&mut *tx)
        .await?;
        drawn += take;
    }
    Ok(drawn)
}

/// What the subscription's open credit notes still hold.
pub async fn available(
    tx: &mut PgConnection,
    organization_id: &str,
    subscription_id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(SUM(remaining_minor), 0)::bigint FROM credit_notes \
         WHERE organization_id = $1 AND subscription_id = $2",
    )
    .bind(organization_id)
    .bind(subscription_id)
    .fetch_one(tx)
    .await
}
