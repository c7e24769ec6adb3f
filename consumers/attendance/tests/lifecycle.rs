//! A session's and a booking's life through a real attendance consumer, driven by records with
//! the times they carry: the scheduler's RunAttendance ends a stay at its maximum (reporting the
//! overstay) and releases a booking nobody came for; a subscription cancelled mid-session checks
//! the member out when it ended; a QR token works once.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::time::Duration;

use studyspot_bus::Codec;
use studyspot_schemas::{EventMetadata, attendance, billing};
use support::{World, eventually, stop, world};

/// 2026-01-05T08:00:00Z, a Monday.
const T0: i64 = 1_767_600_000_000;
const MINUTE: i64 = 60_000;

fn meta(world: &World, at: i64) -> EventMetadata {
    EventMetadata {
        event_id: uuid::Uuid::now_v7().to_string(),
        occurred_at: at,
        correlation_id: "lifecycle".into(),
        causation_id: None,
        organization_id: format!("org_{}", world.id),
        actor: "user:test".into(),
    }
}

fn check_in(world: &World, member: &str, session: &str, at: i64) -> attendance::CheckIn {
    attendance::CheckIn {
        metadata: meta(world, at),
        session_id: session.into(),
        member_id: member.into(),
        venue_id: "ven_a".into(),
        seat_id: None,
        zone_id: None,
        qr_token: None,
        staff_assisted: true,
    }
}

async fn session(world: &World, id: &str) -> Option<(Option<String>, Option<i64>)> {
    let pool = world.pool().await;
    let row: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT checkout_reason, duration_seconds FROM attendance.sessions WHERE session_id = $1",
    )
    .bind(id)
    .fetch_optional(&pool)
    .await
    .unwrap_or(None);
    pool.close().await;
    row
}

async fn events(world: &World) -> Vec<String> {
    let codec = Codec::new(&world.registry_url).expect("codec");
    let mut names = Vec::new();
    for record in world.read_all(attendance::EVENTS.name) {
        let decoded = codec.decode(record.payload.as_deref().expect("payload")).await.expect("decode");
        names.push(decoded.full_name);
    }
    names
}

