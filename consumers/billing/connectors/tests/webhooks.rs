//! Webhook signatures and event parsing, Stripe and Razorpay.

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use studyspot_payment_connectors::{
    ChargeOutcome, ConnectorName, NextAction, ProviderUpdate, RefundOutcome, UpdateOutcome, WebhookError,
    razorpay_webhook, stripe_webhook,
};

const STRIPE_SECRET: &str = "whsec_test_studyspot";
const RAZORPAY_SECRET: &str = "razorpay_webhook_secret";
const NOW: i64 = 1_767_000_000;

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

fn stripe_header(payload: &[u8], secret: &str, t: i64) -> String {
    format!("t={t},v1={}", hmac_hex(secret, &[t.to_string().as_bytes(), b".", payload]))
}

fn stripe_event(kind: &str, object: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "evt_3Q1",
        "object": "event",
        "api_version": "2025-10-29.clover",
        "created": NOW,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": "req_1", "idempotency_key": "idem-0195f0e2-charge-1" },
        "type": kind
    }))
    .expect("serializes")
}

fn succeeded_intent() -> Vec<u8> {
    stripe_event(
        "payment_intent.succeeded",
        json!({
            "id": "pi_3Q1", "object": "payment_intent", "amount": 2500, "currency": "usd", "status": "succeeded",
            "latest_charge": "ch_3Q1",
            "metadata": { "payment_id": "pay_1", "organization_id": "org_1", "member_id": "mem_1" }
        }),
    )
}

#[test]
fn stripe_valid_signature_yields_the_update() {
    let payload = succeeded_intent();
    let update = stripe_webhook::verify(
        &payload,
        &stripe_header(&payload, STRIPE_SECRET, NOW),
        STRIPE_SECRET,
        NOW,
        300,
    )
    .expect("valid")
    .expect("an event billing cares about");
    assert_eq!(
        update,
        ProviderUpdate {
            connector: ConnectorName::Stripe,
            event_id: Some("evt_3Q1".to_owned()),
            event_type: "payment_intent.succeeded".to_owned(),
            provider_payment_id: "pi_3Q1".to_owned(),
            payment_id: Some("pay_1".to_owned()),
            organization_id: Some("org_1".to_owned()),
            outcome: UpdateOutcome::Charge(ChargeOutcome::Succeeded {
                provider_payment_id: "pi_3Q1".to_owned(),
                provider_fee_minor: None,
            }),
        }
    );
}

