//! Attendance's projection: sessions and live occupancy per venue.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, migrate::Migrator};

pub mod reads;
pub mod write;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    pub session_id: String,
    pub organization_id: String,
    pub member_id: String,
    pub venue_id: String,
    pub seat_id: Option<String>,
    pub checked_in_at: DateTime<Utc>,
    pub checked_out_at: Option<DateTime<Utc>>,
}

pub async fn open_session_of_member(
    tx: &mut PgConnection,
    organization_id: &str,
    member_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT session_id FROM sessions WHERE organization_id = $1 AND member_id = $2 AND checked_out_at IS NULL",
    )
    .bind(organization_id)
    .bind(member_id)
    .fetch_optional(tx)
    .await
}

pub async fn session(
    tx: &mut PgConnection,
    organization_id: &str,
    session_id: &str,
) -> Result<Option<Session>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM sessions WHERE organization_id = $1 AND session_id = $2")
        .bind(organization_id)
        .bind(session_id)
        .fetch_optional(tx)
        .await
}

pub async fn occupancy(
    tx: &mut PgConnection,
    organization_id: &str,
    venue_id: &str,
) -> Result<i32, sqlx::Error> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT occupancy FROM venue_occupancy WHERE organization_id = $1 AND venue_id = $2",
    )
    .bind(organization_id)
    .bind(venue_id)
    .fetch_optional(tx)
    .await?;
    Ok(found.unwrap_or(0))
}

pub async fn insert_session(tx: &mut PgConnection, s: &Session) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (session_id, organization_id, member_id, venue_id, seat_id, checked_in_at, checked_out_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&s.session_id)
    .bind(&s.organization_id)
    .bind(&s.member_id)
    .bind(&s.venue_id)
    .bind(&s.seat_id)
    .bind(s.checked_in_at)
    .bind(s.checked_out_at)
    .execute(tx)
    .await
    .map(drop)
}

pub async fn set_occupancy(
    tx: &mut PgConnection,
    organization_id: &str,
    venue_id: &str,
    occupancy: i32,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO venue_occupancy (organization_id, venue_id, occupancy, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (organization_id, venue_id) DO UPDATE SET occupancy = EXCLUDED.occupancy, updated_at = EXCLUDED.updated_at",
    )
    .bind(organization_id)
    .bind(venue_id)
    .bind(occupancy)
    .bind(at)
    .execute(tx)
    .await
    .map(drop)
}
