//! Usage counted per subscription, period and metric; each usage record counts once per
//! organization (the same usage id in another organization is another record).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Records `usage_id` unless the organization recorded it before; `false` means it did (nothing
/// to count).
#[allow(clippy::too_many_arguments)]
pub async fn record_once(
    tx: &mut PgConnection,
    organization_id: &str,
    usage_id: &str,
    subscription_id: &str,
    metric: &str,
    quantity: i64,
    period_start: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO usage_records (organization_id, usage_id, subscription_id, metric, quantity, period_start, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (organization_id, usage_id) DO NOTHING",
    )
    .bind(organization_id)
    .bind(usage_id)
    .bind(subscription_id)
    .bind(metric)
    .bind(quantity)
    .bind(period_start)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Adds `quantity` to the period's counter; returns the count after.
pub async fn add(
    tx: &mut PgConnection,
    organization_id: &str,
    subscription_id: &str,
    period_start: DateTime<Utc>,
    metric: &str,
    quantity: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO usage_counters (organization_id, subscription_id, period_start, metric, used) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (organization_id, subscription_id, period_start, metric) \
         DO UPDATE SET used = usage_counters.used + EXCLUDED.used \
         RETURNING used",
    )
    .bind(organization_id)
    .bind(subscription_id)
    .bind(period_start)
    .bind(metric)
    .bind(quantity)
    .fetch_one(tx)
    .await
}

/// The period's counters, by metric.
pub async fn counters(
    tx: &mut PgConnection,
    organization_id: &str,
    subscription_id: &str,
    period_start: DateTime<Utc>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT metric, used FROM usage_counters \
         WHERE organization_id = $1 AND subscription_id = $2 AND period_start = $3 ORDER BY metric",
    )
    .bind(organization_id)
    .bind(subscription_id)
    .bind(period_start)
    .fetch_all(tx)
    .await
}
