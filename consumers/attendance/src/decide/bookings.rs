//! Bookings of a seat, a zone or the venue for a time range, single or recurring, within the
//! venue's limits; cancellation; and the release of bookings not checked into (no-shows).

use chrono::{DateTime, Duration, Utc};
use studyspot_schemas::attendance::{
    BookingCancelled, BookingCreated, CancelBooking, CancelBookings, CreateBooking, RECURRENCES,
};

use super::{Event, Malformed, Refusal, filled, instant, ms, venue::Venue};

/// Most occurrences one recurring booking may have.
pub const MAX_OCCURRENCES: i32 = 52;

pub fn validate_create(c: &CreateBooking) -> Result<(), Malformed> {
    filled(&[
        ("booking_id", &c.booking_id),
        ("member_id", &c.member_id),
        ("venue_id", &c.venue_id),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])?;
    let (starts, ends) = (instant("starts_at", c.starts_at)?, instant("ends_at", c.ends_at)?);
    if ends <= starts {
        return Err(Malformed("ends_at must be after starts_at".into()));
    }
    if let Some(r) = &c.recurrence {
        if !RECURRENCES.contains(&r.frequency.as_str()) {
            return Err(Malformed(format!("recurrence.frequency must be one of {}", RECURRENCES.join(", "))));
        }
        if !(1..=MAX_OCCURRENCES).contains(&r.count) {
            return Err(Malformed(format!("recurrence.count must be 1 to {MAX_OCCURRENCES}")));
        }
    }
    Ok(())
}

pub fn validate_cancel_range(c: &CancelBookings) -> Result<(), Malformed> {
    filled(&[("member_id", &c.member_id), ("venue_id", &c.venue_id)])?;
    if instant("to", c.to)? <= instant("from", c.from)? {
        return Err(Malformed("to must be after from".into()));
    }
    Ok(())
}

/// A booking that holds (booked or checked in, not ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub booking_id: String,
    pub member_id: String,
    pub seat_id: Option<String>,
    pub zone_id: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub booking_id: String,
    pub seat_id: Option<String>,
    pub zone_id: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub series_id: Option<String>,
    /// Released as a no-show if not checked into by then.
    pub no_show_at: DateTime<Utc>,
}

/// What bears on a booking: the venue, whether its id is taken, and the bookings that hold at
/// the venue from now on: the member's (their limits) and everyone's that overlap [`span`]
/// (seat and zone conflicts). Others' bookings outside the span cannot change the decision.
#[derive(Debug, Clone, Default)]
pub struct BookingState {
    pub venue: Option<Venue>,
    pub exists: bool,
    pub holding: Vec<Held>,
}

