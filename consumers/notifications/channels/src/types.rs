//! The channel-neutral vocabulary every client speaks.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// A channel a notification can go out on with a delivery client. In-app notifications have
/// no client: the consumer stores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelName {
    /// E-mail over SMTP.
    Email,
    /// SMS through Twilio.
    Sms,
    /// WhatsApp through Twilio.
    WhatsApp,
    /// Mobile / web push through Firebase Cloud Messaging.
    Push,
    /// A signed HTTP POST (Standard Webhooks) to the recipient's URL.
    Webhook,
}

impl ChannelName {
    /// Every channel with a client, in a stable order.
    pub const ALL: [ChannelName; 5] = [
        ChannelName::Email,
        ChannelName::Sms,
        ChannelName::WhatsApp,
        ChannelName::Push,
        ChannelName::Webhook,
    ];

    /// The name used in commands, events, configuration and logs (the schemas' channel names).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelName::Email => "email",
            ChannelName::Sms => "sms",
            ChannelName::WhatsApp => "whatsapp",
            ChannelName::Push => "push",
            ChannelName::Webhook => "webhook",
        }
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string did not name a channel with a delivery client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown notification channel {0:?} (expected email, sms, whatsapp, push or webhook)")]
pub struct UnknownChannel(pub String);

impl FromStr for ChannelName {
    type Err = UnknownChannel;

    /// Case-insensitive: `"email"`, `"SMS"`, `"whatsapp"`, `"push"`, `"webhook"`. `"in_app"` is
    /// not one: it has no client.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "email" => Ok(ChannelName::Email),
            "sms" => Ok(ChannelName::Sms),
            "whatsapp" => Ok(ChannelName::WhatsApp),
            "push" => Ok(ChannelName::Push),
            "webhook" => Ok(ChannelName::Webhook),
            _ => Err(UnknownChannel(s.to_owned())),
        }
    }
}

/// One message to one recipient on one channel.
#[derive(Clone, Debug, Default)]
pub struct Message {
    /// Our dedupe key: for a notification, [`message_key`](crate::message_key) of its
    /// organization and id (a notification goes to one recipient on one channel). Sent the way
    /// each provider recognises a repeat (see each channel), so a retried or replayed delivery is
    /// recognisable, and by providers that support it, not delivered twice.
    pub idempotency_key: String,
    /// The recipient: an e-mail address (`asha@example.com` or `Asha Rao <asha@example.com>`),
    /// an E.164 phone number (`+919000090000`, SMS and WhatsApp), an FCM registration token
    /// (push) or an `https://` URL (webhook).
    pub to: String,
    /// E-mail subject; push notification title. Unused by SMS, WhatsApp and webhooks.
    pub subject: Option<String>,
    /// The text: e-mail plain-text part, SMS / WhatsApp body, push notification body.
    /// Unused by webhooks (their payload is `data`).
    pub body: String,
    /// E-mail only: an HTML alternative to `body`.
    pub html: Option<String>,
    /// Push: the FCM `data` map. Webhook: the payload's `data` object.
    pub data: BTreeMap<String, String>,
    /// Webhook only: the endpoint's signing secret, `whsec_` + base64 of the key bytes.
    pub webhook_secret: Option<SecretString>,
    /// Webhook only: the payload's `type` (`"booking.confirmed"`); default
    /// [`WebhookChannel::DEFAULT_EVENT_TYPE`](crate::WebhookChannel::DEFAULT_EVENT_TYPE).
    pub event_type: Option<String>,
}

/// How far the provider took the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Handed over: the SMTP relay took the message, FCM accepted the push, the webhook
    /// endpoint answered 2xx, Twilio says `sent` / `delivered`. No further report will come
    /// from the provider through this crate (bounces and read receipts are out of band).
    Sent,
    /// The provider accepted the message and delivers it later (Twilio `queued`, `accepted`,
    /// `scheduled`, `sending`); its status callback tells the end (see
    /// [`verify_twilio_signature`](crate::verify_twilio_signature)).
    Queued,
}

/// A provider's answer to a delivery that did not fail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The provider's id of the message: the e-mail's `Message-ID` (without angle brackets),
    /// Twilio's `SM…` / `MM…` sid, FCM's `projects/…/messages/…` name; `None` for webhooks.
    pub provider_message_id: Option<String>,
    /// Sent or queued.
    pub status: DeliveryStatus,
}

impl Delivery {
    pub(crate) fn sent(provider_message_id: Option<String>) -> Self {
        Delivery { provider_message_id, status: DeliveryStatus::Sent }
    }
}
