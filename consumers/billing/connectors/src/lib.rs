//! Payment provider clients for the billing consumer's provider worker.
//!
//! Four connectors behind one trait, [`PaymentConnector`]: [`StripeConnector`] (async-stripe),
//! [`PayPalConnector`] and [`RazorpayConnector`] (REST over reqwest) and [`ManualConnector`]
//! (cash and bank transfers confirmed by staff). [`connectors`] builds those configured, keyed
//! by [`ConnectorName`]. Every base URL is configurable, so tests (and sandboxes) point them
//! anywhere.
//!
//! Rules every connector keeps:
//! - **Idempotency.** Every provider call carries the request's `idempotency_key` the way the
//!   provider supports it (see each connector's module docs), and retries resend the same key.
//! - **Retries.** Transient failures (timeouts, connection errors, 5xx, 429, 409) are retried
//!   with exponential backoff and jitter, at most [`RetryPolicy::max_attempts`] attempts each
//!   bounded by [`RetryPolicy::timeout_ms`]; what is left is [`ConnectorError::Transient`].
//! - **Declines are answers, not errors**: [`ChargeOutcome::Failed`] with the provider's code.
//! - **Money is integer minor units** (ISO 4217); decimal strings only at the wire ([`money`]).
//!
//! Webhooks are pure functions for the gateway: [`stripe_webhook::verify`] and
//! [`razorpay_webhook::verify`] check signatures and turn events into [`ProviderUpdate`]s.

use std::collections::HashMap;
use std::sync::Arc;

mod config;
mod error;
mod http;
mod manual;
pub mod money;
mod paypal;
mod razorpay;
pub mod razorpay_webhook;
mod stripe;
pub mod stripe_webhook;
mod types;
mod webhook;

pub use async_trait::async_trait;
pub use config::{ConnectorsConfig, PayPalConfig, RazorpayConfig, RetryPolicy, StripeConfig};
pub use error::ConnectorError;
pub use manual::ManualConnector;
pub use paypal::PayPalConnector;
pub use razorpay::RazorpayConnector;
pub use secrecy::{ExposeSecret, SecretString};
pub use stripe::StripeConnector;
pub use types::{
    ChargeOutcome, ChargeRequest, ConnectorName, NextAction, Payer, RefundOutcome, RefundRequest,
    UnknownConnector,
};
pub use webhook::{ProviderUpdate, UpdateOutcome, WebhookError};

/// A payment provider. Object safe (through [`macro@async_trait`]), so the worker holds several as
/// `Arc<dyn PaymentConnector>` in a map keyed by [`ConnectorName`]. Implement it for a fake
/// with `#[studyspot_payment_connectors::async_trait]`.
#[async_trait]
pub trait PaymentConnector: Send + Sync {
    /// Which provider this is.
    fn name(&self) -> ConnectorName;

    /// Takes the money, or starts taking it. Idempotent per `r.idempotency_key`: calling again
    /// with the same request answers about the same payment, never charges twice.
    async fn charge(&self, r: &ChargeRequest) -> Result<ChargeOutcome, ConnectorError>;

    /// Gives (part of) a succeeded payment back. Idempotent per `r.idempotency_key`.
    async fn refund(&self, r: &RefundRequest) -> Result<RefundOutcome, ConnectorError>;

    /// Reconciliation of a payment stuck in processing: the provider's current view, found by
    /// provider id when known, else by our `payment_id` / idempotency key. `None`: the provider
    /// has no such payment (the charge can be retried with the same idempotency key).
    async fn fetch(
        &self,
        r: &ChargeRequest,
        provider_payment_id: Option<&str>,
    ) -> Result<Option<ChargeOutcome>, ConnectorError>;
}

/// The connectors by name.
pub type Connectors = HashMap<ConnectorName, Arc<dyn PaymentConnector>>;

/// Builds every connector `config` configures (and the manual one unless `manual = false`),
/// all with `config.retry`.
pub fn connectors(config: &ConnectorsConfig) -> Result<Connectors, ConnectorError> {
    let mut built: Connectors = HashMap::new();
    if let Some(stripe) = &config.stripe {
        built.insert(ConnectorName::Stripe, Arc::new(StripeConnector::new(stripe, config.retry.clone())?));
    }
    if let Some(paypal) = &config.paypal {
        built.insert(ConnectorName::PayPal, Arc::new(PayPalConnector::new(paypal, config.retry.clone())?));
    }
    if let Some(razorpay) = &config.razorpay {
        built.insert(
            ConnectorName::Razorpay,
            Arc::new(RazorpayConnector::new(razorpay, config.retry.clone())?),
        );
    }
    if config.manual {
        built.insert(ConnectorName::Manual, Arc::new(ManualConnector));
    }
    Ok(built)
}
