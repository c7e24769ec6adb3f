//! Sessions: check-in (token, entitlement, hours, seat, capacity, one open session per member),
//! check-out, and the automatic check-outs a scheduler's tick brings (closing time, maximum stay).

use chrono::{DateTime, Duration, Utc};
use studyspot_qr_tokens::{Claims, Keys, Kind, TokenError};
use studyspot_schemas::EventMetadata;
use studyspot_schemas::attendance::{CHECK_OUT_REASONS, CheckIn, CheckOut, CheckedIn, SessionCompleted};

use super::{Event, Malformed, Refusal, filled, ms, venue::Venue};

pub fn validate_check_in(command: &CheckIn) -> Result<(), Malformed> {
    filled(&[
        ("session_id", &command.session_id),
        ("member_id", &command.member_id),
        ("venue_id", &command.venue_id),
        ("metadata.organization_id", &command.metadata.organization_id),
    ])?;
    for (field, value) in
        [("seat_id", &command.seat_id), ("zone_id", &command.zone_id), ("qr_token", &command.qr_token)]
    {
        if value.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(Malformed(format!("{field} is empty; omit it for none")));
        }
    }
    Ok(())
}

/// What entitles a member to come in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entitlement {
    pub subscription_id: Option<String>,
    pub pass_id: Option<String>,
}

/// The member's booking that covers the check-in, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingHere {
    pub booking_id: String,
    pub seat_id: Option<String>,
    pub zone_id: Option<String>,
}

/// The check-in's QR token as verified with the consumer's keys at the check-in's instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Token {
    /// The command carries none.
    #[default]
    Absent,
    Genuine(Claims),
    /// Unreadable, forged, of an unknown key, expired, or no keys to verify it with.
    Refused(Refusal),
}

impl Token {
    fn claims(&self) -> Option<&Claims> {
        match self {
            Self::Genuine(claims) => Some(claims),
            _ => None,
        }
    }
}

/// What attendance knows that bears on a check-in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckInState {
    pub token: Token,
    pub venue: Option<Venue>,
    /// The member's open session, if they are already in somewhere.
    pub open_session: Option<String>,
    /// True when a session with the command's id exists (the command was already decided).
    pub session_exists: bool,
    /// Members present at the venue now.
    pub occupancy: i32,
    /// Members present in the check-in's zone now.
    pub zone_occupancy: i32,
    pub entitlement: Option<Entitlement>,
    /// Who sits on the seat now (their open session's member).
    pub seat_taken_by: Option<String>,
    /// Someone else's booking holds the seat now.
    pub seat_booked_by_other: bool,
    pub booking: Option<BookingHere>,
    /// The token's nonce was used before.
    pub token_replayed: bool,
}

/// What the projection keeps of a check-in beside its `CheckedIn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stay {
    /// When the session ends by itself, and why (closing_time or max_stay).
    pub auto_checkout_at: DateTime<Utc>,
    pub auto_checkout_reason: &'static str,
    /// The nonce to remember when the token is single-use.
    pub spent_nonce: Option<String>,
}

fn rejected(code: &'static str, reason: impl Into<String>) -> Result<Vec<Event>, Refusal> {
    Err(Refusal::new(code, reason))
}

/// The token's claims if it is genuine and unexpired at `at`; otherwise the refusal. No token: `Ok(None)`.
pub fn token(keys: Option<&Keys>, command: &CheckIn, at: DateTime<Utc>) -> Token {
    let Some(token) = &command.qr_token else { return Token::Absent };
    let Some(keys) = keys else {
        return Token::Refused(Refusal::new(
            TokenError::NoKey.code(),
            "this attendance consumer has no QR keys configured",
        ));
    };
    match keys.verify(token, at.timestamp_millis()) {
        Ok(claims) => Token::Genuine(claims),
        Err(e) => Token::Refused(Refusal::new(e.code(), e.to_string())),
    }
}

