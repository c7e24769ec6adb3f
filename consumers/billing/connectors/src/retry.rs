//! Bounded retries of transient failures, with `backon`'s exponential backoff and jitter.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::config::RetryPolicy;
use crate::error::ConnectorError;
use crate::types::ConnectorName;

/// Runs `call` until it succeeds, fails with a non-transient error, or `policy.max_attempts`
/// attempts were made. Every attempt must send the same request (same idempotency key): the
/// closure is called again, it does not build a new request identity.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    connector: ConnectorName,
    operation: &'static str,
    call: F,
) -> Result<T, ConnectorError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ConnectorError>>,
{
    let retries = usize::try_from(policy.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(policy.base_delay_ms))
        .with_max_delay(Duration::from_millis(policy.max_delay_ms.max(policy.base_delay_ms)))
        .with_factor(2.0)
        .with_max_times(retries)
        .with_jitter();
    call.retry(backoff)
        .sleep(tokio::time::sleep)
        .when(ConnectorError::is_transient)
        .notify(|err: &ConnectorError, delay: Duration| {
            tracing::warn!(
                connector = connector.as_str(),
                operation,
                error = %err,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "transient provider failure, retrying"
            );
        })
        .await
}
