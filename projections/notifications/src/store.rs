//! The consumer's writes and loads: notifications, templates, preferences, deliveries, counts.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use sqlx::{PgConnection, types::Json};

/// A notification with what routing and rendering decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct NotificationRow {
    pub notification_id: String,
    pub organization_id: String,
    pub recipient_id: String,
    pub channel: String,
    pub category: String,
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
    pub status: String,
    pub template_id: Option<String>,
    pub template_version: Option<i32>,
    pub locale: Option<String>,
    pub critical: bool,
    pub transaction_id: Option<String>,
    pub address: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub attempts: i32,
    pub provider_message_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub campaign_id: Option<String>,
    /// Collected into this digest (a notification of its own).
    pub digest_id: Option<String>,
}

const COLUMNS: &str = "notification_id, organization_id, recipient_id, channel, category, subject, body, html, status, \
    template_id, template_version, locale, critical, transaction_id, address, not_before, reason, attempts, \
    provider_message_id, failure_code, failure_message, sent_at, created_at, updated_at, campaign_id, digest_id";

/// The organization's notification `notification_id`, locked until the transaction ends. Ids are
/// the client's choice, so another organization's notification of that id is not found.
pub async fn load(
    tx: &mut PgConnection,
    organization_id: &str,
    notification_id: &str,
) -> Result<Option<NotificationRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM notifications WHERE organization_id = $1 AND notification_id = $2 FOR UPDATE"
    )))
    .bind(organization_id)
    .bind(notification_id)
    .fetch_optional(tx)
    .await
}

pub async fn save(tx: &mut PgConnection, n: &NotificationRow) -> Result<(), sqlx::Error> {
    let placeholders = (1..=26).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let updates = COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| !matches!(*c, "notification_id" | "organization_id" | "created_at"))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO notifications ({COLUMNS}) VALUES ({placeholders}) ON CONFLICT (organization_id, notification_id) DO UPDATE SET {updates}"
    )))
    .bind(&n.notification_id)
    .bind(&n.organization_id)
    .bind(&n.recipient_id)
    .bind(&n.channel)
    .bind(&n.category)
    .bind(&n.subject)
    .bind(&n.body)
    .bind(&n.html)
    .bind(&n.status)
    .bind(&n.template_id)
    .bind(n.template_version)
    .bind(&n.locale)
    .bind(n.critical)
    .bind(&n.transaction_id)
    .bind(&n.address)
    .bind(n.not_before)
    .bind(&n.reason)
    .bind(n.attempts)
    .bind(&n.provider_message_id)
    .bind(&n.failure_code)
    .bind(&n.failure_message)
    .bind(n.sent_at)
    .bind(n.created_at)
    .bind(n.updated_at)
    .bind(&n.campaign_id)
    .bind(&n.digest_id)
    .execute(tx)
    .await
    .map(drop)
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Template {
    pub template_id: String,
    pub channel: String,
    pub locale: String,
    pub version: i32,
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
}

/// The latest version for the channel in `locale`, else in its language (de for de-AT), else in
/// English.
pub async fn template(
    tx: &mut PgConnection,
    organization_id: &str,
    template_id: &str,
    channel: &str,
    locale: &str,
) -> Result<Option<Template>, sqlx::Error> {
    let language = locale.split(['-', '_']).next().unwrap_or(locale);
    sqlx::query_as(
        "SELECT template_id, channel, locale, version, subject, body, html FROM templates \
         WHERE organization_id = $1 AND template_id = $2 AND channel = $3 AND locale IN ($4, $5, 'en') \
         ORDER BY CASE locale WHEN $4 THEN 0 WHEN $5 THEN 1 ELSE 2 END, version DESC LIMIT 1",
    )
    .bind(organization_id)
    .bind(template_id)
    .bind(channel)
    .bind(locale)
    .bind(language)
    .fetch_optional(tx)
    .await
}

