//! What the reqwest-based connectors (PayPal, Razorpay) and Stripe's retries share with every
//! outbound client (`studyspot_outbound::http`): the connectors' client, which statuses they
//! retry and how a failure becomes a [`ConnectorError`].

use std::time::Duration;

use reqwest::StatusCode;
use studyspot_outbound::http::{Backoff, Family};
pub(crate) use studyspot_outbound::http::{Reply, join, send, snippet, with_retry};

use crate::config::RetryPolicy;
use crate::error::ConnectorError;
use crate::types::ConnectorName;

pub(crate) const USER_AGENT: &str = concat!("studyspot-payment-connectors/", env!("CARGO_PKG_VERSION"));

/// A client whose every request times out after the policy's per-attempt timeout.
pub(crate) fn client(
    connector: ConnectorName,
    policy: &RetryPolicy,
) -> Result<reqwest::Client, ConnectorError> {
    reqwest::Client::builder().timeout(policy.timeout()).user_agent(USER_AGENT).build().map_err(|err| {
        ConnectorError::Config { connector, message: format!("cannot build the HTTP client: {err}") }
    })
}

impl From<&RetryPolicy> for Backoff {
    fn from(policy: &RetryPolicy) -> Self {
        Backoff::millis(policy.max_attempts, policy.base_delay_ms, policy.max_delay_ms)
    }
}

impl Family for ConnectorName {
    type Error = ConnectorError;

    /// Statuses worth retrying with the same idempotency key: 5xx, 429 (rate limited) and 409 (a
    /// request with the same idempotency key is still being processed).
    fn is_transient_status(status: StatusCode) -> bool {
        status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::CONFLICT
    }

    fn transient(self, message: String) -> ConnectorError {
        ConnectorError::transient(self, message)
    }

    fn unbuildable(self, message: String) -> ConnectorError {
        ConnectorError::invalid_request(self, message)
    }

    /// Providers' addresses are not checked by the outbound policy; were one refused, nothing
    /// was sent and the same request would be refused again.
    fn refused(self, refused: &studyspot_outbound::Refused) -> ConnectorError {
        ConnectorError::invalid_request(self, refused.to_string())
    }

    /// The provider may have acted: an unreadable answer is reconciled with `fetch`.
    fn unreadable(self, status: StatusCode, err: serde_json::Error, body: &[u8]) -> ConnectorError {
        ConnectorError::invalid_response(self, format!("HTTP {}: {err}: {}", status.as_u16(), snippet(body)))
    }

    fn is_transient(err: &ConnectorError) -> bool {
        err.is_transient()
    }

    fn retrying(self, operation: &'static str, err: &ConnectorError, delay: Duration) {
        tracing::warn!(
            connector = self.as_str(),
            operation,
            error = %err,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "transient provider failure, retrying"
        );
    }
}
