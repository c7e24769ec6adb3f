//! Razorpay webhooks: the `X-Razorpay-Signature` check and the events billing cares about.
//!
//! The signature is HMAC-SHA256(raw body, webhook secret) in hex. Razorpay signs no timestamp and
//! not its `x-razorpay-event-id` header, so the gateway knows a delivery by its (signed) body.
//!
//! Events turned into a [`ProviderUpdate`]: `payment.captured`, `payment.failed`,
//! `payment.authorized`; `refund.processed`, `refund.failed`, `refund.created`. Others verify
//! fine and parse to `None`.

use hmac::Mac;
use serde::Deserialize;
use serde_json::Value;

use crate::razorpay::{Payment, Refund, outcome_of_payment, refund_outcome};
use crate::types::ConnectorName;
use crate::webhook::{ProviderUpdate, UpdateOutcome, WebhookError, hmac_sha256, invalid, matches_hex};

/// Checks the signature, then parses the event. `Ok(None)`: a genuine event billing ignores.
pub fn verify(
    payload: &[u8],
    x_razorpay_signature: &str,
    secret: &str,
) -> Result<Option<ProviderUpdate>, WebhookError> {
    verify_signature(payload, x_razorpay_signature, secret)?;
    parse(payload)
}

/// Only the signature check.
pub fn verify_signature(
    payload: &[u8],
    x_razorpay_signature: &str,
    secret: &str,
) -> Result<(), WebhookError> {
    if x_razorpay_signature.trim().is_empty() {
        return Err(WebhookError::MalformedHeader("empty X-Razorpay-Signature".to_owned()));
    }
    let mut mac = hmac_sha256(secret.as_bytes());
    mac.update(payload);
    if matches_hex(&mac, x_razorpay_signature) { Ok(()) } else { Err(WebhookError::SignatureMismatch) }
}

#[derive(Deserialize)]
struct Event {
    event: String,
    #[serde(default)]
    payload: Payload,
}

#[derive(Default, Deserialize)]
struct Payload {
    #[serde(default)]
    payment: Option<Wrapped<Payment>>,
    #[serde(default)]
    refund: Option<Wrapped<Refund>>,
}

#[derive(Deserialize)]
struct Wrapped<T> {
    entity: T,
}

fn note(notes: &Value, key: &str) -> Option<String> {
    notes.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Parses a (verified) event body.
pub fn parse(payload: &[u8]) -> Result<Option<ProviderUpdate>, WebhookError> {
    let event: Event = serde_json::from_slice(payload).map_err(invalid)?;
    let kind = event.event.clone();
    // Our ids as the connector stored them in the notes (the refund's, else its payment's).
    let update = |provider_payment_id: String, notes: &[&Value], outcome: UpdateOutcome| {
        let echoed = |key| notes.iter().find_map(|n| note(n, key));
        ProviderUpdate {
            connector: ConnectorName::Razorpay,
            event_id: None,
            event_type: kind.clone(),
            provider_payment_id,
            payment_id: echoed("payment_id"),
            organization_id: echoed("organization_id"),
            outcome,
        }
    };
    match event.event.as_str() {
        "payment.captured" | "payment.failed" | "payment.authorized" => {
            let payment = event
                .payload
                .payment
                .ok_or_else(|| invalid(format!("{} without payload.payment", event.event)))?
                .entity;
            let outcome = outcome_of_payment(&payment);
            Ok(Some(update(payment.id.clone(), &[&payment.notes], UpdateOutcome::Charge(outcome))))
        }
        "refund.processed" | "refund.failed" | "refund.created" => {
            let refund = event
                .payload
                .refund
                .ok_or_else(|| invalid(format!("{} without payload.refund", event.event)))?
                .entity;
            let payment = event.payload.payment.map(|p| p.entity);
            let provider_payment_id = refund
                .payment_id
                .clone()
                .or_else(|| payment.as_ref().map(|p| p.id.clone()))
                .ok_or_else(|| invalid(format!("refund {} names no payment", refund.id)))?;
            let outcome = UpdateOutcome::Refund {
                refund_id: note(&refund.notes, "refund_id"),
                outcome: refund_outcome(refund.id.clone(), refund.status.as_deref()),
            };
            let notes: Vec<&Value> =
                std::iter::once(&refund.notes).chain(payment.as_ref().map(|p| &p.notes)).collect();
            Ok(Some(update(provider_payment_id, &notes, outcome)))
        }
        _ => Ok(None),
    }
}