pub async fn insert_template(
    tx: &mut PgConnection,
    organization_id: &str,
    t: &Template,
    at: DateTime<Utc>,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO templates (organization_id, template_id, channel, locale, version, subject, body, html, created_at) \
         SELECT $1, $2, $3, $4, COALESCE(MAX(version), 0) + 1, $5, $6, $7, $8 FROM templates \
         WHERE organization_id = $1 AND template_id = $2 AND channel = $3 AND locale = $4 \
         RETURNING version",
    )
    .bind(organization_id)
    .bind(&t.template_id)
    .bind(&t.channel)
    .bind(&t.locale)
    .bind(&t.subject)
    .bind(&t.body)
    .bind(&t.html)
    .bind(at)
    .fetch_one(tx)
    .await
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PreferencesRow {
    pub organization_id: String,
    pub recipient_id: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub whatsapp: Option<String>,
    pub push_token: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub time_zone: String,
    pub quiet_start: Option<NaiveTime>,
    pub quiet_end: Option<NaiveTime>,
    pub opted_out_channels: Vec<String>,
    pub opted_out_categories: Vec<String>,
    pub category_caps: Json<std::collections::HashMap<String, i32>>,
    pub daily_cap: Option<i32>,
    pub updated_at: DateTime<Utc>,
}

const PREFERENCE_COLUMNS: &str = "organization_id, recipient_id, email, phone, whatsapp, push_token, webhook_url, \
    webhook_secret, time_zone, quiet_start, quiet_end, opted_out_channels, opted_out_categories, category_caps, \
    daily_cap, updated_at";

pub async fn preferences(
    tx: &mut PgConnection,
    organization_id: &str,
    recipient_id: &str,
) -> Result<Option<PreferencesRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PREFERENCE_COLUMNS} FROM preferences WHERE organization_id = $1 AND recipient_id = $2"
    )))
    .bind(organization_id)
    .bind(recipient_id)
    .fetch_optional(tx)
    .await
}

pub async fn save_preferences(tx: &mut PgConnection, p: &PreferencesRow) -> Result<(), sqlx::Error> {
    let updates = PREFERENCE_COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| !matches!(*c, "organization_id" | "recipient_id"))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO preferences ({PREFERENCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (organization_id, recipient_id) DO UPDATE SET {updates}"
    )))
    .bind(&p.organization_id)
    .bind(&p.recipient_id)
    .bind(&p.email)
    .bind(&p.phone)
    .bind(&p.whatsapp)
    .bind(&p.push_token)
    .bind(&p.webhook_url)
    .bind(&p.webhook_secret)
    .bind(&p.time_zone)
    .bind(p.quiet_start)
    .bind(p.quiet_end)
    .bind(&p.opted_out_channels)
    .bind(&p.opted_out_categories)
    .bind(&p.category_caps)
    .bind(p.daily_cap)
    .bind(p.updated_at)
    .execute(tx)
    .await
    .map(drop)
}

/// Sent to the recipient on a local day: in `category`, and in all categories.
pub async fn sent_on(
    tx: &mut PgConnection,
    organization_id: &str,
    recipient_id: &str,
    day: NaiveDate,
    category: &str,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT COALESCE(SUM(sent) FILTER (WHERE category = $4), 0)::bigint, COALESCE(SUM(sent), 0)::bigint \
         FROM sent_counts WHERE organization_id = $1 AND recipient_id = $2 AND local_day = $3",
    )
    .bind(organization_id)
    .bind(recipient_id)
    .bind(day)
    .bind(category)
    .fetch_one(tx)
    .await
}

pub async fn count_sent(
    tx: &mut PgConnection,
    organization_id: &str,
    recipient_id: &str,
    day: NaiveDate,
    category: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sent_counts (organization_id, recipient_id, local_day, category, sent) VALUES ($1, $2, $3, $4, 1) \
         ON CONFLICT (organization_id, recipient_id, local_day, category) DO UPDATE SET sent = sent_counts.sent + 1",
    )
    .bind(organization_id)
    .bind(recipient_id)
    .bind(day)
    .bind(category)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn insert_delivery(
    tx: &mut PgConnection,
    n: &NotificationRow,
    due: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deliveries (notification_id, organization_id, recipient_id, channel, status, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6) ON CONFLICT (organization_id, notification_id) DO NOTHING",
    )
    .bind(&n.notification_id)
    .bind(&n.organization_id)
    .bind(&n.recipient_id)
    .bind(&n.channel)
    .bind(due)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

