//! The consumer's side of the projection: venues, sessions beyond check-in, occupancy, bookings,
//! entitlements, passes and spent tokens. Every function runs in the batch's transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct VenueRow {
    pub organization_id: String,
    pub venue_id: String,
    pub name: String,
    pub time_zone: String,
    pub capacity: i32,
    pub zones: Value,
    pub seats: Value,
    pub opening_hours: Value,
    pub limits: Value,
    pub qr_required: bool,
    pub version: i32,
    pub updated_at: DateTime<Utc>,
}

pub async fn venue(
    tx: &mut PgConnection,
    org: &str,
    venue_id: &str,
) -> Result<Option<VenueRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM venues WHERE organization_id = $1 AND venue_id = $2")
        .bind(org)
        .bind(venue_id)
        .fetch_optional(tx)
        .await
}

pub async fn save_venue(tx: &mut PgConnection, v: &VenueRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO venues (organization_id, venue_id, name, time_zone, capacity, zones, seats, opening_hours, limits, \
           qr_required, version, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (organization_id, venue_id) DO UPDATE SET name = EXCLUDED.name, time_zone = EXCLUDED.time_zone, \
           capacity = EXCLUDED.capacity, zones = EXCLUDED.zones, seats = EXCLUDED.seats, \
           opening_hours = EXCLUDED.opening_hours, limits = EXCLUDED.limits, qr_required = EXCLUDED.qr_required, \
           version = EXCLUDED.version, updated_at = EXCLUDED.updated_at",
    )
    .bind(&v.organization_id)
    .bind(&v.venue_id)
    .bind(&v.name)
    .bind(&v.time_zone)
    .bind(v.capacity)
    .bind(&v.zones)
    .bind(&v.seats)
    .bind(&v.opening_hours)
    .bind(&v.limits)
    .bind(v.qr_required)
    .bind(v.version)
    .bind(v.updated_at)
    .execute(tx)
    .await
    .map(drop)
}

/// A session's columns beyond those of [`crate::Session`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionExtra {
    pub zone_id: Option<String>,
    pub booking_id: Option<String>,
    pub subscription_id: Option<String>,
    pub pass_id: Option<String>,
    pub auto_checkout_at: Option<DateTime<Utc>>,
    pub auto_checkout_reason: Option<String>,
}

/// Opens a session; `false` when the member already has an open one (a concurrent check-in at
/// another venue won the race): the caller refuses instead.
pub async fn open_session(
    tx: &mut PgConnection,
    s: &crate::Session,
    extra: &SessionExtra,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO sessions (session_id, organization_id, member_id, venue_id, seat_id, checked_in_at, zone_id, \
           booking_id, subscription_id, pass_id, auto_checkout_at, auto_checkout_reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
    )
    .bind(&s.session_id)
    .bind(&s.organization_id)
    .bind(&s.member_id)
    .bind(&s.venue_id)
    .bind(&s.seat_id)
    .bind(s.checked_in_at)
    .bind(&extra.zone_id)
    .bind(&extra.booking_id)
    .bind(&extra.subscription_id)
    .bind(&extra.pass_id)
    .bind(extra.auto_checkout_at)
    .bind(&extra.auto_checkout_reason)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OpenSessionRow {
    pub session_id: String,
    pub member_id: String,
    pub venue_id: String,
    pub seat_id: Option<String>,
    pub zone_id: Option<String>,
    pub subscription_id: Option<String>,
    pub checked_in_at: DateTime<Utc>,
    pub checked_out_at: Option<DateTime<Utc>>,
    pub auto_checkout_at: Option<DateTime<Utc>>,
    pub auto_checkout_reason: Option<String>,
}

const SESSION_COLUMNS: &str = "session_id, member_id, venue_id, seat_id, zone_id, subscription_id, checked_in_at, \
    checked_out_at, auto_checkout_at, auto_checkout_reason";

pub async fn session_row(
    tx: &mut PgConnection,
    org: &str,
    session_id: &str,
) -> Result<Option<OpenSessionRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE organization_id = $1 AND session_id = $2"
    )))
    .bind(org)
    .bind(session_id)
    .fetch_optional(tx)
    .await
}

pub async fn open_session_of(
    tx: &mut PgConnection,
    org: &str,
    member_id: &str,
) -> Result<Option<OpenSessionRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE organization_id = $1 AND member_id = $2 AND checked_out_at IS NULL"
    )))
    .bind(org)
    .bind(member_id)
    .fetch_optional(tx)
    .await
}

/// The venue's open sessions whose automatic check-out is due by `up_to`.
pub async fn due_sessions(
    tx: &mut PgConnection,
    org: &str,
    venue_id: &str,
    up_to: DateTime<Utc>,
) -> Result<Vec<OpenSessionRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE organization_id = $1 AND venue_id = $2 \
           AND checked_out_at IS NULL AND auto_checkout_at <= $3"
    )))
    .bind(org)
    .bind(venue_id)
    .bind(up_to)
    .fetch_all(tx)
    .await
}

