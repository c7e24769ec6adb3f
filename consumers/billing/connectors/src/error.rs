//! The one error type of this crate.

use crate::types::ConnectorName;

/// Why a connector could not give an answer. A provider's *decline* is not an error: it is
/// [`ChargeOutcome::Failed`](crate::ChargeOutcome::Failed).
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Timeout, connection error, 5xx, 429 or a concurrent-request conflict. Retried inside the
    /// connector with backoff up to [`RetryPolicy::max_attempts`](crate::RetryPolicy); this is
    /// what is left after the last attempt. The provider may or may not have acted: retry later
    /// with the **same** idempotency key, or reconcile with `fetch`.
    #[error("{connector}: transient failure: {message}")]
    Transient {
        /// The connector that failed.
        connector: ConnectorName,
        /// What happened.
        message: String,
    },
    /// The provider refused the request itself (a 4xx that is not a decline): bad request,
    /// authentication, unknown id, idempotency key reused with other parameters. Retrying the
    /// same request will not help.
    #[error("{connector}: request rejected ({status} {code}): {message}")]
    Rejected {
        /// The connector that failed.
        connector: ConnectorName,
        /// HTTP status.
        status: u16,
        /// The provider's error code (`invalid_request_error`, `INVALID_REQUEST`, `BAD_REQUEST_ERROR`, …).
        code: String,
        /// The provider's message.
        message: String,
    },
    /// The provider answered with something this crate cannot read. It may have acted on the
    /// request: reconcile with `fetch` before deciding anything.
    #[error("{connector}: unreadable response: {message}")]
    InvalidResponse {
        /// The connector that failed.
        connector: ConnectorName,
        /// What could not be read.
        message: String,
    },
    /// The request cannot be sent to this provider as it is (nothing was sent): an unsupported
    /// method or currency, an amount the provider cannot express, a missing token.
    #[error("{connector}: cannot send this request: {message}")]
    InvalidRequest {
        /// The connector that refused.
        connector: ConnectorName,
        /// Why.
        message: String,
    },
    /// The connector's configuration is unusable (bad base URL, credentials not ASCII).
    #[error("{connector}: configuration error: {message}")]
    Config {
        /// The connector that is misconfigured.
        connector: ConnectorName,
        /// Why.
        message: String,
    },
}

impl ConnectorError {
    /// Worth retrying later with the same idempotency key (timeouts, connection errors, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        matches!(self, ConnectorError::Transient { .. })
    }

    /// The provider may have acted on the request although no outcome came back
    /// ([`Transient`](Self::Transient) or [`InvalidResponse`](Self::InvalidResponse)): do not
    /// treat the payment as failed; retry with the same idempotency key or `fetch` it.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, ConnectorError::Transient { .. } | ConnectorError::InvalidResponse { .. })
    }

    /// The connector the error came from.
    pub fn connector(&self) -> ConnectorName {
        match self {
            ConnectorError::Transient { connector, .. }
            | ConnectorError::Rejected { connector, .. }
            | ConnectorError::InvalidResponse { connector, .. }
            | ConnectorError::InvalidRequest { connector, .. }
            | ConnectorError::Config { connector, .. } => *connector,
        }
    }

    pub(crate) fn transient(connector: ConnectorName, message: impl Into<String>) -> Self {
        ConnectorError::Transient { connector, message: message.into() }
    }

    pub(crate) fn invalid_response(connector: ConnectorName, message: impl Into<String>) -> Self {
        ConnectorError::InvalidResponse { connector, message: message.into() }
    }

    pub(crate) fn invalid_request(connector: ConnectorName, message: impl Into<String>) -> Self {
        ConnectorError::InvalidRequest { connector, message: message.into() }
    }
}
