//! Other domains' events that become notifications: each maps to a notification of the member,
//! through the organization's template of that name when it has one, else a plain default text.
//! The notification id derives from the event's id, so a redelivered event notifies once.

use std::collections::HashMap;

use studyspot_consumer_runtime::{HandleError, Inbound};
use studyspot_schemas::{
    EventMetadata, Record,
    attendance::{BookingNoShow, CheckedIn, OverstayDetected},
    billing::{
        PaymentFailed, PaymentSucceeded, SubscriptionDunningStep, SubscriptionTrialEnding,
        UsageThresholdReached,
    },
    notifications::SendNotification,
};

use crate::decide::money;

/// The record types that notify, and that an automated campaign may name as its trigger.
pub const TRIGGERS: [&str; 8] = [
    PaymentSucceeded::FULL_NAME,
    PaymentFailed::FULL_NAME,
    SubscriptionTrialEnding::FULL_NAME,
    SubscriptionDunningStep::FULL_NAME,
    UsageThresholdReached::FULL_NAME,
    CheckedIn::FULL_NAME,
    OverstayDetected::FULL_NAME,
    BookingNoShow::FULL_NAME,
];

/// The templates triggers use, by name, and the text used when an organization has none.
pub const DEFAULTS: [(&str, &str, &str); 8] = [
    ("payment_receipt", "Payment received", "We received your payment of {{ amount }}. Thank you!"),
    ("payment_failed", "Payment failed", "Your payment of {{ amount }} failed: {{ reason }}."),
    ("trial_ending", "Your trial ends soon", "Your trial ends on {{ trial_end }}."),
    (
        "renewal_failed",
        "We could not renew your subscription",
        "Attempt {{ attempt }} to collect invoice {{ invoice_id }} failed. {{ next_step }}",
    ),
    (
        "usage_threshold",
        "Usage alert",
        "You have used {{ percent }}% of your {{ metric }} allowance ({{ used }} of {{ included }}).",
    ),
    ("check_in_confirmation", "You are checked in", "Welcome! You are checked in at {{ venue }}{{ seat }}."),
    (
        "overstay",
        "Your stay has reached its limit",
        "You checked in at {{ checked_in_at }}; stays at {{ venue }} end after {{ max_stay_minutes }} minutes. Please check out.",
    ),
    (
        "booking_no_show",
        "We released your booking",
        "You did not check in for your booking at {{ venue }} starting {{ starts_at }}, so the seat was released.",
    ),
];

/// The variables a trigger's events give its template (and an automated campaign's text). `venue`
/// is the venue's name (its id for events from before attendance named it), `seat` the seat's
/// printed label; `venue_id` stays for templates written against it.
pub fn variables_of(trigger: &str) -> &'static [&'static str] {
    match trigger {
        PaymentSucceeded::FULL_NAME => &["amount", "payment_id", "method"],
        PaymentFailed::FULL_NAME => &["amount", "reason"],
        SubscriptionTrialEnding::FULL_NAME => &["trial_end"],
        SubscriptionDunningStep::FULL_NAME => &["attempt", "invoice_id", "next_step"],
        UsageThresholdReached::FULL_NAME => &["percent", "metric", "used", "included"],
        CheckedIn::FULL_NAME => &["venue", "venue_id", "seat", "session_id"],
        OverstayDetected::FULL_NAME => {
            &["venue", "venue_id", "checked_in_at", "max_stay_minutes", "session_id"]
        }
        BookingNoShow::FULL_NAME => &["venue", "venue_id", "starts_at", "booking_id"],
        _ => &[],
    }
}

/// What a person calls the venue: its name, else (an event from before attendance named it) its id.
fn venue(name: Option<&str>, id: &str) -> String {
    name.filter(|n| !n.trim().is_empty()).unwrap_or(id).to_owned()
}

