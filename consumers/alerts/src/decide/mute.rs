//! Time intervals (Alertmanager's `time_intervals`): weekdays and a range of the day, in an IANA
//! zone, so "outside opening hours" follows daylight saving time.

use chrono::{Datelike, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use studyspot_schemas::alerts::TimeInterval as TimeIntervalRecord;

use super::Malformed;

const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeInterval {
    /// 0 = Monday … 6 = Sunday; empty: every day.
    pub weekdays: Vec<u8>,
    pub start_minute: u32,
    pub end_minute: u32,
    pub time_zone: String,
}

impl TimeInterval {
    pub fn from_record(r: &TimeIntervalRecord) -> Result<Self, Malformed> {
        let weekdays = r
            .weekdays
            .iter()
            .map(|d| {
                WEEKDAYS
                    .iter()
                    .position(|w| w.eq_ignore_ascii_case(d))
                    .map(|i| i as u8)
                    .ok_or_else(|| Malformed(format!("weekday {d:?} is not monday … sunday")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if r.time_zone.parse::<Tz>().is_err() {
            return Err(Malformed(format!("time_zone {:?} is not an IANA zone", r.time_zone)));
        }
        let in_day = 0..=1440;
        if !in_day.contains(&r.start_minute)
            || !in_day.contains(&r.end_minute)
            || r.start_minute >= r.end_minute
        {
            return Err(Malformed(format!(
                "time range {}..{} must be within 0..=1440 minutes and not empty",
                r.start_minute, r.end_minute
            )));
        }
        Ok(Self {
            weekdays,
            start_minute: r.start_minute as u32,
            end_minute: r.end_minute as u32,
            time_zone: r.time_zone.clone(),
        })
    }

    pub fn to_record(&self) -> TimeIntervalRecord {
        TimeIntervalRecord {
            weekdays: self.weekdays.iter().map(|d| WEEKDAYS[*d as usize % 7].to_owned()).collect(),
            start_minute: self.start_minute as i32,
            end_minute: self.end_minute as i32,
            time_zone: self.time_zone.clone(),
        }
    }

    /// Whether the instant (ms since epoch) falls in the interval, in its zone.
    pub fn contains(&self, at_ms: i64) -> bool {
        let (Ok(zone), Some(utc)) =
            (self.time_zone.parse::<Tz>(), chrono::DateTime::from_timestamp_millis(at_ms))
        else {
            return false;
        };
        let local = utc.with_timezone(&zone);
        let day = local.weekday().num_days_from_monday() as u8;
        let minute = local.hour() * 60 + local.minute();
        (self.weekdays.is_empty() || self.weekdays.contains(&day))
            && self.start_minute <= minute
            && minute < self.end_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339).expect("time").timestamp_millis()
    }

    fn nights_in_berlin() -> TimeInterval {
        TimeInterval::from_record(&TimeIntervalRecord {
            weekdays: vec!["saturday".into(), "sunday".into()],
            start_minute: 0,
            end_minute: 8 * 60,
            time_zone: "Europe/Berlin".into(),
        })
        .expect("valid")
    }

    #[test]
    fn weekdays_and_minutes_are_read_in_the_zone_across_dst() {
        let i = nights_in_berlin();
        // Saturday 2026-11-28 06:30 UTC is 07:30 in Berlin (CET): inside.
        assert!(i.contains(ms("2026-11-28T06:30:00Z")));
        // 07:30 UTC is 08:30 in Berlin: outside.
        assert!(!i.contains(ms("2026-11-28T07:30:00Z")));
        // Summer (CEST, +2): Saturday 2026-06-27 06:30 UTC is 08:30 local: outside.
        assert!(!i.contains(ms("2026-06-27T06:30:00Z")));
        // A Friday night is not a weekend one.
        assert!(!i.contains(ms("2026-11-27T03:00:00Z")));
    }

    #[test]
    fn bad_intervals_are_malformed() {
        let mut r = nights_in_berlin().to_record();
        r.time_zone = "Mars/Olympus".into();
        assert!(TimeInterval::from_record(&r).is_err());
        let mut r = nights_in_berlin().to_record();
        r.weekdays = vec!["funday".into()];
        assert!(TimeInterval::from_record(&r).is_err());
        let mut r = nights_in_berlin().to_record();
        r.start_minute = 600;
        r.end_minute = 60;
        assert!(TimeInterval::from_record(&r).is_err());
    }
}
