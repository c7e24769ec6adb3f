//! What the gateway reads (through the read-only role, so names are schema-qualified): always
//! within one organization, lists newest first and keyset-paginated by `(created_at, key)`.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::Notification;

const NOTIFICATION_COLUMNS: &str = "notification_id, organization_id, recipient_id, channel, category, subject, body, \
    status, reason, not_before, attempts, sent_at, failure_code, failure_message, template_id, template_version, \
    locale, critical, transaction_id, created_at, updated_at";

/// Filters of `GET /api/notifications`; `organization_id` is always set by the gateway.
#[derive(Debug, Default)]
pub struct NotificationFilter<'a> {
    pub organization_id: &'a str,
    pub recipient_id: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub category: Option<&'a str>,
    pub status: Option<&'a str>,
    pub transaction_id: Option<&'a str>,
}

/// Newest first; `after` is the (created_at, notification_id) of the previous page's last row.
pub async fn list_notifications(
    db: impl PgExecutor<'_>,
    filter: &NotificationFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NOTIFICATION_COLUMNS} \
         FROM notifications.notifications \
         WHERE organization_id = $1 \
           AND ($2::text IS NULL OR recipient_id = $2) \
           AND ($3::text IS NULL OR channel = $3) \
           AND ($4::text IS NULL OR category = $4) \
           AND ($5::text IS NULL OR status = $5) \
           AND ($6::text IS NULL OR transaction_id = $6) \
           AND ($7::timestamptz IS NULL OR (created_at, notification_id) < ($7, $8)) \
         ORDER BY created_at DESC, notification_id DESC \
         LIMIT $9"
    )))
    .bind(filter.organization_id)
    .bind(filter.recipient_id)
    .bind(filter.channel)
    .bind(filter.category)
    .bind(filter.status)
    .bind(filter.transaction_id)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// One notification of the organization.
pub async fn find_notification(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    notification_id: &str,
) -> Result<Option<Notification>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications.notifications \
         WHERE organization_id = $1 AND notification_id = $2"
    )))
    .bind(organization_id)
    .bind(notification_id)
    .fetch_optional(db)
    .await
}

/// An in-app message in its recipient's inbox.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxMessage {
    pub notification_id: String,
    pub category: String,
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
    /// sent; or queued or deferred (quiet hours, scheduled) while it waits.
    pub status: String,
    /// Deferred or scheduled: not delivered before then.
    pub not_before: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The recipient's in-app notifications that are sent or still on their way, newest first;
/// `after` is the (created_at, notification_id) of the previous page's last row.
pub async fn list_inbox(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    recipient_id: &str,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<InboxMessage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT notification_id, category, subject, body, html, status, not_before, sent_at, created_at \
         FROM notifications.notifications \
         WHERE organization_id = $1 AND recipient_id = $2 AND channel = 'in_app' \
           AND status IN ('sent', 'deferred', 'queued') \
           AND ($3::timestamptz IS NULL OR (created_at, notification_id) < ($3, $4)) \
         ORDER BY created_at DESC, notification_id DESC \
         LIMIT $5",
    )
    .bind(organization_id)
    .bind(recipient_id)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// One version of a template of the organization, for one channel and locale.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    pub template_id: String,
    pub channel: String,
    /// BCP 47, e.g. de-DE.
    pub locale: String,
    /// 1 for the first, one more per republication of the same template, channel and locale.
    pub version: i32,
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The list's keyset: template, channel, locale and zero-padded version (ties of `created_at`).
    #[serde(skip)]
    pub cursor_key: String,
}

/// Filters of `GET /api/notifications/templates`.
#[derive(Debug, Default)]
pub struct TemplateFilter<'a> {
    pub organization_id: &'a str,
    pub template_id: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub locale: Option<&'a str>,
    /// Every version instead of the latest of each template, channel and locale.
    pub all_versions: bool,
}

/// The organization's templates, newest first: the latest version per template, channel and
/// locale, or with `all_versions` every version. `after` is the (created_at, cursor_key) of the
/// previous page's last row.
pub async fn list_templates(
    db: impl PgExecutor<'_>,
    filter: &TemplateFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Template>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM ( \
           SELECT DISTINCT ON (template_id, channel, locale, CASE WHEN $2 THEN version END) \
             template_id, channel, locale, version, subject, body, html, created_at, \
             template_id || '/' || channel || '/' || locale || '@' || lpad(version::text, 10, '0') AS cursor_key \
           FROM notifications.templates \
           WHERE organization_id = $1 \
             AND ($3::text IS NULL OR template_id = $3) \
             AND ($4::text IS NULL OR channel = $4) \
             AND ($5::text IS NULL OR locale = $5) \
           ORDER BY template_id, channel, locale, CASE WHEN $2 THEN version END, version DESC) t \
         WHERE ($6::timestamptz IS NULL OR (created_at, cursor_key) < ($6, $7)) \
         ORDER BY created_at DESC, cursor_key DESC LIMIT $8",
    )
    .bind(filter.organization_id)
    .bind(filter.all_versions)
    .bind(filter.template_id)
    .bind(filter.channel)
    .bind(filter.locale)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, key)| key))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A recipient's addresses and preferences. The webhook's signing secret is never read back:
/// only whether one is set.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preferences {
    pub recipient_id: String,
    pub email: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// E.164.
    pub whatsapp: Option<String>,
    pub push_token: Option<String>,
    pub webhook_url: Option<String>,
    /// Whether webhooks to `webhook_url` are signed (Standard Webhooks).
    pub webhook_secret_set: bool,
    /// IANA, e.g. Europe/Berlin.
    pub time_zone: String,
    /// Quiet hours, local HH:MM: from `quiet_start` (inclusive) to `quiet_end` (exclusive).
    pub quiet_start: Option<String>,
    pub quiet_end: Option<String>,
    pub opted_out_channels: Vec<String>,
    pub opted_out_categories: Vec<String>,
    /// At most this many per local day, by category.
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::HashMap<String, i32>))]
    pub category_caps: serde_json::Value,
    /// At most this many per local day across categories and channels.
    pub daily_cap: Option<i32>,
    pub updated_at: DateTime<Utc>,
}

