//! Campaigns, the audience segments are drawn from, digests and read receipts: the consumer's
//! writes and loads.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, types::Json};

/// Who a campaign is for (the `Segment` of its command); empty lists do not narrow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub plan_ids: Vec<String>,
    pub subscription_statuses: Vec<String>,
    pub venue_ids: Vec<String>,
    pub attended_within_days: Option<i32>,
    pub recipient_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CampaignRow {
    pub organization_id: String,
    pub campaign_id: String,
    pub name: String,
    pub kind: String,
    pub category: String,
    pub channel: String,
    pub template_id: Option<String>,
    pub subject: Option<String>,
    pub body: String,
    pub variables: Json<HashMap<String, String>>,
    pub locale: Option<String>,
    pub segment: Json<Segment>,
    pub send_at_local: Option<NaiveDateTime>,
    pub send_at: Option<DateTime<Utc>>,
    pub throttle_per_minute: Option<i32>,
    pub trigger: Option<String>,
    pub status: String,
    pub recipients: i32,
    pub created_at: DateTime<Utc>,
}

const CAMPAIGN_COLUMNS: &str = "organization_id, campaign_id, name, kind, category, channel, template_id, subject, \
    body, variables, locale, segment, send_at_local, send_at, throttle_per_minute, trigger, status, recipients, created_at";

/// Stores a new campaign as a draft; false when the id is taken.
pub async fn insert_campaign(tx: &mut PgConnection, c: &CampaignRow) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO campaigns (organization_id, campaign_id, name, kind, category, channel, template_id, subject, \
           body, variables, locale, segment, send_at_local, send_at, throttle_per_minute, trigger, status, recipients, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 'draft', 0, $17) \
         ON CONFLICT (organization_id, campaign_id) DO NOTHING",
    )
    .bind(&c.organization_id)
    .bind(&c.campaign_id)
    .bind(&c.name)
    .bind(&c.kind)
    .bind(&c.category)
    .bind(&c.channel)
    .bind(&c.template_id)
    .bind(&c.subject)
    .bind(&c.body)
    .bind(&c.variables)
    .bind(&c.locale)
    .bind(&c.segment)
    .bind(c.send_at_local)
    .bind(c.send_at)
    .bind(c.throttle_per_minute)
    .bind(&c.trigger)
    .bind(c.created_at)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn campaign(
    tx: &mut PgConnection,
    organization_id: &str,
    campaign_id: &str,
) -> Result<Option<CampaignRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE organization_id = $1 AND campaign_id = $2 FOR UPDATE"
    )))
    .bind(organization_id)
    .bind(campaign_id)
    .fetch_optional(tx)
    .await
}

/// The launched automated campaign reacting to `trigger` (a record type), the latest if several.
pub async fn automated_for(
    tx: &mut PgConnection,
    organization_id: &str,
    trigger: &str,
) -> Result<Option<CampaignRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE organization_id = $1 AND trigger = $2 AND status = 'launched' \
         ORDER BY launched_at DESC, campaign_id LIMIT 1"
    )))
    .bind(organization_id)
    .bind(trigger)
    .fetch_optional(tx)
    .await
}

pub async fn set_status(
    tx: &mut PgConnection,
    organization_id: &str,
    campaign_id: &str,
    status: &str,
    recipients: i32,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE campaigns SET status = $3, recipients = GREATEST(recipients, $4), \
           launched_at = CASE WHEN $3 = 'launched' THEN $5 ELSE launched_at END, \
           cancelled_at = CASE WHEN $3 = 'cancelled' THEN $5 ELSE cancelled_at END \
         WHERE organization_id = $1 AND campaign_id = $2",
    )
    .bind(organization_id)
    .bind(campaign_id)
    .bind(status)
    .bind(recipients)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

/// Whether the campaign was cancelled (a message of it asked after the cancel is not sent).
pub async fn is_cancelled(
    tx: &mut PgConnection,
    organization_id: &str,
    campaign_id: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM campaigns WHERE organization_id = $1 AND campaign_id = $2 AND status = 'cancelled')",
    )
    .bind(organization_id)
    .bind(campaign_id)
    .fetch_one(tx)
    .await
}

