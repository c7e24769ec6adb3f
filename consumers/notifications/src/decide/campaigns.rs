//! Campaign rules: what a campaign may say, and when each of its messages is due — at a local
//! time in each recipient's own zone, spread so no minute carries more than the throttle.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use studyspot_schemas::notifications::{CATEGORIES, CHANNELS, CreateCampaign};

use super::{Malformed, blank, one_of};

pub const KINDS: [&str; 5] = ["broadcast", "targeted", "automated", "transactional", "marketing"];

/// The wall-clock format of `send_at_local`.
const LOCAL_FORMATS: [&str; 2] = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"];

pub fn parse_local(value: &str) -> Result<NaiveDateTime, Malformed> {
    LOCAL_FORMATS.iter().find_map(|f| NaiveDateTime::parse_from_str(value, f).ok()).ok_or_else(|| {
        Malformed(format!("send_at_local {value:?} is not a local time like 2026-12-01T09:00"))
    })
}

pub fn validate(c: &CreateCampaign) -> Result<(), Malformed> {
    blank(&[
        ("campaign_id", &c.campaign_id),
        ("name", &c.name),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])?;
    one_of("kind", &c.kind, &KINDS)?;
    one_of("category", &c.category, &CATEGORIES)?;
    if !c.channel.is_empty() {
        one_of("channel", &c.channel, &CHANNELS)?;
    }
    match &c.template_id {
        Some(t) => blank(&[("template_id", t)])?,
        None => blank(&[("body", &c.body)])?,
    }
    if let Some(local) = &c.send_at_local {
        parse_local(local)?;
        if c.send_at.is_some() {
            return Err(Malformed("send_at_local and send_at exclude each other".into()));
        }
    }
    if c.throttle_per_minute.is_some_and(|t| t < 1) {
        return Err(Malformed("throttle_per_minute must be at least 1".into()));
    }
    match (&c.kind[..], &c.trigger) {
        ("automated", None) => Err(Malformed("an automated campaign needs a trigger".into())),
        ("automated", Some(t)) if t.trim().is_empty() => Err(Malformed("trigger is empty".into())),
        ("automated", Some(_)) => Ok(()),
        (_, Some(_)) => Err(Malformed("only an automated campaign has a trigger".into())),
        _ => Ok(()),
    }
}

/// When a recipient in `zone` is due: the local time in their zone (the instant after a DST gap,
/// the earlier of a repeated hour), the fixed instant, or the launch; never before the launch.
pub fn due_for(
    local: Option<NaiveDateTime>,
    send_at: Option<DateTime<Utc>>,
    zone: Tz,
    launched_at: DateTime<Utc>,
) -> DateTime<Utc> {
    let wanted = match (local, send_at) {
        (Some(local), _) => in_zone(local, zone),
        (None, Some(at)) => at,
        (None, None) => launched_at,
    };
    wanted.max(launched_at)
}

/// The instant of a local wall-clock time in `zone`: the first after a DST gap, the earlier of a
/// repeated hour.
pub fn in_zone(local: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        // Inside a spring-forward gap: the first instant after it.
        chrono::LocalResult::None => (1..=180)
            .find_map(|m| zone.from_local_datetime(&(local + Duration::minutes(m))).earliest())
            .map_or_else(|| Utc.from_utc_datetime(&local), |t| t.with_timezone(&Utc)),
    }
}

