//! Attendance's own view of who may come in, kept from billing's subscription events and the
//! passes attendance grants; and what a lost entitlement does to an open session.

use chrono::{DateTime, Utc};

use studyspot_schemas::{EventMetadata, attendance::CheckOut};

use super::{
    Event, ms,
    sessions::{Entitlement, OpenSession},
};

/// Subscription states that let a member in.
pub const ENTITLING: [&str; 2] = ["active", "trialing"];

pub fn entitles(status: &str) -> bool {
    ENTITLING.contains(&status)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionView {
    pub subscription_id: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassView {
    pub pass_id: String,
    pub venue_id: String,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
}

/// What entitles the member at `venue_id` at `at`: an entitling subscription first, else a pass.
pub fn entitlement_at(
    subscriptions: &[SubscriptionView],
    passes: &[PassView],
    venue_id: &str,
    at: DateTime<Utc>,
) -> Option<Entitlement> {
    if let Some(s) = subscriptions.iter().find(|s| entitles(&s.status)) {
        return Some(Entitlement { subscription_id: Some(s.subscription_id.clone()), pass_id: None });
    }
    passes
        .iter()
        .find(|p| p.venue_id == venue_id && p.valid_from <= at && at < p.valid_until)
        .map(|p| Entitlement { subscription_id: None, pass_id: Some(p.pass_id.clone()) })
}

/// The check-out a subscription change calls for: the member's open session ends when the
/// entitlement ended, unless something else still entitles them there.
pub fn check_out_on_loss(
    subscriptions_after: &[SubscriptionView],
    passes: &[PassView],
    open: Option<&OpenSession>,
    at: DateTime<Utc>,
) -> Option<(String, String, DateTime<Utc>)> {
    let s = open.filter(|s| s.checked_out_at.is_none())?;
    if entitlement_at(subscriptions_after, passes, &s.venue_id, at).is_some() {
        return None;
    }
    Some((s.session_id.clone(), s.venue_id.clone(), at.max(s.checked_in_at)))
}

/// After a subscription's status changed (`subscriptions_after` holds the new one): a member in
/// session who is no longer entitled is checked out as of `at` by a `CheckOut` on the venue's
/// partition, so occupancy stays ordered per venue.
pub fn decide_loss(
    subscriptions_after: &[SubscriptionView],
    passes: &[PassView],
    open: Option<&OpenSession>,
    at: DateTime<Utc>,
    cause: &EventMetadata,
) -> Vec<Event> {
    let Some(s) = open else { return Vec::new() };
    check_out_on_loss(subscriptions_after, passes, Some(s), at)
        .map(|(session_id, venue_id, when)| {
            Event::CheckOutAsked(CheckOut {
                metadata: cause.clone(),
                member_id: s.member_id.clone(),
                venue_id,
                session_id: Some(session_id),
                reason: "entitlement_lost".into(),
                effective_at: Some(ms(when)),
            })
        })
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::venue::tests::at;

    fn sub(status: &str) -> SubscriptionView {
        SubscriptionView { subscription_id: "sub_1".into(), status: status.into() }
    }

    fn open() -> OpenSession {
        OpenSession {
            session_id: "ses_1".into(),
            member_id: "mem_1".into(),
            venue_id: "ven_1".into(),
            seat_id: None,
            zone_id: None,
            subscription_id: Some("sub_1".into()),
            checked_in_at: at("2026-01-15T09:00:00Z"),
            checked_out_at: None,
            auto_checkout_at: Some(at("2026-01-15T17:00:00Z")),
            auto_checkout_reason: Some("max_stay".into()),
        }
    }

    #[test]
    fn trialing_and_active_subscriptions_entitle_and_passes_only_at_their_venue_and_time() {
        let now = at("2026-01-15T10:00:00Z");
        assert!(entitlement_at(&[sub("trialing")], &[], "ven_1", now).is_some());
        assert!(entitlement_at(&[sub("past_due")], &[], "ven_1", now).is_none());
        let pass = PassView {
            pass_id: "pas_1".into(),
            venue_id: "ven_1".into(),
            valid_from: at("2026-01-15T00:00:00Z"),
            valid_until: at("2026-01-16T00:00:00Z"),
        };
        assert_eq!(
            entitlement_at(&[sub("cancelled")], std::slice::from_ref(&pass), "ven_1", now),
            Some(Entitlement { subscription_id: None, pass_id: Some("pas_1".into()) })
        );
        assert!(entitlement_at(&[], std::slice::from_ref(&pass), "ven_2", now).is_none());
        assert!(entitlement_at(&[], &[pass], "ven_1", at("2026-01-16T00:00:00Z")).is_none());
    }

    #[test]
    fn given_a_member_in_session_when_their_subscription_is_cancelled_then_the_session_ends_then() {
        let lost_at = at("2026-01-15T11:30:00Z");
        let cause = EventMetadata::example();
        assert_eq!(
            decide_loss(&[sub("cancelled")], &[], Some(&open()), lost_at, &cause),
            vec![Event::CheckOutAsked(CheckOut {
                metadata: cause.clone(),
                member_id: "mem_1".into(),
                venue_id: "ven_1".into(),
                session_id: Some("ses_1".into()),
                reason: "entitlement_lost".into(),
                effective_at: Some(lost_at.timestamp_millis()),
            })]
        );
        // Still entitled (another subscription), or not in: nothing to do.
        let other = SubscriptionView { subscription_id: "sub_2".into(), status: "active".into() };
        assert_eq!(decide_loss(&[sub("cancelled"), other], &[], Some(&open()), lost_at, &cause), vec![]);
        assert_eq!(decide_loss(&[sub("cancelled")], &[], None, lost_at, &cause), vec![]);
    }
}
