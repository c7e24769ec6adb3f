//! What the gateway reads (through the read-only role, so names are schema-qualified).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::Sample;

/// Filters of `GET /api/monitoring/metrics`; `organization_id` is always set by the gateway.
#[derive(Debug, Default)]
pub struct SampleFilter<'a> {
    pub organization_id: &'a str,
    pub metric: Option<&'a str>,
}

/// Latest first; `after` is the (sampled_at, event_id) of the previous page's last row.
pub async fn list_samples(
    db: impl PgExecutor<'_>,
    filter: &SampleFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Sample>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_id, organization_id, metric, labels, value, sampled_at \
         FROM alerts.metric_samples \
         WHERE organization_id = $1 \
           AND ($2::text IS NULL OR metric = $2) \
           AND ($3::timestamptz IS NULL OR (sampled_at, event_id) < ($3, $4)) \
         ORDER BY sampled_at DESC, event_id DESC \
         LIMIT $5",
    )
    .bind(filter.organization_id)
    .bind(filter.metric)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}
