//! Invoices with their lines; numbers per organization, consecutive and never reused, handed out
//! in the order of the organization's partition of billing's catalog command topic.

use sqlx::PgConnection;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invoice {
    pub invoice_id: String,
    pub organization_id: String,
    pub member_id: String,
    /// Set shortly after the invoice is finalized (its number is handed out in the organization's
    /// series, in log order), e.g. INV-000042. An invoice is payable once it has one.
    pub number: Option<String>,
    pub currency: String,
    pub subtotal_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub amount_paid_minor: i64,
    /// draft, open, paid, void or uncollectible.
    pub status: String,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub issued_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    /// Set on a subscription's invoices, with the period it bills.
    pub subscription_id: Option<String>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    /// Credit notes drawn on; payments and credits together settle the total.
    pub credit_applied_minor: i64,
    /// A subscription invoice whose charge to the stored method waits for its number.
    #[serde(skip)]
    pub charge_on_number: bool,
}

impl Invoice {
    /// What payments still have to cover.
    pub fn amount_due_minor(&self) -> i64 {
        (self.total_minor - self.credit_applied_minor - self.amount_paid_minor).max(0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvoiceLine {
    #[serde(skip)]
    pub invoice_id: String,
    pub line_no: i32,
    pub description: String,
    pub quantity: i64,
    pub unit_amount_minor: i64,
    /// quantity × unit amount, before tax.
    pub amount_minor: i64,
    pub tax_rate_bps: i32,
    pub tax_name: Option<String>,
    pub tax_minor: i64,
}

pub(crate) const COLUMNS: &str = "invoice_id, organization_id, member_id, number, currency, subtotal_minor, tax_minor, \
    total_minor, amount_paid_minor, status, due_at, created_at, updated_at, issued_at, paid_at, subscription_id, \
    period_start, period_end, credit_applied_minor, charge_on_number";

pub(crate) const LINE_COLUMNS: &str = "invoice_id, line_no, description, quantity, unit_amount_minor, amount_minor, tax_rate_bps, tax_name, tax_minor";

/// The organization's invoice, locked for the rest of the transaction.
pub async fn load(
    tx: &mut PgConnection,
    organization_id: &str,
    invoice_id: &str,
) -> Result<Option<Invoice>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM invoices WHERE organization_id = $1 AND invoice_id = $2 FOR UPDATE"
    )))
    .bind(organization_id)
    .bind(invoice_id)
    .fetch_optional(tx)
    .await
}

pub async fn insert(
    tx: &mut PgConnection,
    invoice: &Invoice,
    lines: &[InvoiceLine],
) -> Result<(), sqlx::Error> {
    save(&mut *tx, invoice).await?;
    for line in lines {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO invoice_lines (organization_id, {LINE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )))
        .bind(&invoice.organization_id)
        .bind(&line.invoice_id)
        .bind(line.line_no)
        .bind(&line.description)
        .bind(line.quantity)
        .bind(line.unit_amount_minor)
        .bind(line.amount_minor)
        .bind(line.tax_rate_bps)
        .bind(&line.tax_name)
        .bind(line.tax_minor)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

pub async fn save(tx: &mut PgConnection, i: &Invoice) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO invoices ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
         ON CONFLICT (organization_id, invoice_id) DO UPDATE SET number = EXCLUDED.number, amount_paid_minor = EXCLUDED.amount_paid_minor, \
           credit_applied_minor = EXCLUDED.credit_applied_minor, charge_on_number = EXCLUDED.charge_on_number, \
           status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, issued_at = EXCLUDED.issued_at, \
           paid_at = EXCLUDED.paid_at"
    )))
    .bind(&i.invoice_id)
    .bind(&i.organization_id)
    .bind(&i.member_id)
    .bind(&i.number)
    .bind(&i.currency)
    .bind(i.subtotal_minor)
    .bind(i.tax_minor)
    .bind(i.total_minor)
    .bind(i.amount_paid_minor)
    .bind(&i.status)
    .bind(i.due_at)
    .bind(i.created_at)
    .bind(i.updated_at)
    .bind(i.issued_at)
    .bind(i.paid_at)
    .bind(&i.subscription_id)
    .bind(i.period_start)
    .bind(i.period_end)
    .bind(i.credit_applied_minor)
    .bind(i.charge_on_number)
    .execute(tx)
    .await
    .map(drop)
}

/// A number of the organization's series: its position and its text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AssignedNumber {
    pub sequence: i64,
    pub number: String,
}

/// The number the organization's series already gave an invoice, if any.
pub async fn number_of(
    tx: &mut PgConnection,
    organization_id: &str,
    invoice_id: &str,
) -> Result<Option<AssignedNumber>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sequence, number FROM invoice_numbers WHERE organization_id = $1 AND invoice_id = $2",
    )
    .bind(organization_id)
    .bind(invoice_id)
    .fetch_optional(tx)
    .await
}

/// The last position the organization's series handed out (0 before the first), locked for the
/// batch: a rolled-back batch gives its numbers back, so numbers have no gaps.
pub async fn last_number(tx: &mut PgConnection, organization_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO invoice_counters (organization_id, last_number) VALUES ($1, 0) ON CONFLICT DO NOTHING",
    )
    .bind(organization_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query_scalar("SELECT last_number FROM invoice_counters WHERE organization_id = $1 FOR UPDATE")
        .bind(organization_id)
        .fetch_one(tx)
        .await
}

/// Records that the series gave `assigned` to the invoice, and advances the counter to it.
pub async fn record_number(
    tx: &mut PgConnection,
    organization_id: &str,
    invoice_id: &str,
    member_id: &str,
    assigned: &AssignedNumber,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO invoice_numbers (organization_id, sequence, number, invoice_id, member_id, assigned_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(organization_id)
    .bind(assigned.sequence)
    .bind(&assigned.number)
    .bind(invoice_id)
    .bind(member_id)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE invoice_counters SET last_number = $2 WHERE organization_id = $1")
        .bind(organization_id)
        .bind(assigned.sequence)
        .execute(tx)
        .await
        .map(drop)
}
