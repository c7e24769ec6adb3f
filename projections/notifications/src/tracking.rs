//! Delivery tracking (migration 1004): the consumer's writes of provider statuses, opens and
//! clicks, and the dashboard's delivered / opened / clicked / bounced figures the gateway reads.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// One status to apply, as the `RecordDeliveryStatus` command said it.
#[derive(Debug, Clone)]
pub struct StatusEvent<'a> {
    pub event_id: &'a str,
    pub notification_id: &'a str,
    pub organization_id: &'a str,
    /// delivered, undelivered, opened, clicked or bounced.
    pub status: &'a str,
    pub url: Option<&'a str>,
    pub provider_status: Option<&'a str>,
    pub source: &'a str,
    pub at: DateTime<Utc>,
}

/// What applying a status did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Recorded; `first` when the notification had no such status before (unique opens, …).
    Recorded { first: bool },
    /// This command was applied before: nothing changed.
    Duplicate,
}

#[derive(sqlx::FromRow, Default)]
struct Firsts {
    delivered_at: Option<DateTime<Utc>>,
    undelivered_at: Option<DateTime<Utc>>,
    bounced_at: Option<DateTime<Utc>>,
    first_opened_at: Option<DateTime<Utc>>,
    first_clicked_at: Option<DateTime<Utc>>,
}

/// Records `e` once (by its event id) and updates the notification's firsts and totals. An open
/// or click implies delivery; a click implies an open (the pixel is often blocked), but only
/// pixel loads count in `opens`.
pub async fn apply(tx: &mut PgConnection, e: &StatusEvent<'_>) -> Result<Applied, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO tracking_events (event_id, notification_id, organization_id, status, url, provider_status, source, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(e.event_id)
    .bind(e.notification_id)
    .bind(e.organization_id)
    .bind(e.status)
    .bind(e.url)
    .bind(e.provider_status)
    .bind(e.source)
    .bind(e.at)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(Applied::Duplicate);
    }
    let before: Firsts = sqlx::query_as(
        "SELECT delivered_at, undelivered_at, bounced_at, first_opened_at, first_clicked_at \
         FROM tracking WHERE organization_id = $1 AND notification_id = $2 FOR UPDATE",
    )
    .bind(e.organization_id)
    .bind(e.notification_id)
    .fetch_optional(&mut *tx)
    .await?
    .unwrap_or_default();
    let first = match e.status {
        "delivered" => before.delivered_at.is_none(),
        "undelivered" => before.undelivered_at.is_none(),
        "bounced" => before.bounced_at.is_none(),
        "opened" => before.first_opened_at.is_none(),
        _ => before.first_clicked_at.is_none(),
    };
    let seen = matches!(e.status, "opened" | "clicked");
    sqlx::query(
        "INSERT INTO tracking AS t (notification_id, organization_id, delivered_at, undelivered_at, bounced_at, \
           first_opened_at, opens, first_clicked_at, clicks, provider_status, updated_at) \
         VALUES ($1, $2, \
           CASE WHEN $3 IN ('delivered', 'opened', 'clicked') THEN $5::timestamptz END, \
           CASE WHEN $3 = 'undelivered' THEN $5::timestamptz END, \
           CASE WHEN $3 = 'bounced' THEN $5::timestamptz END, \
           CASE WHEN $6 THEN $5::timestamptz END, \
           CASE WHEN $3 = 'opened' THEN 1 ELSE 0 END, \
           CASE WHEN $3 = 'clicked' THEN $5::timestamptz END, \
           CASE WHEN $3 = 'clicked' THEN 1 ELSE 0 END, \
           $4, $5) \
         ON CONFLICT (organization_id, notification_id) DO UPDATE SET \
           delivered_at = COALESCE(t.delivered_at, EXCLUDED.delivered_at), \
           undelivered_at = COALESCE(t.undelivered_at, EXCLUDED.undelivered_at), \
           bounced_at = COALESCE(t.bounced_at, EXCLUDED.bounced_at), \
           first_opened_at = COALESCE(t.first_opened_at, EXCLUDED.first_opened_at), \
           opens = t.opens + EXCLUDED.opens, \
           first_clicked_at = COALESCE(t.first_clicked_at, EXCLUDED.first_clicked_at), \
           clicks = t.clicks + EXCLUDED.clicks, \
           provider_status = COALESCE(EXCLUDED.provider_status, t.provider_status), \
           updated_at = GREATEST(t.updated_at, EXCLUDED.updated_at)",
    )
    .bind(e.notification_id)
    .bind(e.organization_id)
    .bind(e.status)
    .bind(e.provider_status)
    .bind(e.at)
    .bind(seen)
    .execute(&mut *tx)
    .await?;
    Ok(Applied::Recorded { first })
}

/// The notification's campaign (migration 1003), if it belongs to one.
pub async fn campaign_of(
    tx: &mut PgConnection,
    organization_id: &str,
    notification_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT campaign_id FROM notifications WHERE organization_id = $1 AND notification_id = $2",
    )
    .bind(organization_id)
    .bind(notification_id)
    .fetch_optional(tx)
    .await
    .map(Option::flatten)
}

