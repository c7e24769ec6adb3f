//! Where and when a notification goes: the recipient's address for the channel, their opt-outs,
//! quiet hours in their own time zone (DST-aware) and daily caps. `critical` skips all but the
//! address. No clock: the instant comes from the command.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A recipient's preferences, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Preferences {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub whatsapp: Option<String>,
    pub push_token: Option<String>,
    pub webhook_url: Option<String>,
    pub time_zone: Tz,
    pub quiet: Option<(NaiveTime, NaiveTime)>,
    pub opted_out_channels: Vec<String>,
    pub opted_out_categories: Vec<String>,
    pub category_caps: HashMap<String, i32>,
    pub daily_cap: Option<i32>,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            email: None,
            phone: None,
            whatsapp: None,
            push_token: None,
            webhook_url: None,
            time_zone: Tz::UTC,
            quiet: None,
            opted_out_channels: Vec::new(),
            opted_out_categories: Vec::new(),
            category_caps: HashMap::new(),
            daily_cap: None,
        }
    }
}

/// A time zone by IANA name.
pub fn time_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| format!("time_zone {name:?} is not an IANA time zone"))
}

/// `HH:MM` local time.
pub fn local_time(field: &str, value: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(value, "%H:%M").map_err(|_| format!("{field} {value:?} is not HH:MM"))
}

/// What the notification is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub recipient_id: &'a str,
    pub channel: &'a str,
    pub category: &'a str,
    pub critical: bool,
    pub send_at: Option<DateTime<Utc>>,
}

