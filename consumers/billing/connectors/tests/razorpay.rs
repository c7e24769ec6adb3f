//! The Razorpay connector against a fake Razorpay that checks every request exactly.

mod common;

use std::time::Duration;

use common::{NoHeader, basic, charge_request, fast_retry, query_is, refund_request, short_timeout};
use serde_json::{Value, json};
use studyspot_payment_connectors::{
    ChargeOutcome, ChargeRequest, ConnectorError, NextAction, Payer, PaymentConnector, RazorpayConfig,
    RazorpayConnector, RefundOutcome, RetryPolicy,
};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY_ID: &str = "rzp_test_studyspot";
const KEY_SECRET: &str = "studyspotKeySecret";
const ORDER: &str = "order_IluGWxBm9U8zJ8";
const PAYMENT: &str = "pay_EAm09NKReXi2e0";
const LINK: &str = "upi://pay?pa=studyspot@razorpay&pn=StudySpot&tr=EAm09NKReXi2e0&tn=PaymenttoStudySpot&am=499.00&cu=INR&mc=8299";

fn connector(server: &MockServer, retry: RetryPolicy) -> RazorpayConnector {
    let mut config = RazorpayConfig::new(KEY_ID, KEY_SECRET);
    config.base_url = server.uri();
    RazorpayConnector::new(&config, retry).expect("valid config")
}

fn auth() -> String {
    basic(KEY_ID, KEY_SECRET)
}

fn upi_charge() -> ChargeRequest {
    let mut request = charge_request("upi", 49_900, "INR");
    request.payer = Some(Payer {
        email: Some("asha.rao@example.com".to_owned()),
        phone: Some("+919000090000".to_owned()),
        ip: Some("203.0.113.7".to_owned()),
        user_agent: Some("Mozilla/5.0 (Linux; Android 14)".to_owned()),
        ..Payer::default()
    });
    request
}

fn notes() -> Value {
    json!({
        "payment_id": "pay_1",
        "organization_id": "org_1",
        "member_id": "mem_1",
        "idempotency_key": "idem-0195f0e2-charge-1"
    })
}

/// A payment entity as Razorpay returns it.
fn payment(id: &str, status: &str, extra: Value) -> Value {
    let mut payment = json!({
        "id": id,
        "entity": "payment",
        "amount": 49_900,
        "currency": "INR",
        "status": status,
        "order_id": ORDER,
        "invoice_id": null,
        "international": false,
        "method": "upi",
        "amount_refunded": 0,
        "refund_status": null,
        "captured": status == "captured",
        "description": "Premium plan, March",
        "card_id": null,
        "bank": null,
        "wallet": null,
        "vpa": "asha.rao@okicici",
        "email": "asha.rao@example.com",
        "contact": "+919000090000",
        "notes": notes(),
        "fee": if status == "captured" { json!(1178) } else { Value::Null },
        "tax": if status == "captured" { json!(180) } else { Value::Null },
        "error_code": null,
        "error_description": null,
        "error_source": null,
        "error_step": null,
        "error_reason": null,
        "acquirer_data": { "rrn": "033814379298", "upi_transaction_id": "YBL1a2b3c4d5e6f" },
        "created_at": 1_767_000_100
    });
    if let (Some(payment), Value::Object(extra)) = (payment.as_object_mut(), extra) {
        payment.extend(extra);
    }
    payment
}

fn order(status: &str, payments: Option<Vec<Value>>) -> Value {
    let mut order = json!({
        "id": ORDER,
        "entity": "order",
        "amount": 49_900,
        "amount_paid": if status == "paid" { 49_900 } else { 0 },
        "amount_due": if status == "paid" { 0 } else { 49_900 },
        "currency": "INR",
        "receipt": "pay_1",
        "offer_id": null,
        "status": status,
        "attempts": payments.as_ref().map_or(0, Vec::len),
        "notes": notes(),
        "created_at": 1_767_000_000
    });
    if let Some(items) = payments {
        order["payments"] = json!({ "entity": "collection", "count": items.len(), "items": items });
    }
    order
}

async fn mount_find_order(server: &MockServer, orders: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path("/v1/orders"))
        .and(header("authorization", auth().as_str()))
        .and(query_is(&[("receipt", "pay_1"), ("expand[]", "payments")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "entity": "collection", "count": orders.len(), "items": orders
        })))
        .expect(1)
        .mount(server)
        .await;
}

fn create_order_mock() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/v1/orders"))
        .and(header("authorization", auth().as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({ "amount": 49_900, "currency": "INR", "receipt": "pay_1", "notes": notes() })))
}

fn create_upi_mock() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/v1/payments/create/upi"))
        .and(header("authorization", auth().as_str()))
        .and(body_json(json!({
            "amount": 49_900,
            "currency": "INR",
            "order_id": ORDER,
            "method": "upi",
            "upi": { "flow": "intent" },
            "description": "Premium plan, March",
            "notes": notes(),
            "email": "asha.rao@example.com",
            "contact": "+919000090000",
            "ip": "203.0.113.7",
            "user_agent": "Mozilla/5.0 (Linux; Android 14)"
        })))
}