/// The seat the check-in is for: the command's, or the token's when the command names none.
pub fn seat_of(command: &CheckIn, claims: Option<&Claims>) -> Option<String> {
    command.seat_id.clone().or_else(|| claims.and_then(|c| c.seat_id.clone()))
}

pub fn decide_check_in(
    state: &CheckInState,
    command: &CheckIn,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, Refusal> {
    if let Token::Refused(refusal) = &state.token {
        return Err(refusal.clone());
    }
    let claims = state.token.claims();
    if state.session_exists {
        return rejected("session_exists", format!("session {} already exists", command.session_id));
    }
    let Some(venue) = &state.venue else {
        return rejected("venue_not_found", format!("venue {} is not defined", command.venue_id));
    };
    if venue.qr_required && claims.is_none() && !command.staff_assisted {
        return rejected(
            "qr_token_required",
            format!("venue {} admits members with a QR token", venue.venue_id),
        );
    }
    let seat_id = seat_of(command, claims);
    if let Some(c) = claims {
        let mismatch = |what: &str| rejected("token_mismatch", format!("the QR token is for another {what}"));
        if c.organization_id != command.metadata.organization_id || c.venue_id != command.venue_id {
            return mismatch("venue");
        }
        if c.seat_id.is_some() && c.seat_id != seat_id {
            return mismatch("seat");
        }
        if c.kind == Kind::Member && c.member_id.as_deref() != Some(command.member_id.as_str()) {
            return mismatch("member");
        }
        if c.kind.single_use() && state.token_replayed {
            return rejected("token_replayed", "this QR token was already used");
        }
    }
    let zone_id = match &seat_id {
        Some(seat) => match venue.seat(seat) {
            Some(s) => {
                if command.zone_id.is_some() && command.zone_id != s.zone_id {
                    return rejected(
                        "zone_mismatch",
                        format!("seat {seat} is not in zone {:?}", command.zone_id),
                    );
                }
                s.zone_id.clone()
            }
            None => {
                return rejected("seat_not_found", format!("venue {} has no seat {seat}", venue.venue_id));
            }
        },
        None => command.zone_id.clone(),
    };
    let zone = match &zone_id {
        Some(z) => match venue.zone(z) {
            Some(zone) => Some(zone),
            None => return rejected("zone_not_found", format!("venue {} has no zone {z}", venue.venue_id)),
        },
        None => None,
    };
    let Some((_, closes)) = venue.open_interval_at(at) else {
        return rejected("venue_closed", venue.closed_reason(at));
    };
    let Some(entitlement) = &state.entitlement else {
        return rejected(
            "no_entitlement",
            format!("member {} has no active subscription or valid pass", command.member_id),
        );
    };
    if let Some(open) = &state.open_session {
        return rejected(
            "already_checked_in",
            format!("member {} is already checked in (session {open})", command.member_id),
        );
    }
    if let Some(seat) = &seat_id {
        if let Some(other) = &state.seat_taken_by {
            return rejected("seat_taken", format!("seat {seat} is taken (member {other})"));
        }
        if state.seat_booked_by_other && state.booking.as_ref().and_then(|b| b.seat_id.as_ref()) != Some(seat)
        {
            return rejected("seat_booked", format!("seat {seat} is booked by someone else now"));
        }
    }
    if state.occupancy >= venue.capacity {
        return rejected(
            "venue_full",
            format!("venue {} is at its capacity of {}", venue.venue_id, venue.capacity),
        );
    }
    if let Some(zone) = zone
        && state.zone_occupancy >= zone.capacity
    {
        return rejected(
            "zone_full",
            format!("zone {} is at its capacity of {}", zone.zone_id, zone.capacity),
        );
    }
    let max_stay = at + Duration::minutes(i64::from(venue.limits.max_stay_minutes));
    let (auto_checkout_at, auto_checkout_reason) =
        if closes <= max_stay { (closes, "closing_time") } else { (max_stay, "max_stay") };
    let seat_label = seat_id.as_deref().and_then(|seat| venue.seat(seat)).map(|s| s.label.clone());
    let checked_in = CheckedIn {
        metadata: command.metadata.clone(),
        session_id: command.session_id.clone(),
        member_id: command.member_id.clone(),
        venue_id: command.venue_id.clone(),
        seat_id,
        occupancy: state.occupancy + 1,
        zone_id,
        zone_occupancy: zone.map(|_| state.zone_occupancy + 1),
        booking_id: state.booking.as_ref().map(|b| b.booking_id.clone()),
        subscription_id: entitlement.subscription_id.clone(),
        pass_id: entitlement.pass_id.clone(),
        venue_name: Some(venue.name.clone()),
        seat_label,
    };
    let stay = Stay {
        auto_checkout_at,
        auto_checkout_reason,
        spent_nonce: claims.filter(|c| c.kind.single_use()).map(|c| c.nonce.clone()),
    };
    Ok(vec![Event::CheckedIn(checked_in, stay)])
}

/// What a check-in that lost the race for the member's one open session is told: another
/// venue's partition checked them in first, and the write found it.
pub fn already_in(command: &CheckIn) -> Refusal {
    Refusal::new("already_checked_in", format!("member {} is already checked in", command.member_id))
}

pub fn validate_check_out(command: &CheckOut) -> Result<(), Malformed> {
    filled(&[
        ("member_id", &command.member_id),
        ("venue_id", &command.venue_id),
        ("metadata.organization_id", &command.metadata.organization_id),
    ])?;
    if !CHECK_OUT_REASONS.contains(&command.reason.as_str()) {
        return Err(Malformed(format!(
            "reason {:?} is not one of {}",
            command.reason,
            CHECK_OUT_REASONS.join(", ")
        )));
    }
    if command.session_id.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err(Malformed("session_id is empty; omit it for the member's open session".into()));
    }
    Ok(())
}