/// Marks the delivery `status` (settled, cancelled).
pub async fn finish_delivery(
    tx: &mut PgConnection,
    organization_id: &str,
    notification_id: &str,
    status: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE deliveries SET status = $2, leased_until = NULL \
         WHERE organization_id = $3 AND notification_id = $1 AND status IN ('pending', 'reported')",
    )
    .bind(notification_id)
    .bind(status)
    .bind(organization_id)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The delivery's status, locked until the transaction ends (`None`: the notification has none).
pub async fn delivery_status(
    tx: &mut PgConnection,
    organization_id: &str,
    notification_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT status FROM deliveries WHERE organization_id = $1 AND notification_id = $2 FOR UPDATE",
    )
    .bind(organization_id)
    .bind(notification_id)
    .fetch_optional(tx)
    .await
}

/// The worker's report was applied: the delivery is settled, whatever it was marked meanwhile
/// (reported by the worker, or cancelled while the worker was already sending it).
pub async fn settle_delivery(
    tx: &mut PgConnection,
    organization_id: &str,
    notification_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET status = 'settled', leased_until = NULL \
         WHERE organization_id = $1 AND notification_id = $2",
    )
    .bind(organization_id)
    .bind(notification_id)
    .execute(tx)
    .await
    .map(drop)
}

/// The recipient's notifications of a transaction whose delivery is in one of the `waiting`
/// statuses.
pub async fn waiting_in_transaction(
    tx: &mut PgConnection,
    organization_id: &str,
    recipient_id: &str,
    transaction_id: &str,
    waiting: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT n.notification_id FROM notifications n JOIN deliveries d USING (organization_id, notification_id) \
         WHERE n.organization_id = $1 AND n.recipient_id = $2 AND n.transaction_id = $3 AND d.status = ANY($4) \
         ORDER BY n.notification_id",
    )
    .bind(organization_id)
    .bind(recipient_id)
    .bind(transaction_id)
    .bind(waiting)
    .fetch_all(tx)
    .await
}

/// A due delivery, leased to one worker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub notification_id: String,
    pub organization_id: String,
    pub recipient_id: String,
    pub channel: String,
    pub attempts: i32,
    pub address: Option<String>,
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
    pub category: String,
    pub webhook_secret: Option<String>,
    /// When the lease ends: the worker must have recorded what it did by then, or another round
    /// (or another process's worker) sends the message again.
    pub leased_until: DateTime<Utc>,
}

/// Leases up to `limit` due deliveries for `lease_secs`; a crashed worker's leases run out.
/// A digest is due only once sealed (see [`digests_to_seal`]).
pub async fn lease_due(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
    lease_secs: f64,
) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS ( \
           SELECT organization_id, notification_id FROM deliveries p \
           WHERE status = 'pending' AND next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until < $1) \
             AND NOT EXISTS (SELECT 1 FROM digests g WHERE g.organization_id = p.organization_id \
               AND g.digest_id = p.notification_id AND g.sealed_at IS NULL) \
           ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         UPDATE deliveries d SET leased_until = $1 + make_interval(secs => $3) FROM due, notifications n \
         WHERE d.organization_id = due.organization_id AND d.notification_id = due.notification_id \
           AND n.organization_id = d.organization_id AND n.notification_id = d.notification_id \
         RETURNING d.notification_id, d.organization_id, d.recipient_id, d.channel, d.attempts, d.leased_until, \
           n.address, n.subject, n.body, n.html, n.category, \
           (SELECT webhook_secret FROM preferences p WHERE p.organization_id = d.organization_id \
              AND p.recipient_id = d.recipient_id) AS webhook_secret",
    )
    .bind(now)
    .bind(limit)
    .bind(lease_secs)
    .fetch_all(tx)
    .await
}

/// A digest whose window has closed, waiting for its seal: the worker asks for it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Unsealed {
    pub notification_id: String,
    pub organization_id: String,
    pub recipient_id: String,
}

