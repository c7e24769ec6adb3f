//! Two organizations using the same ids (venues, members, sessions, bookings, passes,
//! subscriptions) each see only their own: a reference to the other's record is decided as if it
//! did not exist, an id taken in one does not block or duplicate the same id in the other, and a
//! rebuild from history gives the same projection.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::time::Duration;

use studyspot_schemas::{EventMetadata, attendance, billing};
use support::{World, eventually, stop, world};

/// 2026-01-05T08:00:00Z, a Monday.
const T0: i64 = 1_767_600_000_000;
const MINUTE: i64 = 60_000;
const TOPICS: [&str; 2] = [attendance::COMMANDS.name, billing::EVENTS.name];

fn meta(org: &str, at: i64) -> EventMetadata {
    EventMetadata {
        event_id: uuid::Uuid::now_v7().to_string(),
        occurred_at: at,
        correlation_id: "tenancy".into(),
        causation_id: None,
        organization_id: org.into(),
        actor: "user:test".into(),
    }
}

fn venue(world: &World, org: &str) -> attendance::DefineVenue {
    let mut venue = support::venue(world, "ven_a", 10);
    venue.metadata = meta(org, T0 - MINUTE);
    venue
}

fn check_in(org: &str, member: &str, session: &str, at: i64) -> attendance::CheckIn {
    attendance::CheckIn {
        metadata: meta(org, at),
        session_id: session.into(),
        member_id: member.into(),
        venue_id: "ven_a".into(),
        seat_id: None,
        zone_id: None,
        qr_token: None,
        staff_assisted: true,
    }
}

fn check_out(org: &str, member: &str, session: Option<&str>, at: i64) -> attendance::CheckOut {
    attendance::CheckOut {
        metadata: meta(org, at),
        member_id: member.into(),
        venue_id: "ven_a".into(),
        session_id: session.map(str::to_owned),
        reason: "manual".into(),
        effective_at: None,
    }
}

fn booking(org: &str, member: &str, at: i64) -> attendance::CreateBooking {
    attendance::CreateBooking {
        metadata: meta(org, at),
        booking_id: "bkg_1".into(),
        member_id: member.into(),
        venue_id: "ven_a".into(),
        seat_id: None,
        zone_id: None,
        starts_at: T0 + 120 * MINUTE,
        ends_at: T0 + 180 * MINUTE,
        recurrence: None,
    }
}

fn subscription(org: &str, member: &str, status: &str, at: i64) -> billing::SubscriptionStatusChanged {
    billing::SubscriptionStatusChanged {
        metadata: meta(org, at),
        subscription_id: "sub_1".into(),
        member_id: member.into(),
        from_status: "trialing".into(),
        status: status.into(),
        reason: "test".into(),
        effective_at: at,
    }
}

/// The command's outcome: `Some(None)` accepted, `Some(Some(code))` rejected, `None` not yet decided.
async fn outcome(world: &World, command_id: &str) -> Option<Option<String>> {
    let pool = world.pool().await;
    let row: Option<Option<String>> =
        sqlx::query_scalar("SELECT code FROM attendance.command_outcomes WHERE command_id::text = $1")
            .bind(command_id)
            .fetch_optional(&pool)
            .await
            .unwrap_or(None);
    pool.close().await;
    row
}

/// Sends `command` and waits for its outcome.
async fn decided<R: studyspot_schemas::Record>(world: &World, command: &R, id: &str) -> Option<String> {
    world.send(command).await;
    eventually(&format!("command {id} decided"), Duration::from_secs(60), || outcome(world, id)).await
}