/// An open session as check-outs see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    pub session_id: String,
    pub member_id: String,
    pub venue_id: String,
    pub seat_id: Option<String>,
    pub zone_id: Option<String>,
    pub subscription_id: Option<String>,
    pub checked_in_at: DateTime<Utc>,
    pub checked_out_at: Option<DateTime<Utc>>,
    pub auto_checkout_at: Option<DateTime<Utc>>,
    pub auto_checkout_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub session_id: String,
    pub checked_out_at: DateTime<Utc>,
    pub duration_seconds: i64,
    pub reason: String,
}

/// Ends `session` at `at` (never before it began).
pub fn complete(session: &OpenSession, at: DateTime<Utc>, reason: &str) -> Completed {
    let checked_out_at = at.max(session.checked_in_at);
    Completed {
        session_id: session.session_id.clone(),
        checked_out_at,
        duration_seconds: (checked_out_at - session.checked_in_at).num_seconds(),
        reason: reason.to_owned(),
    }
}

/// Members present now where a session ends: at its venue, and in its zone if it has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Present {
    pub venue: i32,
    pub zone: Option<i32>,
}

impl Present {
    /// One fewer, as the session ends.
    fn leaving(self) -> Self {
        Self { venue: self.venue - 1, zone: self.zone.map(|z| z - 1) }
    }
}

/// What bears on a check-out: the session it names (or the member's open one) and who is present
/// where it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckOutState {
    pub session: Option<OpenSession>,
    pub present: Present,
}

/// The session ends: it is announced with who is present after it.
pub fn completed(s: &OpenSession, done: Completed, after: Present, cause: &EventMetadata) -> Event {
    Event::SessionCompleted(SessionCompleted {
        metadata: cause.clone(),
        session_id: done.session_id,
        member_id: s.member_id.clone(),
        venue_id: s.venue_id.clone(),
        seat_id: s.seat_id.clone(),
        zone_id: s.zone_id.clone(),
        checked_in_at: ms(s.checked_in_at),
        checked_out_at: ms(done.checked_out_at),
        duration_seconds: done.duration_seconds,
        reason: done.reason,
        occupancy: after.venue,
        zone_occupancy: after.zone,
        subscription_id: s.subscription_id.clone(),
    })
}

