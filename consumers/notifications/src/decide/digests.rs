//! Digests: a recipient's messages of one key, collected over a window, read as one message.

use chrono::{DateTime, Days, NaiveTime, Utc};
use chrono_tz::Tz;

use super::{campaigns::in_zone, templates::Rendered};

/// The window when a message names none: one hour.
pub const DEFAULT_WINDOW_SECS: i64 = 3600;

/// The longest window a digest may have: 31 days.
pub const MAX_WINDOW_SECS: i64 = 31 * 86_400;

/// One collected message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub subject: Option<String>,
    pub body: String,
}

pub fn window_secs(asked: Option<i64>) -> Result<i64, super::Malformed> {
    match asked {
        None => Ok(DEFAULT_WINDOW_SECS),
        Some(w) if (60..=MAX_WINDOW_SECS).contains(&w) => Ok(w),
        Some(w) => {
            Err(super::Malformed(format!("digest_window_secs {w} is not between 60 and {MAX_WINDOW_SECS}")))
        }
    }
}

/// When a scheduled digest opened at `at` goes out: the next `time` of day in `zone` after it.
pub fn next_local(at: DateTime<Utc>, time: NaiveTime, zone: Tz) -> DateTime<Utc> {
    let today = at.with_timezone(&zone).date_naive();
    // Today's, else tomorrow's (the day after covers a time skipped by a DST change).
    (0..3)
        .filter_map(|n| today.checked_add_days(Days::new(n)))
        .map(|day| in_zone(day.and_time(time), zone))
        .find(|due| *due > at)
        .unwrap_or(at)
}

/// The digest as sent: one message when it holds one, else a count in the subject and each
/// message in order, its subject as a heading.
pub fn render(items: &[Item]) -> Rendered {
    if let [only] = items {
        return Rendered { subject: only.subject.clone(), body: only.body.clone(), html: None };
    }
    let body = items
        .iter()
        .map(|i| match &i.subject {
            Some(s) => format!("• {s}\n  {}", i.body.replace('\n', "\n  ")),
            None => format!("• {}", i.body.replace('\n', "\n  ")),
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    Rendered { subject: Some(format!("{} updates", items.len())), body, html: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(subject: Option<&str>, body: &str) -> Item {
        Item { subject: subject.map(Into::into), body: body.into() }
    }

    #[test]
    fn one_message_reads_as_itself_and_many_as_a_list() {
        let one = render(&[item(Some("Seat booked"), "Seat 12, Monday 9:00")]);
        assert_eq!(one.subject.as_deref(), Some("Seat booked"));
        assert_eq!(one.body, "Seat 12, Monday 9:00");
        let many = render(&[
            item(Some("Seat booked"), "Seat 12, Monday 9:00"),
            item(None, "Room 3 is closed today\nSorry!"),
            item(Some("Seat booked"), "Seat 4, Tuesday 14:00"),
        ]);
        assert_eq!(many.subject.as_deref(), Some("3 updates"));
        assert_eq!(
            many.body,
            "• Seat booked\n  Seat 12, Monday 9:00\n\n• Room 3 is closed today\n  Sorry!\n\n• Seat booked\n  Seat 4, Tuesday 14:00"
        );
    }

    #[test]
    fn a_scheduled_digest_goes_out_at_the_next_local_time() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        let six = NaiveTime::from_hms_opt(18, 0, 0).expect("18:00");
        let berlin = chrono_tz::Europe::Berlin;
        // 10:00 in Berlin (09:00 UTC in winter): today at 18:00 local.
        assert_eq!(next_local(t("2026-12-01T09:00:00Z"), six, berlin), t("2026-12-01T17:00:00Z"));
        // 19:00 in Berlin: tomorrow.
        assert_eq!(next_local(t("2026-12-01T18:00:00Z"), six, berlin), t("2026-12-02T17:00:00Z"));
        // Exactly 18:00 is not "after".
        assert_eq!(next_local(t("2026-12-01T17:00:00Z"), six, berlin), t("2026-12-02T17:00:00Z"));
        // Across the spring change: 18:00 CEST is 16:00 UTC.
        assert_eq!(next_local(t("2027-03-27T18:00:00Z"), six, berlin), t("2027-03-28T16:00:00Z"));
        // 02:30 does not exist on 28 March 2027 in Berlin: the first instant after the gap.
        let half_two = NaiveTime::from_hms_opt(2, 30, 0).expect("02:30");
        assert_eq!(next_local(t("2027-03-27T12:00:00Z"), half_two, berlin), t("2027-03-28T01:00:00Z"));
    }

    #[test]
    fn windows_are_bounded() {
        assert_eq!(window_secs(None), Ok(3600));
        assert_eq!(window_secs(Some(86_400)), Ok(86_400));
        assert!(window_secs(Some(10)).is_err());
        assert!(window_secs(Some(MAX_WINDOW_SECS + 1)).is_err());
    }
}