/// Up to `limit` due digests not sealed yet, each put off by `ask_again_secs`: the worker asks for
/// their seal (a `ReleaseNotification`, which also makes them due again at once) and asks again
/// when that much time passes without it.
pub async fn digests_to_seal(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
    ask_again_secs: f64,
) -> Result<Vec<Unsealed>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS ( \
           SELECT p.organization_id, p.notification_id FROM deliveries p \
             JOIN digests g ON g.organization_id = p.organization_id AND g.digest_id = p.notification_id \
           WHERE p.status = 'pending' AND p.next_attempt_at <= $1 AND g.sealed_at IS NULL \
           ORDER BY p.next_attempt_at LIMIT $2 FOR UPDATE OF p SKIP LOCKED) \
         UPDATE deliveries d SET next_attempt_at = $1 + make_interval(secs => $3) FROM due \
         WHERE d.organization_id = due.organization_id AND d.notification_id = due.notification_id \
         RETURNING d.notification_id, d.organization_id, d.recipient_id",
    )
    .bind(now)
    .bind(limit)
    .bind(ask_again_secs)
    .fetch_all(tx)
    .await
}

/// Whether attempt `attempts` of the delivery is recorded already: a commit whose answer was lost
/// (the connection dropped after `COMMIT` was sent) may have gone through. Every record of an
/// attempt ([`reported`], [`retry_later`]) counts it and ends the lease; a cancel meanwhile ends
/// the lease without counting it. Locks the row.
pub async fn attempt_recorded(
    tx: &mut PgConnection,
    organization_id: &str,
    notification_id: &str,
    attempts: i32,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT leased_until IS NULL AND attempts >= $2 FROM deliveries \
         WHERE organization_id = $3 AND notification_id = $1 FOR UPDATE",
    )
    .bind(notification_id)
    .bind(attempts)
    .bind(organization_id)
    .fetch_optional(tx)
    .await
    .map(|recorded| recorded.unwrap_or(false))
}

/// The answer is in the outbox (same transaction): nobody sends it again.
pub async fn reported(
    tx: &mut PgConnection,
    organization_id: &str,
    notification_id: &str,
    attempts: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET status = 'reported', attempts = $2, leased_until = NULL \
         WHERE organization_id = $3 AND notification_id = $1",
    )
    .bind(notification_id)
    .bind(attempts)
    .bind(organization_id)
    .execute(tx)
    .await
    .map(drop)
}

/// A transient failure: try again at `next`.
pub async fn retry_later(
    tx: &mut PgConnection,
    organization_id: &str,
    notification_id: &str,
    attempts: i32,
    next: DateTime<Utc>,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET attempts = $2, next_attempt_at = $3, last_error = $4, leased_until = NULL \
         WHERE organization_id = $5 AND notification_id = $1",
    )
    .bind(notification_id)
    .bind(attempts)
    .bind(next)
    .bind(error)
    .bind(organization_id)
    .execute(tx)
    .await
    .map(drop)
}

/// Marks an address a provider refused for good.
pub async fn mark_address(
    tx: &mut PgConnection,
    n: &NotificationRow,
    code: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let Some(address) = &n.address else { return Ok(()) };
    sqlx::query(
        "INSERT INTO marked_addresses (organization_id, channel, address, recipient_id, code, notification_id, marked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (organization_id, channel, address) DO NOTHING",
    )
    .bind(&n.organization_id)
    .bind(&n.channel)
    .bind(address)
    .bind(&n.recipient_id)
    .bind(code)
    .bind(&n.notification_id)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

/// The code an address was marked with, if it was.
pub async fn address_mark(
    tx: &mut PgConnection,
    organization_id: &str,
    channel: &str,
    address: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT code FROM marked_addresses WHERE organization_id = $1 AND channel = $2 AND address = $3",
    )
    .bind(organization_id)
    .bind(channel)
    .bind(address)
    .fetch_optional(tx)
    .await
}

/// The recipient set their addresses again: their marks are cleared.
pub async fn clear_marks(
    tx: &mut PgConnection,
    organization_id: &str,
    recipient_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM marked_addresses WHERE organization_id = $1 AND recipient_id = $2")
        .bind(organization_id)
        .bind(recipient_id)
        .execute(tx)
        .await
        .map(drop)
}
