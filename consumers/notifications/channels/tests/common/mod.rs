//! Helpers shared by the channel tests: messages, a fast retry policy, exact-form matchers and
//! the test world's SMTP sink.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use base64::Engine as _;
use studyspot_notification_channels::{Message, RetryPolicy};
use wiremock::{Match, Request};

/// Retries quickly so tests stay fast: 3 attempts, 1–5 ms backoff, 2 s per attempt.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, timeout_ms: 2_000, base_backoff_ms: 1, max_backoff_ms: 5 }
}

/// [`fast_retry`] with a single attempt.
pub fn no_retry() -> RetryPolicy {
    RetryPolicy { max_attempts: 1, ..fast_retry() }
}

pub const IDEMPOTENCY_KEY: &str = "ntf_0195f0e2-7a4b:asha:email";

/// A message with the idempotency key, `to`, and a text body.
pub fn message(to: &str, body: &str) -> Message {
    Message {
        idempotency_key: IDEMPOTENCY_KEY.to_owned(),
        to: to.to_owned(),
        body: body.to_owned(),
        ..Message::default()
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// The body, form-decoded, is exactly these pairs (in any order).
pub struct FormIs(pub Vec<(String, String)>);

pub fn form_is(pairs: &[(&str, &str)]) -> FormIs {
    FormIs(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
}

/// The body, form-decoded.
pub fn form_of(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

impl Match for FormIs {
    fn matches(&self, request: &Request) -> bool {
        let mut got = form_of(request);
        let mut want = self.0.clone();
        got.sort();
        want.sort();
        if got != want {
            eprintln!(
                "form body mismatch on {} {}:\n  got  {got:?}\n  want {want:?}",
                request.method, request.url
            );
        }
        got == want
    }
}

/// The request has no header `name`.
pub struct NoHeader(pub &'static str);

impl Match for NoHeader {
    fn matches(&self, request: &Request) -> bool {
        !request.headers.contains_key(self.0)
    }
}

pub use studyspot_test_world::smtp::{Captured, SmtpSink};
