//! Webhook endpoints' health as the delivery worker sees it: failing since when, disabled or not.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// When the endpoint was disabled, if it is.
pub async fn disabled_at(
    tx: &mut PgConnection,
    organization_id: &str,
    url: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT disabled_at FROM webhook_endpoints WHERE organization_id = $1 AND url = $2 AND disabled_at IS NOT NULL",
    )
    .bind(organization_id)
    .bind(url)
    .fetch_optional(tx)
    .await
}

/// Records a failure; returns since when the endpoint has failed without a success between.
pub async fn failed(
    tx: &mut PgConnection,
    organization_id: &str,
    url: &str,
    recipient_id: &str,
    error: &str,
    at: DateTime<Utc>,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO webhook_endpoints (organization_id, url, recipient_id, failing_since, last_error) \
         VALUES ($1, $2, $3, $5, $4) ON CONFLICT (organization_id, url) DO UPDATE SET \
           failing_since = COALESCE(webhook_endpoints.failing_since, EXCLUDED.failing_since), \
           last_error = EXCLUDED.last_error, recipient_id = EXCLUDED.recipient_id \
         RETURNING failing_since",
    )
    .bind(organization_id)
    .bind(url)
    .bind(recipient_id)
    .bind(error)
    .bind(at)
    .fetch_one(tx)
    .await
}

/// The endpoint answered: its failure streak ends.
pub async fn succeeded(tx: &mut PgConnection, organization_id: &str, url: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_endpoints SET failing_since = NULL, last_error = NULL \
         WHERE organization_id = $1 AND url = $2 AND failing_since IS NOT NULL",
    )
    .bind(organization_id)
    .bind(url)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn disable(
    tx: &mut PgConnection,
    organization_id: &str,
    url: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE webhook_endpoints SET disabled_at = COALESCE(disabled_at, $3) WHERE organization_id = $1 AND url = $2",
    )
    .bind(organization_id)
    .bind(url)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

/// The owner set their preferences again: their endpoints start afresh.
pub async fn forget(
    tx: &mut PgConnection,
    organization_id: &str,
    recipient_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM webhook_endpoints WHERE organization_id = $1 AND recipient_id = $2")
        .bind(organization_id)
        .bind(recipient_id)
        .execute(tx)
        .await
        .map(drop)
}