/// Sessions of one organization: (session_id, member_id, checked out?).
async fn sessions(world: &World, org: &str) -> Vec<(String, String, bool)> {
    let pool = world.pool().await;
    let rows = sqlx::query_as(
        "SELECT session_id, member_id, checked_out_at IS NOT NULL FROM attendance.sessions \
         WHERE organization_id = $1 ORDER BY session_id",
    )
    .bind(org)
    .fetch_all(&pool)
    .await
    .expect("sessions");
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn each_organization_sees_only_its_own_records_under_the_same_ids() {
    let world = world().await;
    let (a, b) = (world.organization_id(), format!("{}_b", world.organization_id()));
    let mut consumer = world.spawn_consumer_with(
        None,
        &world.database_url,
        &[("STUDYSPOT_ATTENDANCE__SCHEDULER_INTERVAL_SECS", "0")],
    );
    for org in [&a, &b] {
        let v = venue(&world, org);
        assert_eq!(decided(&world, &v, &v.metadata.event_id).await, None, "venue in {org}");
    }
    // Passes with the same id in both organizations: each its own.
    for org in [&a, &b] {
        let mut pass = support::pass(&world, 1, "ven_a");
        pass.metadata = meta(org, T0 - MINUTE);
        assert_eq!(decided(&world, &pass, &pass.metadata.event_id).await, None, "pas_1 in {org}");
    }

    // A's member checks in; B checks "ses_1" out by id: as if there were no such session.
    let ses = check_in(&a, "mem_1", "ses_1", T0);
    assert_eq!(decided(&world, &ses, &ses.metadata.event_id).await, None);
    let out = check_out(&b, "mem_1", Some("ses_1"), T0 + MINUTE);
    let refused = decided(&world, &out, &out.metadata.event_id).await;
    assert!(refused.is_some(), "B closed A's session");
    assert_eq!(sessions(&world, &a).await, vec![("ses_1".into(), "mem_1".into(), false)]);
    // The same session id is free in B.
    let ses_b = check_in(&b, "mem_1", "ses_1", T0 + 2 * MINUTE);
    assert_eq!(decided(&world, &ses_b, &ses_b.metadata.event_id).await, None, "ses_1 taken across orgs");
    assert_eq!(sessions(&world, &b).await, vec![("ses_1".into(), "mem_1".into(), false)]);

    // The same booking id in both; B cancelling it leaves A's booked.
    for org in [&a, &b] {
        let bkg = booking(org, "mem_1", T0 + 3 * MINUTE);
        assert_eq!(decided(&world, &bkg, &bkg.metadata.event_id).await, None, "bkg_1 in {org}");
    }
    let cancel = attendance::CancelBooking {
        metadata: meta(&b, T0 + 4 * MINUTE),
        booking_id: "bkg_1".into(),
        member_id: "mem_1".into(),
        venue_id: "ven_a".into(),
    };
    assert_eq!(decided(&world, &cancel, &cancel.metadata.event_id).await, None);
    let pool = world.pool().await;
    let bookings: Vec<(String, String)> = sqlx::query_as(
        "SELECT organization_id, status FROM attendance.bookings WHERE booking_id = 'bkg_1' ORDER BY organization_id",
    )
    .fetch_all(&pool)
    .await
    .expect("bookings");
    assert_eq!(bookings, vec![(a.clone(), "booked".into()), (b.clone(), "cancelled".into())]);

    // Billing's events: B's subscription "sub_1" cancelled does not end A's "sub_1".
    world.send(&subscription(&a, "mem_2", "active", T0 + 5 * MINUTE)).await;
    world.send(&subscription(&b, "mem_2", "active", T0 + 5 * MINUTE)).await;
    world.send(&subscription(&b, "mem_2", "cancelled", T0 + 6 * MINUTE)).await;
    world.caught_up("attendance", &TOPICS).await;
    let entitlements: Vec<(String, String)> = sqlx::query_as(
        "SELECT organization_id, status FROM attendance.entitlements WHERE subscription_id = 'sub_1' \
         ORDER BY organization_id",
    )
    .fetch_all(&pool)
    .await
    .expect("entitlements");
    assert_eq!(entitlements, vec![(a.clone(), "active".into()), (b.clone(), "cancelled".into())]);
    let entitled = check_in(&a, "mem_2", "ses_2", T0 + 7 * MINUTE);
    assert_eq!(
        decided(&world, &entitled, &entitled.metadata.event_id).await,
        None,
        "A's mem_2 still entitled"
    );
    pool.close().await;
    assert!(stop(&mut consumer).success(), "{}", consumer.log());

    // History rebuilt gives the same projection.
    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into attendance_rebuild_1"), "unexpected report: {report}");
    assert_eq!(
        world.checksum("attendance_rebuild_1", &[]).await,
        world.checksum("attendance", &[]).await,
        "rebuild vs live"
    );
}
