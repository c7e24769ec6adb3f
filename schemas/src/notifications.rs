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
    /// The campaign (`cmp_…`) this message is part of: cancelling the campaign stops it.
    #[avro(default = "null")]
    pub campaign_id: Option<String>,
    /// Collected with the recipient's other messages of this key (same channel and category) into
    /// one digest sent when its window closes; ignored for critical messages.
    #[avro(default = "null")]
    pub digest_key: Option<String>,
    /// The digest's window in seconds from its first message; 3600 when absent.
    #[avro(default = "null")]
    pub digest_window_secs: Option<i64>,
    /// Or a schedule: the digest goes out at this local time (`HH:MM`, the recipient's zone) next
    /// after its first message, e.g. a daily summary at 18:00.
    #[avro(default = "null")]
    pub digest_at_local: Option<String>,
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

/// Who a campaign is for. Empty lists do not narrow; a broadcast names nothing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct Segment {
    /// Members whose current subscription is on one of these plans.
    #[avro(default = "[]")]
    pub plan_ids: Vec<String>,
    /// Members whose subscription is in one of these statuses (active, trialing, past_due, …).
    #[avro(default = "[]")]
    pub subscription_statuses: Vec<String>,
    /// Members who checked in at one of these venues (within `attended_within_days` when set).
    #[avro(default = "[]")]
    pub venue_ids: Vec<String>,
    /// Members who checked in anywhere (or at `venue_ids`) in the last N days before the launch.
    #[avro(default = "null")]
    pub attended_within_days: Option<i32>,
    /// Exactly these recipients (a targeted list); combined with the rest by AND.
    #[avro(default = "[]")]
    pub recipient_ids: Vec<String>,
}

/// Define a campaign: a message (a template or a text) to a segment on a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct CreateCampaign {
    pub metadata: EventMetadata,
    /// `cmp_…`.
    pub campaign_id: String,
    pub name: String,
    /// broadcast, targeted, automated, transactional or marketing.
    pub kind: String,
    /// One of CATEGORIES; a marketing campaign respects marketing opt-outs and caps.
    pub category: String,
    /// A channel, or empty for each recipient's email when known, else in-app.
    #[avro(default = "\"\"")]
    pub channel: String,
    #[avro(default = "null")]
    pub template_id: Option<String>,
    #[avro(default = "null")]
    pub subject: Option<String>,
    #[avro(default = "\"\"")]
    pub body: String,
    #[avro(default = "{}")]
    pub variables: HashMap<String, String>,
    #[avro(default = "null")]
    pub locale: Option<String>,
    pub segment: Segment,
    /// Send at this wall-clock time in each recipient's own time zone (`2026-12-01T09:00`).
    #[avro(default = "null")]
    pub send_at_local: Option<String>,
    /// Or at this instant (milliseconds since the epoch) for everyone; at launch when neither.
    #[avro(default = "null")]
    pub send_at: Option<i64>,
    /// At most this many messages per minute, spread from the send time; unlimited when absent.
    #[avro(default = "null")]
    pub throttle_per_minute: Option<i32>,
    /// For automated campaigns: the record type whose events send it
    /// (`studyspot.billing.PaymentSucceeded`, `studyspot.attendance.CheckedIn`, …).
    #[avro(default = "null")]
    pub trigger: Option<String>,
}
notifications_record!(CreateCampaign, CATALOG_COMMANDS, key = metadata.organization_id);

/// Send a campaign to its segment as it is at this command's time (automated ones: start reacting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct LaunchCampaign {
    pub metadata: EventMetadata,
    pub campaign_id: String,
}
notifications_record!(LaunchCampaign, CATALOG_COMMANDS, key = metadata.organization_id);