async fn rejection(world: &World, command_id: &str) -> Option<String> {
    let pool = world.pool().await;
    let code: Option<Option<String>> =
        sqlx::query_scalar("SELECT code FROM attendance.command_outcomes WHERE command_id::text = $1")
            .bind(command_id)
            .fetch_optional(&pool)
            .await
            .unwrap_or(None);
    pool.close().await;
    code.flatten()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_ends_stays_and_releases_no_shows_and_a_lost_subscription_ends_the_session() {
    let world = world().await;
    let mut venue = support::venue(&world, "ven_a", 10);
    venue.limits.max_stay_minutes = 120;
    world.send(&venue).await;
    world.send(&support::pass(&world, 1, "ven_a")).await;
    // mem_2 is a subscriber, as billing announced.
    world
        .send(&billing::SubscriptionCreated {
            metadata: meta(&world, T0 - MINUTE),
            subscription_id: "sub_2".into(),
            member_id: "mem_2".into(),
            plan_id: "plan_1".into(),
            plan_version: 1,
            status: "active".into(),
            current_period_start: T0 - MINUTE,
            current_period_end: T0 + 30 * 24 * 60 * MINUTE,
            trial_end: None,
            coupon_id: None,
        })
        .await;
    let mut consumer = world.spawn_consumer_with(
        None,
        &world.database_url,
        &[("STUDYSPOT_ATTENDANCE__SCHEDULER_INTERVAL_SECS", "0")],
    );
    eventually("mem_2's subscription known", Duration::from_secs(60), || async {
        let pool = world.pool().await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM attendance.entitlements")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        pool.close().await;
        (n == 1).then_some(())
    })
    .await;

    // mem_1 (a pass) stays past the maximum; mem_2 (a subscription) loses it mid-session.
    world.send(&check_in(&world, "mem_1", "ses_1", T0)).await;
    world.send(&check_in(&world, "mem_2", "ses_2", T0 + MINUTE)).await;
    // mem_1 books 10:00–11:00 and never comes.
    world
        .send(&attendance::CreateBooking {
            metadata: meta(&world, T0 + 2 * MINUTE),
            booking_id: "bkg_1".into(),
            member_id: "mem_1".into(),
            venue_id: "ven_a".into(),
            seat_id: None,
            zone_id: None,
            starts_at: T0 + 120 * MINUTE,
            ends_at: T0 + 180 * MINUTE,
            recurrence: None,
        })
        .await;
    eventually("both checked in", Duration::from_secs(60), || async {
        (session(&world, "ses_1").await.is_some() && session(&world, "ses_2").await.is_some()).then_some(())
    })
    .await;
    world
        .send(&billing::SubscriptionStatusChanged {
            metadata: meta(&world, T0 + 30 * MINUTE),
            subscription_id: "sub_2".into(),
            member_id: "mem_2".into(),
            from_status: "active".into(),
            status: "cancelled".into(),
            reason: "cancelled".into(),
            effective_at: T0 + 30 * MINUTE,
        })
        .await;
    let lost =
        eventually("mem_2 checked out when the subscription ended", Duration::from_secs(60), || async {
            session(&world, "ses_2").await.filter(|(reason, _)| reason.is_some())
        })
        .await;
    assert_eq!(lost, (Some("entitlement_lost".into()), Some(29 * 60)));

    // The scheduler's tick at 10:30: mem_1's stay ended at 10:00 (two hours), the booking's grace
    // (15 minutes after 10:00) ran out at 10:15.
    world
        .send(&attendance::RunAttendance {
            metadata: meta(&world, T0 + 150 * MINUTE),
            venue_id: "ven_a".into(),
            up_to: T0 + 150 * MINUTE,
        })
        .await;
    let ended = eventually("mem_1 checked out at the maximum stay", Duration::from_secs(60), || async {
        session(&world, "ses_1").await.filter(|(reason, _)| reason.is_some())
    })
    .await;
    assert_eq!(ended, (Some("max_stay".into()), Some(120 * 60)));
    let names = eventually("the overstay and the no-show announced", Duration::from_secs(60), || async {
        let names = events(&world).await;
        (names.iter().any(|n| n.ends_with("BookingNoShow"))
            && names.iter().any(|n| n.ends_with("OverstayDetected")))
        .then_some(names)
    })
    .await;
    assert_eq!(names.iter().filter(|n| n.ends_with("SessionCompleted")).count(), 2, "{names:?}");
    let pool = world.pool().await;
    let (status, occupancy): (String, i32) = sqlx::query_as(
        "SELECT b.status, o.occupancy FROM attendance.bookings b, attendance.venue_occupancy o WHERE b.booking_id = 'bkg_1'",
    )
    .fetch_one(&pool)
    .await
    .expect("booking");
    assert_eq!((status.as_str(), occupancy), ("no_show", 0));
    stop(&mut consumer);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_qr_token_checks_in_once_and_a_forged_or_expired_one_is_refused_with_its_reason() {
    let world = world().await;
    let mut venue = support::venue(&world, "ven_a", 10);
    venue.qr_required = true;
    world.send(&venue).await;
    for n in 1..=4 {
        world.send(&support::pass(&world, n, "ven_a")).await;
    }
    let settings = world.settings();
    let keys = studyspot_attendance::keys(&settings).expect("keys");
    let prefix = format!("ssq1.{}.", settings.attendance.qr.signing_key_id);
    let org = format!("org_{}", world.id);
    let token = |expires: i64, nonce: &str| {
        keys.sign(&studyspot_qr_tokens::Claims {
            kind: studyspot_qr_tokens::Kind::Seat,
            organization_id: org.clone(),
            venue_id: "ven_a".into(),
            seat_id: None,
            member_id: None,
            expires_at_ms: expires,
            nonce: nonce.into(),
        })
        .expect("sign")
    };
    let mut consumer = world.spawn_consumer(None);
    let scanned = |member: &str, session: &str, qr: String| {
        let mut c = check_in(&world, member, session, T0);
        c.staff_assisted = false;
        c.qr_token = Some(qr);
        c
    };
    let first = scanned("mem_1", "ses_1", token(T0 + MINUTE, "n1"));
    let replayed = scanned("mem_2", "ses_2", token(T0 + MINUTE, "n1"));
    let expired = scanned("mem_3", "ses_3", token(T0 - 1, "n3"));
    let forged = scanned("mem_4", "ses_4", token(T0 + MINUTE, "n4").replace(&prefix, &format!("{prefix}A")));
    let mut none = check_in(&world, "mem_4", "ses_5", T0);
    none.staff_assisted = false;
    for c in [&first, &replayed, &expired, &forged, &none] {
        world.send(c).await;
    }
    let codes = eventually("every check-in decided", Duration::from_secs(60), || async {
        let mut codes = Vec::new();
        for c in [&replayed, &expired, &forged, &none] {
            codes.push(rejection(&world, &c.metadata.event_id).await?);
        }
        Some(codes)
    })
    .await;
    assert_eq!(codes, ["token_replayed", "token_expired", "token_forged", "qr_token_required"]);
    assert!(session(&world, "ses_1").await.is_some(), "the first scan checked in");
    stop(&mut consumer);
}
