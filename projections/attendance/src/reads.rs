//! What the gateway reads (through the read-only role, so names are schema-qualified).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::Session;

/// Filters of `GET /api/attendance/sessions`; `organization_id` is always set by the gateway.
#[derive(Debug, Default)]
pub struct SessionFilter<'a> {
    pub organization_id: &'a str,
    pub member_id: Option<&'a str>,
    pub venue_id: Option<&'a str>,
    /// Only sessions still open (no check-out yet).
    pub open: Option<bool>,
    /// Only sessions checked in at or after …
    pub from: Option<DateTime<Utc>>,
    /// … and before.
    pub to: Option<DateTime<Utc>>,
}

/// Latest check-in first; `after` is the (checked_in_at, session_id) of the previous page's last row.
pub async fn list_sessions(
    db: impl PgExecutor<'_>,
    filter: &SessionFilter<'_>,
    after: Option<(DateTime<Utc>, &str)>,
    limit: i64,
) -> Result<Vec<Session>, sqlx::Error> {
    sqlx::query_as(
        "SELECT session_id, organization_id, member_id, venue_id, seat_id, checked_in_at, checked_out_at \
         FROM attendance.sessions \
         WHERE organization_id = $1 \
           AND ($2::text IS NULL OR member_id = $2) \
           AND ($3::text IS NULL OR venue_id = $3) \
           AND ($4::boolean IS NULL OR (checked_out_at IS NULL) = $4) \
           AND ($5::timestamptz IS NULL OR (checked_in_at, session_id) < ($5, $6)) \
           AND ($8::timestamptz IS NULL OR checked_in_at >= $8) \
           AND ($9::timestamptz IS NULL OR checked_in_at < $9) \
         ORDER BY checked_in_at DESC, session_id DESC \
         LIMIT $7",
    )
    .bind(filter.organization_id)
    .bind(filter.member_id)
    .bind(filter.venue_id)
    .bind(filter.open)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .bind(filter.from)
    .bind(filter.to)
    .fetch_all(db)
    .await
}

/// A zone's capacity and who is in it now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ZoneOccupancy {
    pub zone_id: String,
    pub name: String,
    pub capacity: i32,
    pub occupancy: i32,
}

/// A venue's capacity and who is in it now, per zone too.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VenueOccupancy {
    pub venue_id: String,
    pub name: String,
    pub time_zone: String,
    pub capacity: i32,
    pub occupancy: i32,
    pub zones: Vec<ZoneOccupancy>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Occupancy of the organization's venues (or one), counted from the open sessions.
