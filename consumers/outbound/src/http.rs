//! What every reqwest-based outbound client shares (the payment connectors: PayPal, Razorpay;
//! the notification channels: Twilio, FCM, webhooks): sending once and reading the whole answer
//! with transport failures and statuses classified, URL joining, body snippets for messages, and
//! bounded retries of transient failures with `backon`'s exponential backoff and jitter.
//!
//! A family of clients says through [`Family`], implemented on its name type, which statuses it
//! retries and how each failure becomes its own error type; the rules themselves live here once.

use std::{future::Future, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;

use crate::Refused;

/// A family of clients, implemented on the type naming one of them (a connector, a channel):
/// which statuses are worth another attempt and what each failure is in the family's error type.
pub trait Family: Copy {
    /// The family's one error type.
    type Error;

    /// A status worth another attempt with the same idempotency key.
    fn is_transient_status(status: StatusCode) -> bool;

    /// Whether errors may quote what the other side answered (a tenant's endpoint's answer is
    /// never echoed back to tenants).
    fn quotes_body(self) -> bool {
        true
    }

    /// A timeout, a connection failure, a body cut short or a transient status.
    fn transient(self, message: String) -> Self::Error;

    /// The request could not be built (nothing was sent).
    fn unbuildable(self, message: String) -> Self::Error;

    /// The outbound policy refused every address the host resolved to (nothing was sent, and
    /// sending again will not change that).
    fn refused(self, refused: &Refused) -> Self::Error;

    /// An answer whose body is not the JSON expected.
    fn unreadable(self, status: StatusCode, err: serde_json::Error, body: &[u8]) -> Self::Error;

    /// Worth another attempt.
    fn is_transient(err: &Self::Error) -> bool;

    /// Says that `operation` failed with `err` and is tried again in `delay`.
    fn retrying(self, operation: &'static str, err: &Self::Error, delay: Duration);
}

/// `base` (with or without a trailing slash) joined with `path` (with or without a leading one).
pub fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim().trim_end_matches('/'), path.trim_start_matches('/'))
}

/// The first 300 characters of a body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// An answer that is not a transport failure nor a transient status.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON; what the family makes of one it cannot read otherwise.
    pub fn json<T: serde::de::DeserializeOwned, F: Family>(&self, client: F) -> Result<T, F::Error> {
        serde_json::from_slice(&self.body).map_err(|err| client.unreadable(self.status, err, &self.body))
    }
}

/// Sends `request` once and reads the whole body. Transport failures (timeout, connection,
/// body cut short) and the family's transient statuses become its transient error.
pub async fn send<F: Family>(client: F, request: reqwest::RequestBuilder) -> Result<Reply, F::Error> {
    let response = request.send().await.map_err(|err| transport_error(client, &err))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|err| transport_error(client, &err))?.to_vec();
    if F::is_transient_status(status) {
        let quoted = if client.quotes_body() { format!(": {}", snippet(&body)) } else { String::new() };
        return Err(client.transient(format!("HTTP {}{quoted}", status.as_u16())));
    }
    Ok(Reply { status, body })
}

fn transport_error<F: Family>(client: F, err: &reqwest::Error) -> F::Error {
    if let Some(refused) = crate::refusal(err) {
        return client.refused(refused);
    }
    if err.is_builder() {
        return client.unbuildable(format!("cannot build the request: {err}"));
    }
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    client.transient(format!("{what}: {err}"))
}

/// How many attempts, and the delays between them: the first retry after `base_delay`, doubling
/// up to `max_delay` (then jittered).
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The first attempt included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Backoff {
    /// The backoff of `max_attempts` attempts with delays in milliseconds.
    pub fn millis(max_attempts: u32, base_delay_ms: u64, max_delay_ms: u64) -> Self {
        Backoff {
            max_attempts,
            base_delay: Duration::from_millis(base_delay_ms),
            max_delay: Duration::from_millis(max_delay_ms),
        }
    }
}

/// Runs `call` until it succeeds, fails with an error that is not transient, or the backoff's
/// attempts were made. Every attempt must send the same request (same idempotency key): the
/// closure is called again, it does not build a new request identity.
pub async fn with_retry<T, F, C, Fut>(
    backoff: impl Into<Backoff>,
    client: F,
    operation: &'static str,
    call: C,
) -> Result<T, F::Error>
where
    F: Family,
    C: FnMut() -> Fut,
    Fut: Future<Output = Result<T, F::Error>>,
{
    let backoff = backoff.into();
    let retries = usize::try_from(backoff.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    let delays = ExponentialBuilder::default()
        .with_min_delay(backoff.base_delay)
        .with_max_delay(backoff.max_delay.max(backoff.base_delay))
        .with_factor(2.0)
        .with_max_times(retries)
        .with_jitter();
    call.retry(delays)
        .sleep(tokio::time::sleep)
        .when(F::is_transient)
        .notify(|err: &F::Error, delay: Duration| client.retrying(operation, err, delay))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_with_exactly_one_slash() {
        assert_eq!(join("https://api.twilio.com/", "/2010-04-01"), "https://api.twilio.com/2010-04-01");
        assert_eq!(join("https://api.twilio.com", "2010-04-01"), "https://api.twilio.com/2010-04-01");
    }
}
