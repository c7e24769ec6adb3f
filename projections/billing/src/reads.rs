//! What the gateway reads (through the read-only role, so names are schema-qualified).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::{Invoice, InvoiceLine, Payment, PaymentMethod, Refund};

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
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM billing.payments \
         WHERE organization_id = $1 \
           AND ($2::text IS NULL OR member_id = $2) \
           AND ($3::text IS NULL OR status = $3) \
           AND ($4::text IS NULL OR method = $4) \
           AND ($5::timestamptz IS NULL OR (created_at, payment_id) < ($5, $6)) \
         ORDER BY created_at DESC, payment_id DESC \
         LIMIT $7",
        crate::payments::COLUMNS
    )))
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
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM billing.payments WHERE organization_id = $1 AND payment_id = $2",
        crate::payments::COLUMNS
    )))
    .bind(organization_id)
    .bind(payment_id)
    .fetch_optional(db)
    .await
}

/// The payment a provider's webhook is about, in whichever organization (the caller then acts
/// in the organization of the row found). The provider's own id names one payment for good once
/// billing recorded it; before that (a charge whose answer is not applied yet), our id as the
/// provider echoes it (metadata / notes), within the organization it echoes too. Payment ids are
/// unique only within an organization: an echoed id that two organizations use, with no
/// organization echoed to tell them apart, finds nothing rather than a guess (the provider
/// retries, and by then the provider's id is recorded).
pub async fn find_payment_for_provider(
    db: impl PgExecutor<'_>,
    payment_id: Option<&str>,
    organization_id: Option<&str>,
    connector: &str,
    provider_payment_id: &str,
) -> Result<Option<Payment>, sqlx::Error> {
    let found: Vec<Payment> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM billing.payments \
         WHERE (connector = $3 AND provider_payment_id = $4) \
            OR ($1::text IS NOT NULL AND payment_id = $1 AND ($2::text IS NULL OR organization_id = $2)) \
         ORDER BY (connector = $3 AND provider_payment_id = $4) IS TRUE DESC, organization_id \
         LIMIT 2",
        crate::payments::COLUMNS
    )))
    .bind(payment_id)
    .bind(organization_id)
    .bind(connector)
    .bind(provider_payment_id)
    .fetch_all(db)
    .await?;
    let by_provider_id = |p: &Payment| {
        p.connector.as_deref() == Some(connector)
            && p.provider_payment_id.as_deref() == Some(provider_payment_id)
    };
    Ok(match found.as_slice() {
        [first, ..] if by_provider_id(first) => Some(first.clone()),
        [only] => Some(only.clone()),
        _ => None,
    })
}

/// Filters shared by the member-owned collections (refunds, methods, invoices).
#[derive(Debug, Default)]
pub struct OwnedFilter<'a> {
    pub organization_id: &'a str,
    pub member_id: Option<&'a str>,
    pub status: Option<&'a str>,
    /// Refunds of one payment.
    pub payment_id: Option<&'a str>,
}

/// Newest first, keyset-paginated by (created_at, id).
pub async fn list_refunds(
    db: impl PgExecutor<'_>,
    filter: &OwnedFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Refund>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM billing.refunds \
         WHERE organization_id = $1 AND ($2::text IS NULL OR member_id = $2) AND ($3::text IS NULL OR status = $3) \
           AND ($4::text IS NULL OR payment_id = $4) \
           AND ($5::timestamptz IS NULL OR (created_at, refund_id) < ($5, $6)) \
         ORDER BY created_at DESC, refund_id DESC LIMIT $7",
        crate::refunds::COLUMNS
    )))
    .bind(filter.organization_id)
    .bind(filter.member_id)
    .bind(filter.status)
    .bind(filter.payment_id)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn find_refund(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    refund_id: &str,
) -> Result<Option<Refund>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM billing.refunds WHERE organization_id = $1 AND refund_id = $2",
        crate::refunds::COLUMNS
    )))
    .bind(organization_id)
    .bind(refund_id)
    .fetch_optional(db)
    .await
}

pub async fn list_payment_methods(
    db: impl PgExecutor<'_>,
    filter: &OwnedFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<PaymentMethod>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM billing.payment_methods \
         WHERE organization_id = $1 AND ($2::text IS NULL OR member_id = $2) \
           AND ($3::timestamptz IS NULL OR (created_at, payment_method_id) < ($3, $4)) \
         ORDER BY created_at DESC, payment_method_id DESC LIMIT $5",
        crate::methods::COLUMNS
    )))
    .bind(filter.organization_id)
    .bind(filter.member_id)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn find_payment_method(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    payment_method_id: &str,
) -> Result<Option<PaymentMethod>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM billing.payment_methods WHERE organization_id = $1 AND payment_method_id = $2",
        crate::methods::COLUMNS
    )))
    .bind(organization_id)
    .bind(payment_method_id)
    .fetch_optional(db)
    .await
}

