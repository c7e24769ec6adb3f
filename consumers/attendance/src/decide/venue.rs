//! A venue's definition as decisions use it: zones, seats, opening hours in its time zone, limits.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use studyspot_schemas::attendance::{DefineVenue, OpeningHours, Seat, VenueDefined, VenueLimits, Zone};

use super::{Event, Malformed, filled};

/// No-show grace, in minutes: the range the issue allows.
pub const GRACE_MINUTES: std::ops::RangeInclusive<i32> = 15..=60;

#[derive(Debug, Clone, PartialEq)]
pub struct Venue {
    pub venue_id: String,
    pub name: String,
    pub time_zone: Tz,
    pub capacity: i32,
    pub zones: Vec<Zone>,
    pub seats: Vec<Seat>,
    pub opening_hours: Vec<OpeningHours>,
    pub limits: VenueLimits,
    pub qr_required: bool,
}

/// `HH:MM` as minutes after midnight; `24:00` is 1440.
pub fn minutes(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// The field-by-field shape of a venue definition; the first fault names its field.
pub fn validate(d: &DefineVenue) -> Result<(), (String, String)> {
    let bad = |field: &str, message: String| Err((field.to_owned(), message));
    if let Err(Malformed(m)) = filled(&[
        ("venue_id", &d.venue_id),
        ("name", &d.name),
        ("metadata.organization_id", &d.metadata.organization_id),
    ]) {
        let field = m.split(' ').next().unwrap_or("venue_id").to_owned();
        return Err((field, m));
    }
    if d.time_zone.parse::<Tz>().is_err() {
        return bad("time_zone", format!("{:?} is not an IANA time zone", d.time_zone));
    }
    if d.capacity <= 0 {
        return bad("capacity", "capacity must be positive".into());
    }
    let mut zone_ids = HashSet::new();
    for (i, z) in d.zones.iter().enumerate() {
        if z.zone_id.trim().is_empty() || !zone_ids.insert(z.zone_id.as_str()) {
            return bad(&format!("zones[{i}].zone_id"), "zone ids must be non-empty and unique".into());
        }
        if z.capacity <= 0 || z.capacity > d.capacity {
            return bad(
                &format!("zones[{i}].capacity"),
                "a zone's capacity must be positive and at most the venue's".into(),
            );
        }
    }
    let mut seat_ids = HashSet::new();
    for (i, s) in d.seats.iter().enumerate() {
        if s.seat_id.trim().is_empty() || !seat_ids.insert(s.seat_id.as_str()) {
            return bad(&format!("seats[{i}].seat_id"), "seat ids must be non-empty and unique".into());
        }
        if let Some(zone) = &s.zone_id
            && !zone_ids.contains(zone.as_str())
        {
            return bad(
                &format!("seats[{i}].zone_id"),
                format!("zone {zone} is not one of the venue's zones"),
            );
        }
    }
    for (i, h) in d.opening_hours.iter().enumerate() {
        if !studyspot_schemas::attendance::WEEKDAYS.contains(&h.weekday) {
            return bad(&format!("opening_hours[{i}].weekday"), "weekday is 1 (Monday) to 7 (Sunday)".into());
        }
        let Some(opens) = minutes(&h.opens) else {
            return bad(&format!("opening_hours[{i}].opens"), "opens must be HH:MM".into());
        };
        let Some(closes) = minutes(&h.closes) else {
            return bad(
                &format!("opening_hours[{i}].closes"),
                "closes must be HH:MM (24:00 for midnight)".into(),
            );
        };
        if closes <= opens {
            return bad(
                &format!("opening_hours[{i}].closes"),
                "closes must be after opens on the same day".into(),
            );
        }
    }
    let l = &d.limits;
    for (field, value) in [
        ("limits.max_bookings_per_member", l.max_bookings_per_member),
        ("limits.max_concurrent_bookings", l.max_concurrent_bookings),
        ("limits.max_days_ahead", l.max_days_ahead),
        ("limits.min_booking_minutes", l.min_booking_minutes),
        ("limits.max_booking_minutes", l.max_booking_minutes),
        ("limits.max_stay_minutes", l.max_stay_minutes),
    ] {
        if value <= 0 {
            return bad(field, format!("{field} must be positive"));
        }
    }
    if l.min_booking_minutes > l.max_booking_minutes {
        return bad("limits.min_booking_minutes", "min_booking_minutes exceeds max_booking_minutes".into());
    }
    if !GRACE_MINUTES.contains(&l.no_show_grace_minutes) {
        return bad("limits.no_show_grace_minutes", "no_show_grace_minutes must be 15 to 60".into());
    }
    Ok(())
}

impl Venue {
    /// The venue a (valid) definition describes.
    pub fn from_definition(d: &DefineVenue) -> Result<Self, Malformed> {
        validate(d).map_err(|(field, message)| Malformed(format!("{field}: {message}")))?;
        Ok(Self {
            venue_id: d.venue_id.clone(),
            name: d.name.clone(),
            time_zone: d.time_zone.parse().map_err(|_| Malformed("time_zone".into()))?,
            capacity: d.capacity,
            zones: d.zones.clone(),
            seats: d.seats.clone(),
            opening_hours: d.opening_hours.clone(),
            limits: d.limits.clone(),
            qr_required: d.qr_required,
        })
    }

    pub fn zone(&self, zone_id: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.zone_id == zone_id)
    }

    pub fn seat(&self, seat_id: &str) -> Option<&Seat> {
        self.seats.iter().find(|s| s.seat_id == seat_id)
    }

    /// The opening interval (UTC instants) that contains `at`, if the venue is open then.
    pub fn open_interval_at(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let local = at.with_timezone(&self.time_zone);
        // An interval of the previous local day cannot reach into this one (closes ≤ 24:00).
        let date = local.date_naive();
        let weekday = date.weekday().number_from_monday() as i32;
        self.opening_hours.iter().filter(|h| h.weekday == weekday).find_map(|h| {
            let start = self.local_instant(date, minutes(&h.opens)?)?;
            let end = self.local_instant(date, minutes(&h.closes)?)?;
            (start <= at && at < end).then_some((start, end))
        })
    }

    /// `date` at `minute` after local midnight, in UTC; a time in a DST gap moves past the gap.
    fn local_instant(&self, date: chrono::NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
        let (date, minute) = if minute >= 1440 { (date.succ_opt()?, minute - 1440) } else { (date, minute) };
        let time = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0)?;
        let naive = date.and_time(time);
        match self.time_zone.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            chrono::LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            chrono::LocalResult::None => self
                .time_zone
                .from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// `at` as the venue's own clock shows it, named by its zone: what a member at the door reads.
    pub fn local_text(&self, at: DateTime<Utc>) -> String {
        format!(
            "{} ({})",
            at.with_timezone(&self.time_zone).format("%A %Y-%m-%d %H:%M"),
            self.time_zone.name()
        )
    }

    /// The first opening after `at` within a week, as an instant.
    pub fn next_opening_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = at.with_timezone(&self.time_zone).date_naive();
        (0..=7)
            .filter_map(|n| today.checked_add_days(chrono::Days::new(n)))
            .flat_map(|date| {
                let weekday = date.weekday().number_from_monday() as i32;
                self.opening_hours
                    .iter()
                    .filter(move |h| h.weekday == weekday)
                    .filter_map(move |h| self.local_instant(date, minutes(&h.opens)?))
            })
            .filter(|start| *start > at)
            .min()
    }

    /// Why the venue refuses a visit at `at`, in its own zone's time, with when it opens next.
    pub fn closed_reason(&self, at: DateTime<Utc>) -> String {
        let next = match self.next_opening_after(at) {
            Some(opens) => format!("; it opens next on {}", self.local_text(opens)),
            None if self.opening_hours.is_empty() => "; it has no opening hours".to_owned(),
            None => String::new(),
        };
        format!("venue {} is closed on {}{next}", self.venue_id, self.local_text(at))
    }

    /// Whether `[from, to)` lies within one opening interval.
    pub fn open_throughout(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.open_interval_at(from).is_some_and(|(_, end)| to <= end)
    }
}

