//! Reads of plans, coupons, subscriptions, usage, credit notes and the subscriptions dashboard.
//!
//! What the gateway reads (through the read-only role, so names are schema-qualified), in the
//! style of [`crate::reads`]: always within one organization, lists newest first and
//! keyset-paginated by `(created_at, id)`.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::Invoice;

/// One version of a plan of the organization.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    pub plan_id: String,
    /// 1 for the first definition, one more per redefinition; subscribers keep theirs until they move.
    pub version: i32,
    pub name: String,
    /// basic, premium, enterprise or custom.
    pub tier: String,
    /// daily, weekly, monthly, quarterly or yearly.
    pub cycle: String,
    /// Per cycle, in minor units.
    pub price_minor: i64,
    pub currency: String,
    pub trial_days: i32,
    /// Basis points: 1900 = 19 %.
    pub tax_rate_bps: i32,
    /// `[{metric, included, overage_unit_minor}]`: what each period includes of a metric, and the
    /// price of each unit beyond it.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<PlanAllowance>))]
    pub allowances: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// The list's keyset: the plan id and its zero-padded version (ties of `created_at`).
    #[serde(skip)]
    pub cursor_key: String,
}

/// One element of a plan's `allowances` (for the API description; stored as jsonb).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanAllowance {
    /// seat_hours, bookings, api_calls or notifications.
    pub metric: String,
    pub included: i64,
    pub overage_unit_minor: i64,
}

const PLAN_COLUMNS: &str = "plan_id, version, name, tier, cycle, price_minor, currency, trial_days, tax_rate_bps, \
    allowances, created_at, plan_id || '@' || lpad(version::text, 10, '0') AS cursor_key";

/// The organization's plans, newest first: the current (latest) version of each plan, or with
/// `all_versions` every version. `after` is the (created_at, cursor_key) of the previous page's last row.
pub async fn list_plans(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    all_versions: bool,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Plan>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM ( \
           SELECT DISTINCT ON (plan_id, CASE WHEN $2 THEN version END) {PLAN_COLUMNS} \
           FROM billing.plans WHERE organization_id = $1 \
           ORDER BY plan_id, CASE WHEN $2 THEN version END, version DESC) p \
         WHERE ($3::timestamptz IS NULL OR (created_at, cursor_key) < ($3, $4)) \
         ORDER BY created_at DESC, cursor_key DESC LIMIT $5"
    )))
    .bind(organization_id)
    .bind(all_versions)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, key)| key))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Every version of one plan, the latest first; empty when there is no such plan.
pub async fn find_plan(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    plan_id: &str,
) -> Result<Vec<Plan>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PLAN_COLUMNS} FROM billing.plans WHERE organization_id = $1 AND plan_id = $2 \
         ORDER BY version DESC"
    )))
    .bind(organization_id)
    .bind(plan_id)
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Coupon {
    /// The code members enter, e.g. STUDENT.
    pub coupon_id: String,
    pub name: String,
    /// Basis points off (2000 = 20 %), or …
    pub percent_off_bps: Option<i32>,
    /// … a fixed amount off each invoiced period, in `currency`.
    pub amount_off_minor: Option<i64>,
    pub currency: Option<String>,
    /// once, repeating (for `duration_cycles` periods) or forever.
    pub duration: String,
    pub duration_cycles: Option<i32>,
    pub created_at: DateTime<Utc>,
}

