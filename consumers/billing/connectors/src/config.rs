//! Configuration of the connectors. Every struct deserializes with serde (the billing consumer
//! reads it from `studyspot.toml` / `STUDYSPOT_*`); secrets are [`SecretString`]s, whose `Debug`
//! prints `[REDACTED]`.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

/// Retries of transient failures (timeouts, connection errors, 5xx, 429): exponential backoff
/// with full jitter, bounded.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per provider call, the first included. Default 4.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each retry (then jittered). Default 200 ms.
    pub base_delay_ms: u64,
    /// Upper bound of one backoff delay. Default 5000 ms.
    pub max_delay_ms: u64,
    /// Time allowed for one HTTP attempt (connect + response + body). Default 10000 ms.
    pub timeout_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 4, base_delay_ms: 200, max_delay_ms: 5_000, timeout_ms: 10_000 }
    }
}

impl RetryPolicy {
    /// The per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

fn default_stripe_url() -> String {
    StripeConfig::DEFAULT_BASE_URL.to_owned()
}
fn default_paypal_url() -> String {
    PayPalConfig::DEFAULT_BASE_URL.to_owned()
}
fn default_razorpay_url() -> String {
    RazorpayConfig::DEFAULT_BASE_URL.to_owned()
}

/// Stripe.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    /// Default `https://api.stripe.com/`. A trailing slash is added when missing (async-stripe
    /// joins `v1/…` to it).
    #[serde(default = "default_stripe_url")]
    pub base_url: String,
    /// The secret API key (`sk_live_…` / `sk_test_…`, or a restricted `rk_…`).
    pub secret_key: SecretString,
    /// The endpoint's signing secret (`whsec_…`) for [`crate::stripe_webhook::verify`].
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
}

impl StripeConfig {
    /// Stripe's production API.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.stripe.com/";

    /// A configuration with the default base URL.
    pub fn new(secret_key: impl Into<String>) -> Self {
        StripeConfig {
            base_url: default_stripe_url(),
            secret_key: SecretString::from(secret_key.into()),
            webhook_secret: None,
        }
    }
}

/// PayPal (REST, Orders v2).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayPalConfig {
    /// Default `https://api-m.paypal.com` (sandbox: `https://api-m.sandbox.paypal.com`).
    #[serde(default = "default_paypal_url")]
    pub base_url: String,
    /// The REST app's client id.
    pub client_id: String,
    /// The REST app's secret.
    pub client_secret: SecretString,
}

impl PayPalConfig {
    /// PayPal's production API.
    pub const DEFAULT_BASE_URL: &'static str = "https://api-m.paypal.com";

    /// A configuration with the default base URL.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        PayPalConfig {
            base_url: default_paypal_url(),
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
        }
    }
}

/// Razorpay.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RazorpayConfig {
    /// Default `https://api.razorpay.com`.
    #[serde(default = "default_razorpay_url")]
    pub base_url: String,
    /// The API key id (`rzp_live_…` / `rzp_test_…`).
    pub key_id: String,
    /// The API key secret.
    pub key_secret: SecretString,
    /// The webhook secret for [`crate::razorpay_webhook::verify`].
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
}

impl RazorpayConfig {
    /// Razorpay's production API (test keys use the same host).
    pub const DEFAULT_BASE_URL: &'static str = "https://api.razorpay.com";

    /// A configuration with the default base URL.
    pub fn new(key_id: impl Into<String>, key_secret: impl Into<String>) -> Self {
        RazorpayConfig {
            base_url: default_razorpay_url(),
            key_id: key_id.into(),
            key_secret: SecretString::from(key_secret.into()),
            webhook_secret: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// All connectors. A provider without a section is not built; `manual` is on unless turned off.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorsConfig {
    /// Stripe, when configured.
    #[serde(default)]
    pub stripe: Option<StripeConfig>,
    /// PayPal, when configured.
    #[serde(default)]
    pub paypal: Option<PayPalConfig>,
    /// Razorpay, when configured.
    #[serde(default)]
    pub razorpay: Option<RazorpayConfig>,
    /// The manual (cash / bank transfer) connector. Default true.
    #[serde(default = "default_true")]
    pub manual: bool,
    /// Retries of every provider call.
    #[serde(default)]
    pub retry: RetryPolicy,
}

impl Default for ConnectorsConfig {
    fn default() -> Self {
        ConnectorsConfig {
            stripe: None,
            paypal: None,
            razorpay: None,
            manual: true,
            retry: RetryPolicy::default(),
        }
    }
}
