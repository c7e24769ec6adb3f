//! Evaluation ticks (`EvaluateRules`): an organization's rules are evaluated up to an instant,
//! once, in order. A tick at or before the last one applied is refused, so a redelivered or
//! late tick never moves an alert's lifecycle backwards.

use chrono::{DateTime, Utc};

use super::Refusal;

/// A tick up to `up_to`, the last one applied having been up to `last_applied`.
pub fn decide_tick(last_applied: Option<DateTime<Utc>>, up_to: DateTime<Utc>) -> Result<(), Refusal> {
    if last_applied.is_some_and(|last| last >= up_to) {
        return Err(before_applied(up_to));
    }
    Ok(())
}

/// The refusal of a tick at or before one already applied; also what a tick told when the clock
/// moved past it between the load and the write.
pub fn before_applied(up_to: DateTime<Utc>) -> Refusal {
    Refusal::new("tick_before_applied", format!("a tick at or after {up_to} was already applied"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn given_no_tick_or_an_earlier_one_when_a_tick_arrives_then_it_is_evaluated() {
        assert_eq!(decide_tick(None, t("2026-11-26T09:00:00Z")), Ok(()));
        assert_eq!(decide_tick(Some(t("2026-11-26T08:59:00Z")), t("2026-11-26T09:00:00Z")), Ok(()));
    }

    #[test]
    fn given_a_tick_applied_at_or_after_when_a_tick_arrives_then_tick_before_applied() {
        let up_to = t("2026-11-26T09:00:00Z");
        let refusal = Refusal::new(
            "tick_before_applied",
            "a tick at or after 2026-11-26 09:00:00 UTC was already applied",
        );
        assert_eq!(decide_tick(Some(up_to), up_to), Err(refusal.clone()));
        assert_eq!(decide_tick(Some(t("2026-11-26T09:01:00Z")), up_to), Err(refusal));
    }
}
