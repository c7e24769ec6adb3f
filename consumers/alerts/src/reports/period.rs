//! Report periods: a local day, or a local week from Monday, in the report's zone. Pure.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Daily,
    Weekly,
}

impl Schedule {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "daily" => Some(Self::Daily),
            "weekly" => Some(Self::Weekly),
            _ => None,
        }
    }

    fn days(self) -> i64 {
        match self {
            Self::Daily => 1,
            Self::Weekly => 7,
        }
    }
}

/// One period: `[start, end)`, and the local date it starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub first_day: NaiveDate,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    pub fn run_id(&self) -> String {
        format!("run_{}", self.first_day.format("%Y-%m-%d"))
    }
}

/// The start of a local day: local midnight, or the first instant of the day when a
/// daylight-saving change skips midnight.
fn day_start(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    (0..24)
        .find_map(|h| day.and_hms_opt(h, 0, 0).and_then(|t| tz.from_local_datetime(&t).earliest()))
        .map_or_else(
            || Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default()),
            |t| t.with_timezone(&Utc),
        )
}

fn starting(schedule: Schedule, tz: Tz, first_day: NaiveDate) -> Period {
    let next = first_day + Duration::days(schedule.days());
    Period { first_day, start: day_start(tz, first_day), end: day_start(tz, next) }
}

/// The period containing `at`.
pub fn containing(schedule: Schedule, tz: Tz, at: DateTime<Utc>) -> Period {
    let local = at.with_timezone(&tz).date_naive();
    let first_day = match schedule {
        Schedule::Daily => local,
        Schedule::Weekly => local - Duration::days(i64::from(local.weekday().num_days_from_monday())),
    };
    starting(schedule, tz, first_day)
}

/// The period after `p`.
pub fn after(schedule: Schedule, tz: Tz, p: &Period) -> Period {
    starting(schedule, tz, p.first_day + Duration::days(schedule.days()))
}

/// The periods to render at `up_to`: from the one after the last rendered (or the one the report
/// was defined in) up to the last that has ended, at most `limit`.
pub fn due(
    schedule: Schedule,
    tz: Tz,
    defined_at: DateTime<Utc>,
    last_end: Option<DateTime<Utc>>,
    up_to: DateTime<Utc>,
    limit: usize,
) -> Vec<Period> {
    let mut p = match last_end {
        Some(end) => containing(schedule, tz, end),
        None => containing(schedule, tz, defined_at),
    };
    let mut out = Vec::new();
    while p.end <= up_to && out.len() < limit {
        out.push(p);
        p = after(schedule, tz, &p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    #[test]
    fn given_a_daily_report_in_berlin_when_the_day_ends_then_that_local_day_is_due() {
        let tz: Tz = "Europe/Berlin".parse().expect("zone");
        let defined = at("2026-11-24T10:00:00Z");
        assert!(due(Schedule::Daily, tz, defined, None, at("2026-11-24T22:59:59Z"), 10).is_empty());
        let periods = due(Schedule::Daily, tz, defined, None, at("2026-11-25T23:30:00Z"), 10);
        assert_eq!(periods.len(), 2);
        assert_eq!(
            (periods[0].start, periods[0].end),
            (at("2026-11-23T23:00:00Z"), at("2026-11-24T23:00:00Z"))
        );
        assert_eq!(periods[0].run_id(), "run_2026-11-24");
        // After a run, the next starts where it ended.
        let next = due(Schedule::Daily, tz, defined, Some(periods[1].end), at("2026-11-26T23:00:00Z"), 10);
        assert_eq!(next[0].run_id(), "run_2026-11-26");
    }

    #[test]
    fn given_a_weekly_report_then_weeks_run_monday_to_sunday_across_a_dst_change() {
        let tz: Tz = "Europe/Berlin".parse().expect("zone");
        // Wednesday 2026-10-21; summer time ends Sunday 2026-10-25.
        let p = containing(Schedule::Weekly, tz, at("2026-10-21T12:00:00Z"));
        assert_eq!(p.run_id(), "run_2026-10-19");
        assert_eq!((p.start, p.end), (at("2026-10-18T22:00:00Z"), at("2026-10-25T23:00:00Z")));
    }
}
