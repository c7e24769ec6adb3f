//! What the gateway reads (through the read-only role, so names are schema-qualified).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::Payment;

/// Filters of `GET /api/payments`; `organization_id` is always set by the gateway.
#[derive(Debug, Default)]
pub struct PaymentFilter<'a> {
    pub organization_id: &'a str,
    pub member_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub method: Option<&'a str>,
}

/// Newest first; `after` is the (created_at, payment_id) of the last row of the previous page.
pub async fn list_payments(
    db: impl PgExecutor<'_>,
    filter: &PaymentFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Payment>, sqlx::Error> {
    sqlx::query_as(
        "SELECT payment_id, organization_id, member_id, amount_minor, currency, method, description, status, \
                created_at, updated_at \
         FROM billing.payments \
         WHERE organization_id = $1 \
           AND ($2::text IS NULL OR member_id = $2) \
           AND ($3::text IS NULL OR status = $3) \
           AND ($4::text IS NULL OR method = $4) \
           AND ($5::timestamptz IS NULL OR (created_at, payment_id) < ($5, $6)) \
         ORDER BY created_at DESC, payment_id DESC \
         LIMIT $7",
    )
    .bind(filter.organization_id)
    .bind(filter.member_id)
    .bind(filter.status)
    .bind(filter.method)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn find_payment(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    payment_id: &str,
) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as(
        "SELECT payment_id, organization_id, member_id, amount_minor, currency, method, description, status, \
                created_at, updated_at \
         FROM billing.payments WHERE organization_id = $1 AND payment_id = $2",
    )
    .bind(organization_id)
    .bind(payment_id)
    .fetch_optional(db)
    .await
}