fn upi_created() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "razorpay_payment_id": PAYMENT, "link": LINK }))
}

#[tokio::test]
async fn a_upi_charge_creates_an_order_then_an_intent_payment() {
    let server = MockServer::start().await;
    mount_find_order(&server, vec![]).await;
    create_order_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(order("created", None)))
        .expect(1)
        .mount(&server)
        .await;
    create_upi_mock().respond_with(upi_created()).expect(1).mount(&server).await;

    let outcome = connector(&server, fast_retry()).charge(&upi_charge()).await.expect("created");
    assert_eq!(
        outcome,
        ChargeOutcome::RequiresAction {
            provider_payment_id: PAYMENT.to_owned(),
            action: NextAction { kind: "upi_intent".to_owned(), url: Some(LINK.to_owned()) },
        }
    );
}

#[tokio::test]
async fn a_desktop_payer_gets_the_link_as_a_qr_code() {
    let server = MockServer::start().await;
    mount_find_order(&server, vec![]).await;
    create_order_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(order("created", None)))
        .expect(1)
        .mount(&server)
        .await;
    create_upi_mock().respond_with(upi_created()).expect(1).mount(&server).await;

    let mut request = upi_charge();
    if let Some(payer) = request.payer.as_mut() {
        payer.scan_qr = true;
    }
    let outcome = connector(&server, fast_retry()).charge(&request).await.expect("created");
    assert!(
        matches!(outcome, ChargeOutcome::RequiresAction { ref action, .. } if action.kind == "upi_qr" && action.url.as_deref() == Some(LINK)),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_repeated_charge_reuses_the_order_found_by_receipt() {
    let server = MockServer::start().await;
    mount_find_order(
        &server,
        vec![order("attempted", Some(vec![payment("pay_Old1", "created", json!({}))]))],
    )
    .await;
    create_order_mock().respond_with(ResponseTemplate::new(500)).expect(0).mount(&server).await;
    create_upi_mock().respond_with(upi_created()).expect(1).mount(&server).await;

    let outcome = connector(&server, fast_retry()).charge(&upi_charge()).await.expect("created");
    assert!(
        matches!(outcome, ChargeOutcome::RequiresAction { ref provider_payment_id, .. } if provider_payment_id == PAYMENT)
    );
}

#[tokio::test]
async fn a_charge_whose_order_is_already_paid_succeeds_without_new_requests() {
    let server = MockServer::start().await;
    mount_find_order(&server, vec![order("paid", Some(vec![payment(PAYMENT, "captured", json!({}))]))]).await;
    create_order_mock().respond_with(ResponseTemplate::new(500)).expect(0).mount(&server).await;
    create_upi_mock().respond_with(ResponseTemplate::new(500)).expect(0).mount(&server).await;

    let outcome = connector(&server, fast_retry()).charge(&upi_charge()).await.expect("already paid");
    assert_eq!(
        outcome,
        ChargeOutcome::Succeeded { provider_payment_id: PAYMENT.to_owned(), provider_fee_minor: Some(1178) }
    );
}

#[tokio::test]
async fn a_5xx_on_order_creation_is_retried() {
    let server = MockServer::start().await;
    mount_find_order(&server, vec![]).await;
    create_order_mock()
        .respond_with(ResponseTemplate::new(502).set_body_json(json!({ "error": {
            "code": "SERVER_ERROR", "description": "The server encountered an error. The incident has been reported to admins.",
            "source": "NA", "step": "NA", "reason": "NA", "metadata": {}
        } })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    create_order_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(order("created", None)))
        .expect(1)
        .mount(&server)
        .await;
    create_upi_mock().respond_with(upi_created()).expect(1).mount(&server).await;

    connector(&server, fast_retry()).charge(&upi_charge()).await.expect("retried");
}

#[tokio::test]
async fn a_provider_slower_than_the_timeout_is_transient_after_max_attempts() {
    let server = MockServer::start().await;
    mount_find_order(&server, vec![]).await;
    create_order_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(order("created", None)))
        .expect(1)
        .mount(&server)
        .await;
    create_upi_mock()
        .respond_with(upi_created().set_delay(Duration::from_secs(3)))
        .expect(3)
        .mount(&server)
        .await;

    let err = connector(&server, short_timeout()).charge(&upi_charge()).await.expect_err("times out");
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn a_bad_request_is_rejected_with_razorpays_reason() {
    let server = MockServer::start().await;
    mount_find_order(&server, vec![]).await;
    create_order_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(order("created", None)))
        .expect(1)
        .mount(&server)
        .await;
    create_upi_mock()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({ "error": {
            "code": "BAD_REQUEST_ERROR",
            "description": "The contact field is invalid.",
            "field": "contact",
            "source": "business",
            "step": "payment_initiation",
            "reason": "input_validation_failed",
            "metadata": {}
        } })))
        .expect(1)
        .mount(&server)
        .await;

    match connector(&server, fast_retry()).charge(&upi_charge()).await.expect_err("rejected") {
        ConnectorError::Rejected { status: 400, code, message, .. } => {
            assert_eq!(code, "input_validation_failed");
            assert_eq!(message, "The contact field is invalid. (field contact)");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn only_upi_in_inr_is_sent() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let razorpay = connector(&server, fast_retry());
    let err = razorpay.charge(&charge_request("card", 49_900, "INR")).await.expect_err("card");
    assert!(matches!(err, ConnectorError::InvalidRequest { .. }), "{err:?}");
    let err = razorpay.charge(&charge_request("upi", 1000, "USD")).await.expect_err("usd");
    assert!(matches!(err, ConnectorError::InvalidRequest { .. }), "{err:?}");
}

fn refund_mock(amount: i64) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path(format!("/v1/payments/{PAYMENT}/refund")))
        .and(header("authorization", auth().as_str()))
        .and(header("x-refund-idempotency", "idem-0195f0e2-refund-1"))
        .and(body_json(json!({
            "amount": amount,
            "speed": "normal",
            "receipt": "ref_1",
            "notes": { "refund_id": "ref_1", "payment_id": "pay_1", "reason": "" }
        })))
}

