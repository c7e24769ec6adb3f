//! Alerts' projection: metric samples, rules, routes, inhibitions, silences, alerts and the
//! history of every state change and notification decision.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, migrate::Migrator};

pub mod alerting;
pub mod insights;
pub mod ops;
pub mod reads;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sample {
    pub event_id: String,
    pub organization_id: String,
    pub metric: String,
    pub labels: serde_json::Value,
    pub value: f64,
    pub sampled_at: DateTime<Utc>,
}

pub async fn insert_sample(tx: &mut PgConnection, s: &Sample) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO metric_samples (event_id, organization_id, metric, labels, value, sampled_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&s.event_id)
    .bind(&s.organization_id)
    .bind(&s.metric)
    .bind(&s.labels)
    .bind(s.value)
    .bind(s.sampled_at)
    .execute(tx)
    .await
    .map(drop)
}
