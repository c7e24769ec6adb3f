//! What the gateway reads (through the read-only role, so names are schema-qualified).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::Notification;

/// Filters of `GET /api/notifications`; `organization_id` is always set by the gateway.
#[derive(Debug, Default)]
pub struct NotificationFilter<'a> {
    pub organization_id: &'a str,
    pub recipient_id: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub category: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// Newest first; `after` is the (created_at, notification_id) of the previous page's last row.
pub async fn list_notifications(
    db: impl PgExecutor<'_>,
    filter: &NotificationFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as(
        "SELECT notification_id, organization_id, recipient_id, channel, category, subject, body, status, created_at \
         FROM notifications.notifications \
         WHERE organization_id = $1 \
           AND ($2::text IS NULL OR recipient_id = $2) \
           AND ($3::text IS NULL OR channel = $3) \
           AND ($4::text IS NULL OR category = $4) \
           AND ($5::text IS NULL OR status = $5) \
           AND ($6::timestamptz IS NULL OR (created_at, notification_id) < ($6, $7)) \
         ORDER BY created_at DESC, notification_id DESC \
         LIMIT $8",
    )
    .bind(filter.organization_id)
    .bind(filter.recipient_id)
    .bind(filter.channel)
    .bind(filter.category)
    .bind(filter.status)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}