#[test]
fn stripe_accepts_any_matching_v1_while_secrets_roll() {
    let payload = succeeded_intent();
    let old = hmac_hex("whsec_old", &[NOW.to_string().as_bytes(), b".", &payload]);
    let new = hmac_hex(STRIPE_SECRET, &[NOW.to_string().as_bytes(), b".", &payload]);
    let header = format!(
        "t={NOW},v1={old},v1={new},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    );
    assert!(stripe_webhook::verify(&payload, &header, STRIPE_SECRET, NOW, 300).is_ok());
}

#[test]
fn stripe_rejects_a_tampered_body() {
    let payload = succeeded_intent();
    let header = stripe_header(&payload, STRIPE_SECRET, NOW);
    let tampered = String::from_utf8(payload).expect("utf-8").replace("\"amount\":2500", "\"amount\":1");
    assert_eq!(
        stripe_webhook::verify(tampered.as_bytes(), &header, STRIPE_SECRET, NOW, 300),
        Err(WebhookError::SignatureMismatch)
    );
}

#[test]
fn stripe_rejects_the_wrong_secret() {
    let payload = succeeded_intent();
    let header = stripe_header(&payload, "whsec_someone_else", NOW);
    assert_eq!(
        stripe_webhook::verify(&payload, &header, STRIPE_SECRET, NOW, 300),
        Err(WebhookError::SignatureMismatch)
    );
}

#[test]
fn stripe_rejects_a_stale_timestamp() {
    let payload = succeeded_intent();
    let header = stripe_header(&payload, STRIPE_SECRET, NOW - 301);
    assert_eq!(
        stripe_webhook::verify(&payload, &header, STRIPE_SECRET, NOW, 300),
        Err(WebhookError::StaleTimestamp { timestamp: NOW - 301, now: NOW, tolerance_secs: 300 })
    );
    let header = stripe_header(&payload, STRIPE_SECRET, NOW - 300);
    assert!(stripe_webhook::verify(&payload, &header, STRIPE_SECRET, NOW, 300).is_ok(), "at the edge");
}

#[test]
fn stripe_rejects_malformed_headers() {
    let payload = succeeded_intent();
    for header in ["", "v1=abc", &format!("t={NOW}"), "t=soon,v1=abc", &format!("t={NOW},v1=zz")] {
        let result = stripe_webhook::verify(&payload, header, STRIPE_SECRET, NOW, 300);
        assert!(
            matches!(result, Err(WebhookError::MalformedHeader(_) | WebhookError::SignatureMismatch)),
            "{header:?}: {result:?}"
        );
    }
}

fn parse_stripe(payload: &[u8]) -> ProviderUpdate {
    stripe_webhook::verify(payload, &stripe_header(payload, STRIPE_SECRET, NOW), STRIPE_SECRET, NOW, 300)
        .expect("valid")
        .expect("an event billing cares about")
}

#[test]
fn stripe_payment_failed_carries_the_decline_code() {
    let update = parse_stripe(&stripe_event(
        "payment_intent.payment_failed",
        json!({
            "id": "pi_declined", "object": "payment_intent", "status": "requires_payment_method",
            "metadata": { "payment_id": "pay_1" },
            "last_payment_error": { "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds.", "type": "card_error" }
        }),
    ));
    assert_eq!(
        update.outcome,
        UpdateOutcome::Charge(ChargeOutcome::Failed {
            provider_payment_id: Some("pi_declined".to_owned()),
            code: "insufficient_funds".to_owned(),
            message: "Your card has insufficient funds.".to_owned(),
        })
    );
}

#[test]
fn stripe_requires_action_carries_the_redirect() {
    let update = parse_stripe(&stripe_event(
        "payment_intent.requires_action",
        json!({
            "id": "pi_3DS", "object": "payment_intent", "status": "requires_action", "metadata": {},
            "next_action": { "type": "redirect_to_url", "redirect_to_url": { "url": "https://hooks.stripe.com/3ds", "return_url": "https://app.test/r" } }
        }),
    ));
    assert_eq!(update.payment_id, None);
    assert_eq!(
        update.outcome,
        UpdateOutcome::Charge(ChargeOutcome::RequiresAction {
            provider_payment_id: "pi_3DS".to_owned(),
            action: NextAction {
                kind: "redirect".to_owned(),
                url: Some("https://hooks.stripe.com/3ds".to_owned())
            },
        })
    );
}

#[test]
fn stripe_charge_refunded_names_the_refund_or_the_total() {
    let with_list = parse_stripe(&stripe_event(
        "charge.refunded",
        json!({
            "id": "ch_3Q1", "object": "charge", "amount": 2500, "amount_refunded": 1000, "refunded": false,
            "currency": "usd", "payment_intent": "pi_3Q1", "metadata": { "payment_id": "pay_1" },
            "refunds": { "object": "list", "data": [
                { "id": "re_old", "object": "refund", "amount": 500, "status": "succeeded", "created": NOW - 100, "metadata": { "refund_id": "ref_0" } },
                { "id": "re_new", "object": "refund", "amount": 500, "status": "succeeded", "created": NOW, "metadata": { "refund_id": "ref_1" } }
            ], "has_more": false }
        }),
    ));
    assert_eq!(with_list.provider_payment_id, "pi_3Q1");
    assert_eq!(with_list.payment_id.as_deref(), Some("pay_1"));
    assert_eq!(
        with_list.outcome,
        UpdateOutcome::Refund {
            refund_id: Some("ref_1".to_owned()),
            outcome: RefundOutcome::Succeeded { provider_refund_id: "re_new".to_owned() },
        }
    );

    let without_list = parse_stripe(&stripe_event(
        "charge.refunded",
        json!({
            "id": "ch_3Q1", "object": "charge", "amount": 2500, "amount_refunded": 2500, "refunded": true,
            "currency": "usd", "payment_intent": "pi_3Q1", "metadata": {}
        }),
    ));
    assert_eq!(
        without_list.outcome,
        UpdateOutcome::Refunded { amount_refunded_minor: 2500, fully_refunded: true }
    );
}

#[test]
fn stripe_events_billing_ignores_parse_to_none() {
    let payload = stripe_event("customer.created", json!({ "id": "cus_1", "object": "customer" }));
    let result = stripe_webhook::verify(
        &payload,
        &stripe_header(&payload, STRIPE_SECRET, NOW),
        STRIPE_SECRET,
        NOW,
        300,
    );
    assert_eq!(result, Ok(None));
}

fn razorpay_payment_event(event: &str, status: &str, extra: serde_json::Value) -> Vec<u8> {
    let mut payment = json!({
        "id": "pay_EAm09NKReXi2e0", "entity": "payment", "amount": 49_900, "currency": "INR", "status": status,
        "order_id": "order_IluGWxBm9U8zJ8", "method": "upi", "captured": status == "captured",
        "vpa": "asha.rao@okicici", "email": "asha.rao@example.com", "contact": "+919000090000",
        "notes": { "payment_id": "pay_1", "organization_id": "org_1", "member_id": "mem_1" },
        "fee": 1178, "tax": 180,
        "error_code": null, "error_description": null, "error_source": null, "error_step": null, "error_reason": null,
        "acquirer_data": { "rrn": "033814379298" }, "created_at": NOW
    });
    if let (Some(payment), serde_json::Value::Object(extra)) = (payment.as_object_mut(), extra) {
        payment.extend(extra);
    }
    serde_json::to_vec(&json!({
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": event,
        "contains": ["payment"],
        "payload": { "payment": { "entity": payment } },
        "created_at": NOW
    }))
    .expect("serializes")
}

#[test]
fn razorpay_valid_signature_yields_the_update() {
    let payload = razorpay_payment_event("payment.captured", "captured", json!({}));
    let signature = hmac_hex(RAZORPAY_SECRET, &[&payload]);
    let update =
        razorpay_webhook::verify(&payload, &signature, RAZORPAY_SECRET).expect("valid").expect("relevant");
    assert_eq!(
        update,
        ProviderUpdate {
            connector: ConnectorName::Razorpay,
            event_id: None,
            event_type: "payment.captured".to_owned(),
            provider_payment_id: "pay_EAm09NKReXi2e0".to_owned(),
            payment_id: Some("pay_1".to_owned()),
            organization_id: Some("org_1".to_owned()),
            outcome: UpdateOutcome::Charge(ChargeOutcome::Succeeded {
                provider_payment_id: "pay_EAm09NKReXi2e0".to_owned(),
                provider_fee_minor: Some(1178),
            }),
        }
    );
}

#[test]
fn razorpay_rejects_a_tampered_body_a_wrong_secret_and_no_signature() {
    let payload = razorpay_payment_event("payment.captured", "captured", json!({}));
    let signature = hmac_hex(RAZORPAY_SECRET, &[&payload]);
    let mut tampered = payload.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        razorpay_webhook::verify(&tampered, &signature, RAZORPAY_SECRET),
        Err(WebhookError::SignatureMismatch)
    );
    let wrong = hmac_hex("not_the_secret", &[&payload]);
    assert_eq!(
        razorpay_webhook::verify(&payload, &wrong, RAZORPAY_SECRET),
        Err(WebhookError::SignatureMismatch)
    );
    assert!(matches!(
        razorpay_webhook::verify(&payload, "", RAZORPAY_SECRET),
        Err(WebhookError::MalformedHeader(_))
    ));
}