/// Defines (or redefines) the venue: one version more than the last, announced with its seat count.
pub fn decide_define(previous_version: Option<i32>, venue: Venue, d: &DefineVenue) -> Vec<Event> {
    let record = VenueDefined {
        metadata: d.metadata.clone(),
        venue_id: d.venue_id.clone(),
        name: d.name.clone(),
        time_zone: d.time_zone.clone(),
        capacity: d.capacity,
        zones: d.zones.clone(),
        seats: i32::try_from(d.seats.len()).unwrap_or(i32::MAX),
        version: previous_version.map_or(1, |v| v + 1),
    };
    vec![Event::VenueDefined(record, venue)]
}

#[cfg(test)]
pub(crate) mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;

    pub fn definition() -> DefineVenue {
        DefineVenue {
            metadata: EventMetadata::example(),
            venue_id: "ven_1".into(),
            name: "Main library".into(),
            time_zone: "Europe/Berlin".into(),
            capacity: 3,
            zones: vec![Zone { zone_id: "zone_quiet".into(), name: "Quiet".into(), capacity: 2 }],
            seats: vec![
                Seat { seat_id: "seat_q1".into(), zone_id: Some("zone_quiet".into()), label: "Q1".into() },
                Seat { seat_id: "seat_q2".into(), zone_id: Some("zone_quiet".into()), label: "Q2".into() },
                Seat { seat_id: "seat_h1".into(), zone_id: None, label: "Hall 1".into() },
            ],
            opening_hours: (1..=7)
                .map(|weekday| OpeningHours { weekday, opens: "08:00".into(), closes: "22:00".into() })
                .collect(),
            limits: VenueLimits {
                max_bookings_per_member: 3,
                max_concurrent_bookings: 1,
                max_days_ahead: 14,
                min_booking_minutes: 30,
                max_booking_minutes: 240,
                no_show_grace_minutes: 15,
                max_stay_minutes: 480,
            },
            qr_required: false,
        }
    }

    pub fn venue() -> Venue {
        Venue::from_definition(&definition()).expect("valid")
    }

    pub fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn opening_hours_are_in_the_venues_zone_across_daylight_saving() {
        let v = venue();
        // 08:00 in Berlin is 07:00 UTC in winter and 06:00 UTC in summer.
        assert_eq!(v.open_interval_at(at("2026-01-15T06:59:00Z")), None);
        assert_eq!(
            v.open_interval_at(at("2026-01-15T07:00:00Z")),
            Some((at("2026-01-15T07:00:00Z"), at("2026-01-15T21:00:00Z")))
        );
        assert_eq!(
            v.open_interval_at(at("2026-07-15T06:30:00Z")),
            Some((at("2026-07-15T06:00:00Z"), at("2026-07-15T20:00:00Z")))
        );
        assert!(v.open_throughout(at("2026-07-15T18:00:00Z"), at("2026-07-15T20:00:00Z")));
        assert!(!v.open_throughout(at("2026-07-15T19:00:00Z"), at("2026-07-15T20:30:00Z")));
    }

    #[test]
    fn a_weekday_without_hours_is_closed_and_24_00_closes_at_midnight() {
        let mut d = definition();
        d.opening_hours = vec![OpeningHours { weekday: 1, opens: "00:00".into(), closes: "24:00".into() }];
        let v = Venue::from_definition(&d).expect("valid");
        // 2026-01-12 is a Monday.
        assert_eq!(
            v.open_interval_at(at("2026-01-12T12:00:00Z")),
            Some((at("2026-01-11T23:00:00Z"), at("2026-01-12T23:00:00Z")))
        );
        assert_eq!(v.open_interval_at(at("2026-01-13T12:00:00Z")), None);
    }

    #[test]
    fn a_closed_venue_says_so_in_its_own_zone_with_its_next_opening() {
        let v = venue();
        // 22:30 UTC on Thursday 2026-01-15 is 23:30 in Berlin; it opens at 08:00 on Friday.
        assert_eq!(
            v.closed_reason(at("2026-01-15T22:30:00Z")),
            "venue ven_1 is closed on Thursday 2026-01-15 23:30 (Europe/Berlin); \
             it opens next on Friday 2026-01-16 08:00 (Europe/Berlin)"
        );
        let mut d = definition();
        d.opening_hours.clear();
        let never = Venue::from_definition(&d).expect("valid");
        assert_eq!(
            never.closed_reason(at("2026-01-15T22:30:00Z")),
            "venue ven_1 is closed on Thursday 2026-01-15 23:30 (Europe/Berlin); it has no opening hours"
        );
    }

    #[test]
    fn bad_definitions_name_their_field() {
        type Change = fn(&mut DefineVenue);
        let cases: Vec<(Change, &str)> = vec![
            (|d| d.time_zone = "Mars/Olympus".into(), "time_zone"),
            (|d| d.capacity = 0, "capacity"),
            (|d| d.zones[0].capacity = 9, "zones[0].capacity"),
            (|d| d.seats[1].seat_id = "seat_q1".into(), "seats[1].seat_id"),
            (|d| d.seats[0].zone_id = Some("zone_x".into()), "seats[0].zone_id"),
            (|d| d.opening_hours[2].weekday = 8, "opening_hours[2].weekday"),
            (|d| d.opening_hours[0].closes = "07:00".into(), "opening_hours[0].closes"),
            (|d| d.opening_hours[0].opens = "8am".into(), "opening_hours[0].opens"),
            (|d| d.limits.no_show_grace_minutes = 10, "limits.no_show_grace_minutes"),
            (|d| d.limits.no_show_grace_minutes = 61, "limits.no_show_grace_minutes"),
            (|d| d.limits.min_booking_minutes = 300, "limits.min_booking_minutes"),
            (|d| d.limits.max_stay_minutes = 0, "limits.max_stay_minutes"),
        ];
        for (change, field) in cases {
            let mut d = definition();
            change(&mut d);
            assert_eq!(validate(&d).map_err(|(f, _)| f), Err(field.to_owned()));
        }
        assert_eq!(validate(&definition()), Ok(()));
    }

    #[test]
    fn given_a_venue_defined_once_when_it_is_defined_again_then_venue_defined_at_version_two() {
        let d = definition();
        let then = |version| {
            vec![Event::VenueDefined(
                VenueDefined {
                    metadata: EventMetadata::example(),
                    venue_id: "ven_1".into(),
                    name: "Main library".into(),
                    time_zone: "Europe/Berlin".into(),
                    capacity: 3,
                    zones: d.zones.clone(),
                    seats: 3,
                    version,
                },
                venue(),
            )]
        };
        assert_eq!(decide_define(None, venue(), &d), then(1));
        assert_eq!(decide_define(Some(1), venue(), &d), then(2));
    }
}
