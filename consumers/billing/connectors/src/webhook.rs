//! What the webhook modules ([`crate::stripe_webhook`], [`crate::razorpay_webhook`]) share.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::types::{ChargeOutcome, ConnectorName, RefundOutcome};

/// A provider's news about one of our payments, from a verified webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderUpdate {
    /// Who sent it.
    pub connector: ConnectorName,
    /// The provider's event id (Stripe `evt_…`), for de-duplication. Razorpay puts its event id
    /// in the `x-razorpay-event-id` header, not the body: `None` here.
    pub event_id: Option<String>,
    /// The provider's event type (`payment_intent.succeeded`, `payment.captured`, …).
    pub event_type: String,
    /// The provider's payment id (Stripe `pi_…`, Razorpay `pay_…`) the event is about.
    pub provider_payment_id: String,
    /// Our payment id, from the metadata / notes the connector stored.
    pub payment_id: Option<String>,
    /// The organization of that payment, from the same metadata / notes: payment ids are unique
    /// only within an organization.
    pub organization_id: Option<String>,
    /// What happened.
    pub outcome: UpdateOutcome,
}

/// What a webhook says happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateOutcome {
    /// The payment's new state.
    Charge(ChargeOutcome),
    /// A refund's new state.
    Refund {
        /// Our refund id, from the refund's metadata / notes.
        refund_id: Option<String>,
        /// The refund's state.
        outcome: RefundOutcome,
    },
    /// Money was refunded on the payment but the event names no refund (Stripe's
    /// `charge.refunded` without the charge's refund list): the payment's refunded total.
    Refunded {
        /// Total refunded so far, in ISO minor units.
        amount_refunded_minor: i64,
        /// The whole payment is refunded.
        fully_refunded: bool,
    },
}

/// Why a webhook was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature header is missing a part or is not in the provider's format.
    #[error("malformed signature header: {0}")]
    MalformedHeader(String),
    /// No signature matches the payload and secret (tampered body, wrong secret).
    #[error("signature does not match the payload")]
    SignatureMismatch,
    /// The signature is valid but its timestamp is outside the tolerance (a replay?).
    #[error("timestamp {timestamp} is more than {tolerance_secs}s away from now ({now})")]
    StaleTimestamp {
        /// The signed timestamp.
        timestamp: i64,
        /// The verifier's clock.
        now: i64,
        /// The allowed distance.
        tolerance_secs: i64,
    },
    /// The body is not the event JSON it should be.
    #[error("invalid event payload: {0}")]
    InvalidPayload(String),
}

/// A fresh HMAC-SHA256 keyed with `secret`.
pub(crate) fn hmac_sha256(secret: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

/// Constant-time check of a hex `signature` against `mac`'s result (via hmac's `verify_slice`).
pub(crate) fn matches_hex(mac: &Hmac<Sha256>, signature: &str) -> bool {
    match hex::decode(signature.trim()) {
        Ok(bytes) => mac.clone().verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

pub(crate) fn invalid(err: impl std::fmt::Display) -> WebhookError {
    WebhookError::InvalidPayload(err.to_string())
}