pub async fn list_coupons(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Coupon>, sqlx::Error> {
    sqlx::query_as(
        "SELECT coupon_id, name, percent_off_bps, amount_off_minor, currency, duration, duration_cycles, \
                created_at \
         FROM billing.coupons WHERE organization_id = $1 \
           AND ($2::timestamptz IS NULL OR (created_at, coupon_id) < ($2, $3)) \
         ORDER BY created_at DESC, coupon_id DESC LIMIT $4",
    )
    .bind(organization_id)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A subscription as apps see it (billing's bookkeeping columns left out).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscription {
    pub subscription_id: String,
    pub organization_id: String,
    pub member_id: String,
    pub plan_id: String,
    /// The plan version it is billed by.
    pub plan_version: i32,
    pub currency: String,
    /// trialing, active, past_due, paused, suspended or cancelled.
    pub status: String,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    pub trial_end: Option<DateTime<Utc>>,
    /// Cancels when the current period ends.
    pub cancel_at_period_end: bool,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub paused_at: Option<DateTime<Utc>>,
    /// A paused subscription resumes then.
    pub resume_at: Option<DateTime<Utc>>,
    pub coupon_id: Option<String>,
    /// Invoiced periods the coupon still discounts; absent is forever (or no coupon).
    pub coupon_cycles_left: Option<i32>,
    pub payment_method_id: Option<String>,
    /// Failed renewal attempts of the invoice in dunning; 0 when none.
    pub dunning_attempt: i32,
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Monthly recurring revenue, in minor units of `currency`.
    pub mrr_minor: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SUBSCRIPTION_COLUMNS: &str = "subscription_id, organization_id, member_id, plan_id, plan_version, currency, \
    status, current_period_start, current_period_end, trial_end, cancel_at_period_end, cancelled_at, paused_at, \
    resume_at, coupon_id, coupon_cycles_left, payment_method_id, dunning_attempt, next_retry_at, mrr_minor, \
    created_at, updated_at";

/// Filters of `GET /api/subscriptions`; `organization_id` is always set by the gateway.
#[derive(Debug, Default)]
pub struct SubscriptionFilter<'a> {
    pub organization_id: &'a str,
    pub member_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub plan_id: Option<&'a str>,
}

/// Newest first; `after` is the (created_at, subscription_id) of the previous page's last row.
pub async fn list_subscriptions(
    db: impl PgExecutor<'_>,
    filter: &SubscriptionFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Subscription>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM billing.subscriptions \
         WHERE organization_id = $1 \
           AND ($2::text IS NULL OR member_id = $2) \
           AND ($3::text IS NULL OR status = $3) \
           AND ($4::text IS NULL OR plan_id = $4) \
           AND ($5::timestamptz IS NULL OR (created_at, subscription_id) < ($5, $6)) \
         ORDER BY created_at DESC, subscription_id DESC LIMIT $7"
    )))
    .bind(filter.organization_id)
    .bind(filter.member_id)
    .bind(filter.status)
    .bind(filter.plan_id)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn find_subscription(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    subscription_id: &str,
) -> Result<Option<Subscription>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM billing.subscriptions \
         WHERE organization_id = $1 AND subscription_id = $2"
    )))
    .bind(organization_id)
    .bind(subscription_id)
    .fetch_optional(db)
    .await
}

/// Usage of one metric in one period, against the allowance of the subscription's plan version.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricUsage {
    /// seat_hours, bookings, api_calls or notifications.
    pub metric: String,
    /// Counted in the period (0 when the plan includes the metric and nothing was counted yet).
    pub used: i64,
    /// What the plan includes per period; absent when the plan names no allowance for the metric.
    pub included: Option<i64>,
    /// Per unit beyond `included`.
    pub overage_unit_minor: Option<i64>,
    /// 100 × used / included, to two decimals; absent when nothing is included.
    pub percent_used: Option<f64>,
}

/// The usage counters of a subscription's period (`period_start`), joined with the allowances of
/// the plan version the subscription is on; a metric the plan includes but nobody used yet shows
/// as used 0. By metric name.
pub async fn subscription_usage(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    subscription_id: &str,
    period_start: DateTime<Utc>,
) -> Result<Vec<MetricUsage>, sqlx::Error> {
    sqlx::query_as(
        "WITH sub AS ( \
           SELECT subscription_id, organization_id, plan_id, plan_version FROM billing.subscriptions \
           WHERE organization_id = $1 AND subscription_id = $2), \
         allowance AS ( \
           SELECT a.metric, a.included, a.overage_unit_minor \
           FROM sub JOIN billing.plans p ON p.organization_id = sub.organization_id \
             AND p.plan_id = sub.plan_id AND p.version = sub.plan_version \
           CROSS JOIN LATERAL jsonb_to_recordset(p.allowances) \
             AS a(metric text, included bigint, overage_unit_minor bigint)), \
         counted AS ( \
           SELECT c.metric, c.used FROM sub JOIN billing.usage_counters c \
             ON c.organization_id = sub.organization_id AND c.subscription_id = sub.subscription_id \
             AND c.period_start = $3) \
         SELECT COALESCE(a.metric, c.metric) AS metric, COALESCE(c.used, 0)::bigint AS used, \
                a.included, a.overage_unit_minor, \
                round(100.0 * COALESCE(c.used, 0) / NULLIF(a.included, 0), 2)::float8 AS percent_used \
         FROM allowance a FULL JOIN counted c ON c.metric = a.metric \
         ORDER BY 1",
    )
    .bind(organization_id)
    .bind(subscription_id)
    .bind(period_start)
    .fetch_all(db)
    .await
}

