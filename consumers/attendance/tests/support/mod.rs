//! The attendance tests' world: the shared test world, for the attendance consumer.

use studyspot_schemas::{EventMetadata, attendance, billing};
#[allow(unused_imports, reason = "each test binary uses part of the world")]
pub use studyspot_test_world::{Consumer, World, eventually, exited, stop};

/// A world running the attendance consumer.
pub async fn world() -> World {
    let world = World::new("attendance", env!("CARGO_BIN_EXE_studyspot-attendance")).await;
    // Attendance follows billing's events (its view of subscriptions).
    world.create_topics(&[&billing::EVENTS]).await;
    world
}

fn seed_metadata(world: &World, name: &str) -> EventMetadata {
    EventMetadata {
        event_id: uuid::Uuid::now_v7().to_string(),
        // 2025-12-31T00:00:00Z: before every check-in of `check_in`.
        occurred_at: 1_767_139_200_000,
        correlation_id: name.to_owned(),
        causation_id: None,
        organization_id: format!("org_{}", world.id),
        actor: "user:test".into(),
    }
}

/// A venue open around the clock with room for everyone, admitting staff check-ins without tokens.
pub fn venue(world: &World, venue_id: &str, capacity: i32) -> attendance::DefineVenue {
    attendance::DefineVenue {
        metadata: seed_metadata(world, venue_id),
        venue_id: venue_id.into(),
        name: format!("Venue {venue_id}"),
        time_zone: "Europe/Berlin".into(),
        capacity,
        zones: Vec::new(),
        seats: Vec::new(),
        opening_hours: (1..=7)
            .map(|weekday| attendance::OpeningHours {
                weekday,
                opens: "00:00".into(),
                closes: "24:00".into(),
            })
            .collect(),
        limits: attendance::VenueLimits {
            max_bookings_per_member: 5,
            max_concurrent_bookings: 1,
            max_days_ahead: 30,
            min_booking_minutes: 30,
            max_booking_minutes: 480,
            no_show_grace_minutes: 15,
            max_stay_minutes: 720,
        },
        qr_required: false,
    }
}

/// A pass for member `mem_<n>` at `venue_id`, valid through 2035.
pub fn pass(world: &World, n: usize, venue_id: &str) -> attendance::GrantPass {
    attendance::GrantPass {
        metadata: seed_metadata(world, &format!("pass-{n}")),
        pass_id: format!("pas_{n}"),
        member_id: format!("mem_{n}"),
        venue_id: venue_id.into(),
        valid_from: 1_767_139_200_000,
        valid_until: 2_082_758_400_000,
    }
}

/// Venues `ven_a` and `ven_b` and a pass for each of `members` (`mem_<n>` at the venue
/// `check_in` sends them to: even to `ven_a`, odd to `ven_b`); returns how many commands that was.
pub async fn seed(world: &World, members: usize) -> usize {
    world.send(&venue(world, "ven_a", 1000)).await;
    world.send(&venue(world, "ven_b", 1000)).await;
    for n in 0..members {
        world.send(&pass(world, n, if n % 2 == 0 { "ven_a" } else { "ven_b" })).await;
    }
    2 + members
}

pub fn check_in(world: &World, n: usize, venue: &str) -> attendance::CheckIn {
    attendance::CheckIn {
        metadata: EventMetadata {
            event_id: uuid::Uuid::now_v7().to_string(),
            occurred_at: 1_767_225_600_000 + n as i64 * 1000,
            correlation_id: format!("corr-{n}"),
            causation_id: None,
            organization_id: format!("org_{}", world.id),
            actor: "user:test".into(),
        },
        session_id: format!("ses_{n}"),
        member_id: format!("mem_{n}"),
        venue_id: venue.into(),
        seat_id: None,
        zone_id: None,
        qr_token: None,
        staff_assisted: true,
    }
}