pub async fn occupancy(
    db: &sqlx::PgPool,
    organization_id: &str,
    venue_id: Option<&str>,
) -> Result<Vec<VenueOccupancy>, sqlx::Error> {
    type VenueRow = (String, String, String, i32, serde_json::Value, Option<DateTime<Utc>>);
    let venues: Vec<VenueRow> = sqlx::query_as(
        "SELECT v.venue_id, v.name, v.time_zone, v.capacity, v.zones, o.updated_at FROM attendance.venues v \
         LEFT JOIN attendance.venue_occupancy o USING (organization_id, venue_id) \
         WHERE v.organization_id = $1 AND ($2::text IS NULL OR v.venue_id = $2) ORDER BY v.venue_id",
    )
    .bind(organization_id)
    .bind(venue_id)
    .fetch_all(db)
    .await?;
    let present: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT venue_id, zone_id, count(*) FROM attendance.sessions \
         WHERE organization_id = $1 AND checked_out_at IS NULL AND ($2::text IS NULL OR venue_id = $2) \
         GROUP BY venue_id, zone_id",
    )
    .bind(organization_id)
    .bind(venue_id)
    .fetch_all(db)
    .await?;
    let count = |v: &str, z: Option<&str>| -> i32 {
        let n: i64 = present
            .iter()
            .filter(|(pv, pz, _)| pv == v && (z.is_none() || pz.as_deref() == z))
            .map(|p| p.2)
            .sum();
        i32::try_from(n).unwrap_or(i32::MAX)
    };
    Ok(venues
        .into_iter()
        .map(|(venue_id, name, time_zone, capacity, zones, updated_at)| {
            let zones = zones
                .as_array()
                .map(|zs| {
                    zs.iter()
                        .map(|z| {
                            let zone_id = z["zone_id"].as_str().unwrap_or_default().to_owned();
                            ZoneOccupancy {
                                occupancy: count(&venue_id, Some(&zone_id)),
                                name: z["name"].as_str().unwrap_or_default().to_owned(),
                                capacity: z["capacity"]
                                    .as_i64()
                                    .and_then(|c| i32::try_from(c).ok())
                                    .unwrap_or(0),
                                zone_id,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            VenueOccupancy {
                occupancy: count(&venue_id, None),
                venue_id,
                name,
                time_zone,
                capacity,
                zones,
                updated_at,
            }
        })
        .collect())
}

/// A venue's definition as the gateway needs it: its time zone and seats' labels.
pub async fn venue_seats(
    db: &sqlx::PgPool,
    organization_id: &str,
    venue_id: &str,
) -> Result<Option<(String, serde_json::Value)>, sqlx::Error> {
    sqlx::query_as("SELECT name, seats FROM attendance.venues WHERE organization_id = $1 AND venue_id = $2")
        .bind(organization_id)
        .bind(venue_id)
        .fetch_optional(db)
        .await
}

/// (member, venue) of a booking in the organization.
pub async fn booking_owner(
    db: &sqlx::PgPool,
    organization_id: &str,
    booking_id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT member_id, venue_id FROM attendance.bookings WHERE organization_id = $1 AND booking_id = $2",
    )
    .bind(organization_id)
    .bind(booking_id)
    .fetch_optional(db)
    .await
}

/// (session, venue) of the member's open session.
pub async fn open_session_of(
    db: &sqlx::PgPool,
    organization_id: &str,
    member_id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT session_id, venue_id FROM attendance.sessions WHERE organization_id = $1 AND member_id = $2 \
           AND checked_out_at IS NULL",
    )
    .bind(organization_id)
    .bind(member_id)
    .fetch_optional(db)
    .await
}

/// The most members present in one hour at a venue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OccupancyPoint {
    pub venue_id: String,
    pub hour: DateTime<Utc>,
    pub peak: i32,
}

/// Check-ins by hour of the day in the venue's time zone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeakHour {
    pub venue_id: String,
    /// 0–23, local to the venue.
    pub hour_of_day: i32,
    pub check_ins: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VenueStats {
    pub venue_id: String,
    pub check_ins: i64,
    pub completed_sessions: i64,
    pub average_stay_seconds: Option<f64>,
    pub overstays: i64,
    pub bookings: i64,
    pub no_shows: i64,
    pub cancellations: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttendanceDashboard {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub venues: Vec<VenueStats>,
    /// Hourly peaks of occupancy (UTC hours).
    pub occupancy: Vec<OccupancyPoint>,
    /// The three busiest hours of the day per venue.
    pub peak_hours: Vec<PeakHour>,
}

pub async fn dashboard(
    db: &sqlx::PgPool,
    organization_id: &str,
    venue_id: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<AttendanceDashboard, sqlx::Error> {
    let venues: Vec<VenueStats> = sqlx::query_as(
        "SELECT v.venue_id, \
           (SELECT count(*) FROM attendance.sessions s WHERE s.organization_id = v.organization_id AND s.venue_id = v.venue_id \
              AND s.checked_in_at >= $3 AND s.checked_in_at < $4) AS check_ins, \
           (SELECT count(*) FROM attendance.sessions s WHERE s.organization_id = v.organization_id AND s.venue_id = v.venue_id \
              AND s.checked_out_at >= $3 AND s.checked_out_at < $4) AS completed_sessions, \
           (SELECT avg(s.duration_seconds)::float8 FROM attendance.sessions s WHERE s.organization_id = v.organization_id \
              AND s.venue_id = v.venue_id AND s.checked_out_at >= $3 AND s.checked_out_at < $4) AS average_stay_seconds, \
           (SELECT count(*) FROM attendance.sessions s WHERE s.organization_id = v.organization_id AND s.venue_id = v.venue_id \
              AND s.checked_out_at >= $3 AND s.checked_out_at < $4 AND s.checkout_reason = 'max_stay') AS overstays, \
           (SELECT count(*) FROM attendance.bookings b WHERE b.organization_id = v.organization_id AND b.venue_id = v.venue_id \
              AND b.starts_at >= $3 AND b.starts_at < $4) AS bookings, \
           (SELECT count(*) FROM attendance.bookings b WHERE b.organization_id = v.organization_id AND b.venue_id = v.venue_id \
              AND b.starts_at >= $3 AND b.starts_at < $4 AND b.status = 'no_show') AS no_shows, \
           (SELECT count(*) FROM attendance.bookings b WHERE b.organization_id = v.organization_id AND b.venue_id = v.venue_id \
              AND b.starts_at >= $3 AND b.starts_at < $4 AND b.status = 'cancelled') AS cancellations \
         FROM attendance.venues v WHERE v.organization_id = $1 AND ($2::text IS NULL OR v.venue_id = $2) ORDER BY v.venue_id",
    )
    .bind(organization_id)
    .bind(venue_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    let occupancy: Vec<(String, DateTime<Utc>, i32)> = sqlx::query_as(
        "SELECT venue_id, date_trunc('hour', at), max(occupancy) FROM attendance.occupancy_samples \
         WHERE organization_id = $1 AND ($2::text IS NULL OR venue_id = $2) AND zone_id = '' AND at >= $3 AND at < $4 \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(organization_id)
    .bind(venue_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    let peaks: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT venue_id, hour_of_day, check_ins FROM ( \
           SELECT s.venue_id, extract(hour FROM s.checked_in_at AT TIME ZONE v.time_zone)::int AS hour_of_day, \
                  count(*) AS check_ins, \
                  row_number() OVER (PARTITION BY s.venue_id ORDER BY count(*) DESC, \
                    extract(hour FROM s.checked_in_at AT TIME ZONE v.time_zone)::int) AS rank \
           FROM attendance.sessions s JOIN attendance.venues v USING (organization_id, venue_id) \
           WHERE s.organization_id = $1 AND ($2::text IS NULL OR s.venue_id = $2) \
             AND s.checked_in_at >= $3 AND s.checked_in_at < $4 \
           GROUP BY 1, 2) ranked WHERE rank <= 3 ORDER BY venue_id, rank",
    )
    .bind(organization_id)
    .bind(venue_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    Ok(AttendanceDashboard {
        from,
        to,
        venues,
        occupancy: occupancy
            .into_iter()
            .map(|(venue_id, hour, peak)| OccupancyPoint { venue_id, hour, peak })
            .collect(),
        peak_hours: peaks
            .into_iter()
            .map(|(venue_id, hour_of_day, check_ins)| PeakHour { venue_id, hour_of_day, check_ins })
            .collect(),
    })
}
