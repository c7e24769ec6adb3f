//! What the reqwest-based channels (Twilio, FCM, webhooks) and the e-mail channel's retries share
//! with every outbound client (`studyspot_outbound::http`): the channels' client, which statuses
//! they retry and how a failure becomes a [`ChannelError`].

use std::time::Duration;

use reqwest::StatusCode;
use studyspot_outbound::http::{Backoff, Family};
pub(crate) use studyspot_outbound::http::{Reply, join, send, snippet, with_retry};

use crate::config::RetryPolicy;
use crate::error::ChannelError;
use crate::types::ChannelName;

pub(crate) const USER_AGENT: &str = concat!("studyspot-notification-channels/", env!("CARGO_PKG_VERSION"));

/// A client whose every request times out after the policy's per-attempt timeout.
pub(crate) fn client(channel: ChannelName, policy: &RetryPolicy) -> Result<reqwest::Client, ChannelError> {
    builder(policy).build().map_err(|err| build_error(channel, &err))
}

/// The builder [`client`] uses, for channels that change more (redirects).
pub(crate) fn builder(policy: &RetryPolicy) -> reqwest::ClientBuilder {
    with_defaults(reqwest::Client::builder(), policy)
}

/// `builder` with the per-attempt timeout and the user agent.
pub(crate) fn with_defaults(builder: reqwest::ClientBuilder, policy: &RetryPolicy) -> reqwest::ClientBuilder {
    builder.timeout(policy.timeout()).user_agent(USER_AGENT)
}

pub(crate) fn build_error(channel: ChannelName, err: &reqwest::Error) -> ChannelError {
    ChannelError::config(channel, format!("cannot build the HTTP client: {err}"))
}

impl From<&RetryPolicy> for Backoff {
    fn from(policy: &RetryPolicy) -> Self {
        Backoff::millis(policy.max_attempts, policy.base_backoff_ms, policy.max_backoff_ms)
    }
}

impl Family for ChannelName {
    type Error = ChannelError;

    /// Statuses worth retrying: 5xx, 429 (rate limited) and 408 (request timeout).
    fn is_transient_status(status: StatusCode) -> bool {
        status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
    }

    /// Providers' answers (Twilio, FCM) say what went wrong; a webhook endpoint is a tenant's URL,
    /// and what it answers is never echoed back to tenants (a status code is all they learn).
    fn quotes_body(self) -> bool {
        self != ChannelName::Webhook
    }

    fn transient(self, message: String) -> ChannelError {
        ChannelError::transient(self, message)
    }

    fn unbuildable(self, message: String) -> ChannelError {
        ChannelError::config(self, message)
    }

    fn refused(self, refused: &studyspot_outbound::Refused) -> ChannelError {
        ChannelError::permanent(self, studyspot_outbound::TARGET_NOT_ALLOWED, refused)
    }

    /// A 2xx the crate cannot read is transient: the provider may have taken the message, and a
    /// retry with the same idempotency key is the safe way to find out.
    fn unreadable(self, status: StatusCode, err: serde_json::Error, body: &[u8]) -> ChannelError {
        ChannelError::transient(
            self,
            format!("unreadable HTTP {} response: {err}: {}", status.as_u16(), snippet(body)),
        )
    }

    fn is_transient(err: &ChannelError) -> bool {
        err.is_transient()
    }

    fn retrying(self, operation: &'static str, err: &ChannelError, delay: Duration) {
        tracing::warn!(
            channel = self.as_str(),
            operation,
            error = %err,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "transient delivery failure, retrying"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_statuses() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(ChannelName::is_transient_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [200, 201, 301, 400, 401, 404, 409, 410, 422] {
            assert!(!ChannelName::is_transient_status(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }
}