pub async fn find_preferences(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    recipient_id: &str,
) -> Result<Option<Preferences>, sqlx::Error> {
    sqlx::query_as(
        "SELECT recipient_id, email, phone, whatsapp, push_token, webhook_url, \
           webhook_secret IS NOT NULL AS webhook_secret_set, time_zone, \
           to_char(quiet_start, 'HH24:MI') AS quiet_start, to_char(quiet_end, 'HH24:MI') AS quiet_end, \
           opted_out_channels, opted_out_categories, category_caps, daily_cap, updated_at \
         FROM notifications.preferences WHERE organization_id = $1 AND recipient_id = $2",
    )
    .bind(organization_id)
    .bind(recipient_id)
    .fetch_optional(db)
    .await
}

/// How many notifications are in each status.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusCounts {
    pub queued: i64,
    pub deferred: i64,
    pub sent: i64,
    pub failed: i64,
    pub suppressed: i64,
    pub cancelled: i64,
    pub total: i64,
    /// sent / (sent + failed); absent when none was sent or failed yet.
    pub delivery_rate: Option<f64>,
}

/// The counts of one channel, category or template (`key`; of the templates, null counts the
/// notifications sent without one).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyedCounts {
    pub key: Option<String>,
    #[serde(flatten)]
    pub counts: StatusCounts,
}

/// The counts of one channel, category and template together.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakdownCounts {
    pub channel: String,
    pub category: String,
    /// Null: sent without a template.
    pub template_id: Option<String>,
    #[serde(flatten)]
    pub counts: StatusCounts,
}

/// What became of the notifications created in `[from, to)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationsDashboard {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub totals: StatusCounts,
    /// By channel, by channel name.
    pub by_channel: Vec<KeyedCounts>,
    /// By category, by category name.
    pub by_category: Vec<KeyedCounts>,
    /// By template, by template id (null, without a template, first).
    pub by_template: Vec<KeyedCounts>,
    /// By channel, category and template together.
    pub breakdown: Vec<BreakdownCounts>,
    /// Delivered, opened, clicked and bounced: in all, by channel, template and campaign.
    pub tracking: crate::tracking::TrackingDashboard,
}

impl NotificationsDashboard {
    pub fn empty(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self {
            from,
            to,
            totals: StatusCounts::default(),
            by_channel: Vec::new(),
            by_category: Vec::new(),
            by_template: Vec::new(),
            breakdown: Vec::new(),
            tracking: crate::tracking::TrackingDashboard::default(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct DashboardRow {
    /// GROUPING(channel, category, template_id): a bit set for each column rolled up.
    grouping: i32,
    channel: Option<String>,
    category: Option<String>,
    template_id: Option<String>,
    queued: i64,
    deferred: i64,
    sent: i64,
    failed: i64,
    suppressed: i64,
    cancelled: i64,
    total: i64,
}

impl DashboardRow {
    fn counts(&self) -> StatusCounts {
        let settled = self.sent + self.failed;
        StatusCounts {
            queued: self.queued,
            deferred: self.deferred,
            sent: self.sent,
            failed: self.failed,
            suppressed: self.suppressed,
            cancelled: self.cancelled,
            total: self.total,
            delivery_rate: (settled > 0).then(|| self.sent as f64 / settled as f64),
        }
    }
}

/// Counts by status of the notifications created in `[from, to)`: in all, by channel, by
/// category, by template, and by the three together, in one query (grouping sets).
pub async fn notifications_dashboard(
    db: &sqlx::PgPool,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<NotificationsDashboard, sqlx::Error> {
    let mut db = db.acquire().await?;
    let rows: Vec<DashboardRow> = sqlx::query_as(
        "SELECT GROUPING(channel, category, template_id)::int AS grouping, channel, category, template_id, \
           count(*) FILTER (WHERE status = 'queued') AS queued, \
           count(*) FILTER (WHERE status = 'deferred') AS deferred, \
           count(*) FILTER (WHERE status = 'sent') AS sent, \
           count(*) FILTER (WHERE status = 'failed') AS failed, \
           count(*) FILTER (WHERE status = 'suppressed') AS suppressed, \
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled, \
           count(*) AS total \
         FROM notifications.notifications \
         WHERE organization_id = $1 AND created_at >= $2 AND created_at < $3 \
         GROUP BY GROUPING SETS ((channel, category, template_id), (channel), (category), (template_id), ()) \
         ORDER BY grouping, channel, category, template_id NULLS FIRST",
    )
    .bind(organization_id)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *db)
    .await?;
    let mut dashboard = NotificationsDashboard::empty(from, to);
    dashboard.tracking = crate::tracking::dashboard(&mut *db, organization_id, from, to).await?;
    for row in rows {
        let counts = row.counts();
        // Bits: channel 4, category 2, template_id 1.
        match row.grouping {
            0 => dashboard.breakdown.push(BreakdownCounts {
                channel: row.channel.unwrap_or_default(),
                category: row.category.unwrap_or_default(),
                template_id: row.template_id,
                counts,
            }),
            0b011 => dashboard.by_channel.push(KeyedCounts { key: row.channel, counts }),
            0b101 => dashboard.by_category.push(KeyedCounts { key: row.category, counts }),
            0b110 => dashboard.by_template.push(KeyedCounts { key: row.template_id, counts }),
            _ => dashboard.totals = counts,
        }
    }
    Ok(dashboard)
}
