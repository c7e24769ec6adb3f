//! Attendance's completed sessions as usage: each `SessionCompleted` of a subscriber becomes one
//! `RecordUsage` of `seat_hours` (every started hour counts) on the member's command partition,
//! so usage is counted in order with the member's other subscription commands. The usage id is
//! derived from the session id: however often the event is delivered, it counts once.

use studyspot_consumer_runtime::{HandleError, Out};
use studyspot_schemas::{attendance::SessionCompleted, billing::RecordUsage};

/// What one completed session counts: its started hours, at least one.
pub fn seat_hours(duration_seconds: i64) -> i64 {
    ((duration_seconds.max(0) + 3599) / 3600).max(1)
}

pub fn usage_id(session_id: &str) -> String {
    format!("use_{session_id}")
}

pub(super) fn session_completed(out: &mut Out<'_>) -> Result<(), HandleError> {
    let e: SessionCompleted = out.message.record()?;
    // A session on a pass counts against no subscription.
    let Some(subscription_id) = e.subscription_id.filter(|s| !s.trim().is_empty()) else { return Ok(()) };
    out.emit(|metadata| RecordUsage {
        metadata,
        usage_id: usage_id(&e.session_id),
        subscription_id,
        member_id: e.member_id.clone(),
        metric: "seat_hours".into(),
        quantity: seat_hours(e.duration_seconds),
        effective_at: None,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_started_hour_counts_and_a_session_counts_at_least_one() {
        assert_eq!(seat_hours(0), 1);
        assert_eq!(seat_hours(59), 1);
        assert_eq!(seat_hours(3600), 1);
        assert_eq!(seat_hours(3601), 2);
        assert_eq!(usage_id("ses_1"), "use_ses_1");
    }
}