#[test]
fn razorpay_payment_failed_carries_the_reason() {
    let payload = razorpay_payment_event(
        "payment.failed",
        "failed",
        json!({ "fee": null, "tax": null, "error_code": "BAD_REQUEST_ERROR", "error_description": "Payment was cancelled by the customer.", "error_reason": "payment_cancelled" }),
    );
    let update = razorpay_webhook::verify(&payload, &hmac_hex(RAZORPAY_SECRET, &[&payload]), RAZORPAY_SECRET)
        .expect("valid")
        .expect("relevant");
    assert_eq!(
        update.outcome,
        UpdateOutcome::Charge(ChargeOutcome::Failed {
            provider_payment_id: Some("pay_EAm09NKReXi2e0".to_owned()),
            code: "payment_cancelled".to_owned(),
            message: "Payment was cancelled by the customer.".to_owned(),
        })
    );
}

#[test]
fn razorpay_refund_processed_names_our_refund() {
    let payload = serde_json::to_vec(&json!({
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": "refund.processed",
        "contains": ["refund", "payment"],
        "payload": {
            "refund": { "entity": {
                "id": "rfnd_FP8R8EGjGbPkVb", "entity": "refund", "amount": 10_000, "currency": "INR",
                "payment_id": "pay_EAm09NKReXi2e0", "notes": { "refund_id": "ref_1", "payment_id": "pay_1" },
                "receipt": "ref_1", "acquirer_data": { "arn": "10000000000000" }, "created_at": NOW,
                "batch_id": null, "status": "processed", "speed_processed": "normal", "speed_requested": "normal"
            } },
            "payment": { "entity": { "id": "pay_EAm09NKReXi2e0", "entity": "payment", "status": "captured", "notes": [] } }
        },
        "created_at": NOW
    }))
    .expect("serializes");
    let update = razorpay_webhook::verify(&payload, &hmac_hex(RAZORPAY_SECRET, &[&payload]), RAZORPAY_SECRET)
        .expect("valid")
        .expect("relevant");
    assert_eq!(update.provider_payment_id, "pay_EAm09NKReXi2e0");
    assert_eq!(update.payment_id.as_deref(), Some("pay_1"));
    assert_eq!(
        update.outcome,
        UpdateOutcome::Refund {
            refund_id: Some("ref_1".to_owned()),
            outcome: RefundOutcome::Succeeded { provider_refund_id: "rfnd_FP8R8EGjGbPkVb".to_owned() },
        }
    );
}

#[test]
fn razorpay_events_billing_ignores_parse_to_none() {
    let payload = serde_json::to_vec(&json!({
        "entity": "event", "account_id": "acc_1", "event": "order.paid", "contains": ["payment", "order"],
        "payload": {}, "created_at": NOW
    }))
    .expect("serializes");
    assert_eq!(
        razorpay_webhook::verify(&payload, &hmac_hex(RAZORPAY_SECRET, &[&payload]), RAZORPAY_SECRET),
        Ok(None)
    );
}