/// Sent so far on the recipient's local day of the send: in the category, and in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentToday {
    pub category: i64,
    pub all: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Deliver to `address` at `not_before` (later than asked when `deferred` says why), counted
    /// on the recipient's local `day`.
    Deliver { address: String, not_before: DateTime<Utc>, deferred: Option<&'static str>, day: NaiveDate },
    /// Not sent, on purpose.
    Suppress { reason: &'static str },
}

/// The recipient's address for `channel`; in-app messages go to the recipient themselves.
pub fn address(prefs: Option<&Preferences>, recipient_id: &str, channel: &str) -> Option<String> {
    let p = prefs;
    match channel {
        "in_app" => Some(recipient_id.to_owned()),
        "email" => p.and_then(|p| p.email.clone()),
        "sms" => p.and_then(|p| p.phone.clone()),
        "whatsapp" => p.and_then(|p| p.whatsapp.clone().or_else(|| p.phone.clone())),
        "push" => p.and_then(|p| p.push_token.clone()),
        "webhook" => p.and_then(|p| p.webhook_url.clone()),
        _ => None,
    }
}

/// Decides the route; `sent_today` answers for the local day the send would fall on.
pub fn route(
    r: &Request<'_>,
    prefs: Option<&Preferences>,
    at: DateTime<Utc>,
    sent_today: impl Fn(NaiveDate) -> SentToday,
) -> Route {
    let Some(address) = address(prefs, r.recipient_id, r.channel) else {
        return Route::Suppress { reason: "no_address" };
    };
    let default = Preferences::default();
    let p = prefs.unwrap_or(&default);
    let scheduled = r.send_at.filter(|s| *s > at);
    let mut not_before = scheduled.unwrap_or(at);
    let mut deferred = scheduled.map(|_| "scheduled");
    if !r.critical {
        if p.opted_out_channels.iter().any(|c| c == r.channel) {
            return Route::Suppress { reason: "opted_out_channel" };
        }
        // Transactional messages are owed; only other categories can be opted out of.
        if r.category != "transactional" && p.opted_out_categories.iter().any(|c| c == r.category) {
            return Route::Suppress { reason: "opted_out_category" };
        }
        // An in-app message waits silently in the inbox: it disturbs nobody, so it is not held.
        if let Some(end) = quiet_until(p, not_before).filter(|_| r.channel != "in_app") {
            not_before = end;
            deferred = Some("quiet_hours");
        }
    }
    let day = not_before.with_timezone(&p.time_zone).date_naive();
    if !r.critical {
        let sent = sent_today(day);
        if p.category_caps.get(r.category).is_some_and(|cap| sent.category >= i64::from(*cap)) {
            return Route::Suppress { reason: "category_cap" };
        }
        if p.daily_cap.is_some_and(|cap| sent.all >= i64::from(cap)) {
            return Route::Suppress { reason: "daily_cap" };
        }
    }
    Route::Deliver { address, not_before, deferred, day }
}

/// When quiet hours covering `at` end, in UTC; `None` when `at` is not in quiet hours.
pub fn quiet_until(p: &Preferences, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (start, end) = p.quiet?;
    if start == end {
        return None;
    }
    let local = at.with_timezone(&p.time_zone);
    let (date, time) = (local.date_naive(), local.time());
    let end_date = if start < end {
        // Same-day window, e.g. 13:00–14:00.
        (start <= time && time < end).then_some(date)?
    } else if time >= start {
        // Wraps midnight (22:00–07:00), evening side: ends tomorrow.
        date.succ_opt()?
    } else if time < end {
        // Morning side: ends today.
        date
    } else {
        return None;
    };
    Some(resolve(p.time_zone, end_date, end))
}

/// A local date and time as an instant: the earlier one in a fold, and in a gap (the clocks jump
/// forward over it) the first instant after the gap.
fn resolve(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let naive = date.and_time(time);
    let mut probe = naive;
    for _ in 0..(4 * 60) {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += Duration::minutes(1);
    }
    Utc.from_utc_datetime(&naive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("an RFC 3339 time")
    }

    fn berlin_nights() -> Preferences {
        Preferences {
            email: Some("ada@example.org".into()),
            phone: Some("+4915112345678".into()),
            time_zone: time_zone("Europe/Berlin").expect("a zone"),
            quiet: Some((local_time("q", "22:00").expect("t"), local_time("q", "07:00").expect("t"))),
            ..Preferences::default()
        }
    }

    fn email(category: &str) -> Request<'static> {
        Request {
            recipient_id: "mem_1",
            channel: "email",
            category: if category == "marketing" { "marketing" } else { "transactional" },
            critical: false,
            send_at: None,
        }
    }

    fn none(_: NaiveDate) -> SentToday {
        SentToday::default()
    }

    #[test]
    fn given_a_berlin_member_at_23h_when_sent_then_it_waits_for_7h_their_time() {
        let p = berlin_nights();
        // 22:30 UTC in January is 23:30 in Berlin (UTC+1): quiet until 07:00 = 06:00 UTC.
        let routed = route(&email("t"), Some(&p), t("2027-01-14T22:30:00Z"), none);
        assert_eq!(
            routed,
            Route::Deliver {
                address: "ada@example.org".into(),
                not_before: t("2027-01-15T06:00:00Z"),
                deferred: Some("quiet_hours"),
                day: NaiveDate::from_ymd_opt(2027, 1, 15).expect("date"),
            }
        );
        // 06:30 Berlin is still quiet; 07:00 is not.
        assert_eq!(quiet_until(&p, t("2027-01-15T05:30:00Z")), Some(t("2027-01-15T06:00:00Z")));
        assert_eq!(quiet_until(&p, t("2027-01-15T06:00:00Z")), None);
        assert_eq!(quiet_until(&p, t("2027-01-15T12:00:00Z")), None);
        let in_app = Request { channel: "in_app", ..email("t") };
        assert!(matches!(
            route(&in_app, Some(&p), t("2027-01-14T22:30:00Z"), none),
            Route::Deliver { deferred: None, .. }
        ));
    }

    #[test]
    fn quiet_hours_follow_daylight_saving_changes() {
        let p = berlin_nights();
        // The night into Sunday 28 March 2027 loses an hour: 07:00 CEST is 05:00 UTC.
        assert_eq!(quiet_until(&p, t("2027-03-27T22:00:00Z")), Some(t("2027-03-28T05:00:00Z")));
        // Into Sunday 31 October 2027 it gains one: 07:00 CET is 06:00 UTC.
        assert_eq!(quiet_until(&p, t("2027-10-30T21:00:00Z")), Some(t("2027-10-31T06:00:00Z")));
        // A window ending inside the spring gap (02:30 does not exist) ends when the gap does.
        let gap = Preferences {
            quiet: Some((local_time("q", "01:00").expect("t"), local_time("q", "02:30").expect("t"))),
            ..p
        };
        assert_eq!(quiet_until(&gap, t("2027-03-28T00:15:00Z")), Some(t("2027-03-28T01:00:00Z")));
    }

    #[test]
    fn in_other_zones_the_same_instant_is_another_local_time() {
        let tokyo = Preferences { time_zone: time_zone("Asia/Tokyo").expect("zone"), ..berlin_nights() };
        // 22:30 UTC is 07:30 in Tokyo: not quiet.
        assert!(matches!(
            route(&email("t"), Some(&tokyo), t("2027-01-14T22:30:00Z"), none),
            Route::Deliver { deferred: None, .. }
        ));
        assert!(time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn critical_messages_skip_quiet_hours_opt_outs_and_caps() {
        let p =
            Preferences { opted_out_channels: vec!["email".into()], daily_cap: Some(0), ..berlin_nights() };
        let critical = Request { critical: true, ..email("t") };
        assert!(matches!(
            route(&critical, Some(&p), t("2027-01-14T23:00:00Z"), none),
            Route::Deliver { deferred: None, .. }
        ));
        assert_eq!(
            route(&email("t"), Some(&p), t("2027-01-14T12:00:00Z"), none),
            Route::Suppress { reason: "opted_out_channel" }
        );
    }

    #[test]
    fn marketing_opt_outs_do_not_stop_transactional_messages() {
        let p = Preferences {
            opted_out_categories: vec!["marketing".into(), "transactional".into()],
            ..berlin_nights()
        };
        let noon = t("2027-01-14T12:00:00Z");
        assert_eq!(
            route(&email("marketing"), Some(&p), noon, none),
            Route::Suppress { reason: "opted_out_category" }
        );
        assert!(matches!(route(&email("t"), Some(&p), noon, none), Route::Deliver { .. }));
    }

    #[test]
    fn caps_count_the_recipients_local_day_of_the_send() {
        let p = Preferences {
            category_caps: HashMap::from([("marketing".to_owned(), 3)]),
            daily_cap: Some(5),
            ..berlin_nights()
        };
        let noon = t("2027-01-14T12:00:00Z");
        let sent = |category, all| move |_: NaiveDate| SentToday { category, all };
        assert!(matches!(route(&email("marketing"), Some(&p), noon, sent(2, 2)), Route::Deliver { .. }));
        assert_eq!(
            route(&email("marketing"), Some(&p), noon, sent(3, 3)),
            Route::Suppress { reason: "category_cap" }
        );
        assert_eq!(route(&email("t"), Some(&p), noon, sent(0, 5)), Route::Suppress { reason: "daily_cap" });
        // Deferred past midnight, it counts on the next local day.
        let asked = std::cell::Cell::new(None);
        let _ = route(&email("t"), Some(&p), t("2027-01-14T22:30:00Z"), |day| {
            asked.set(Some(day));
            SentToday::default()
        });
        assert_eq!(asked.get(), NaiveDate::from_ymd_opt(2027, 1, 15));
    }

    #[test]
    fn without_an_address_nothing_is_sent_but_in_app_always_has_one() {
        assert_eq!(
            route(&email("t"), None, t("2027-01-14T12:00:00Z"), none),
            Route::Suppress { reason: "no_address" }
        );
        let in_app = Request { channel: "in_app", ..email("t") };
        assert!(
            matches!(route(&in_app, None, t("2027-01-14T12:00:00Z"), none), Route::Deliver { ref address, .. } if address == "mem_1")
        );
        let scheduled = Request { send_at: Some(t("2027-02-01T09:00:00Z")), ..in_app };
        assert!(matches!(
            route(&scheduled, None, t("2027-01-14T12:00:00Z"), none),
            Route::Deliver { deferred: Some("scheduled"), .. }
        ));
    }
}