pub async fn seat_taken_by(
    tx: &mut PgConnection,
    org: &str,
    venue_id: &str,
    seat_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT member_id FROM sessions WHERE organization_id = $1 AND venue_id = $2 AND seat_id = $3 \
           AND checked_out_at IS NULL",
    )
    .bind(org)
    .bind(venue_id)
    .bind(seat_id)
    .fetch_optional(tx)
    .await
}

pub async fn close_session(
    tx: &mut PgConnection,
    org: &str,
    session_id: &str,
    at: DateTime<Utc>,
    reason: &str,
    duration_seconds: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sessions SET checked_out_at = $3, checkout_reason = $4, duration_seconds = $5 \
         WHERE organization_id = $1 AND session_id = $2 AND checked_out_at IS NULL",
    )
    .bind(org)
    .bind(session_id)
    .bind(at)
    .bind(reason)
    .bind(duration_seconds)
    .execute(tx)
    .await
    .map(drop)
}

/// Members in the venue (zone `None`) or one zone now: counted from the open sessions, so it is
/// exact whatever happened before.
pub async fn present(
    tx: &mut PgConnection,
    org: &str,
    venue_id: &str,
    zone_id: Option<&str>,
) -> Result<i32, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE organization_id = $1 AND venue_id = $2 AND checked_out_at IS NULL \
           AND ($3::text IS NULL OR zone_id = $3)",
    )
    .bind(org)
    .bind(venue_id)
    .bind(zone_id)
    .fetch_one(tx)
    .await?;
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
}

/// Records the venue's (and the zone's) occupancy after a change, with a sample for history.
pub async fn record_occupancy(
    tx: &mut PgConnection,
    org: &str,
    venue_id: &str,
    zone: Option<(&str, i32)>,
    occupancy: i32,
    at: DateTime<Utc>,
    session_id: &str,
) -> Result<(), sqlx::Error> {
    crate::set_occupancy(tx, org, venue_id, occupancy, at).await?;
    let mut rows = vec![("", occupancy)];
    if let Some((zone_id, n)) = zone {
        sqlx::query(
            "INSERT INTO zone_occupancy (organization_id, venue_id, zone_id, occupancy, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id, venue_id, zone_id) \
             DO UPDATE SET occupancy = EXCLUDED.occupancy, updated_at = EXCLUDED.updated_at",
        )
        .bind(org)
        .bind(venue_id)
        .bind(zone_id)
        .bind(n)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        rows.push((zone_id, n));
    }
    for (zone_id, n) in rows {
        sqlx::query(
            "INSERT INTO occupancy_samples (organization_id, venue_id, zone_id, at, occupancy, session_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(org)
        .bind(venue_id)
        .bind(zone_id)
        .bind(at)
        .bind(n)
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BookingRow {
    pub booking_id: String,
    pub organization_id: String,
    pub member_id: String,
    pub venue_id: String,
    pub seat_id: Option<String>,
    pub zone_id: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub series_id: Option<String>,
    pub status: String,
    pub no_show_at: DateTime<Utc>,
    pub session_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn insert_booking(tx: &mut PgConnection, b: &BookingRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bookings (booking_id, organization_id, member_id, venue_id, seat_id, zone_id, starts_at, ends_at, \
           series_id, status, no_show_at, session_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&b.booking_id)
    .bind(&b.organization_id)
    .bind(&b.member_id)
    .bind(&b.venue_id)
    .bind(&b.seat_id)
    .bind(&b.zone_id)
    .bind(b.starts_at)
    .bind(b.ends_at)
    .bind(&b.series_id)
    .bind(&b.status)
    .bind(b.no_show_at)
    .bind(&b.session_id)
    .bind(b.created_at)
    .bind(b.updated_at)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn booking(
    tx: &mut PgConnection,
    org: &str,
    booking_id: &str,
) -> Result<Option<BookingRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM bookings WHERE organization_id = $1 AND booking_id = $2")
        .bind(org)
        .bind(booking_id)
        .fetch_optional(tx)
        .await
}

/// The venue's bookings that hold (booked or checked in) at `at`, counting a booking from
/// `early` before its start (check-ins may come that early).
pub async fn holding_at(
    tx: &mut PgConnection,
    org: &str,
    venue_id: &str,
    at: DateTime<Utc>,
    early: chrono::Duration,
) -> Result<Vec<BookingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM bookings WHERE organization_id = $1 AND venue_id = $2 AND starts_at <= $3 \
           AND ends_at > $4 AND status IN ('booked', 'checked_in') ORDER BY starts_at, booking_id",
    )
    .bind(org)
    .bind(venue_id)
    .bind(at + early)
    .bind(at)
    .fetch_all(tx)
    .await
}

/// The venue's bookings that hold (booked or checked in) and end after `from`: the member's,
/// and everyone's that overlap `span`.
pub async fn holding_for(
    tx: &mut PgConnection,
    org: &str,
    venue_id: &str,
    member_id: &str,
    from: DateTime<Utc>,
    span: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<BookingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM bookings WHERE organization_id = $1 AND venue_id = $2 AND ends_at > $3 \
           AND status IN ('booked', 'checked_in') \
           AND (member_id = $4 OR (starts_at < $6 AND ends_at > $5)) ORDER BY starts_at, booking_id",
    )
    .bind(org)
    .bind(venue_id)
    .bind(from)
    .bind(member_id)
    .bind(span.0)
    .bind(span.1)
    .fetch_all(tx)
    .await
}

/// The member's bookings at the venue (any status) starting in `[from, to)`.
pub async fn member_bookings(
    tx: &mut PgConnection,
    org: &str,
    venue_id: &str,
    member_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<BookingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM bookings WHERE organization_id = $1 AND venue_id = $2 AND member_id = $3 \
           AND starts_at >= $4 AND starts_at < $5 ORDER BY starts_at, booking_id",
    )
    .bind(org)
    .bind(venue_id)
    .bind(member_id)
    .bind(from)
    .bind(to)
    .fetch_all(tx)
    .await
}

