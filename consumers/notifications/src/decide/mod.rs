//! Notification decisions: no I/O, no clock.

use studyspot_schemas::first_blank;
use studyspot_schemas::notifications::SendNotification;

pub use studyspot_schemas::notifications::CHANNELS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendDecision {
    Queue,
    Rejected { code: &'static str, reason: String },
}

pub fn validate_send(c: &SendNotification) -> Result<(), Malformed> {
    if let Some(field) = first_blank(&[
        ("notification_id", &c.notification_id),
        ("recipient_id", &c.recipient_id),
        ("category", &c.category),
        ("body", &c.body),
        ("metadata.organization_id", &c.metadata.organization_id),
    ]) {
        return Err(Malformed(format!("{field} is empty")));
    }
    if !CHANNELS.contains(&c.channel.as_str()) {
        return Err(Malformed(format!("channel {:?} is not one of {}", c.channel, CHANNELS.join(", "))));
    }
    Ok(())
}

/// `exists`: a notification with the command's id is already recorded.
pub fn decide_send(exists: bool, c: &SendNotification) -> SendDecision {
    if exists {
        return SendDecision::Rejected {
            code: "notification_exists",
            reason: format!("notification {} already exists", c.notification_id),
        };
    }
    SendDecision::Queue
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;

    fn command() -> SendNotification {
        SendNotification {
            metadata: EventMetadata::example(),
            notification_id: "ntf_1".into(),
            recipient_id: "mem_1".into(),
            channel: "email".into(),
            category: "transactional".into(),
            subject: Some("Receipt".into()),
            body: "Thanks".into(),
        }
    }

    #[test]
    fn given_a_new_notification_when_sent_then_it_is_queued() {
        assert_eq!(validate_send(&command()), Ok(()));
        assert_eq!(decide_send(false, &command()), SendDecision::Queue);
    }

    #[test]
    fn given_the_notification_exists_when_sent_again_then_it_is_refused() {
        assert!(matches!(
            decide_send(true, &command()),
            SendDecision::Rejected { code: "notification_exists", .. }
        ));
    }

    #[test]
    fn unknown_channels_and_empty_bodies_are_malformed() {
        let mut pigeon = command();
        pigeon.channel = "pigeon".into();
        assert!(validate_send(&pigeon).is_err());
        let mut empty = command();
        empty.body = String::new();
        assert!(validate_send(&empty).is_err());
    }
}
