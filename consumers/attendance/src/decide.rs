//! Attendance decisions: no I/O, no clock; state in, outcome out.

use studyspot_schemas::attendance::CheckIn;
use studyspot_schemas::first_blank;

/// What attendance knows that bears on a check-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckInState {
    /// The member's open session, if they are already in somewhere.
    pub open_session: Option<String>,
    /// True when a session with the command's id exists (the command was already decided).
    pub session_exists: bool,
    /// Members present at the venue now.
    pub occupancy: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckInDecision {
    CheckedIn { occupancy: i32 },
    Rejected { code: &'static str, reason: String },
}

/// A command that cannot be meant as written: the caller's bug, not a business refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

pub fn validate_check_in(command: &CheckIn) -> Result<(), Malformed> {
    if let Some(field) = first_blank(&[
        ("session_id", &command.session_id),
        ("member_id", &command.member_id),
        ("venue_id", &command.venue_id),
        ("metadata.organization_id", &command.metadata.organization_id),
    ]) {
        return Err(Malformed(format!("{field} is empty")));
    }
    if command.seat_id.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err(Malformed("seat_id is empty; omit it for no seat".into()));
    }
    Ok(())
}

pub fn decide_check_in(state: &CheckInState, command: &CheckIn) -> CheckInDecision {
    if state.session_exists {
        return CheckInDecision::Rejected {
            code: "session_exists",
            reason: format!("session {} already exists", command.session_id),
        };
    }
    if let Some(open) = &state.open_session {
        return CheckInDecision::Rejected {
            code: "already_checked_in",
            reason: format!("member {} is already checked in (session {open})", command.member_id),
        };
    }
    CheckInDecision::CheckedIn { occupancy: state.occupancy + 1 }
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;

    fn check_in(member: &str) -> CheckIn {
        CheckIn {
            metadata: EventMetadata::example(),
            session_id: "ses_1".into(),
            member_id: member.into(),
            venue_id: "ven_1".into(),
            seat_id: None,
        }
    }

    #[test]
    fn given_an_empty_venue_when_a_member_checks_in_then_occupancy_is_one() {
        let decision = decide_check_in(&CheckInState::default(), &check_in("mem_1"));
        assert_eq!(decision, CheckInDecision::CheckedIn { occupancy: 1 });
    }

    #[test]
    fn given_a_member_already_in_when_they_check_in_again_then_it_is_refused() {
        let state = CheckInState { open_session: Some("ses_0".into()), occupancy: 3, ..Default::default() };
        match decide_check_in(&state, &check_in("mem_1")) {
            CheckInDecision::Rejected { code, reason } => {
                assert_eq!(code, "already_checked_in");
                assert!(reason.contains("ses_0"));
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn given_the_session_id_is_taken_when_checking_in_then_it_is_refused() {
        let state = CheckInState { session_exists: true, ..Default::default() };
        assert!(matches!(
            decide_check_in(&state, &check_in("mem_1")),
            CheckInDecision::Rejected { code: "session_exists", .. }
        ));
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
