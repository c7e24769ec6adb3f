//! Notifications: messages to members and operators over every channel.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

pub use crate::catalogue::{NOTIFICATIONS_COMMANDS as COMMANDS, NOTIFICATIONS_EVENTS as EVENTS};
use crate::{
    EventMetadata,
    record::{record, rejection},
};

/// The channels a `channel` field may name.
pub const CHANNELS: [&str; 6] = ["email", "sms", "whatsapp", "push", "in_app", "webhook"];

/// Ask for one message to one recipient over one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct SendNotification {
    pub metadata: EventMetadata,
    /// `ntf_…`, chosen by the caller so a retried command names the same notification.
    pub notification_id: String,
    /// The member (`mem_…`) or operator (`usr_…`) the message is for.
    pub recipient_id: String,
    /// email, sms, whatsapp, push, in_app or webhook.
    pub channel: String,
    /// transactional, marketing, operational, …: preferences and caps apply per category.
    pub category: String,
    #[avro(default = "null")]
    pub subject: Option<String>,
    pub body: String,
}
record!(
    SendNotification,
    "studyspot.notifications.SendNotification",
    "notifications/SendNotification.avsc",
    COMMANDS,
    key = |r| &r.recipient_id
);

/// A notification was accepted for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct NotificationQueued {
    pub metadata: EventMetadata,
    pub notification_id: String,
    pub recipient_id: String,
    pub channel: String,
    pub category: String,
}
record!(
    NotificationQueued,
    "studyspot.notifications.NotificationQueued",
    "notifications/NotificationQueued.avsc",
    EVENTS,
    key = |r| &r.recipient_id
);

/// Notifications refused a well-formed command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct CommandRejected {
    pub metadata: EventMetadata,
    pub command_id: String,
    pub command_type: String,
    pub recipient_id: String,
    pub code: String,
    pub reason: String,
}
record!(
    CommandRejected,
    "studyspot.notifications.CommandRejected",
    "notifications/CommandRejected.avsc",
    EVENTS,
    key = |r| &r.recipient_id
);

rejection!(CommandRejected);
