//! Stripe webhooks: the `Stripe-Signature` check and the events billing cares about.
//!
//! The header is `t=<unix time>,v1=<hex>[,v1=<hex>…][,v0=…]`; each `v1` is
//! HMAC-SHA256(`"{t}.{raw body}"`, endpoint secret) in hex. Several `v1`s appear while a secret
//! is being rolled; one match is enough. The timestamp must be within `tolerance_secs` of
//! `now_unix` (Stripe's libraries use 300 s), which stops replays of old deliveries.
//!
//! Events turned into a [`ProviderUpdate`]: `payment_intent.succeeded`, `.payment_failed`,
//! `.requires_action`, `.processing`, `.canceled`; `charge.refunded`; `refund.created`,
//! `refund.updated`, `refund.failed`. Others verify fine and parse to `None`.

use std::collections::HashMap;

use hmac::Mac;
use serde::Deserialize;
use serde_json::Value;

use crate::money;
use crate::stripe::refund_outcome;
use crate::types::{ChargeOutcome, ConnectorName, NextAction};
use crate::webhook::{ProviderUpdate, UpdateOutcome, WebhookError, hmac_sha256, invalid, matches_hex};

/// The tolerance Stripe's own libraries use.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Checks the signature, then parses the event. `Ok(None)`: a genuine event billing ignores.
pub fn verify(
    payload: &[u8],
    signature_header: &str,
    secret: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<Option<ProviderUpdate>, WebhookError> {
    verify_signature(payload, signature_header, secret, now_unix, tolerance_secs)?;
    parse(payload)
}

/// Only the signature and timestamp check.
pub fn verify_signature(
    payload: &[u8],
    signature_header: &str,
    secret: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in signature_header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(WebhookError::MalformedHeader(format!("{part:?} is not key=value")));
        };
        match key {
            "t" => {
                let t = value.parse::<i64>().map_err(|_| {
                    WebhookError::MalformedHeader(format!("timestamp {value:?} is not a number"))
                })?;
                if timestamp.replace(t).is_some() {
                    return Err(WebhookError::MalformedHeader("more than one timestamp".to_owned()));
                }
            }
            "v1" => signatures.push(value),
            _ => {} // v0 (test-mode legacy) and future schemes
        }
    }
    let timestamp = timestamp.ok_or_else(|| WebhookError::MalformedHeader("no timestamp (t=)".to_owned()))?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedHeader("no v1 signature".to_owned()));
    }
    let mut mac = hmac_sha256(secret.as_bytes());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    if !signatures.iter().any(|signature| matches_hex(&mac, signature)) {
        return Err(WebhookError::SignatureMismatch);
    }
    if now_unix.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return Err(WebhookError::StaleTimestamp { timestamp, now: now_unix, tolerance_secs });
    }
    Ok(())
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Value,
}

#[derive(Deserialize)]
struct Intent {
    id: String,
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    next_action: Option<IntentNextAction>,
    #[serde(default)]
    last_payment_error: Option<ApiError>,
    #[serde(default)]
    cancellation_reason: Option<String>,
}

#[derive(Deserialize)]
struct IntentNextAction {
    #[serde(default)]
    redirect_to_url: Option<RedirectToUrl>,
}

