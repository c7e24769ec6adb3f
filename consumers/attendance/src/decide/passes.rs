//! Passes: a member's right to come into one venue for a time, granted by staff.

use studyspot_schemas::attendance::{GrantPass, PassGranted};

use super::{Event, Malformed, Refusal, filled, instant};

pub fn validate_grant(c: &GrantPass) -> Result<(), Malformed> {
    filled(&[("pass_id", &c.pass_id), ("member_id", &c.member_id), ("venue_id", &c.venue_id)])?;
    let from = instant("valid_from", c.valid_from)?;
    if instant("valid_until", c.valid_until)? <= from {
        return Err(Malformed("valid_until must be after valid_from".into()));
    }
    Ok(())
}

/// What bears on a grant: whether the venue is defined and whether the pass id is taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassState {
    pub venue_defined: bool,
    pub pass_exists: bool,
}

pub fn decide_grant(state: &PassState, c: &GrantPass) -> Result<Vec<Event>, Refusal> {
    if !state.venue_defined {
        return Err(Refusal::new("venue_not_found", format!("venue {} is not defined", c.venue_id)));
    }
    if state.pass_exists {
        return Err(pass_exists(c));
    }
    Ok(vec![Event::PassGranted(PassGranted {
        metadata: c.metadata.clone(),
        pass_id: c.pass_id.clone(),
        member_id: c.member_id.clone(),
        venue_id: c.venue_id.clone(),
        valid_from: c.valid_from,
        valid_until: c.valid_until,
    })])
}

/// The refusal of a pass whose id is taken; also what a grant that lost the race for the id to
/// another venue's partition (the write found it taken) is told.
pub fn pass_exists(c: &GrantPass) -> Refusal {
    Refusal::new("pass_exists", format!("pass {} already exists", c.pass_id))
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;

    fn grant() -> GrantPass {
        GrantPass {
            metadata: EventMetadata::example(),
            pass_id: "pas_1".into(),
            member_id: "mem_1".into(),
            venue_id: "ven_1".into(),
            valid_from: 1_000,
            valid_until: 2_000,
        }
    }

    #[test]
    fn given_a_defined_venue_when_a_pass_is_granted_then_pass_granted() {
        let given = PassState { venue_defined: true, pass_exists: false };
        assert_eq!(
            decide_grant(&given, &grant()),
            Ok(vec![Event::PassGranted(PassGranted {
                metadata: EventMetadata::example(),
                pass_id: "pas_1".into(),
                member_id: "mem_1".into(),
                venue_id: "ven_1".into(),
                valid_from: 1_000,
                valid_until: 2_000,
            })])
        );
    }

    #[test]
    fn given_no_venue_or_a_taken_id_when_a_pass_is_granted_then_it_is_refused() {
        let code = |given: PassState| decide_grant(&given, &grant()).map_err(|r| r.code);
        assert_eq!(code(PassState::default()), Err("venue_not_found"));
        assert_eq!(code(PassState { venue_defined: true, pass_exists: true }), Err("pass_exists"));
    }

    #[test]
    fn a_pass_that_ends_before_it_starts_is_malformed() {
        let mut c = grant();
        c.valid_until = c.valid_from;
        assert!(validate_grant(&c).is_err());
        assert!(validate_grant(&grant()).is_ok());
    }
}