/// Stop what of a campaign has not gone out yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct CancelCampaign {
    pub metadata: EventMetadata,
    pub campaign_id: String,
}
notifications_record!(CancelCampaign, CATALOG_COMMANDS, key = metadata.organization_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct CampaignCreated {
    pub metadata: EventMetadata,
    pub campaign_id: String,
    pub kind: String,
    pub category: String,
}
notifications_record!(CampaignCreated, CATALOG_EVENTS, key = metadata.organization_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct CampaignLaunched {
    pub metadata: EventMetadata,
    pub campaign_id: String,
    /// Messages asked for (one SendNotification each); 0 for an automated campaign.
    pub recipients: i32,
    /// When the first and last of them are due (milliseconds since the epoch).
    #[avro(default = "null")]
    pub first_send_at: Option<i64>,
    #[avro(default = "null")]
    pub last_send_at: Option<i64>,
}
notifications_record!(CampaignLaunched, CATALOG_EVENTS, key = metadata.organization_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct CampaignCancelled {
    pub metadata: EventMetadata,
    pub campaign_id: String,
}
notifications_record!(CampaignCancelled, CATALOG_EVENTS, key = metadata.organization_id);

/// A member read in-app messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct MarkNotificationsRead {
    pub metadata: EventMetadata,
    pub recipient_id: String,
    pub notification_ids: Vec<String>,
}
notifications_record!(MarkNotificationsRead, COMMANDS, key = recipient_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct NotificationsRead {
    pub metadata: EventMetadata,
    pub recipient_id: String,
    /// Those that were unread until now.
    pub notification_ids: Vec<String>,
}
notifications_record!(NotificationsRead, EVENTS, key = recipient_id);

/// Send a waiting notification (scheduled, deferred by quiet hours) now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct ReleaseNotification {
    pub metadata: EventMetadata,
    pub notification_id: String,
    pub recipient_id: String,
}
notifications_record!(ReleaseNotification, COMMANDS, key = recipient_id);

/// A message was collected into a digest (`digest_id`, itself a notification sent when the
/// window closes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct NotificationDigested {
    pub metadata: EventMetadata,
    pub notification_id: String,
    pub recipient_id: String,
    pub digest_id: String,
    /// Messages in the digest so far.
    pub items: i32,
}
notifications_record!(NotificationDigested, EVENTS, key = recipient_id);

/// A webhook endpoint failed for longer than `notifications.delivery.webhook_disable_after_secs`:
/// nothing more is sent to it until its owner sets it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct WebhookEndpointDisabled {
    pub metadata: EventMetadata,
    pub recipient_id: String,
    pub url: String,
    /// When (milliseconds since the epoch), and the worker's account: failing since when, last error.
    pub disabled_at: i64,
    pub last_error: String,
}
notifications_record!(WebhookEndpointDisabled, EVENTS, key = recipient_id);

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
    /// In-app messages only: what the member reads, so a live client (the gateway's event stream)
    /// shows it as it arrives.
    #[avro(default = "null")]
    pub subject: Option<String>,
    #[avro(default = "null")]
    pub body: Option<String>,
    #[avro(default = "null")]
    pub category: Option<String>,
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

/// The statuses a `RecordDeliveryStatus` may report.
pub const DELIVERY_STATUSES: [&str; 5] = ["delivered", "undelivered", "opened", "clicked", "bounced"];

/// What became of a message after it was sent: a provider's status callback (delivered,
/// undelivered, bounced), or the recipient opening it (the open pixel) or following one of its
/// links (the click redirect). Sent by the gateway from signed tracking links and verified
/// provider callbacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct RecordDeliveryStatus {
    pub metadata: EventMetadata,
    pub notification_id: String,
    pub recipient_id: String,
    /// delivered, undelivered, opened, clicked or bounced.
    pub status: String,
    /// The link followed (clicked).
    #[avro(default = "null")]
    pub url: Option<String>,
    /// The provider's own word for it (Twilio's `MessageStatus` and `ErrorCode`).
    #[avro(default = "null")]
    pub provider_status: Option<String>,
    /// Where it came from: open_pixel, click_redirect, twilio, …
    pub source: String,
}
notifications_record!(RecordDeliveryStatus, COMMANDS, key = recipient_id);

/// A delivery status applied to a notification: every open and click, each provider status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.notifications")]
pub struct NotificationTracked {
    pub metadata: EventMetadata,
    pub notification_id: String,
    pub recipient_id: String,
    pub channel: String,
    /// delivered, undelivered, opened, clicked or bounced.
    pub status: String,
    /// The first of its status for this notification (unique opens and clicks).
    pub first: bool,
    #[avro(default = "null")]
    pub url: Option<String>,
    #[avro(default = "null")]
    pub provider_status: Option<String>,
    pub source: String,
    #[avro(default = "null")]
    pub template_id: Option<String>,
    #[avro(default = "null")]
    pub campaign_id: Option<String>,
}
notifications_record!(NotificationTracked, EVENTS, key = recipient_id);
