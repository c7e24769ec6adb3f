//! Bounded retries of transient failures, with `backon`'s exponential backoff and jitter.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::config::RetryPolicy;
use crate::error::ChannelError;
use crate::types::ChannelName;

/// Runs `call` until it succeeds, fails with a non-transient error, or `policy.max_attempts`
/// attempts were made. Every attempt must send the same message (same idempotency key): the
/// closure is called again, it does not make a new message.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    channel: ChannelName,
    operation: &'static str,
    call: F,
) -> Result<T, ChannelError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ChannelError>>,
{
    let retries = usize::try_from(policy.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(policy.base_backoff_ms))
        .with_max_delay(Duration::from_millis(policy.max_backoff_ms.max(policy.base_backoff_ms)))
        .with_factor(2.0)
        .with_max_times(retries)
        .with_jitter();
    call.retry(backoff)
        .sleep(tokio::time::sleep)
        .when(ChannelError::is_transient)
        .notify(|err: &ChannelError, delay: Duration| {
            tracing::warn!(
                channel = channel.as_str(),
                operation,
                error = %err,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "transient delivery failure, retrying"
            );
        })
        .await
}
