//! What the gateway reads of campaigns: each with where its messages stand.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::PgExecutor;

/// A campaign and how its messages fared so far.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Campaign {
    pub campaign_id: String,
    pub name: String,
    /// broadcast, targeted, automated, transactional or marketing.
    pub kind: String,
    pub category: String,
    /// Empty: each recipient's email when known, else in-app.
    pub channel: String,
    pub template_id: Option<String>,
    pub subject: Option<String>,
    pub body: String,
    /// Who it is for: plan_ids, subscription_statuses, venue_ids, attended_within_days, recipient_ids.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub segment: serde_json::Value,
    /// Local wall-clock time in each recipient's zone.
    pub send_at_local: Option<NaiveDateTime>,
    pub send_at: Option<DateTime<Utc>>,
    pub throttle_per_minute: Option<i32>,
    /// The record type an automated campaign answers.
    pub trigger: Option<String>,
    /// draft, launched or cancelled.
    pub status: String,
    /// Messages asked for at launch.
    pub recipients: i32,
    /// Its messages by status now: waiting (queued or deferred), sent, failed, suppressed, cancelled.
    pub waiting: i64,
    pub sent: i64,
    pub failed: i64,
    pub suppressed: i64,
    pub cancelled: i64,
    pub created_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

const SELECT: &str = "SELECT c.campaign_id, c.name, c.kind, c.category, c.channel, c.template_id, c.subject, c.body, \
      c.segment, c.send_at_local, c.send_at, c.throttle_per_minute, c.trigger, c.status, c.recipients, \
      COUNT(n.*) FILTER (WHERE n.status IN ('queued', 'deferred')) AS waiting, \
      COUNT(n.*) FILTER (WHERE n.status = 'sent') AS sent, \
      COUNT(n.*) FILTER (WHERE n.status = 'failed') AS failed, \
      COUNT(n.*) FILTER (WHERE n.status = 'suppressed') AS suppressed, \
      COUNT(n.*) FILTER (WHERE n.status = 'cancelled') AS cancelled, \
      c.created_at, c.launched_at, c.cancelled_at \
    FROM notifications.campaigns c \
    LEFT JOIN notifications.notifications n ON n.organization_id = c.organization_id AND n.campaign_id = c.campaign_id";

pub async fn find_campaign(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    campaign_id: &str,
) -> Result<Option<Campaign>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE c.organization_id = $1 AND c.campaign_id = $2 GROUP BY c.organization_id, c.campaign_id"
    )))
    .bind(organization_id)
    .bind(campaign_id)
    .fetch_optional(db)
    .await
}

/// The organization's campaigns, newest first; `after` is the previous page's last
/// (created_at, campaign_id).
pub async fn list_campaigns(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    status: Option<&str>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Campaign>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE c.organization_id = $1 AND ($2::text IS NULL OR c.status = $2) \
           AND ($3::timestamptz IS NULL OR (c.created_at, c.campaign_id) < ($3, $4)) \
         GROUP BY c.organization_id, c.campaign_id ORDER BY c.created_at DESC, c.campaign_id DESC LIMIT $5"
    )))
    .bind(organization_id)
    .bind(status)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(db)
    .await
}
