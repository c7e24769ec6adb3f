//! Delivery clients for the notifications consumer's delivery worker.
//!
//! Five channels behind one trait, [`Channel`]: [`EmailChannel`] (SMTP with lettre),
//! [`TwilioChannel`] for SMS and WhatsApp (Twilio's Messages REST API over reqwest),
//! [`FcmChannel`] for push (FCM HTTP v1 with a service account) and [`WebhookChannel`]
//! (Standard Webhooks signed POSTs). In-app notifications have no client: the consumer stores
//! them. [`channels`] builds those configured, keyed by [`ChannelName`]. Every endpoint is
//! configurable, so tests (and sandboxes) point them anywhere.
//!
//! Rules every channel keeps:
//! - **Idempotency.** Every provider call carries the message's `idempotency_key` the way the
//!   provider supports it (see each channel's module docs), and retries resend the same key. A
//!   notification's key names its organization and its id ([`message_key`]): ids are unique only
//!   within an organization, a provider's de-duplication spans the whole account.
//! - **Retries.** Transient failures (timeouts, connection errors, 5xx, 429, SMTP 4xx) are
//!   retried with exponential backoff and jitter, at most [`RetryPolicy::max_attempts`]
//!   attempts each bounded by [`RetryPolicy::timeout_ms`]; what is left is
//!   [`ChannelError::Transient`], for the caller's own schedule.
//! - **Three kinds of failure**: [`ChannelError::Transient`] (try again later),
//!   [`ChannelError::Permanent`] (this recipient cannot be reached this way: fail the message,
//!   mark the address) and [`ChannelError::Config`] (our side is wrong: neither).
//!
//! Signatures are pure functions: [`verify_twilio_signature`] for Twilio's status callbacks,
//! [`webhook_signature::sign`] / [`webhook_signature::verify`] for Standard Webhooks.

use std::collections::HashMap;
use std::sync::Arc;

mod config;
mod email;
mod error;
mod fcm;
mod http;
mod message_key;
mod twilio;
mod types;
mod webhook;
pub mod webhook_signature;

pub use async_trait::async_trait;
pub use config::{ChannelsConfig, EmailConfig, FcmConfig, RetryPolicy, TlsMode, TwilioConfig};
pub use email::EmailChannel;
pub use error::ChannelError;
pub use fcm::FcmChannel;
pub use message_key::{message_key, parse_message_key};
pub use secrecy::{ExposeSecret, SecretString};
/// Where webhooks may connect (`[outbound]` of the settings).
pub use studyspot_outbound::{Policy as OutboundPolicy, TARGET_NOT_ALLOWED};
pub use twilio::{STATUS_CALLBACK_DATA, TwilioChannel, twilio_signature, verify_twilio_signature};
pub use types::{ChannelName, Delivery, DeliveryStatus, Message, UnknownChannel};
pub use webhook::WebhookChannel;

/// Header names and protocol constants, for fakes and receivers.
pub mod headers {
    pub use crate::email::IDEMPOTENCY_HEADER as EMAIL_IDEMPOTENCY_HEADER;
    pub use crate::fcm::{JWT_BEARER_GRANT, SCOPE as FCM_SCOPE};
    pub use crate::twilio::IDEMPOTENCY_HEADER as TWILIO_IDEMPOTENCY_HEADER;
}

/// A delivery channel. Object safe (through [`macro@async_trait`]), so the worker holds several
/// as `Arc<dyn Channel>` in a map keyed by [`ChannelName`]. Implement it for a fake with
/// `#[studyspot_notification_channels::async_trait]`.
#[async_trait]
pub trait Channel: Send + Sync {
    /// Which channel this is.
    fn name(&self) -> ChannelName;

    /// Delivers `m` to `m.to`, retrying transient failures inside the call. Sending the same
    /// message again (same idempotency key) is recognisable as a repeat, and not delivered
    /// twice where the provider supports it (Twilio).
    async fn send(&self, m: &Message) -> Result<Delivery, ChannelError>;
}

/// The channels by name.
pub type Channels = HashMap<ChannelName, Arc<dyn Channel>>;

/// Builds every channel `config` configures (and the webhook channel unless `webhook = false`),
/// all with `config.retry`; webhooks connect only where `outbound` allows (tenants name their
/// URLs; the providers' base URLs are the operator's).
pub fn channels(config: &ChannelsConfig, outbound: &OutboundPolicy) -> Result<Channels, ChannelError> {
    let mut built: Channels = HashMap::new();
    if let Some(email) = &config.email {
        built.insert(ChannelName::Email, Arc::new(EmailChannel::new(email, config.retry.clone())?));
    }
    if let Some(sms) = &config.sms {
        built.insert(ChannelName::Sms, Arc::new(TwilioChannel::sms(sms, config.retry.clone())?));
    }
    if let Some(whatsapp) = &config.whatsapp {
        built.insert(
            ChannelName::WhatsApp,
            Arc::new(TwilioChannel::whatsapp(whatsapp, config.retry.clone())?),
        );
    }
    if let Some(push) = &config.push {
        built.insert(ChannelName::Push, Arc::new(FcmChannel::new(push, config.retry.clone())?));
    }
    if config.webhook {
        built.insert(
            ChannelName::Webhook,
            Arc::new(WebhookChannel::with_outbound(config.retry.clone(), outbound.clone())?),
        );
    }
    Ok(built)
}
