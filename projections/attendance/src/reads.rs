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
    .fetch_all(db)
    .await
}