fn default_text(template: &str) -> (&'static str, &'static str) {
    DEFAULTS.iter().find(|(name, _, _)| *name == template).map_or(("", ""), |(_, s, b)| (*s, *b))
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d").to_string())
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// A check-in's variables: the venue by name and the seat by its printed label when attendance
/// gave them, else their ids.
fn checked_in_variables(e: &CheckedIn) -> Vec<(&'static str, String)> {
    let seat =
        e.seat_label.as_ref().or(e.seat_id.as_ref()).map_or_else(String::new, |s| format!(", seat {s}"));
    vec![
        ("venue", venue(e.venue_name.as_deref(), &e.venue_id)),
        ("venue_id", e.venue_id.clone()),
        ("seat", seat),
        ("session_id", e.session_id.clone()),
    ]
}

/// The notification an event asks for, if any.
pub fn notification_for(message: &Inbound) -> Result<Option<SendNotification>, HandleError> {
    let (member, template, category, critical, vars): (String, &str, &str, bool, Vec<(&str, String)>) =
        match message.record_type.as_str() {
            PaymentSucceeded::FULL_NAME => {
                let e: PaymentSucceeded = message.record()?;
                let vars = vec![
                    ("amount", money(e.amount_minor, &e.currency)),
                    ("payment_id", e.payment_id.clone()),
                    ("method", e.method.clone()),
                ];
                (e.member_id, "payment_receipt", "transactional", false, vars)
            }
            PaymentFailed::FULL_NAME => {
                let e: PaymentFailed = message.record()?;
                let vars =
                    vec![("amount", money(e.amount_minor, &e.currency)), ("reason", e.message.clone())];
                (e.member_id, "payment_failed", "transactional", false, vars)
            }
            SubscriptionTrialEnding::FULL_NAME => {
                let e: SubscriptionTrialEnding = message.record()?;
                (e.member_id, "trial_ending", "billing", false, vec![("trial_end", date(e.trial_end))])
            }
            SubscriptionDunningStep::FULL_NAME => {
                let e: SubscriptionDunningStep = message.record()?;
                let next = match e.next_retry_at {
                    Some(at) => format!("We will try again on {}.", date(at)),
                    None => format!(
                        "No more attempts; the subscription is {}.",
                        if e.final_action == "suspend" { "suspended" } else { "cancelled" }
                    ),
                };
                let vars = vec![
                    ("attempt", e.attempt.to_string()),
                    ("invoice_id", e.invoice_id.clone()),
                    ("next_step", next),
                ];
                (e.member_id, "renewal_failed", "transactional", false, vars)
            }
            UsageThresholdReached::FULL_NAME => {
                let e: UsageThresholdReached = message.record()?;
                let vars = vec![
                    ("percent", e.percent.to_string()),
                    ("metric", e.metric.replace('_', " ")),
                    ("used", e.used.to_string()),
                    ("included", e.included.to_string()),
                ];
                (e.member_id, "usage_threshold", "billing", false, vars)
            }
            CheckedIn::FULL_NAME => {
                let e: CheckedIn = message.record()?;
                let vars = checked_in_variables(&e);
                (e.member_id, "check_in_confirmation", "attendance", false, vars)
            }
            OverstayDetected::FULL_NAME => {
                let e: OverstayDetected = message.record()?;
                let vars = vec![
                    ("venue", venue(e.venue_name.as_deref(), &e.venue_id)),
                    ("venue_id", e.venue_id.clone()),
                    ("checked_in_at", time(e.checked_in_at)),
                    ("max_stay_minutes", e.max_stay_minutes.to_string()),
                    ("session_id", e.session_id.clone()),
                ];
                (e.member_id, "overstay", "attendance", false, vars)
            }
            BookingNoShow::FULL_NAME => {
                let e: BookingNoShow = message.record()?;
                let vars = vec![
                    ("venue", venue(e.venue_name.as_deref(), &e.venue_id)),
                    ("venue_id", e.venue_id.clone()),
                    ("starts_at", time(e.starts_at)),
                    ("booking_id", e.booking_id.clone()),
                ];
                (e.member_id, "booking_no_show", "attendance", false, vars)
            }
            _ => return Ok(None),
        };
    let (subject, body) = default_text(template);
    let event = &message.metadata;
    Ok(Some(SendNotification {
        metadata: EventMetadata {
            event_id: event.event_id.clone(),
            occurred_at: event.occurred_at,
            correlation_id: event.correlation_id.clone(),
            causation_id: Some(event.event_id.clone()),
            organization_id: event.organization_id.clone(),
            actor: "service:notifications".into(),
        },
        notification_id: format!(
            "ntf_{}",
            uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{}/{template}", event.event_id).as_bytes()
            )
            .simple()
        ),
        recipient_id: member,
        // The handler picks the channel the member can be reached on (see `channel_for`).
        channel: String::new(),
        category: category.into(),
        subject: Some(subject.into()),
        body: body.into(),
        template_id: Some(template.into()),
        variables: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<HashMap<_, _>>(),
        locale: None,
        critical,
        transaction_id: None,
        send_at: None,
        campaign_id: None,
        digest_key: None,
        digest_window_secs: None,
        digest_at_local: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::templates::{Parts, render};

    #[test]
    fn a_check_in_message_names_the_venue_and_the_seat_as_people_know_them() {
        let mut e = CheckedIn {
            metadata: EventMetadata::example(),
            session_id: "ses_1".into(),
            member_id: "mem_1".into(),
            venue_id: "ven_hall".into(),
            seat_id: Some("seat_a1".into()),
            occupancy: 1,
            zone_id: None,
            zone_occupancy: None,
            booking_id: None,
            subscription_id: None,
            pass_id: None,
            venue_name: Some("Reading Hall".into()),
            seat_label: Some("A1".into()),
        };
        let text = |e: &CheckedIn| {
            let (subject, body) = default_text("check_in_confirmation");
            let variables: HashMap<String, String> =
                checked_in_variables(e).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            render(&Parts { subject: Some(subject), body, html: None }, &variables).expect("renders").body
        };
        assert_eq!(text(&e), "Welcome! You are checked in at Reading Hall, seat A1.");
        // An event from before attendance named them: the ids, as before.
        (e.venue_name, e.seat_label) = (None, None);
        assert_eq!(text(&e), "Welcome! You are checked in at ven_hall, seat seat_a1.");
    }

    #[test]
    fn every_trigger_names_the_variables_its_default_text_uses() {
        let templates = [
            "payment_receipt",
            "payment_failed",
            "trial_ending",
            "renewal_failed",
            "usage_threshold",
            "check_in_confirmation",
            "overstay",
            "booking_no_show",
        ];
        for (trigger, template) in TRIGGERS.iter().zip(templates) {
            let variables: HashMap<String, String> =
                variables_of(trigger).iter().map(|v| ((*v).to_owned(), "x".to_owned())).collect();
            let (subject, body) = default_text(template);
            assert!(!body.is_empty(), "{template} has a default text");
            let parts = Parts { subject: Some(subject), body, html: None };
            assert!(render(&parts, &variables).is_ok(), "{trigger} renders {template}");
        }
    }
}