/// The venue's bookings still `booked` whose grace ran out by `up_to`.
pub async fn due_no_shows(
    tx: &mut PgConnection,
    org: &str,
    venue_id: &str,
    up_to: DateTime<Utc>,
) -> Result<Vec<BookingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM bookings WHERE organization_id = $1 AND venue_id = $2 AND status = 'booked' AND no_show_at <= $3",
    )
    .bind(org)
    .bind(venue_id)
    .bind(up_to)
    .fetch_all(tx)
    .await
}

pub async fn set_booking_status(
    tx: &mut PgConnection,
    org: &str,
    booking_id: &str,
    status: &str,
    session_id: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE bookings SET status = $3, session_id = COALESCE($4, session_id), updated_at = $5 \
         WHERE organization_id = $1 AND booking_id = $2",
    )
    .bind(org)
    .bind(booking_id)
    .bind(status)
    .bind(session_id)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

/// Subscriptions attendance knows of for the member: (id, status).
pub async fn subscriptions_of(
    tx: &mut PgConnection,
    org: &str,
    member_id: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT subscription_id, status FROM entitlements WHERE organization_id = $1 AND member_id = $2 \
         ORDER BY updated_at DESC, subscription_id",
    )
    .bind(org)
    .bind(member_id)
    .fetch_all(tx)
    .await
}

pub async fn set_subscription_status(
    tx: &mut PgConnection,
    org: &str,
    member_id: &str,
    subscription_id: &str,
    status: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO entitlements (subscription_id, organization_id, member_id, status, updated_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id, subscription_id) DO UPDATE SET status = EXCLUDED.status, \
           updated_at = EXCLUDED.updated_at",
    )
    .bind(subscription_id)
    .bind(org)
    .bind(member_id)
    .bind(status)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

/// (pass id, venue, valid from, valid until) of the member's passes.
pub async fn passes_of(
    tx: &mut PgConnection,
    org: &str,
    member_id: &str,
) -> Result<Vec<(String, String, DateTime<Utc>, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT pass_id, venue_id, valid_from, valid_until FROM passes WHERE organization_id = $1 AND member_id = $2",
    )
    .bind(org)
    .bind(member_id)
    .fetch_all(tx)
    .await
}

/// Whether the organization has a pass with this id.
pub async fn pass_exists(tx: &mut PgConnection, org: &str, pass_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM passes WHERE organization_id = $1 AND pass_id = $2)")
        .bind(org)
        .bind(pass_id)
        .fetch_one(tx)
        .await
}

/// `false` when the pass id exists.
pub async fn insert_pass(
    tx: &mut PgConnection,
    org: &str,
    pass_id: &str,
    member_id: &str,
    venue_id: &str,
    valid: (DateTime<Utc>, DateTime<Utc>),
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO passes (pass_id, organization_id, member_id, venue_id, valid_from, valid_until) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(pass_id)
    .bind(org)
    .bind(member_id)
    .bind(venue_id)
    .bind(valid.0)
    .bind(valid.1)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn token_spent(tx: &mut PgConnection, org: &str, nonce: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM spent_tokens WHERE organization_id = $1 AND nonce = $2)")
        .bind(org)
        .bind(nonce)
        .fetch_one(tx)
        .await
}

pub async fn spend_token(
    tx: &mut PgConnection,
    nonce: &str,
    org: &str,
    member_id: &str,
    session_id: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO spent_tokens (nonce, organization_id, member_id, session_id, spent_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(nonce)
    .bind(org)
    .bind(member_id)
    .bind(session_id)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}

/// (organization, venue) pairs with an automatic check-out or a no-show due by `now`: what the
/// scheduler asks a `RunAttendance` for.
pub async fn venues_due(
    db: impl sqlx::PgExecutor<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT organization_id, venue_id FROM sessions WHERE checked_out_at IS NULL AND auto_checkout_at <= $1 \
         UNION SELECT organization_id, venue_id FROM bookings WHERE status = 'booked' AND no_show_at <= $1",
    )
    .bind(now)
    .fetch_all(db)
    .await
}
