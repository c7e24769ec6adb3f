//! The one error type of this crate.

use crate::types::ChannelName;

/// Why a message was not delivered. Every message names the channel first (`sms: …`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Timeout, connection error, HTTP 5xx / 429 / 408, SMTP 4xx, FCM `UNAVAILABLE` /
    /// `INTERNAL`. Already retried inside the call with backoff up to
    /// [`RetryPolicy::max_attempts`](crate::RetryPolicy); this is what is left after the last
    /// attempt. The provider may or may not have taken the message: try again later on the
    /// caller's schedule with the **same** message (same idempotency key).
    #[error("transient failure: {0}")]
    Transient(String),
    /// The provider refused this message for this recipient and will refuse it again: an
    /// invalid or unsubscribed number (Twilio 21211, 21614, 21610, …), an SMTP 5xx reply (hard
    /// bounce), an unregistered push token (`UNREGISTERED`, `INVALID_ARGUMENT`), a webhook
    /// 4xx other than 408 / 429, or a recipient this crate cannot address at all. Fail the
    /// message now and mark the address.
    #[error("permanent failure ({code}): {message}")]
    Permanent {
        /// The provider's code: the SMTP reply code (`"550"`), Twilio's error code
        /// (`"21211"`), FCM's error code (`"UNREGISTERED"`), the webhook's HTTP status
        /// (`"410"`), or one of this crate's (`"invalid_address"`, `"invalid_url"`).
        code: String,
        /// What the provider said.
        message: String,
    },
    /// Our side is misconfigured (bad base URL, credentials refused, a webhook message without
    /// a secret, a private key that does not parse). Nothing is wrong with the recipient:
    /// neither fail nor mark the address; fix the configuration.
    #[error("configuration error: {0}")]
    Config(String),
}

impl ChannelError {
    /// Worth sending again later with the same message.
    pub fn is_transient(&self) -> bool {
        matches!(self, ChannelError::Transient(_))
    }

    /// The recipient cannot be reached this way: fail the message and mark the address.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ChannelError::Permanent { .. })
    }

    /// The provider's code of a [`Permanent`](Self::Permanent) failure.
    pub fn code(&self) -> Option<&str> {
        match self {
            ChannelError::Permanent { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn transient(channel: ChannelName, message: impl std::fmt::Display) -> Self {
        ChannelError::Transient(format!("{channel}: {message}"))
    }

    pub(crate) fn permanent(
        channel: ChannelName,
        code: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> Self {
        ChannelError::Permanent { code: code.into(), message: format!("{channel}: {message}") }
    }

    pub(crate) fn config(channel: ChannelName, message: impl std::fmt::Display) -> Self {
        ChannelError::Config(format!("{channel}: {message}"))
    }
}