fn refund_entity(id: &str, amount: i64, status: &str) -> Value {
    json!({
        "id": id,
        "entity": "refund",
        "amount": amount,
        "currency": "INR",
        "payment_id": PAYMENT,
        "notes": { "refund_id": "ref_1", "payment_id": "pay_1", "reason": "" },
        "receipt": "ref_1",
        "acquirer_data": { "arn": null },
        "created_at": 1_767_100_000,
        "batch_id": null,
        "status": status,
        "speed_processed": "normal",
        "speed_requested": "normal"
    })
}

#[tokio::test]
async fn a_full_refund_carries_the_refund_idempotency_header() {
    let server = MockServer::start().await;
    refund_mock(49_900)
        .respond_with(ResponseTemplate::new(200).set_body_json(refund_entity(
            "rfnd_FP8R8EGjGbPkVb",
            49_900,
            "processed",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = connector(&server, fast_retry())
        .refund(&refund_request(PAYMENT, 49_900, "INR"))
        .await
        .expect("refunded");
    assert_eq!(outcome, RefundOutcome::Succeeded { provider_refund_id: "rfnd_FP8R8EGjGbPkVb".to_owned() });
}

#[tokio::test]
async fn a_partial_refund_may_be_pending() {
    let server = MockServer::start().await;
    refund_mock(10_000)
        .respond_with(ResponseTemplate::new(200).set_body_json(refund_entity(
            "rfnd_Part1",
            10_000,
            "pending",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = connector(&server, fast_retry())
        .refund(&refund_request(PAYMENT, 10_000, "INR"))
        .await
        .expect("accepted");
    assert_eq!(outcome, RefundOutcome::Pending { provider_refund_id: "rfnd_Part1".to_owned() });
}

#[tokio::test]
async fn fetch_by_payment_id_reads_the_payment() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v1/payments/{PAYMENT}")))
        .and(header("authorization", auth().as_str()))
        .and(NoHeader("x-refund-idempotency"))
        .respond_with(ResponseTemplate::new(200).set_body_json(payment(
            PAYMENT,
            "failed",
            json!({
                "error_code": "BAD_REQUEST_ERROR",
                "error_description": "Payment was unsuccessful as you may have entered an incorrect UPI PIN.",
                "error_source": "customer",
                "error_step": "payment_authorization",
                "error_reason": "incorrect_pin"
            }),
        )))
        .expect(1)
        .mount(&server)
        .await;
    let outcome =
        connector(&server, fast_retry()).fetch(&upi_charge(), Some(PAYMENT)).await.expect("fetched");
    assert_eq!(
        outcome,
        Some(ChargeOutcome::Failed {
            provider_payment_id: Some(PAYMENT.to_owned()),
            code: "incorrect_pin".to_owned(),
            message: "Payment was unsuccessful as you may have entered an incorrect UPI PIN.".to_owned(),
        })
    );
}

#[tokio::test]
async fn fetch_without_an_id_finds_the_order_by_receipt() {
    let server = MockServer::start().await;
    mount_find_order(
        &server,
        vec![order(
            "paid",
            Some(vec![
                payment(
                    "pay_Failed1",
                    "failed",
                    json!({ "error_reason": "payment_cancelled", "created_at": 1_767_000_050 }),
                ),
                payment(PAYMENT, "captured", json!({})),
            ]),
        )],
    )
    .await;
    let outcome = connector(&server, fast_retry()).fetch(&upi_charge(), None).await.expect("fetched");
    assert_eq!(
        outcome,
        Some(ChargeOutcome::Succeeded {
            provider_payment_id: PAYMENT.to_owned(),
            provider_fee_minor: Some(1178)
        })
    );
}

#[tokio::test]
async fn fetch_of_a_payment_razorpay_never_saw_is_none() {
    let server = MockServer::start().await;
    mount_find_order(&server, vec![]).await;
    let outcome = connector(&server, fast_retry()).fetch(&upi_charge(), None).await.expect("fetched");
    assert_eq!(outcome, None);
}
