//! Notifications' projection: every notification and its delivery status.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, migrate::Migrator};

pub mod reads;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    pub notification_id: String,
    pub organization_id: String,
    pub recipient_id: String,
    pub channel: String,
    pub category: String,
    pub subject: Option<String>,
    pub body: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

pub async fn notification_exists(tx: &mut PgConnection, notification_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM notifications WHERE notification_id = $1)")
        .bind(notification_id)
        .fetch_one(tx)
        .await
}

pub async fn insert_notification(tx: &mut PgConnection, n: &Notification) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notifications (notification_id, organization_id, recipient_id, channel, category, subject, body, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&n.notification_id)
    .bind(&n.organization_id)
    .bind(&n.recipient_id)
    .bind(&n.channel)
    .bind(&n.category)
    .bind(&n.subject)
    .bind(&n.body)
    .bind(&n.status)
    .bind(n.created_at)
    .execute(tx)
    .await
    .map(drop)
}
