//! The reads a check-in and a new booking decide from return exactly the bookings that can bear
//! on the decision, out of a venue's whole history: narrowing them in SQL (rather than loading
//! every booking that has not ended) must not lose one that matters.

use chrono::{DateTime, Duration, Utc};
use sqlx::{Connection, PgConnection};
use studyspot_attendance_projection::{MIGRATIONS, write};

fn at(hour: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01") + Duration::hours(hour)
}

async fn database() -> PgConnection {
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let url = studyspot_fresh_database::create(&studyspot_fresh_database::admin_url(), &name)
        .await
        .expect("a database of this test's own");
    let mut db = PgConnection::connect(&url).await.expect("connect");
    MIGRATIONS.run(&mut db).await.expect("migrations");
    db
}

/// `id` held by `member` at `ven_1` of `org_1` from `from` to `to` (hours after 2026-01-01).
async fn booking(db: &mut PgConnection, id: &str, member: &str, (from, to): (i64, i64), status: &str) {
    sqlx::query(
        "INSERT INTO bookings (booking_id, organization_id, member_id, venue_id, seat_id, zone_id, starts_at, \
           ends_at, series_id, status, no_show_at, session_id, created_at, updated_at) \
         VALUES ($1, 'org_1', $2, 'ven_1', NULL, NULL, $3, $4, NULL, $5, $3, NULL, $3, $3)",
    )
    .bind(id)
    .bind(member)
    .bind(at(from))
    .bind(at(to))
    .bind(status)
    .execute(db)
    .await
    .expect("insert a booking");
}

fn ids(rows: &[write::BookingRow]) -> Vec<&str> {
    rows.iter().map(|b| b.booking_id.as_str()).collect()
}

#[tokio::test]
async fn reads_of_holding_bookings_keep_every_booking_that_bears_on_the_decision() {
    let mut db = database().await;
    let db = &mut db;
    booking(db, "over", "mem_1", (0, 2), "booked").await;
    booking(db, "cancelled", "mem_2", (9, 11), "cancelled").await;
    booking(db, "now", "mem_2", (9, 11), "checked_in").await;
    booking(db, "soon", "mem_3", (10, 12), "booked").await; // starts 30 min after 09:30
    booking(db, "later", "mem_3", (12, 14), "booked").await;
    booking(db, "next_week", "mem_1", (24 * 7 + 9, 24 * 7 + 11), "booked").await;
    booking(db, "other_member_next_week", "mem_4", (24 * 7 + 10, 24 * 7 + 12), "booked").await;
    let half_past_nine = at(9) + Duration::minutes(30);

    // A check-in at 09:30, counting bookings from 30 minutes before they start.
    let held =
        write::holding_at(db, "org_1", "ven_1", half_past_nine, Duration::minutes(30)).await.expect("read");
    assert_eq!(ids(&held), ["now", "soon"]);
    let held =
        write::holding_at(db, "org_1", "ven_1", half_past_nine, Duration::minutes(29)).await.expect("read");
    assert_eq!(ids(&held), ["now"]);
    assert!(
        write::holding_at(db, "org_2", "ven_1", half_past_nine, Duration::minutes(30))
            .await
            .expect("read")
            .is_empty()
    );

    // mem_1 books 12:00–13:00 today: their own bookings (limits) and everyone's overlapping.
    let span = (at(12), at(13));
    let held = write::holding_for(db, "org_1", "ven_1", "mem_1", half_past_nine, span).await.expect("read");
    assert_eq!(ids(&held), ["later", "next_week"]);
    // Weekly, twice: the span reaches next week's occurrence and what overlaps it.
    let span = (at(12), at(24 * 7 + 13));
    let held = write::holding_for(db, "org_1", "ven_1", "mem_5", half_past_nine, span).await.expect("read");
    assert_eq!(ids(&held), ["later", "next_week", "other_member_next_week"]);
}