pub async fn list_invoices(
    db: impl PgExecutor<'_>,
    filter: &OwnedFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Invoice>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM billing.invoices \
         WHERE organization_id = $1 AND ($2::text IS NULL OR member_id = $2) AND ($3::text IS NULL OR status = $3) \
           AND ($4::timestamptz IS NULL OR (created_at, invoice_id) < ($4, $5)) \
         ORDER BY created_at DESC, invoice_id DESC LIMIT $6",
        crate::invoices::COLUMNS
    )))
    .bind(filter.organization_id)
    .bind(filter.member_id)
    .bind(filter.status)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn find_invoice(
    db: impl PgExecutor<'_> + Copy,
    organization_id: &str,
    invoice_id: &str,
) -> Result<Option<(Invoice, Vec<InvoiceLine>)>, sqlx::Error> {
    let invoice: Option<Invoice> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM billing.invoices WHERE organization_id = $1 AND invoice_id = $2",
        crate::invoices::COLUMNS
    )))
    .bind(organization_id)
    .bind(invoice_id)
    .fetch_optional(db)
    .await?;
    let Some(invoice) = invoice else { return Ok(None) };
    let lines = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM billing.invoice_lines WHERE organization_id = $1 AND invoice_id = $2 ORDER BY line_no",
        crate::invoices::LINE_COLUMNS
    )))
    .bind(organization_id)
    .bind(invoice_id)
    .fetch_all(db)
    .await?;
    Ok(Some((invoice, lines)))
}

/// Sums by a grouping, in one currency.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevenueRow {
    /// The day (YYYY-MM-DD, UTC), method or connector.
    pub key: String,
    pub currency: String,
    pub payments: i64,
    pub amount_minor: i64,
    pub fees_minor: i64,
}

/// Per currency: what succeeded and failed, refunds, fees.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurrencyTotals {
    pub currency: String,
    pub succeeded: i64,
    pub failed: i64,
    /// succeeded / (succeeded + failed); absent when nothing settled.
    pub success_rate: Option<f64>,
    pub failure_rate: Option<f64>,
    pub revenue_minor: i64,
    pub gateway_fees_minor: i64,
    pub processing_fees_minor: i64,
    /// Average of gateway + processing fee per succeeded payment, rounded down.
    pub average_fee_minor: Option<i64>,
    pub refunds: i64,
    pub refunded_minor: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaymentsDashboard {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub totals: Vec<CurrencyTotals>,
    pub revenue_by_day: Vec<RevenueRow>,
    pub revenue_by_method: Vec<RevenueRow>,
    pub revenue_by_connector: Vec<RevenueRow>,
}

/// Payments settled (succeeded or failed) and refunds issued in `[from, to)`, per currency.
pub async fn payments_dashboard(
    db: impl PgExecutor<'_> + Copy,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<PaymentsDashboard, sqlx::Error> {
    let totals = sqlx::query_as(
        "WITH settled AS ( \
           SELECT currency, count(*) FILTER (WHERE succeeded_at >= $2 AND succeeded_at < $3) AS succeeded, \
                  count(*) FILTER (WHERE failed_at >= $2 AND failed_at < $3 AND succeeded_at IS NULL) AS failed, \
                  COALESCE(sum(amount_minor) FILTER (WHERE succeeded_at >= $2 AND succeeded_at < $3), 0)::bigint AS revenue, \
                  COALESCE(sum(gateway_fee_minor) FILTER (WHERE succeeded_at >= $2 AND succeeded_at < $3), 0)::bigint AS gateway_fees, \
                  COALESCE(sum(processing_fee_minor) FILTER (WHERE succeeded_at >= $2 AND succeeded_at < $3), 0)::bigint AS processing_fees \
           FROM billing.payments WHERE organization_id = $1 \
             AND ((succeeded_at >= $2 AND succeeded_at < $3) OR (failed_at >= $2 AND failed_at < $3)) \
           GROUP BY currency), \
         refunded AS ( \
           SELECT currency, count(*) AS refunds, sum(amount_minor)::bigint AS refunded \
           FROM billing.refunds WHERE organization_id = $1 AND status = 'succeeded' \
             AND updated_at >= $2 AND updated_at < $3 GROUP BY currency) \
         SELECT COALESCE(s.currency, r.currency)::text AS currency, COALESCE(s.succeeded, 0) AS succeeded, \
                COALESCE(s.failed, 0) AS failed, \
                s.succeeded::float8 / NULLIF(s.succeeded + s.failed, 0) AS success_rate, \
                s.failed::float8 / NULLIF(s.succeeded + s.failed, 0) AS failure_rate, \
                COALESCE(s.revenue, 0) AS revenue_minor, COALESCE(s.gateway_fees, 0) AS gateway_fees_minor, \
                COALESCE(s.processing_fees, 0) AS processing_fees_minor, \
                ((s.gateway_fees + s.processing_fees) / NULLIF(s.succeeded, 0))::bigint AS average_fee_minor, \
                COALESCE(r.refunds, 0) AS refunds, COALESCE(r.refunded, 0) AS refunded_minor \
         FROM settled s FULL JOIN refunded r ON r.currency = s.currency ORDER BY 1",
    )
    .bind(organization_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    let revenue_by = |key: &'static str| {
        sqlx::query_as::<_, RevenueRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {key} AS key, currency::text AS currency, count(*) AS payments, \
                    sum(amount_minor)::bigint AS amount_minor, \
                    sum(gateway_fee_minor + processing_fee_minor)::bigint AS fees_minor \
             FROM billing.payments WHERE organization_id = $1 AND succeeded_at >= $2 AND succeeded_at < $3 \
             GROUP BY 1, 2 ORDER BY 1, 2"
        )))
        .bind(organization_id)
        .bind(from)
        .bind(to)
        .fetch_all(db)
    };
    Ok(PaymentsDashboard {
        from,
        to,
        totals,
        revenue_by_day: revenue_by("to_char(succeeded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')").await?,
        revenue_by_method: revenue_by("method").await?,
        revenue_by_connector: revenue_by("COALESCE(connector, 'unknown')").await?,
    })
}
