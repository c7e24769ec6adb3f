//! Helpers shared by the connector tests: requests, a fast retry policy, exact-body matchers.
#![allow(dead_code)] // each test binary uses a different subset

use base64::Engine as _;
use studyspot_payment_connectors::{ChargeRequest, RefundRequest, RetryPolicy};
use wiremock::{Match, Request};

/// Retries quickly so tests stay fast: 3 attempts, 1–5 ms backoff, 2 s per attempt.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy { max_attempts: 3, base_delay_ms: 1, max_delay_ms: 5, timeout_ms: 2_000 }
}

/// [`fast_retry`] with a 200 ms per-attempt timeout, for the timeout tests.
pub fn short_timeout() -> RetryPolicy {
    RetryPolicy { timeout_ms: 200, ..fast_retry() }
}

pub fn charge_request(method: &str, amount_minor: i64, currency: &str) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: "idem-0195f0e2-charge-1".to_owned(),
        payment_id: "pay_1".to_owned(),
        organization_id: "org_1".to_owned(),
        member_id: "mem_1".to_owned(),
        amount_minor,
        currency: currency.to_owned(),
        method: method.to_owned(),
        payment_method_token: None,
        description: Some("Premium plan, March".to_owned()),
        return_url: None,
        payer: None,
    }
}

pub fn refund_request(provider_payment_id: &str, amount_minor: i64, currency: &str) -> RefundRequest {
    RefundRequest {
        idempotency_key: "idem-0195f0e2-refund-1".to_owned(),
        refund_id: "ref_1".to_owned(),
        payment_id: "pay_1".to_owned(),
        provider_payment_id: provider_payment_id.to_owned(),
        amount_minor,
        currency: currency.to_owned(),
        reason: None,
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

fn sorted(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.sort();
    pairs
}

impl Match for FormIs {
    fn matches(&self, request: &Request) -> bool {
        let got: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let (got, want) = (sorted(got), sorted(self.0.clone()));
        if got != want {
            eprintln!(
                "form body mismatch on {} {}:\n  got  {got:?}\n  want {want:?}",
                request.method, request.url
            );
        }
        got == want
    }
}

/// The query string, decoded, is exactly these pairs (in any order).
pub struct QueryIs(pub Vec<(String, String)>);

pub fn query_is(pairs: &[(&str, &str)]) -> QueryIs {
    QueryIs(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
}

impl Match for QueryIs {
    fn matches(&self, request: &Request) -> bool {
        let got: Vec<(String, String)> =
            request.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let (got, want) = (sorted(got), sorted(self.0.clone()));
        if got != want {
            eprintln!(
                "query mismatch on {} {}:\n  got  {got:?}\n  want {want:?}",
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
