//! The organization's plan catalogue (every version kept) and coupons.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};

/// What a plan includes of one metric per period, and the price of each unit beyond it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Allowance {
    pub metric: String,
    pub included: i64,
    pub overage_unit_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    pub organization_id: String,
    pub plan_id: String,
    pub version: i32,
    pub name: String,
    pub tier: String,
    pub cycle: String,
    pub price_minor: i64,
    pub currency: String,
    pub trial_days: i32,
    pub tax_rate_bps: i32,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Allowance>))]
    pub allowances: Json<Vec<Allowance>>,
    pub created_at: DateTime<Utc>,
}

impl Plan {
    pub fn allowance(&self, metric: &str) -> Option<&Allowance> {
        self.allowances.iter().find(|a| a.metric == metric)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Coupon {
    pub organization_id: String,
    pub coupon_id: String,
    pub name: String,
    pub percent_off_bps: Option<i32>,
    pub amount_off_minor: Option<i64>,
    pub currency: Option<String>,
    pub duration: String,
    pub duration_cycles: Option<i32>,
    pub created_at: DateTime<Utc>,
}

pub(crate) const PLAN_COLUMNS: &str = "organization_id, plan_id, version, name, tier, cycle, price_minor, currency, \
    trial_days, tax_rate_bps, allowances, created_at";
pub(crate) const COUPON_COLUMNS: &str = "organization_id, coupon_id, name, percent_off_bps, amount_off_minor, currency, \
    duration, duration_cycles, created_at";

/// The plan's current version.
pub async fn latest(
    tx: &mut PgConnection,
    organization_id: &str,
    plan_id: &str,
) -> Result<Option<Plan>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE organization_id = $1 AND plan_id = $2 ORDER BY version DESC LIMIT 1"
    )))
    .bind(organization_id)
    .bind(plan_id)
    .fetch_optional(tx)
    .await
}

pub async fn version(
    tx: &mut PgConnection,
    organization_id: &str,
    plan_id: &str,
    version: i32,
) -> Result<Option<Plan>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE organization_id = $1 AND plan_id = $2 AND version = $3"
    )))
    .bind(organization_id)
    .bind(plan_id)
    .bind(version)
    .fetch_optional(tx)
    .await
}

pub async fn insert(tx: &mut PgConnection, p: &Plan) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO plans ({PLAN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    )))
    .bind(&p.organization_id)
    .bind(&p.plan_id)
    .bind(p.version)
    .bind(&p.name)
    .bind(&p.tier)
    .bind(&p.cycle)
    .bind(p.price_minor)
    .bind(&p.currency)
    .bind(p.trial_days)
    .bind(p.tax_rate_bps)
    .bind(&p.allowances)
    .bind(p.created_at)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn coupon(
    tx: &mut PgConnection,
    organization_id: &str,
    coupon_id: &str,
) -> Result<Option<Coupon>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COUPON_COLUMNS} FROM coupons WHERE organization_id = $1 AND coupon_id = $2"
    )))
    .bind(organization_id)
    .bind(coupon_id)
    .fetch_optional(tx)
    .await
}

pub async fn insert_coupon(tx: &mut PgConnection, c: &Coupon) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO coupons ({COUPON_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )))
    .bind(&c.organization_id)
    .bind(&c.coupon_id)
    .bind(&c.name)
    .bind(c.percent_off_bps)
    .bind(c.amount_off_minor)
    .bind(&c.currency)
    .bind(&c.duration)
    .bind(c.duration_cycles)
    .bind(c.created_at)
    .execute(tx)
    .await
    .map(drop)
}