/// Delivered, opened, clicked and bounced figures of some notifications.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrackingCounts {
    /// Handed to the provider (status sent).
    pub sent: i64,
    /// Confirmed delivered by the provider, or opened or clicked.
    pub delivered: i64,
    /// The provider could not deliver them (Twilio undelivered / failed).
    pub undelivered: i64,
    /// Bounced.
    pub bounced: i64,
    /// Opened at least once (the pixel, or a click): unique opens.
    pub opened: i64,
    /// Pixel loads in all.
    pub opens: i64,
    /// Clicked at least once: unique clicks.
    pub clicked: i64,
    /// Clicks in all.
    pub clicks: i64,
    /// opened / sent; absent when none was sent.
    pub open_rate: Option<f64>,
    /// clicked / sent; absent when none was sent.
    pub click_rate: Option<f64>,
}

/// The figures of one channel, template or campaign (`key`; null: without a template or campaign).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyedTracking {
    pub key: Option<String>,
    #[serde(flatten)]
    pub counts: TrackingCounts,
}

/// Tracking of the notifications created in a range: in all, by channel, template and campaign.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrackingDashboard {
    pub totals: TrackingCounts,
    pub by_channel: Vec<KeyedTracking>,
    /// By template id (null, without a template, first).
    pub by_template: Vec<KeyedTracking>,
    /// By campaign id (null, outside campaigns, first).
    pub by_campaign: Vec<KeyedTracking>,
}

#[derive(sqlx::FromRow)]
struct Row {
    grouping: i32,
    channel: Option<String>,
    template_id: Option<String>,
    campaign_id: Option<String>,
    sent: i64,
    delivered: i64,
    undelivered: i64,
    bounced: i64,
    opened: i64,
    opens: i64,
    clicked: i64,
    clicks: i64,
}

impl Row {
    fn counts(&self) -> TrackingCounts {
        let rate = |n: i64| (self.sent > 0).then(|| n as f64 / self.sent as f64);
        TrackingCounts {
            sent: self.sent,
            delivered: self.delivered,
            undelivered: self.undelivered,
            bounced: self.bounced,
            opened: self.opened,
            opens: self.opens,
            clicked: self.clicked,
            clicks: self.clicks,
            open_rate: rate(self.opened),
            click_rate: rate(self.clicked),
        }
    }
}

/// Tracking of the organization's notifications created in `[from, to)`, in one query.
pub async fn dashboard(
    db: impl PgExecutor<'_>,
    organization_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<TrackingDashboard, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT GROUPING(n.channel, n.template_id, n.campaign_id)::int AS grouping, \
           n.channel, n.template_id, n.campaign_id, \
           count(*) FILTER (WHERE n.status = 'sent') AS sent, \
           count(t.delivered_at) AS delivered, \
           count(t.undelivered_at) AS undelivered, \
           count(t.bounced_at) AS bounced, \
           count(t.first_opened_at) AS opened, \
           COALESCE(sum(t.opens), 0)::bigint AS opens, \
           count(t.first_clicked_at) AS clicked, \
           COALESCE(sum(t.clicks), 0)::bigint AS clicks \
         FROM notifications.notifications n LEFT JOIN notifications.tracking t USING (organization_id, notification_id) \
         WHERE n.organization_id = $1 AND n.created_at >= $2 AND n.created_at < $3 \
         GROUP BY GROUPING SETS ((n.channel), (n.template_id), (n.campaign_id), ()) \
         ORDER BY grouping, n.channel, n.template_id NULLS FIRST, n.campaign_id NULLS FIRST",
    )
    .bind(organization_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    let mut dashboard = TrackingDashboard::default();
    for row in rows {
        let counts = row.counts();
        // Bits: channel 4, template_id 2, campaign_id 1.
        match row.grouping {
            0b011 => dashboard.by_channel.push(KeyedTracking { key: row.channel, counts }),
            0b101 => dashboard.by_template.push(KeyedTracking { key: row.template_id, counts }),
            0b110 => dashboard.by_campaign.push(KeyedTracking { key: row.campaign_id, counts }),
            _ => dashboard.totals = counts,
        }
    }
    Ok(dashboard)
}

/// Whose message a provider's id names (the gateway reads it for status callbacks).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProviderMessage {
    pub notification_id: String,
    pub organization_id: String,
    pub recipient_id: String,
}

/// The notification sent under `provider_message_id` (Twilio's `SM…` sid), through the
/// read-only role; none when it is unknown or not unique.
pub async fn find_by_provider_message_id(
    db: impl PgExecutor<'_>,
    provider_message_id: &str,
) -> Result<Option<ProviderMessage>, sqlx::Error> {
    let found: Vec<ProviderMessage> = sqlx::query_as(
        "SELECT notification_id, organization_id, recipient_id FROM notifications.notifications \
         WHERE provider_message_id = $1 LIMIT 2",
    )
    .bind(provider_message_id)
    .fetch_all(db)
    .await?;
    Ok(if found.len() == 1 { found.into_iter().next() } else { None })
}