pub fn decide_check_out(
    state: &CheckOutState,
    command: &CheckOut,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, Refusal> {
    let Some(s) = state.session.as_ref().filter(|s| s.member_id == command.member_id) else {
        return Err(Refusal::new(
            "no_open_session",
            format!("member {} has no open session at venue {}", command.member_id, command.venue_id),
        ));
    };
    if s.checked_out_at.is_some() {
        return Err(Refusal::new(
            "session_closed",
            format!("session {} is already checked out", s.session_id),
        ));
    }
    if s.venue_id != command.venue_id {
        return Err(Refusal::new(
            "session_not_at_venue",
            format!("session {} is at venue {}", s.session_id, s.venue_id),
        ));
    }
    // Automatic check-outs already due end the session when they were due, not later.
    let at = match s.auto_checkout_at {
        Some(due) if due < at => due,
        _ => at,
    };
    Ok(vec![completed(s, complete(s, at, &command.reason), state.present.leaving(), &command.metadata)])
}

/// What a scheduler tick ends: every open session whose automatic check-out is due by `up_to`,
/// in the order they became due; `overstay` for those that reached the maximum stay.
pub fn due_check_outs(open: &[OpenSession], up_to: DateTime<Utc>) -> Vec<(Completed, bool)> {
    let mut due: Vec<&OpenSession> = open
        .iter()
        .filter(|s| s.checked_out_at.is_none() && s.auto_checkout_at.is_some_and(|t| t <= up_to))
        .collect();
    due.sort_by_key(|s| (s.auto_checkout_at, s.session_id.clone()));
    due.into_iter()
        .map(|s| {
            let reason = s.auto_checkout_reason.as_deref().unwrap_or("closing_time");
            let at = s.auto_checkout_at.unwrap_or(up_to);
            (complete(s, at, reason), reason == "max_stay")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;
    use crate::decide::venue::tests::{at, venue};

    const NOW: &str = "2026-01-15T10:00:00Z";

    fn keys() -> Keys {
        Keys::new("k1", [("k1".to_owned(), b"secret".to_vec())]).expect("keys")
    }

    fn check_in(member: &str) -> CheckIn {
        CheckIn {
            metadata: EventMetadata::example(),
            session_id: "ses_1".into(),
            member_id: member.into(),
            venue_id: "ven_1".into(),
            seat_id: None,
            zone_id: None,
            qr_token: None,
            staff_assisted: false,
        }
    }

    fn given() -> CheckInState {
        CheckInState { venue: Some(venue()), entitlement: Some(Entitlement::default()), ..Default::default() }
    }

    fn code(decided: Result<Vec<Event>, Refusal>) -> &'static str {
        decided.expect_err("a refusal").code
    }

    /// The one `CheckedIn` a check-in decides, with what the projection keeps beside it.
    fn admitted(decided: Result<Vec<Event>, Refusal>) -> (CheckedIn, Stay) {
        match decided.expect("a check-in").as_slice() {
            [Event::CheckedIn(e, stay)] => (e.clone(), stay.clone()),
            other => panic!("expected one CheckedIn, got {other:?}"),
        }
    }

    fn seat_token(seat: &str, expires: &str, kind: Kind) -> String {
        keys()
            .sign(&Claims {
                kind,
                organization_id: "org_1".into(),
                venue_id: "ven_1".into(),
                seat_id: Some(seat.into()),
                member_id: None,
                expires_at_ms: at(expires).timestamp_millis(),
                nonce: "n1".into(),
            })
            .expect("sign")
    }

    /// Decides with the token verified the way the handler does.
    fn decide(state: &CheckInState, command: &CheckIn, now: &str) -> Result<Vec<Event>, Refusal> {
        let state = CheckInState { token: token(Some(&keys()), command, at(now)), ..state.clone() };
        decide_check_in(&state, command, at(now))
    }

    #[test]
    fn given_an_empty_venue_when_a_member_checks_in_then_occupancy_is_one_and_max_stay_is_set() {
        let then = vec![Event::CheckedIn(
            CheckedIn {
                metadata: EventMetadata::example(),
                session_id: "ses_1".into(),
                member_id: "mem_1".into(),
                venue_id: "ven_1".into(),
                seat_id: None,
                occupancy: 1,
                zone_id: None,
                zone_occupancy: None,
                booking_id: None,
                subscription_id: None,
                pass_id: None,
                venue_name: Some("Main library".into()),
                seat_label: None,
            },
            // 10:00 UTC + 8 h = 18:00 UTC, before closing (22:00 Berlin = 21:00 UTC).
            Stay {
                auto_checkout_at: at("2026-01-15T18:00:00Z"),
                auto_checkout_reason: "max_stay",
                spent_nonce: None,
            },
        )];
        assert_eq!(decide(&given(), &check_in("mem_1"), NOW), Ok(then));
    }

    #[test]
    fn given_a_late_check_in_then_it_ends_at_closing_time() {
        let (_, stay) = admitted(decide(&given(), &check_in("mem_1"), "2026-01-15T19:00:00Z"));
        assert_eq!(
            (stay.auto_checkout_at, stay.auto_checkout_reason),
            (at("2026-01-15T21:00:00Z"), "closing_time")
        );
    }

    #[test]
    fn given_a_member_already_in_when_they_check_in_again_then_it_is_refused() {
        let state = CheckInState { open_session: Some("ses_0".into()), occupancy: 1, ..given() };
        assert_eq!(code(decide(&state, &check_in("mem_1"), NOW)), "already_checked_in");
    }

    #[test]
    fn given_the_session_id_is_taken_when_checking_in_then_it_is_refused() {
        let state = CheckInState { session_exists: true, ..given() };
        assert_eq!(code(decide(&state, &check_in("mem_1"), NOW)), "session_exists");
    }

    #[test]
    fn given_a_full_venue_or_zone_when_checking_in_then_it_is_refused() {
        let full = CheckInState { occupancy: 3, ..given() };
        assert_eq!(code(decide(&full, &check_in("mem_1"), NOW)), "venue_full");
        let mut seat = check_in("mem_1");
        seat.seat_id = Some("seat_q1".into());
        let zone_full = CheckInState { occupancy: 2, zone_occupancy: 2, ..given() };
        assert_eq!(code(decide(&zone_full, &seat, NOW)), "zone_full");
        let room = CheckInState { occupancy: 2, zone_occupancy: 1, ..given() };
        let (e, _) = admitted(decide(&room, &seat, NOW));
        assert_eq!((e.occupancy, e.zone_occupancy, e.zone_id.as_deref()), (3, Some(2), Some("zone_quiet")));
        assert_eq!(e.seat_label.as_deref(), Some("Q1"));
    }

    #[test]
    fn given_no_subscription_or_pass_when_checking_in_then_it_is_refused() {
        let state = CheckInState { entitlement: None, ..given() };
        assert_eq!(code(decide(&state, &check_in("mem_1"), NOW)), "no_entitlement");
    }

    #[test]
    fn given_a_venue_that_requires_qr_tokens_then_members_need_one_and_staff_do_not() {
        let mut state = given();
        state.venue.as_mut().expect("venue").qr_required = true;
        assert_eq!(code(decide(&state, &check_in("mem_1"), NOW)), "qr_token_required");
        let mut desk = check_in("mem_1");
        desk.staff_assisted = true;
        admitted(decide(&state, &desk, NOW));
    }

    #[test]
    fn given_a_closed_venue_or_an_unknown_seat_then_it_is_refused() {
        assert_eq!(code(decide(&given(), &check_in("mem_1"), "2026-01-15T22:30:00Z")), "venue_closed");
        let mut c = check_in("mem_1");
        c.seat_id = Some("seat_zz".into());
        assert_eq!(code(decide(&given(), &c, NOW)), "seat_not_found");
        assert_eq!(code(decide(&CheckInState::default(), &check_in("mem_1"), NOW)), "venue_not_found");
    }

    #[test]
    fn given_a_seat_token_when_checking_in_then_the_seat_is_the_tokens_and_the_nonce_is_spent() {
        let mut c = check_in("mem_1");
        c.qr_token = Some(seat_token("seat_h1", "2026-01-15T10:01:00Z", Kind::Seat));
        let (e, stay) = admitted(decide(&given(), &c, NOW));
        assert_eq!((e.seat_id.as_deref(), stay.spent_nonce.as_deref()), (Some("seat_h1"), Some("n1")));
    }

    #[test]
    fn given_an_expired_token_then_it_is_refused_as_expired() {
        let mut c = check_in("mem_1");
        c.qr_token = Some(seat_token("seat_h1", "2026-01-15T09:59:59Z", Kind::Seat));
        assert_eq!(code(decide(&given(), &c, NOW)), "token_expired");
    }

    #[test]
    fn given_a_forged_token_then_it_is_refused_as_forged() {
        let mut c = check_in("mem_1");
        let genuine = seat_token("seat_h1", "2026-01-15T10:01:00Z", Kind::Seat);
        let forger = Keys::new("k1", [("k1".to_owned(), b"guess".to_vec())]).expect("keys");
        let mut claims = keys().verify(&genuine, 0).expect("claims");
        claims.seat_id = Some("seat_q1".into());
        c.qr_token = Some(forger.sign(&claims).expect("sign"));
        assert_eq!(code(decide(&given(), &c, NOW)), "token_forged");
        c.qr_token = Some("ssq1.k9.x.y".into());
        assert_eq!(code(decide(&given(), &c, NOW)), "token_unknown_key");
    }

    #[test]
    fn given_a_used_token_when_it_is_shown_again_then_it_is_refused_as_replayed() {
        let mut c = check_in("mem_1");
        c.qr_token = Some(seat_token("seat_h1", "2026-01-15T10:01:00Z", Kind::Seat));
        let state = CheckInState { token_replayed: true, ..given() };
        assert_eq!(code(decide(&state, &c, NOW)), "token_replayed");
        // A printed seat code is meant to be scanned again and again.
        c.qr_token = Some(seat_token("seat_h1", "2027-01-15T10:01:00Z", Kind::SeatCode));
        let (_, stay) = admitted(decide(&state, &c, NOW));
        assert_eq!(stay.spent_nonce, None);
    }

    #[test]
    fn given_a_token_for_another_member_or_seat_then_it_is_refused_as_a_mismatch() {
        let member_token = keys()
            .sign(&Claims {
                kind: Kind::Member,
                organization_id: "org_1".into(),
                venue_id: "ven_1".into(),
                seat_id: None,
                member_id: Some("mem_2".into()),
                expires_at_ms: at("2026-01-15T10:01:00Z").timestamp_millis(),
                nonce: "n2".into(),
            })
            .expect("sign");
        let mut c = check_in("mem_1");
        c.qr_token = Some(member_token);
        assert_eq!(code(decide(&given(), &c, NOW)), "token_mismatch");
        let mut c = check_in("mem_1");
        c.seat_id = Some("seat_q1".into());
        c.qr_token = Some(seat_token("seat_h1", "2026-01-15T10:01:00Z", Kind::Seat));
        assert_eq!(code(decide(&given(), &c, NOW)), "token_mismatch");
    }

    #[test]
    fn given_a_seat_in_use_or_booked_by_someone_else_then_it_is_refused() {
        let mut c = check_in("mem_1");
        c.seat_id = Some("seat_h1".into());
        let taken = CheckInState { seat_taken_by: Some("mem_9".into()), ..given() };
        assert_eq!(code(decide(&taken, &c, NOW)), "seat_taken");
        let booked = CheckInState { seat_booked_by_other: true, ..given() };
        assert_eq!(code(decide(&booked, &c, NOW)), "seat_booked");
    }

    fn open(id: &str, checked_in: &str, auto: &str, reason: &str) -> OpenSession {
        OpenSession {
            session_id: id.into(),
            member_id: "mem_1".into(),
            venue_id: "ven_1".into(),
            seat_id: None,
            zone_id: None,
            subscription_id: None,
            checked_in_at: at(checked_in),
            checked_out_at: None,
            auto_checkout_at: Some(at(auto)),
            auto_checkout_reason: Some(reason.into()),
        }
    }

    #[test]
    fn given_open_sessions_when_the_scheduler_ticks_then_due_ones_end_when_due_with_overstay_flagged() {
        let sessions = [
            open("ses_a", "2026-01-15T08:00:00Z", "2026-01-15T16:00:00Z", "max_stay"),
            open("ses_b", "2026-01-15T19:00:00Z", "2026-01-15T21:00:00Z", "closing_time"),
            open("ses_c", "2026-01-15T15:00:00Z", "2026-01-15T21:00:00Z", "closing_time"),
        ];
        assert!(due_check_outs(&sessions, at("2026-01-15T15:59:59Z")).is_empty());
        let due = due_check_outs(&sessions, at("2026-01-15T21:00:00Z"));
        let summary: Vec<(&str, i64, &str, bool)> = due
            .iter()
            .map(|(c, o)| (c.session_id.as_str(), c.duration_seconds, c.reason.as_str(), *o))
            .collect();
        assert_eq!(
            summary,
            [
                ("ses_a", 8 * 3600, "max_stay", true),
                ("ses_b", 2 * 3600, "closing_time", false),
                ("ses_c", 6 * 3600, "closing_time", false),
            ]
        );
    }

    fn check_out(reason: &str) -> CheckOut {
        CheckOut {
            metadata: EventMetadata::example(),
            member_id: "mem_1".into(),
            venue_id: "ven_1".into(),
            session_id: None,
            reason: reason.into(),
            effective_at: None,
        }
    }

    #[test]
    fn given_an_open_session_when_the_member_checks_out_then_it_completes_with_its_duration() {
        let s = open("ses_a", "2026-01-15T08:00:00Z", "2026-01-15T16:00:00Z", "max_stay");
        let given = CheckOutState { session: Some(s), present: Present { venue: 2, zone: None } };
        let completed = |checked_out_at: &str, duration_seconds| {
            vec![Event::SessionCompleted(SessionCompleted {
                metadata: EventMetadata::example(),
                session_id: "ses_a".into(),
                member_id: "mem_1".into(),
                venue_id: "ven_1".into(),
                seat_id: None,
                zone_id: None,
                checked_in_at: at("2026-01-15T08:00:00Z").timestamp_millis(),
                checked_out_at: at(checked_out_at).timestamp_millis(),
                duration_seconds,
                reason: "manual".into(),
                occupancy: 1,
                zone_occupancy: None,
                subscription_id: None,
            })]
        };
        assert_eq!(
            decide_check_out(&given, &check_out("manual"), at("2026-01-15T09:30:00Z")),
            Ok(completed("2026-01-15T09:30:00Z", 5400))
        );
        // Checking out after the automatic check-out was due ends it when it was due.
        assert_eq!(
            decide_check_out(&given, &check_out("manual"), at("2026-01-15T17:00:00Z")),
            Ok(completed("2026-01-15T16:00:00Z", 8 * 3600))
        );
        assert_eq!(
            decide_check_out(&CheckOutState::default(), &check_out("manual"), at(NOW)).map_err(|r| r.code),
            Err("no_open_session")
        );
        assert!(validate_check_out(&check_out("bored")).is_err());
    }

    #[test]
    fn empty_ids_are_malformed_not_refused() {
        assert!(validate_check_in(&check_in("")).is_err());
        let mut with_blank_seat = check_in("mem_1");
        with_blank_seat.seat_id = Some(" ".into());
        assert!(validate_check_in(&with_blank_seat).is_err());
        assert!(validate_check_in(&check_in("mem_1")).is_ok());
    }
}