#[derive(Deserialize)]
struct RedirectToUrl {
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Charge {
    id: String,
    #[serde(default)]
    payment_intent: Option<String>,
    amount_refunded: i64,
    refunded: bool,
    currency: String,
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    refunds: Option<RefundList>,
}

#[derive(Deserialize)]
struct RefundList {
    #[serde(default)]
    data: Vec<Refund>,
}

#[derive(Deserialize)]
struct Refund {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    payment_intent: Option<String>,
    #[serde(default)]
    charge: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
    #[serde(default)]
    failure_reason: Option<String>,
    #[serde(default)]
    created: i64,
}

/// Parses a (verified) event body.
pub fn parse(payload: &[u8]) -> Result<Option<ProviderUpdate>, WebhookError> {
    let event: Event = serde_json::from_slice(payload).map_err(invalid)?;
    // Our ids as the connector stored them in the object's metadata.
    let update = |provider_payment_id: String, metadata: &HashMap<String, String>, outcome: UpdateOutcome| {
        ProviderUpdate {
            connector: ConnectorName::Stripe,
            event_id: Some(event.id.clone()),
            event_type: event.kind.clone(),
            provider_payment_id,
            payment_id: metadata.get("payment_id").cloned(),
            organization_id: metadata.get("organization_id").cloned(),
            outcome,
        }
    };
    let object = event.data.object.clone();
    match event.kind.as_str() {
        "payment_intent.succeeded"
        | "payment_intent.payment_failed"
        | "payment_intent.requires_action"
        | "payment_intent.processing"
        | "payment_intent.canceled" => {
            let intent: Intent = serde_json::from_value(object).map_err(invalid)?;
            let id = intent.id.clone();
            let outcome = match event.kind.as_str() {
                "payment_intent.succeeded" => {
                    ChargeOutcome::Succeeded { provider_payment_id: id.clone(), provider_fee_minor: None }
                }
                "payment_intent.payment_failed" => {
                    let error = intent.last_payment_error.as_ref();
                    ChargeOutcome::Failed {
                        provider_payment_id: Some(id.clone()),
                        code: error
                            .and_then(|e| {
                                e.decline_code.clone().or_else(|| e.code.clone()).or_else(|| e.kind.clone())
                            })
                            .unwrap_or_else(|| "payment_failed".to_owned()),
                        message: error.and_then(|e| e.message.clone()).unwrap_or_default(),
                    }
                }
                "payment_intent.requires_action" => {
                    let url = intent.next_action.and_then(|a| a.redirect_to_url).and_then(|r| r.url);
                    let kind = if url.is_some() { NextAction::REDIRECT } else { NextAction::CLIENT_SDK };
                    ChargeOutcome::RequiresAction {
                        provider_payment_id: id.clone(),
                        action: NextAction::new(kind, url),
                    }
                }
                "payment_intent.canceled" => ChargeOutcome::Failed {
                    provider_payment_id: Some(id.clone()),
                    code: "canceled".to_owned(),
                    message: intent.cancellation_reason.clone().unwrap_or_else(|| "canceled".to_owned()),
                },
                _ => ChargeOutcome::Processing { provider_payment_id: id.clone() },
            };
            Ok(Some(update(id, &intent.metadata, UpdateOutcome::Charge(outcome))))
        }
        "charge.refunded" => {
            let charge: Charge = serde_json::from_value(object).map_err(invalid)?;
            let provider_payment_id = charge.payment_intent.clone().unwrap_or_else(|| charge.id.clone());
            let latest = charge.refunds.and_then(|list| list.data.into_iter().max_by_key(|r| r.created));
            let outcome = match latest {
                Some(refund) => UpdateOutcome::Refund {
                    refund_id: refund.metadata.get("refund_id").cloned(),
                    outcome: refund_outcome(&refund.id, refund.status.as_deref(), refund.failure_reason),
                },
                None => UpdateOutcome::Refunded {
                    amount_refunded_minor: money::from_stripe_amount(
                        charge.amount_refunded,
                        &charge.currency.to_ascii_uppercase(),
                    ),
                    fully_refunded: charge.refunded,
                },
            };
            Ok(Some(update(provider_payment_id, &charge.metadata, outcome)))
        }
        "refund.created" | "refund.updated" | "refund.failed" => {
            let refund: Refund = serde_json::from_value(object).map_err(invalid)?;
            let Some(provider_payment_id) = refund.payment_intent.clone().or_else(|| refund.charge.clone())
            else {
                return Err(invalid(format!("refund {} names no payment", refund.id)));
            };
            let outcome = UpdateOutcome::Refund {
                refund_id: refund.metadata.get("refund_id").cloned(),
                outcome: refund_outcome(&refund.id, refund.status.as_deref(), refund.failure_reason),
            };
            Ok(Some(update(provider_payment_id, &refund.metadata, outcome)))
        }
        _ => Ok(None),
    }
}
