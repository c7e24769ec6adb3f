//! What a scheduler's tick (`RunAttendance{up_to}`) brings at a venue: the automatic check-outs
//! due by then (an overstay announced first when the maximum stay ran out), then the bookings
//! released as no-shows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use studyspot_schemas::attendance::{BookingNoShow, OverstayDetected, RunAttendance};

use super::{
    Event,
    bookings::{self, BookingView},
    ms,
    sessions::{self, OpenSession, Present},
    venue::Venue,
};

/// What bears on a tick at a venue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickState {
    pub venue: Option<Venue>,
    /// The open sessions whose automatic check-out is due.
    pub due_sessions: Vec<OpenSession>,
    /// Members present at the venue now.
    pub present: i32,
    /// Members present now in each zone a due session is in.
    pub present_in_zone: BTreeMap<String, i32>,
    /// Bookings whose no-show grace has run out.
    pub due_bookings: Vec<BookingView>,
}

pub fn decide_run(state: &TickState, c: &RunAttendance, up_to: DateTime<Utc>) -> Vec<Event> {
    let max_stay = state.venue.as_ref().map_or(0, |v| v.limits.max_stay_minutes);
    let venue_name = state.venue.as_ref().map(|v| v.name.clone());
    let mut present = state.present;
    let mut in_zone = state.present_in_zone.clone();
    let mut events = Vec::new();
    for (done, overstay) in sessions::due_check_outs(&state.due_sessions, up_to) {
        let Some(s) = state.due_sessions.iter().find(|s| s.session_id == done.session_id) else { continue };
        if overstay {
            events.push(Event::OverstayDetected(OverstayDetected {
                metadata: c.metadata.clone(),
                session_id: s.session_id.clone(),
                member_id: s.member_id.clone(),
                venue_id: s.venue_id.clone(),
                seat_id: s.seat_id.clone(),
                checked_in_at: ms(s.checked_in_at),
                limit_at: ms(done.checked_out_at),
                max_stay_minutes: max_stay,
                venue_name: venue_name.clone(),
            }));
        }
        present -= 1;
        let zone = s.zone_id.as_ref().map(|z| {
            let n = in_zone.entry(z.clone()).or_default();
            *n -= 1;
            *n
        });
        events.push(sessions::completed(s, done, Present { venue: present, zone }, &c.metadata));
    }
    for b in bookings::no_shows(&state.due_bookings, up_to) {
        events.push(Event::BookingNoShow(BookingNoShow {
            metadata: c.metadata.clone(),
            booking_id: b.booking_id.clone(),
            member_id: b.member_id.clone(),
            venue_id: b.venue_id.clone(),
            seat_id: b.seat_id.clone(),
            zone_id: b.zone_id.clone(),
            starts_at: ms(b.starts_at),
            released_at: ms(b.no_show_at),
            venue_name: venue_name.clone(),
        }));
    }
    events
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;
    use crate::decide::venue::tests::{at, venue};

    fn ms(text: &str) -> i64 {
        at(text).timestamp_millis()
    }

    #[test]
    fn given_a_stay_past_its_limit_and_a_booking_past_its_grace_when_the_tick_comes_then_they_end() {
        let given = TickState {
            venue: Some(venue()),
            due_sessions: vec![OpenSession {
                session_id: "ses_a".into(),
                member_id: "mem_1".into(),
                venue_id: "ven_1".into(),
                seat_id: Some("seat_q1".into()),
                zone_id: Some("zone_quiet".into()),
                subscription_id: Some("sub_1".into()),
                checked_in_at: at("2026-01-15T08:00:00Z"),
                checked_out_at: None,
                auto_checkout_at: Some(at("2026-01-15T16:00:00Z")),
                auto_checkout_reason: Some("max_stay".into()),
            }],
            present: 3,
            present_in_zone: [("zone_quiet".to_owned(), 2)].into(),
            due_bookings: vec![BookingView {
                booking_id: "bkg_1".into(),
                member_id: "mem_2".into(),
                venue_id: "ven_1".into(),
                seat_id: None,
                zone_id: None,
                status: "booked".into(),
                starts_at: at("2026-01-15T15:00:00Z"),
                no_show_at: at("2026-01-15T15:15:00Z"),
            }],
        };
        let run = RunAttendance {
            metadata: EventMetadata::example(),
            venue_id: "ven_1".into(),
            up_to: ms("2026-01-15T16:00:00Z"),
        };
        let then = vec![
            Event::OverstayDetected(OverstayDetected {
                metadata: EventMetadata::example(),
                session_id: "ses_a".into(),
                member_id: "mem_1".into(),
                venue_id: "ven_1".into(),
                seat_id: Some("seat_q1".into()),
                checked_in_at: ms("2026-01-15T08:00:00Z"),
                limit_at: ms("2026-01-15T16:00:00Z"),
                max_stay_minutes: 480,
                venue_name: Some("Main library".into()),
            }),
            Event::SessionCompleted(studyspot_schemas::attendance::SessionCompleted {
                metadata: EventMetadata::example(),
                session_id: "ses_a".into(),
                member_id: "mem_1".into(),
                venue_id: "ven_1".into(),
                seat_id: Some("seat_q1".into()),
                zone_id: Some("zone_quiet".into()),
                checked_in_at: ms("2026-01-15T08:00:00Z"),
                checked_out_at: ms("2026-01-15T16:00:00Z"),
                duration_seconds: 8 * 3600,
                reason: "max_stay".into(),
                occupancy: 2,
                zone_occupancy: Some(1),
                subscription_id: Some("sub_1".into()),
            }),
            Event::BookingNoShow(BookingNoShow {
                metadata: EventMetadata::example(),
                booking_id: "bkg_1".into(),
                member_id: "mem_2".into(),
                venue_id: "ven_1".into(),
                seat_id: None,
                zone_id: None,
                starts_at: ms("2026-01-15T15:00:00Z"),
                released_at: ms("2026-01-15T15:15:00Z"),
                venue_name: Some("Main library".into()),
            }),
        ];
        assert_eq!(decide_run(&given, &run, at("2026-01-15T16:00:00Z")), then);
    }
}