/// A segment's members at `at`, in member id order, with their time zone when they set one.
/// The audience is everyone billing or attendance told of, and everyone with preferences.
pub async fn segment_members(
    tx: &mut PgConnection,
    organization_id: &str,
    segment: &Segment,
    at: DateTime<Utc>,
) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
    let since = segment.attended_within_days.map(|d| at - chrono::Duration::days(i64::from(d)));
    let attendance = !segment.venue_ids.is_empty() || since.is_some();
    sqlx::query_as(
        "WITH known AS ( \
           SELECT member_id FROM audience WHERE organization_id = $1 \
           UNION SELECT recipient_id FROM preferences WHERE organization_id = $1 \
           UNION SELECT member_id FROM visits WHERE organization_id = $1) \
         SELECT k.member_id, p.time_zone FROM known k \
         LEFT JOIN audience a ON a.organization_id = $1 AND a.member_id = k.member_id \
         LEFT JOIN preferences p ON p.organization_id = $1 AND p.recipient_id = k.member_id \
         WHERE (cardinality($2::text[]) = 0 OR a.plan_id = ANY($2)) \
           AND (cardinality($3::text[]) = 0 OR a.subscription_status = ANY($3)) \
           AND (cardinality($4::text[]) = 0 OR k.member_id = ANY($4)) \
           AND (NOT $5 OR EXISTS (SELECT 1 FROM visits v WHERE v.organization_id = $1 AND v.member_id = k.member_id \
                 AND (cardinality($6::text[]) = 0 OR v.venue_id = ANY($6)) \
                 AND ($7::timestamptz IS NULL OR (v.last_seen_at >= $7 AND v.last_seen_at <= $8)))) \
         ORDER BY k.member_id",
    )
    .bind(organization_id)
    .bind(&segment.plan_ids)
    .bind(&segment.subscription_statuses)
    .bind(&segment.recipient_ids)
    .bind(attendance)
    .bind(&segment.venue_ids)
    .bind(since)
    .bind(at)
    .fetch_all(tx)
    .await
}

/// What billing said of a member's subscription; `None` leaves a field as it was.
pub async fn note_subscriber(
    tx: &mut PgConnection,
    organization_id: &str,
    member_id: &str,
    plan_id: Option<&str>,
    status: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audience (organization_id, member_id, plan_id, subscription_status, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id, member_id) DO UPDATE SET \
           plan_id = COALESCE(EXCLUDED.plan_id, audience.plan_id), \
           subscription_status = COALESCE(EXCLUDED.subscription_status, audience.subscription_status), \
           updated_at = GREATEST(audience.updated_at, EXCLUDED.updated_at)",
    )
    .bind(organization_id)
    .bind(member_id)
    .bind(plan_id)
    .bind(status)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

/// A member was seen at a venue.
pub async fn note_visit(
    tx: &mut PgConnection,
    organization_id: &str,
    member_id: &str,
    venue_id: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO visits (organization_id, member_id, venue_id, last_seen_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (organization_id, member_id, venue_id) DO UPDATE SET \
           last_seen_at = GREATEST(visits.last_seen_at, EXCLUDED.last_seen_at)",
    )
    .bind(organization_id)
    .bind(member_id)
    .bind(venue_id)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

/// The campaign's notifications whose delivery is in one of the `waiting` statuses.
pub async fn waiting_in_campaign(
    tx: &mut PgConnection,
    organization_id: &str,
    campaign_id: &str,
    waiting: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT n.notification_id FROM notifications n JOIN deliveries d USING (organization_id, notification_id) \
         WHERE n.organization_id = $1 AND n.campaign_id = $2 AND d.status = ANY($3) ORDER BY n.notification_id",
    )
    .bind(organization_id)
    .bind(campaign_id)
    .bind(waiting)
    .fetch_all(tx)
    .await
}

/// A digest of a recipient's key whose window has not closed at `at`, as the log left it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DigestCandidate {
    pub digest_id: String,
    pub closes_at: DateTime<Utc>,
    pub sealed_at: Option<DateTime<Utc>>,
    /// Its delivery's status.
    pub delivery: String,
}

/// The recipient's digests of this key not closed at `at`, the earliest closing first, locked
/// until the transaction ends (the handler decides which one, if any, a message joins).
#[allow(clippy::too_many_arguments)]
pub async fn digests_open_at(
    tx: &mut PgConnection,
    organization_id: &str,
    recipient_id: &str,
    channel: &str,
    category: &str,
    key: &str,
    at: DateTime<Utc>,
) -> Result<Vec<DigestCandidate>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.digest_id, g.closes_at, g.sealed_at, d.status AS delivery \
         FROM digests g JOIN deliveries d ON d.organization_id = g.organization_id AND d.notification_id = g.digest_id \
         WHERE g.organization_id = $1 AND g.recipient_id = $2 AND g.channel = $3 AND g.category = $4 \
           AND g.digest_key = $5 AND g.closes_at > $6 \
         ORDER BY g.closes_at, g.digest_id FOR UPDATE OF g",
    )
    .bind(organization_id)
    .bind(recipient_id)
    .bind(channel)
    .bind(category)
    .bind(key)
    .bind(at)
    .fetch_all(tx)
    .await
}

