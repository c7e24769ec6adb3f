//! Notifications: messages to members and operators over every channel.

use std::collections::HashMap;

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

pub use crate::catalogue::{
    NOTIFICATIONS_CATALOG_COMMANDS as CATALOG_COMMANDS, NOTIFICATIONS_CATALOG_EVENTS as CATALOG_EVENTS,
    NOTIFICATIONS_COMMANDS as COMMANDS, NOTIFICATIONS_EVENTS as EVENTS,
};
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
    /// The text itself, or empty when a template renders it.
    pub body: String,
    /// A template of the organization (`tpl_…`) rendered with `variables` in `locale`.
    #[avro(default = "null")]
    pub template_id: Option<String>,
    #[avro(default = "{}")]
    pub variables: HashMap<String, String>,
    /// BCP 47, e.g. de-DE; the template's default locale when absent or not translated.
    #[avro(default = "null")]
    pub locale: Option<String>,
    /// Bypasses opt-outs, caps and quiet hours (a security alert, an outage).
    #[avro(default = "false")]
    pub critical: bool,
    /// Groups notifications a later command may cancel together while they wait.
    #[avro(default = "null")]
    pub transaction_id: Option<String>,
    /// Not before then (milliseconds since the epoch); default at once.
    #[avro(default = "null")]
    pub send_at: Option<i64>,
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

macro_rules! notifications_record {
    ($ty:ident, $topic:ident, key = $($key:ident).+) => {
        record!(
            $ty,
            concat!("studyspot.notifications.", stringify!($ty)),
            concat!("notifications/", stringify!($ty), ".avsc"),
            $topic,
            key = |r| &r.$($key).+
        );
    };
}

/// Categories a sender may name; transactional messages ignore marketing opt-outs.
pub const CATEGORIES: [&str; 5] = ["transactional", "billing", "attendance", "operational", "marketing"];

/// A member's (or operator's) addresses and preferences: where to reach them, what they do not
/// want, and when not to disturb them. Replaces the previous preferences as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct SetPreferences {
    pub metadata: EventMetadata,
    pub recipient_id: String,
    #[avro(default = "null")]
    pub email: Option<String>,
    /// E.164, e.g. +4915112345678, for SMS.
    #[avro(default = "null")]
    pub phone: Option<String>,
    /// E.164, for WhatsApp.
    #[avro(default = "null")]
    pub whatsapp: Option<String>,
    /// An FCM registration token.
    #[avro(default = "null")]
    pub push_token: Option<String>,
    #[avro(default = "null")]
    pub webhook_url: Option<String>,
    /// `whsec_…` (Standard Webhooks).
    #[avro(default = "null")]
    pub webhook_secret: Option<String>,
    /// IANA, e.g. Europe/Berlin; quiet hours and daily caps are counted in it.
    #[avro(default = "\"UTC\"")]
    pub time_zone: String,
    /// Quiet hours as local HH:MM, start inclusive, end exclusive; may wrap midnight.
    #[avro(default = "null")]
    pub quiet_start: Option<String>,
    #[avro(default = "null")]
    pub quiet_end: Option<String>,
    #[avro(default = "[]")]
    pub opted_out_channels: Vec<String>,
    #[avro(default = "[]")]
    pub opted_out_categories: Vec<String>,
    /// At most this many per local day, per category (e.g. marketing: 3).
    #[avro(default = "{}")]
    pub category_caps: HashMap<String, i32>,
    /// At most this many per local day across categories and channels.
    #[avro(default = "null")]
    pub daily_cap: Option<i32>,
}
notifications_record!(SetPreferences, COMMANDS, key = recipient_id);

/// The delivery worker's report of one attempt (through the outbox).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct RecordDeliveryOutcome {
    pub metadata: EventMetadata,
    pub notification_id: String,
    pub recipient_id: String,
    /// sent, failed (permanently) or gave_up (retries exhausted).
    pub outcome: String,
    pub attempts: i32,
    #[avro(default = "null")]
    pub provider_message_id: Option<String>,
    #[avro(default = "null")]
    pub code: Option<String>,
    #[avro(default = "null")]
    pub message: Option<String>,
}
notifications_record!(RecordDeliveryOutcome, COMMANDS, key = recipient_id);

/// Cancel what still waits (deferred, scheduled) of a transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct CancelNotifications {
    pub metadata: EventMetadata,
    pub recipient_id: String,
    pub transaction_id: String,
}
notifications_record!(CancelNotifications, COMMANDS, key = recipient_id);

/// Publish a template (a new version when the id exists) for one channel and locale. Variables
/// are `{{ name }}` (minijinja); the sample variables must render it, or it is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct CreateTemplate {
    pub metadata: EventMetadata,
    pub template_id: String,
    pub channel: String,
    /// BCP 47; "en" when absent.
    #[avro(default = "\"en\"")]
    pub locale: String,
    #[avro(default = "null")]
    pub subject: Option<String>,
    pub body: String,
    #[avro(default = "null")]
    pub html: Option<String>,
    /// Every variable the template uses, with an example value.
    #[avro(default = "{}")]
    pub sample_variables: HashMap<String, String>,
}
notifications_record!(CreateTemplate, CATALOG_COMMANDS, key = metadata.organization_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct TemplatePublished {
    pub metadata: EventMetadata,
    pub template_id: String,
    pub channel: String,
    pub locale: String,
    pub version: i32,
}
notifications_record!(TemplatePublished, CATALOG_EVENTS, key = metadata.organization_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct CatalogCommandRejected {
    pub metadata: EventMetadata,
    pub command_id: String,
    pub command_type: String,
    pub code: String,
    pub reason: String,
}
notifications_record!(CatalogCommandRejected, CATALOG_EVENTS, key = metadata.organization_id);
rejection!(CatalogCommandRejected);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct PreferencesUpdated {
    pub metadata: EventMetadata,
    pub recipient_id: String,
    pub time_zone: String,
    pub opted_out_channels: Vec<String>,
    pub opted_out_categories: Vec<String>,
}
notifications_record!(PreferencesUpdated, EVENTS, key = recipient_id);

/// Held back until `until` (quiet hours, a schedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct NotificationDeferred {
    pub metadata: EventMetadata,
    pub notification_id: String,
    pub recipient_id: String,
    pub until: i64,
    /// quiet_hours or scheduled.
    pub reason: String,
}
notifications_record!(NotificationDeferred, EVENTS, key = recipient_id);

/// Not sent, on purpose: opted out, over a cap, no address, cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct NotificationSuppressed {
    pub metadata: EventMetadata,
    pub notification_id: String,
    pub recipient_id: String,
    pub channel: String,
    pub reason: String,
}
notifications_record!(NotificationSuppressed, EVENTS, key = recipient_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct NotificationSent {
    pub metadata: EventMetadata,
    pub notification_id: String,
    pub recipient_id: String,
    pub channel: String,
    pub attempts: i32,
    #[avro(default = "null")]
    pub provider_message_id: Option<String>,
}
notifications_record!(NotificationSent, EVENTS, key = recipient_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct NotificationFailed {
    pub metadata: EventMetadata,
    pub notification_id: String,
    pub recipient_id: String,
    pub channel: String,
    pub attempts: i32,
    pub code: String,
    pub message: String,
}
notifications_record!(NotificationFailed, EVENTS, key = recipient_id);