fn overlaps(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// A `BookingCreated` for every occurrence of the booking, or why it is refused (all or nothing).
pub fn decide_create(
    state: &BookingState,
    c: &CreateBooking,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, Refusal> {
    let created = |o: Occurrence| {
        let record = BookingCreated {
            metadata: c.metadata.clone(),
            booking_id: o.booking_id,
            member_id: c.member_id.clone(),
            venue_id: c.venue_id.clone(),
            seat_id: o.seat_id,
            zone_id: o.zone_id,
            starts_at: ms(o.starts_at),
            ends_at: ms(o.ends_at),
            series_id: o.series_id,
        };
        Event::BookingCreated(record, o.no_show_at)
    };
    Ok(occurrences(state, c, at)?.into_iter().map(created).collect())
}

/// The step between occurrences and how many there are.
fn repeats(c: &CreateBooking) -> (Duration, i32) {
    match &c.recurrence {
        Some(r) if r.frequency == "daily" => (Duration::days(1), r.count),
        Some(r) => (Duration::weeks(1), r.count),
        None => (Duration::zero(), 1),
    }
}

/// From the first occurrence's start to the last one's end: what others' bookings must overlap
/// to bear on the decision.
pub fn span(c: &CreateBooking, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let (step, count) = repeats(c);
    let starts = DateTime::from_timestamp_millis(c.starts_at).unwrap_or(at);
    let ends = DateTime::from_timestamp_millis(c.ends_at).unwrap_or(at);
    (starts, ends + step * (count.max(1) - 1))
}

fn occurrences(
    state: &BookingState,
    c: &CreateBooking,
    at: DateTime<Utc>,
) -> Result<Vec<Occurrence>, Refusal> {
    if state.exists {
        return Err(Refusal::new("booking_exists", format!("booking {} already exists", c.booking_id)));
    }
    let Some(venue) = &state.venue else {
        return Err(Refusal::new("venue_not_found", format!("venue {} is not defined", c.venue_id)));
    };
    let zone_id = match &c.seat_id {
        Some(seat) => match venue.seat(seat) {
            Some(s) => s.zone_id.clone(),
            None => {
                return Err(Refusal::new(
                    "seat_not_found",
                    format!("venue {} has no seat {seat}", c.venue_id),
                ));
            }
        },
        None => c.zone_id.clone(),
    };
    if let Some(z) = &zone_id
        && venue.zone(z).is_none()
    {
        return Err(Refusal::new("zone_not_found", format!("venue {} has no zone {z}", c.venue_id)));
    }
    let l = &venue.limits;
    let (starts, ends) = (
        DateTime::from_timestamp_millis(c.starts_at).unwrap_or(at),
        DateTime::from_timestamp_millis(c.ends_at).unwrap_or(at),
    );
    let minutes = (ends - starts).num_minutes();
    if minutes < i64::from(l.min_booking_minutes) {
        return Err(Refusal::new(
            "booking_too_short",
            format!("a booking lasts at least {} minutes", l.min_booking_minutes),
        ));
    }
    if minutes > i64::from(l.max_booking_minutes) {
        return Err(Refusal::new(
            "booking_too_long",
            format!("a booking lasts at most {} minutes", l.max_booking_minutes),
        ));
    }
    let (step, count) = repeats(c);
    let series_id = c.recurrence.as_ref().map(|_| c.booking_id.clone());
    let occurrences: Vec<Occurrence> = (0..count)
        .map(|n| Occurrence {
            booking_id: if n == 0 { c.booking_id.clone() } else { format!("{}-{}", c.booking_id, n + 1) },
            seat_id: c.seat_id.clone(),
            zone_id: zone_id.clone(),
            starts_at: starts + step * n,
            ends_at: ends + step * n,
            series_id: series_id.clone(),
            no_show_at: starts + step * n + Duration::minutes(i64::from(l.no_show_grace_minutes)),
        })
        .collect();
    let mine: Vec<&Held> =
        state.holding.iter().filter(|h| h.member_id == c.member_id && h.ends_at > at).collect();
    if mine.len() + occurrences.len() > l.max_bookings_per_member as usize {
        return Err(Refusal::new(
            "booking_limit_reached",
            format!(
                "a member may hold {} bookings at this venue; {} held",
                l.max_bookings_per_member,
                mine.len()
            ),
        ));
    }
    for (n, o) in occurrences.iter().enumerate() {
        let span = (o.starts_at, o.ends_at);
        if o.starts_at < at {
            return Err(Refusal::new("booking_in_past", format!("occurrence {} starts in the past", n + 1)));
        }
        if o.starts_at > at + Duration::days(i64::from(l.max_days_ahead)) {
            return Err(Refusal::new(
                "too_far_ahead",
                format!("occurrence {} starts more than {} days ahead", n + 1, l.max_days_ahead),
            ));
        }
        if !venue.open_throughout(o.starts_at, o.ends_at) {
            return Err(Refusal::new(
                "outside_opening_hours",
                format!(
                    "occurrence {} ({} to {}) is outside opening hours",
                    n + 1,
                    venue.local_text(o.starts_at),
                    venue.local_text(o.ends_at)
                ),
            ));
        }
        let concurrent = mine.iter().filter(|h| overlaps((h.starts_at, h.ends_at), span)).count()
            + occurrences[..n].iter().filter(|p| overlaps((p.starts_at, p.ends_at), span)).count();
        if concurrent + 1 > l.max_concurrent_bookings as usize {
            return Err(Refusal::new(
                "concurrent_limit_reached",
                format!("a member may hold {} overlapping bookings", l.max_concurrent_bookings),
            ));
        }
        let others = state.holding.iter().filter(|h| overlaps((h.starts_at, h.ends_at), span));
        if let Some(seat) = &o.seat_id
            && others.clone().any(|h| h.seat_id.as_ref() == Some(seat))
        {
            return Err(Refusal::new(
                "seat_unavailable",
                format!("seat {seat} is booked then (occurrence {})", n + 1),
            ));
        }
        // Capacity: overlapping bookings of the zone (or the venue) must leave room.
        let (held, capacity, what) = match &o.zone_id {
            Some(z) => (
                others.clone().filter(|h| h.zone_id.as_ref() == Some(z)).count(),
                venue.zone(z).map_or(0, |zone| zone.capacity),
                z.as_str(),
            ),
            None => (others.clone().count(), venue.capacity, c.venue_id.as_str()),
        };
        if held + 1 > capacity as usize {
            return Err(Refusal::new(
                "fully_booked",
                format!("{what} is fully booked then (occurrence {})", n + 1),
            ));
        }
    }
    Ok(occurrences)
}

/// A booking as cancellations and no-shows see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingView {
    pub booking_id: String,
    pub member_id: String,
    pub venue_id: String,
    pub seat_id: Option<String>,
    pub zone_id: Option<String>,
    pub status: String,
    pub starts_at: DateTime<Utc>,
    pub no_show_at: DateTime<Utc>,
}

fn cancelled(b: &BookingView, cause: &studyspot_schemas::EventMetadata) -> Event {
    Event::BookingCancelled(BookingCancelled {
        metadata: cause.clone(),
        booking_id: b.booking_id.clone(),
        member_id: b.member_id.clone(),
        venue_id: b.venue_id.clone(),
        starts_at: ms(b.starts_at),
    })
}

/// `booking` is the one the command names, if it is at the command's venue.
pub fn decide_cancel(booking: Option<&BookingView>, c: &CancelBooking) -> Result<Vec<Event>, Refusal> {
    let (member_id, booking_id) = (&c.member_id, &c.booking_id);
    match booking {
        Some(b) if &b.member_id == member_id => {
            if b.status == "booked" {
                Ok(vec![cancelled(b, &c.metadata)])
            } else {
                Err(Refusal::new("booking_not_cancellable", format!("booking {booking_id} is {}", b.status)))
            }
        }
        _ => Err(Refusal::new(
            "booking_not_found",
            format!("booking {booking_id} does not exist for member {member_id}"),
        )),
    }
}

/// The member's bookings that a range cancellation ends: booked ones starting in `[from, to)`.
pub fn cancel_range(bookings: &[BookingView], c: &CancelBookings) -> Vec<Event> {
    bookings
        .iter()
        .filter(|b| b.member_id == c.member_id && b.status == "booked")
        .filter(|b| (c.from..c.to).contains(&b.starts_at.timestamp_millis()))
        .map(|b| cancelled(b, &c.metadata))
        .collect()
}

/// Bookings released as no-shows by `up_to`: still only booked when their grace ran out.
pub fn no_shows(bookings: &[BookingView], up_to: DateTime<Utc>) -> Vec<&BookingView> {
    let mut due: Vec<&BookingView> =
        bookings.iter().filter(|b| b.status == "booked" && b.no_show_at <= up_to).collect();
    due.sort_by_key(|b| (b.no_show_at, b.booking_id.clone()));
    due
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::{EventMetadata, attendance::Recurrence};

    use super::*;
    use crate::decide::venue::tests::{at, venue};

    const NOW: &str = "2026-01-15T08:00:00Z";

    fn booking(seat: Option<&str>, starts: &str, ends: &str) -> CreateBooking {
        CreateBooking {
            metadata: EventMetadata::example(),
            booking_id: "bkg_1".into(),
            member_id: "mem_1".into(),
            venue_id: "ven_1".into(),
            seat_id: seat.map(str::to_owned),
            zone_id: None,
            starts_at: at(starts).timestamp_millis(),
            ends_at: at(ends).timestamp_millis(),
            recurrence: None,
        }
    }

    fn given() -> BookingState {
        BookingState { venue: Some(venue()), ..Default::default() }
    }

    fn held(member: &str, seat: Option<&str>, zone: Option<&str>, starts: &str, ends: &str) -> Held {
        Held {
            booking_id: format!("bkg_{member}"),
            member_id: member.into(),
            seat_id: seat.map(str::to_owned),
            zone_id: zone.map(str::to_owned),
            starts_at: at(starts),
            ends_at: at(ends),
        }
    }

    fn refused(state: &BookingState, c: &CreateBooking) -> &'static str {
        decide_create(state, c, at(NOW)).expect_err("a refusal").code
    }

    fn ms(text: &str) -> i64 {
        at(text).timestamp_millis()
    }

    /// The `BookingCreated` events a booking decides, each with its no-show deadline.
    fn created(decided: Result<Vec<Event>, Refusal>) -> Vec<(BookingCreated, DateTime<Utc>)> {
        decided
            .expect("booked")
            .into_iter()
            .map(|e| match e {
                Event::BookingCreated(r, no_show_at) => (r, no_show_at),
                other => panic!("expected BookingCreated, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn given_a_free_seat_when_booked_then_one_occurrence_with_its_no_show_deadline() {
        let decided = decide_create(
            &given(),
            &booking(Some("seat_q1"), "2026-01-15T09:00:00Z", "2026-01-15T11:00:00Z"),
            at(NOW),
        );
        let then = vec![Event::BookingCreated(
            BookingCreated {
                metadata: EventMetadata::example(),
                booking_id: "bkg_1".into(),
                member_id: "mem_1".into(),
                venue_id: "ven_1".into(),
                seat_id: Some("seat_q1".into()),
                zone_id: Some("zone_quiet".into()),
                starts_at: ms("2026-01-15T09:00:00Z"),
                ends_at: ms("2026-01-15T11:00:00Z"),
                series_id: None,
            },
            at("2026-01-15T09:15:00Z"),
        )];
        assert_eq!(decided, Ok(then));
    }

    #[test]
    fn given_a_weekly_recurrence_then_each_occurrence_is_booked_with_derived_ids() {
        let mut c = booking(Some("seat_h1"), "2026-01-15T09:00:00Z", "2026-01-15T10:00:00Z");
        c.recurrence = Some(Recurrence { frequency: "weekly".into(), count: 2 });
        let o = created(decide_create(&given(), &c, at(NOW)));
        let ids: Vec<&str> = o.iter().map(|(o, _)| o.booking_id.as_str()).collect();
        assert_eq!(ids, ["bkg_1", "bkg_1-2"]);
        assert_eq!(o[1].0.starts_at, ms("2026-01-22T09:00:00Z"));
        assert!(o.iter().all(|(o, _)| o.series_id.as_deref() == Some("bkg_1")));
        // Three weeks: the third occurrence is beyond 14 days ahead.
        c.recurrence = Some(Recurrence { frequency: "weekly".into(), count: 3 });
        assert_eq!(refused(&given(), &c), "too_far_ahead");
    }

    #[test]
    fn limits_are_enforced_not_advisory() {
        let c = booking(Some("seat_h1"), "2026-01-15T09:00:00Z", "2026-01-15T09:15:00Z");
        assert_eq!(refused(&given(), &c), "booking_too_short");
        let c = booking(Some("seat_h1"), "2026-01-15T09:00:00Z", "2026-01-15T14:00:00Z");
        assert_eq!(refused(&given(), &c), "booking_too_long");
        let c = booking(Some("seat_h1"), "2026-01-15T07:00:00Z", "2026-01-15T09:00:00Z");
        assert_eq!(refused(&given(), &c), "booking_in_past");
        let c = booking(Some("seat_h1"), "2026-01-15T20:00:00Z", "2026-01-15T22:00:00Z");
        assert_eq!(refused(&given(), &c), "outside_opening_hours");
        let c = booking(Some("seat_h1"), "2026-01-15T12:00:00Z", "2026-01-15T13:00:00Z");
        let mut three = given();
        three.holding = vec![
            held("mem_1", None, None, "2026-01-16T09:00:00Z", "2026-01-16T10:00:00Z"),
            held("mem_1", None, None, "2026-01-17T09:00:00Z", "2026-01-17T10:00:00Z"),
            held("mem_1", None, None, "2026-01-18T09:00:00Z", "2026-01-18T10:00:00Z"),
        ];
        assert_eq!(refused(&three, &c), "booking_limit_reached");
        let mut overlapping = given();
        overlapping.holding = vec![held("mem_1", None, None, "2026-01-15T12:30:00Z", "2026-01-15T13:30:00Z")];
        assert_eq!(refused(&overlapping, &c), "concurrent_limit_reached");
    }

    #[test]
    fn given_a_booked_seat_or_a_fully_booked_zone_then_it_is_refused() {
        let c = booking(Some("seat_q1"), "2026-01-15T09:00:00Z", "2026-01-15T11:00:00Z");
        let mut seat = given();
        seat.holding = vec![held(
            "mem_2",
            Some("seat_q1"),
            Some("zone_quiet"),
            "2026-01-15T10:00:00Z",
            "2026-01-15T12:00:00Z",
        )];
        assert_eq!(refused(&seat, &c), "seat_unavailable");
        let mut zone = given();
        zone.holding = vec![
            held("mem_2", None, Some("zone_quiet"), "2026-01-15T10:00:00Z", "2026-01-15T12:00:00Z"),
            held("mem_3", None, Some("zone_quiet"), "2026-01-15T10:00:00Z", "2026-01-15T12:00:00Z"),
        ];
        assert_eq!(refused(&zone, &c), "fully_booked");
    }

    fn view(id: &str, status: &str, starts: &str, no_show: &str) -> BookingView {
        BookingView {
            booking_id: id.into(),
            member_id: "mem_1".into(),
            venue_id: "ven_1".into(),
            seat_id: None,
            zone_id: None,
            status: status.into(),
            starts_at: at(starts),
            no_show_at: at(no_show),
        }
    }

    #[test]
    fn bookings_not_checked_into_within_the_grace_are_no_shows() {
        let b = [
            view("bkg_a", "booked", "2026-01-15T09:00:00Z", "2026-01-15T09:15:00Z"),
            view("bkg_b", "checked_in", "2026-01-15T09:00:00Z", "2026-01-15T09:15:00Z"),
            view("bkg_c", "booked", "2026-01-15T10:00:00Z", "2026-01-15T10:15:00Z"),
        ];
        assert!(no_shows(&b, at("2026-01-15T09:14:59Z")).is_empty());
        let ids: Vec<&str> =
            no_shows(&b, at("2026-01-15T09:15:00Z")).iter().map(|b| b.booking_id.as_str()).collect();
        assert_eq!(ids, ["bkg_a"]);
    }

    #[test]
    fn cancelling_one_or_a_date_range() {
        let b = [
            view("bkg_a", "booked", "2026-01-15T09:00:00Z", "2026-01-15T09:15:00Z"),
            view("bkg_b", "booked", "2026-01-16T09:00:00Z", "2026-01-16T09:15:00Z"),
            view("bkg_c", "no_show", "2026-01-15T10:00:00Z", "2026-01-15T10:15:00Z"),
        ];
        let cancel = |member: &str, booking: &str| CancelBooking {
            metadata: EventMetadata::example(),
            booking_id: booking.into(),
            member_id: member.into(),
            venue_id: "ven_1".into(),
        };
        let cancelled = |id: &str, starts: &str| {
            Event::BookingCancelled(BookingCancelled {
                metadata: EventMetadata::example(),
                booking_id: id.into(),
                member_id: "mem_1".into(),
                venue_id: "ven_1".into(),
                starts_at: ms(starts),
            })
        };
        assert_eq!(
            decide_cancel(Some(&b[0]), &cancel("mem_1", "bkg_a")),
            Ok(vec![cancelled("bkg_a", "2026-01-15T09:00:00Z")])
        );
        assert_eq!(
            decide_cancel(Some(&b[0]), &cancel("mem_2", "bkg_a")).map_err(|r| r.code),
            Err("booking_not_found")
        );
        assert_eq!(
            decide_cancel(Some(&b[2]), &cancel("mem_1", "bkg_c")).map_err(|r| r.code),
            Err("booking_not_cancellable")
        );
        let range = CancelBookings {
            metadata: EventMetadata::example(),
            member_id: "mem_1".into(),
            venue_id: "ven_1".into(),
            from: at("2026-01-15T00:00:00Z").timestamp_millis(),
            to: at("2026-01-16T00:00:00Z").timestamp_millis(),
        };
        assert_eq!(cancel_range(&b, &range), vec![cancelled("bkg_a", "2026-01-15T09:00:00Z")]);
    }
}