/// The organization's digest `digest_id` as the log left it (`None`: not a digest).
pub async fn digest(
    tx: &mut PgConnection,
    organization_id: &str,
    digest_id: &str,
) -> Result<Option<DigestCandidate>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.digest_id, g.closes_at, g.sealed_at, d.status AS delivery \
         FROM digests g JOIN deliveries d ON d.organization_id = g.organization_id AND d.notification_id = g.digest_id \
         WHERE g.organization_id = $1 AND g.digest_id = $2 FOR UPDATE OF g",
    )
    .bind(organization_id)
    .bind(digest_id)
    .fetch_optional(tx)
    .await
}

/// Seals a digest: its sending was asked for at `at`, and it holds what it holds now.
pub async fn seal(
    tx: &mut PgConnection,
    organization_id: &str,
    digest_id: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE digests SET sealed_at = $2 WHERE organization_id = $3 AND digest_id = $1 AND sealed_at IS NULL",
    )
    .bind(digest_id)
    .bind(at)
    .bind(organization_id)
    .execute(tx)
    .await
    .map(drop)
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_digest(
    tx: &mut PgConnection,
    digest_id: &str,
    organization_id: &str,
    recipient_id: &str,
    channel: &str,
    category: &str,
    key: &str,
    closes_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO digests (digest_id, organization_id, recipient_id, channel, category, digest_key, closes_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (organization_id, digest_id) DO NOTHING",
    )
    .bind(digest_id)
    .bind(organization_id)
    .bind(recipient_id)
    .bind(channel)
    .bind(category)
    .bind(key)
    .bind(closes_at)
    .execute(tx)
    .await
    .map(drop)
}

/// The messages collected in a digest (not cancelled), oldest first.
pub async fn digest_items(
    tx: &mut PgConnection,
    organization_id: &str,
    digest_id: &str,
) -> Result<Vec<(Option<String>, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT subject, body FROM notifications WHERE organization_id = $1 AND digest_id = $2 AND status = 'digested' \
         ORDER BY created_at, notification_id",
    )
    .bind(organization_id)
    .bind(digest_id)
    .fetch_all(tx)
    .await
}

/// A digested message and its digest as the log left it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Digested {
    pub notification_id: String,
    #[sqlx(flatten)]
    pub digest: DigestCandidate,
}

/// The recipient's digested messages of a transaction, with their digests.
pub async fn digested_in_transaction(
    tx: &mut PgConnection,
    organization_id: &str,
    recipient_id: &str,
    transaction_id: &str,
) -> Result<Vec<Digested>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n.notification_id, g.digest_id, g.closes_at, g.sealed_at, d.status AS delivery \
         FROM notifications n JOIN digests g ON g.organization_id = n.organization_id AND g.digest_id = n.digest_id \
           JOIN deliveries d ON d.organization_id = n.organization_id AND d.notification_id = n.digest_id \
         WHERE n.organization_id = $1 AND n.recipient_id = $2 AND n.transaction_id = $3 AND n.status = 'digested' \
         ORDER BY n.notification_id FOR UPDATE OF g",
    )
    .bind(organization_id)
    .bind(recipient_id)
    .bind(transaction_id)
    .fetch_all(tx)
    .await
}

/// Marks the recipient's in-app messages read; returns those that were unread.
pub async fn mark_read(
    tx: &mut PgConnection,
    organization_id: &str,
    recipient_id: &str,
    ids: &[String],
    at: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE notifications SET read_at = $4 WHERE organization_id = $1 AND recipient_id = $2 \
           AND notification_id = ANY($3) AND channel = 'in_app' AND read_at IS NULL \
         RETURNING notification_id",
    )
    .bind(organization_id)
    .bind(recipient_id)
    .bind(ids)
    .bind(at)
    .fetch_all(tx)
    .await
    .map(|mut ids: Vec<String>| {
        ids.sort();
        ids
    })
}

/// Makes a notification's delivery due at `at` at the latest (the worker's schedule: a retry
/// waiting out its back-off goes now); nothing when it is not pending.
pub async fn due_by(
    tx: &mut PgConnection,
    organization_id: &str,
    notification_id: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET next_attempt_at = LEAST(next_attempt_at, $2) \
         WHERE organization_id = $3 AND notification_id = $1 AND status = 'pending'",
    )
    .bind(notification_id)
    .bind(at)
    .bind(organization_id)
    .execute(tx)
    .await
    .map(drop)
}