/// A subscription's invoices, newest first, keyset-paginated by (created_at, invoice_id).
pub async fn list_subscription_invoices(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    subscription_id: &str,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Invoice>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM billing.invoices \
         WHERE organization_id = $1 AND subscription_id = $2 \
           AND ($3::timestamptz IS NULL OR (created_at, invoice_id) < ($3, $4)) \
         ORDER BY created_at DESC, invoice_id DESC LIMIT $5",
        crate::invoices::COLUMNS
    )))
    .bind(organization_id)
    .bind(subscription_id)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A credit the member's later invoices of the subscription draw on.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreditNote {
    pub credit_note_id: String,
    pub member_id: String,
    pub subscription_id: String,
    pub currency: String,
    pub amount_minor: i64,
    /// What invoices have not drawn yet.
    pub remaining_minor: i64,
    /// proration, cancellation, pause or goodwill.
    pub reason: String,
    pub memo: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A subscription's credit notes, newest first, keyset-paginated by (created_at, credit_note_id).
pub async fn list_credit_notes(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    subscription_id: &str,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<CreditNote>, sqlx::Error> {
    sqlx::query_as(
        "SELECT credit_note_id, member_id, subscription_id, currency, amount_minor, remaining_minor, reason, \
                memo, created_at \
         FROM billing.credit_notes \
         WHERE organization_id = $1 AND subscription_id = $2 \
           AND ($3::timestamptz IS NULL OR (created_at, credit_note_id) < ($3, $4)) \
         ORDER BY created_at DESC, credit_note_id DESC LIMIT $5",
    )
    .bind(organization_id)
    .bind(subscription_id)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Recurring revenue and its movement between two instants, in one currency (a subscription's
/// currency at `to`). A subscription's state at an instant is its latest history row at or before it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionMetrics {
    pub currency: String,
    /// Monthly recurring revenue at `to`.
    pub mrr_minor: i64,
    /// 12 × `mrr_minor`.
    pub arr_minor: i64,
    /// Monthly recurring revenue at `from`.
    pub mrr_from_minor: i64,
    /// MRR at `to` of subscriptions with no (or zero) MRR at `from`.
    pub new_mrr_minor: i64,
    /// MRR at `from` of subscriptions with MRR then and cancelled at `to`.
    pub churned_mrr_minor: i64,
    /// Growth of subscriptions with MRR at `from`, not cancelled at `to`, whose MRR rose.
    pub expansion_mrr_minor: i64,
    /// Loss of subscriptions with MRR at `from`, not cancelled at `to`, whose MRR fell (to zero
    /// too, e.g. paused). `mrr_minor` = `mrr_from_minor` + new + expansion − contraction − churned.
    pub contraction_mrr_minor: i64,
    /// Subscriptions by status at `to`.
    pub trialing: i64,
    pub active: i64,
    pub past_due: i64,
    pub paused: i64,
    pub suspended: i64,
    pub cancelled: i64,
    /// Of the subscriptions active or past due at `from`, the share cancelled at `to`; absent when
    /// none were.
    pub churn_rate: Option<f64>,
    /// MRR at `to` of the subscriptions with MRR at `from`, over their MRR at `from`; absent when
    /// there was none.
    pub net_revenue_retention: Option<f64>,
    /// (MRR at `to` − MRR at `from`) / MRR at `from`; absent when MRR at `from` was 0.
    pub growth_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionsDashboard {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// One entry per currency, by currency code.
    pub currencies: Vec<SubscriptionMetrics>,
}

/// Which state of each subscription the dashboard's `to` side takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Its latest history row at or before `to`: the dashboard of a past instant.
    Instant,
    /// Its latest history row whatever its instant: the state the subscription reads now. A
    /// command may take effect ahead of the clock (an operator's `effective_at`), and "now" must
    /// not show such a subscription as it was before (trialing while it reads cancelled).
    Current,
}

/// The organization's subscriptions as of `from` and as of `to` (or as they read now, see
/// [`AsOf`]), compared per subscription, from `subscription_history` (latest row at or before
/// each instant; ties by `seq`).
pub async fn subscriptions_dashboard(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    as_of: AsOf,
) -> Result<SubscriptionsDashboard, sqlx::Error> {
    let currencies = sqlx::query_as(
        "WITH at_from AS ( \
           SELECT DISTINCT ON (subscription_id) subscription_id, status, mrr_minor \
           FROM billing.subscription_history WHERE organization_id = $1 AND effective_at <= $2 \
           ORDER BY subscription_id, effective_at DESC, seq DESC), \
         at_to AS ( \
           SELECT DISTINCT ON (subscription_id) subscription_id, status, mrr_minor, currency \
           FROM billing.subscription_history WHERE organization_id = $1 AND (effective_at <= $3 OR $4) \
           ORDER BY subscription_id, effective_at DESC, seq DESC), \
         pairs AS ( \
           SELECT t.currency::text AS currency, t.status AS status_to, t.mrr_minor AS mrr_to, \
                  f.status AS status_from, COALESCE(f.mrr_minor, 0) AS mrr_from \
           FROM at_to t LEFT JOIN at_from f ON f.subscription_id = t.subscription_id), \
         sums AS ( \
           SELECT currency, \
             COALESCE(sum(mrr_to), 0)::bigint AS mrr_to, \
             COALESCE(sum(mrr_from), 0)::bigint AS mrr_from, \
             COALESCE(sum(mrr_to) FILTER (WHERE mrr_from <= 0 AND mrr_to > 0), 0)::bigint AS new_mrr, \
             COALESCE(sum(mrr_from) FILTER (WHERE mrr_from > 0 AND status_to = 'cancelled'), 0)::bigint \
               AS churned_mrr, \
             COALESCE(sum(mrr_to - mrr_from) FILTER ( \
               WHERE mrr_from > 0 AND status_to <> 'cancelled' AND mrr_to > mrr_from), 0)::bigint AS expansion_mrr, \
             COALESCE(sum(mrr_from - mrr_to) FILTER ( \
               WHERE mrr_from > 0 AND status_to <> 'cancelled' AND mrr_to < mrr_from), 0)::bigint \
               AS contraction_mrr, \
             count(*) FILTER (WHERE status_to = 'trialing') AS trialing, \
             count(*) FILTER (WHERE status_to = 'active') AS active, \
             count(*) FILTER (WHERE status_to = 'past_due') AS past_due, \
             count(*) FILTER (WHERE status_to = 'paused') AS paused, \
             count(*) FILTER (WHERE status_to = 'suspended') AS suspended, \
             count(*) FILTER (WHERE status_to = 'cancelled') AS cancelled, \
             count(*) FILTER (WHERE status_from IN ('active', 'past_due')) AS live_from, \
             count(*) FILTER (WHERE status_from IN ('active', 'past_due') AND status_to = 'cancelled') \
               AS churned, \
             COALESCE(sum(mrr_to) FILTER (WHERE mrr_from > 0), 0)::bigint AS retained_to, \
             COALESCE(sum(mrr_from) FILTER (WHERE mrr_from > 0), 0)::bigint AS retained_from \
           FROM pairs GROUP BY currency) \
         SELECT currency, mrr_to AS mrr_minor, 12 * mrr_to AS arr_minor, mrr_from AS mrr_from_minor, \
                new_mrr AS new_mrr_minor, churned_mrr AS churned_mrr_minor, \
                expansion_mrr AS expansion_mrr_minor, contraction_mrr AS contraction_mrr_minor, \
                trialing, active, past_due, paused, suspended, cancelled, \
                churned::float8 / NULLIF(live_from, 0) AS churn_rate, \
                retained_to::float8 / NULLIF(retained_from, 0) AS net_revenue_retention, \
                (mrr_to - mrr_from)::float8 / NULLIF(mrr_from, 0) AS growth_rate \
         FROM sums ORDER BY currency",
    )
    .bind(organization_id)
    .bind(from)
    .bind(to)
    .bind(as_of == AsOf::Current)
    .fetch_all(db)
    .await?;
    Ok(SubscriptionsDashboard { from, to, currencies })
}
