//! Notifications' projection: every notification and its delivery status.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, migrate::Migrator};

pub mod campaign_reads;
pub mod campaigns;
pub mod endpoints;
pub mod reads;
pub mod store;
pub mod tracking;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// A notification as the gateway reads it: what was asked, and what became of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    pub notification_id: String,
    pub organization_id: String,
    pub recipient_id: String,
    pub channel: String,
    pub category: String,
    pub subject: Option<String>,
    pub body: String,
    /// queued, deferred, sent, failed, suppressed or cancelled.
    pub status: String,
    /// Why it was deferred (quiet_hours, scheduled) or suppressed (opted out, capped, no address).
    pub reason: Option<String>,
    /// Deferred or scheduled: not sent before then.
    pub not_before: Option<DateTime<Utc>>,
    /// Delivery attempts so far.
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
    /// The provider's (or the channel's) code when it failed.
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    /// The template that rendered it, and which version.
    pub template_id: Option<String>,
    pub template_version: Option<i32>,
    pub locale: Option<String>,
    /// Sent regardless of opt-outs, caps and quiet hours.
    pub critical: bool,
    pub transaction_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Whether the organization has a notification of that id (another organization's does not count).
pub async fn notification_exists(
    tx: &mut PgConnection,
    organization_id: &str,
    notification_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM notifications WHERE organization_id = $1 AND notification_id = $2)",
    )
    .bind(organization_id)
    .bind(notification_id)
    .fetch_one(tx)
    .await
}

pub async fn insert_notification(tx: &mut PgConnection, n: &Notification) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notifications (notification_id, organization_id, recipient_id, channel, category, subject, body, status, \
           reason, not_before, attempts, sent_at, failure_code, failure_message, template_id, template_version, locale, \
           critical, transaction_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
    )
    .bind(&n.notification_id)
    .bind(&n.organization_id)
    .bind(&n.recipient_id)
    .bind(&n.channel)
    .bind(&n.category)
    .bind(&n.subject)
    .bind(&n.body)
    .bind(&n.status)
    .bind(&n.reason)
    .bind(n.not_before)
    .bind(n.attempts)
    .bind(n.sent_at)
    .bind(&n.failure_code)
    .bind(&n.failure_message)
    .bind(&n.template_id)
    .bind(n.template_version)
    .bind(&n.locale)
    .bind(n.critical)
    .bind(&n.transaction_id)
    .bind(n.created_at)
    .bind(n.updated_at)
    .execute(tx)
    .await
    .map(drop)
}
