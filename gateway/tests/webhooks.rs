//! Provider webhooks at the gateway: Razorpay signs a webhook's body but not its
//! `X-Razorpay-Event-Id` header, so a signed body sent again under a new header is the same event
//! (one command), not a new one.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::json;
use sha2::Sha256;
use support::TestGateway;

const SECRET: &str = "a razorpay webhook secret of 32 bytes or more";

#[tokio::test(flavor = "multi_thread")]
async fn a_razorpay_delivery_replayed_under_a_new_event_id_is_the_same_event() {
    let gw = TestGateway::start(|s| s.billing.razorpay.webhook_secret = SECRET.to_owned().into()).await;
    gw.payment("pay_upi", "mem_1", |p| {
        (p.amount_minor, p.currency, p.method, p.status) =
            (49_900, "INR".into(), "upi".into(), "requires_action".into());
        (p.connector, p.provider_payment_id) = (Some("razorpay".into()), Some("pay_Rzp1".into()));
    })
    .await;
    let body = json!({ "entity": "event", "event": "payment.captured", "payload": { "payment": { "entity": {
        "id": "pay_Rzp1", "status": "captured", "notes": { "payment_id": "pay_upi", "organization_id": "org_1" },
        "created_at": 1_767_225_600 } } }, "created_at": 1_767_225_601 })
    .to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    let signature: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();

    let mut answers = Vec::new();
    for event_id in ["evt_first", "evt_replayed_1", "evt_replayed_2"] {
        let request = gw
            .request(Method::POST, "/api/webhooks/razorpay", None)
            .header("x-razorpay-signature", &signature)
            .header("x-razorpay-event-id", event_id)
            .header("content-type", "application/json")
            .body(body.clone());
        let (status, _, answer) = TestGateway::send(request).await;
        assert!(status == 202 || status == 200, "{status}: {answer}");
        answers.push(answer["command_id"].as_str().expect("a command id").to_owned());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "one event, one command: {answers:?}");
    let commands = gw.read_all(studyspot_schemas::billing::COMMANDS.name);
    assert_eq!(commands.len(), 1, "the replays produced nothing more");

    // A body that is not the signed one is refused whatever its header says.
    let tampered = body.replace("captured", "failed");
    let request = gw
        .request(Method::POST, "/api/webhooks/razorpay", None)
        .header("x-razorpay-signature", &signature)
        .header("x-razorpay-event-id", "evt_other")
        .header("content-type", "application/json")
        .body(tampered);
    let (status, _, answer) = TestGateway::send(request).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("invalid_signature")), "{answer}");
}
