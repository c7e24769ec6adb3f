//! Usage counted per subscription, period and metric; each usage record counts once.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// Records `usage_id` unless it was recorded before; `false` means it was (nothing to count).
pub async fn record_once(
    tx: &mut PgConnection,
    usage_id: &str,
    subscription_id: &str,
    metric: &str,
    quantity: i64,
    period_start: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO usage_records (usage_id, subscription_id, metric, quantity, period_start, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (usage_id) DO NOTHING",
    )
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
    subscription_id: &str,
    period_start: DateTime<Utc>,
    metric: &str,
    quantity: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO usage_counters (subscription_id, period_start, metric, used) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (subscription_id, period_start, metric) DO UPDATE SET used = usage_counters.used + EXCLUDED.used \
         RETURNING used",
    )
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
    subscription_id: &str,
    period_start: DateTime<Utc>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT metric, used FROM usage_counters WHERE subscription_id = $1 AND period_start = $2 ORDER BY metric",
    )
    .bind(subscription_id)
    .bind(period_start)
    .fetch_all(tx)
    .await
}