/// Spreads due times so that no 60-second window holds more than `per_minute` of them; each keeps
/// its place in time order and is never moved earlier. Returns the times in the order given.
pub fn throttle(due: &[DateTime<Utc>], per_minute: Option<i32>) -> Vec<DateTime<Utc>> {
    let Some(limit) = per_minute.and_then(|p| usize::try_from(p).ok()).filter(|p| *p > 0) else {
        return due.to_vec();
    };
    let mut order: Vec<usize> = (0..due.len()).collect();
    order.sort_by_key(|i| (due[*i], *i));
    let mut window: VecDeque<DateTime<Utc>> = VecDeque::with_capacity(limit);
    let mut out = due.to_vec();
    for i in order {
        let mut at = due[i];
        if window.len() == limit {
            let oldest = window.pop_front().unwrap_or(at);
            at = at.max(oldest + Duration::seconds(60));
        }
        window.push_back(at);
        out[i] = at;
    }
    out
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::{EventMetadata, notifications::Segment};

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn campaign() -> CreateCampaign {
        CreateCampaign {
            metadata: EventMetadata::example(),
            campaign_id: "cmp_1".into(),
            name: "Exam season".into(),
            kind: "marketing".into(),
            category: "marketing".into(),
            channel: String::new(),
            template_id: None,
            subject: Some("Late opening".into()),
            body: "We are open until midnight".into(),
            variables: Default::default(),
            locale: None,
            segment: Segment::default(),
            send_at_local: Some("2026-12-01T09:00".into()),
            send_at: None,
            throttle_per_minute: Some(100),
            trigger: None,
        }
    }

    #[test]
    fn a_campaign_says_what_is_wrong_with_it() {
        assert_eq!(validate(&campaign()), Ok(()));
        let mut c = campaign();
        c.kind = "spam".into();
        assert!(validate(&c).expect_err("kind").0.contains("kind"));
        let mut c = campaign();
        c.send_at_local = Some("tomorrow at nine".into());
        assert!(validate(&c).expect_err("local").0.contains("send_at_local"));
        let mut c = campaign();
        c.send_at = Some(0);
        assert!(validate(&c).is_err(), "both schedules");
        let mut c = campaign();
        c.throttle_per_minute = Some(0);
        assert!(validate(&c).is_err());
        let mut c = campaign();
        c.kind = "automated".into();
        assert!(validate(&c).expect_err("no trigger").0.contains("trigger"));
        c.trigger = Some("studyspot.billing.PaymentSucceeded".into());
        assert_eq!(validate(&c), Ok(()));
        let mut c = campaign();
        c.trigger = Some("studyspot.billing.PaymentSucceeded".into());
        assert!(validate(&c).is_err(), "a broadcast has no trigger");
    }

    #[test]
    fn nine_in_the_morning_is_nine_wherever_the_recipient_lives() {
        let local = parse_local("2026-12-01T09:00").ok();
        let launch = t("2026-11-30T12:00:00Z");
        assert_eq!(due_for(local, None, chrono_tz::Europe::Berlin, launch), t("2026-12-01T08:00:00Z"));
        assert_eq!(due_for(local, None, chrono_tz::America::New_York, launch), t("2026-12-01T14:00:00Z"));
        assert_eq!(due_for(local, None, chrono_tz::Asia::Tokyo, launch), t("2026-12-01T00:00:00Z"));
        // Already past in Kiritimati (UTC+14) when launched late: at once.
        let late = t("2026-11-30T20:00:00Z");
        assert_eq!(due_for(local, None, chrono_tz::Pacific::Kiritimati, late), late);
        assert_eq!(
            due_for(None, Some(t("2026-12-24T18:00:00Z")), Tz::UTC, launch),
            t("2026-12-24T18:00:00Z")
        );
        assert_eq!(due_for(None, None, Tz::UTC, launch), launch);
    }

    #[test]
    fn a_local_time_that_dst_skips_or_repeats_still_has_one_instant() {
        let launch = t("2027-01-01T00:00:00Z");
        // 02:30 does not exist in Berlin on 28 March 2027: the first instant after the gap, 03:00 CEST.
        let gap = parse_local("2027-03-28T02:30").ok();
        assert_eq!(due_for(gap, None, chrono_tz::Europe::Berlin, launch), t("2027-03-28T01:00:00Z"));
        // 02:30 happens twice on 31 October 2027: the first time (CEST).
        let twice = parse_local("2027-10-31T02:30").ok();
        assert_eq!(due_for(twice, None, chrono_tz::Europe::Berlin, launch), t("2027-10-31T00:30:00Z"));
    }

    #[test]
    fn throttling_keeps_every_minute_under_the_limit_and_moves_nothing_earlier() {
        let start = t("2026-12-01T08:00:00Z");
        let due = vec![start; 250];
        let spread = throttle(&due, Some(100));
        assert_eq!(spread.iter().filter(|at| **at == start).count(), 100);
        assert_eq!(spread.iter().filter(|at| **at == start + Duration::seconds(60)).count(), 100);
        assert_eq!(spread.iter().filter(|at| **at == start + Duration::seconds(120)).count(), 50);
        // Later recipients (another zone) are not pushed by earlier ones once the window moved on.
        let mixed = vec![start, start, start, start + Duration::hours(1)];
        assert_eq!(throttle(&mixed, Some(2))[3], start + Duration::hours(1));
        assert_eq!(throttle(&mixed, Some(2))[2], start + Duration::seconds(60));
        assert_eq!(throttle(&due, None), due);
        // Any 60-second window holds at most the limit.
        let mut sorted = spread.clone();
        sorted.sort();
        for (i, at) in sorted.iter().enumerate() {
            let within = sorted[i..].iter().take_while(|b| **b < *at + Duration::seconds(60)).count();
            assert!(within <= 100, "{within} in the minute from {at}");
        }
    }
}
