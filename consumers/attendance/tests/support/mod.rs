//! The attendance tests' world: the shared test world, for the attendance consumer.

pub mod proxy;

use studyspot_schemas::{EventMetadata, attendance};
#[allow(unused_imports, reason = "each test binary uses part of the world")]
pub use studyspot_test_world::{Consumer, World, eventually, exited, stop};

/// A world running the attendance consumer.
pub async fn world() -> World {
    World::new("attendance", env!("CARGO_BIN_EXE_studyspot-attendance")).await
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
    }
}
