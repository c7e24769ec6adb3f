//! A health check's status after a probe: pure, so a replay of the probe results rebuilds the same
//! statuses. `unknown` until the first decisive probe; one success is `up`; `failure_threshold`
//! failures in a row are `down` (fewer leave the status as it was, so a single lost packet pages
//! nobody). A probe result for a check that does not exist, or older than the check's last one,
//! is refused.

use chrono::{DateTime, Utc};

use super::Refusal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unknown,
    Up,
    Down,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Down => "down",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "up" => Self::Up,
            "down" => Self::Down,
            _ => Self::Unknown,
        }
    }

    /// The value of the check's `studyspot_health_check_up` sample: 0 only while it is down.
    pub fn up_value(self) -> f64 {
        if self == Self::Down { 0.0 } else { 1.0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub status: Status,
    pub consecutive_failures: i32,
}

impl Health {
    /// After one probe; `failure_threshold` is at least 1.
    pub fn after(self, success: bool, failure_threshold: i32) -> Self {
        if success {
            return Self { status: Status::Up, consecutive_failures: 0 };
        }
        let consecutive_failures = self.consecutive_failures.saturating_add(1);
        let status =
            if consecutive_failures >= failure_threshold.max(1) { Status::Down } else { self.status };
        Self { status, consecutive_failures }
    }
}

/// A health check as a probe result meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    pub health: Health,
    pub failure_threshold: i32,
    pub last_probed_at: Option<DateTime<Utc>>,
}

/// A probe result applied: the check's health before and after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probed {
    pub before: Health,
    pub after: Health,
}

/// A probe of check `health_check_id` (`None` when there is no such check) at `probed_at`.
pub fn decide_probe(
    check: Option<&Check>,
    health_check_id: &str,
    success: bool,
    probed_at: DateTime<Utc>,
) -> Result<Probed, Refusal> {
    let Some(check) = check else {
        return Err(Refusal::new("health_check_not_found", format!("no health check {health_check_id}")));
    };
    if check.last_probed_at.is_some_and(|last| last >= probed_at) {
        // Two probers, or a redelivered old probe: the history keeps one order, the newest wins.
        return Err(Refusal::new(
            "probe_out_of_order",
            format!("a probe at or after {probed_at} was already recorded"),
        ));
    }
    Ok(Probed { before: check.health, after: check.health.after(success, check.failure_threshold) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn up_check(last_probed_at: Option<DateTime<Utc>>) -> Check {
        Check {
            health: Health { status: Status::Up, consecutive_failures: 0 },
            failure_threshold: 1,
            last_probed_at,
        }
    }

    #[test]
    fn given_an_up_check_when_a_newer_probe_fails_then_it_goes_down() {
        let given = up_check(Some(t("2026-11-26T09:00:00Z")));
        assert_eq!(
            decide_probe(Some(&given), "hc_1", false, t("2026-11-26T09:01:00Z")),
            Ok(Probed {
                before: Health { status: Status::Up, consecutive_failures: 0 },
                after: Health { status: Status::Down, consecutive_failures: 1 },
            })
        );
    }

    #[test]
    fn given_no_check_when_a_probe_arrives_then_health_check_not_found() {
        assert_eq!(
            decide_probe(None, "hc_1", true, t("2026-11-26T09:00:00Z")),
            Err(Refusal::new("health_check_not_found", "no health check hc_1"))
        );
    }

    #[test]
    fn given_a_probe_recorded_at_or_after_when_an_older_one_arrives_then_probe_out_of_order() {
        let at = t("2026-11-26T09:00:00Z");
        let given = up_check(Some(at));
        let refused = decide_probe(Some(&given), "hc_1", true, at).expect_err("same instant");
        assert_eq!(refused.code, "probe_out_of_order");
        assert_eq!(refused.reason, format!("a probe at or after {at} was already recorded"));
        assert!(decide_probe(Some(&given), "hc_1", true, t("2026-11-26T08:59:59Z")).is_err());
    }

    fn run(probes: &[bool], threshold: i32) -> Vec<(Status, i32)> {
        let mut h = Health { status: Status::Unknown, consecutive_failures: 0 };
        probes
            .iter()
            .map(|&ok| {
                h = h.after(ok, threshold);
                (h.status, h.consecutive_failures)
            })
            .collect()
    }

    #[test]
    fn given_an_unprobed_check_when_it_answers_then_it_is_up() {
        assert_eq!(run(&[true], 3), [(Status::Up, 0)]);
    }

    #[test]
    fn given_an_up_check_when_it_fails_fewer_times_than_the_threshold_then_it_stays_up() {
        assert_eq!(
            run(&[true, false, false, true], 3),
            [(Status::Up, 0), (Status::Up, 1), (Status::Up, 2), (Status::Up, 0)]
        );
    }

    #[test]
    fn given_an_up_check_when_it_fails_threshold_times_in_a_row_then_it_is_down_until_one_success() {
        let statuses: Vec<Status> =
            run(&[true, false, false, false, false, true], 3).into_iter().map(|s| s.0).collect();
        assert_eq!(statuses, [Status::Up, Status::Up, Status::Up, Status::Down, Status::Down, Status::Up]);
    }

    #[test]
    fn given_a_new_check_when_it_never_answers_then_it_is_unknown_until_the_threshold_then_down() {
        assert_eq!(run(&[false, false], 2), [(Status::Unknown, 1), (Status::Down, 2)]);
    }

    #[test]
    fn given_a_threshold_below_one_then_one_failure_is_enough() {
        assert_eq!(run(&[false], 0), [(Status::Down, 1)]);
    }

    #[test]
    fn only_down_drops_the_up_sample() {
        assert_eq!([Status::Unknown, Status::Up, Status::Down].map(Status::up_value), [1.0, 1.0, 0.0]);
        assert_eq!(Status::parse(Status::Down.as_str()), Status::Down);
    }
}
