//! The PayPal connector against a fake PayPal that checks every request exactly.

mod common;

use std::time::Duration;

use common::{NoHeader, basic, charge_request, fast_retry, form_is, refund_request, short_timeout};
use serde_json::{Value, json};
use studyspot_payment_connectors::{
    ChargeOutcome, ChargeRequest, ConnectorError, NextAction, PayPalConfig, PayPalConnector,
    PaymentConnector, RefundOutcome, RetryPolicy,
};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_ID: &str = "AXstudyspotClientId";
const SECRET: &str = "EBstudyspotSecret";
const TOKEN: &str = "A21AAFstudyspotAccessToken";
const ORDER: &str = "5O190127TN364715T";
const CAPTURE: &str = "3C679366HH908993F";

fn connector(server: &MockServer, retry: RetryPolicy) -> PayPalConnector {
    let mut config = PayPalConfig::new(CLIENT_ID, SECRET);
    config.base_url = server.uri();
    PayPalConnector::new(&config, retry).expect("valid config")
}

async fn mount_token(server: &MockServer, times: u64) {
    Mock::given(method("POST"))
        .and(path("/v1/oauth2/token"))
        .and(header("authorization", basic(CLIENT_ID, SECRET).as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(form_is(&[("grant_type", "client_credentials")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "scope": "https://uri.paypal.com/services/payments/payment https://uri.paypal.com/services/payments/refund",
            "access_token": TOKEN,
            "token_type": "Bearer",
            "app_id": "APP-80W284485P519543T",
            "expires_in": 32400,
            "nonce": "2026-11-25T10:00:00ZaBcDeF"
        })))
        .expect(times)
        .mount(server)
        .await;
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn create_order_mock(request_id: &str, body: Value) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/v2/checkout/orders"))
        .and(header("authorization", bearer().as_str()))
        .and(header("paypal-request-id", request_id))
        .and(header("prefer", "return=representation"))
        .and(header("content-type", "application/json"))
        .and(body_json(body))
}

fn order_body(currency: &str, value: &str, payment_source: Option<Value>) -> Value {
    let mut body = json!({
        "intent": "CAPTURE",
        "purchase_units": [{
            "reference_id": "pay_1",
            "custom_id": "pay_1",
            "description": "Premium plan, March",
            "amount": { "currency_code": currency, "value": value }
        }]
    });
    if let Some(source) = payment_source {
        body["payment_source"] = source;
    }
    body
}

fn payer_action_order() -> Value {
    json!({
        "id": ORDER,
        "status": "PAYER_ACTION_REQUIRED",
        "payment_source": { "paypal": {} },
        "links": [
            { "href": format!("https://api-m.paypal.com/v2/checkout/orders/{ORDER}"), "rel": "self", "method": "GET" },
            { "href": format!("https://www.paypal.com/checkoutnow?token={ORDER}"), "rel": "payer-action", "method": "GET" }
        ]
    })
}

fn completed_order(fee: &str) -> Value {
    json!({
        "id": ORDER,
        "status": "COMPLETED",
        "payment_source": { "paypal": { "email_address": "member@example.com", "account_id": "QYR5Z8XDVJNXQ", "account_status": "VERIFIED" } },
        "purchase_units": [{
            "reference_id": "pay_1",
            "payments": { "captures": [{
                "id": CAPTURE,
                "status": "COMPLETED",
                "amount": { "currency_code": "USD", "value": "10.50" },
                "final_capture": true,
                "seller_protection": { "status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"] },
                "seller_receivable_breakdown": {
                    "gross_amount": { "currency_code": "USD", "value": "10.50" },
                    "paypal_fee": { "currency_code": "USD", "value": fee },
                    "net_amount": { "currency_code": "USD", "value": "9.83" }
                },
                "custom_id": "pay_1",
                "links": [
                    { "href": format!("https://api-m.paypal.com/v2/payments/captures/{CAPTURE}"), "rel": "self", "method": "GET" },
                    { "href": format!("https://api-m.paypal.com/v2/payments/captures/{CAPTURE}/refund"), "rel": "refund", "method": "POST" }
                ],
                "create_time": "2026-11-25T10:00:05Z",
                "update_time": "2026-11-25T10:00:05Z"
            }] }
        }],
        "payer": { "name": { "given_name": "Asha", "surname": "Rao" }, "email_address": "member@example.com", "payer_id": "QYR5Z8XDVJNXQ" },
        "links": [{ "href": format!("https://api-m.paypal.com/v2/checkout/orders/{ORDER}"), "rel": "self", "method": "GET" }]
    })
}

fn wallet_charge() -> ChargeRequest {
    charge_request("wallet", 1050, "USD")
}

#[tokio::test]
async fn charge_creates_an_order_the_payer_must_approve_and_caches_the_token() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let mut request = wallet_charge();
    request.return_url = Some("https://app.studyspot.test/payments/pay_1/return".to_owned());
    let source = json!({ "paypal": { "experience_context": {
        "return_url": "https://app.studyspot.test/payments/pay_1/return",
        "cancel_url": "https://app.studyspot.test/payments/pay_1/return",
        "user_action": "PAY_NOW",
        "shipping_preference": "NO_SHIPPING"
    } } });
    create_order_mock("idem-0195f0e2-charge-1", order_body("USD", "10.50", Some(source)))
        .respond_with(ResponseTemplate::new(200).set_body_json(payer_action_order()))
        .expect(2)
        .mount(&server)
        .await;

    let paypal = connector(&server, fast_retry());
    let expected = ChargeOutcome::RequiresAction {
        provider_payment_id: ORDER.to_owned(),
        action: NextAction {
            kind: "redirect".to_owned(),
            url: Some(format!("https://www.paypal.com/checkoutnow?token={ORDER}")),
        },
    };
    assert_eq!(paypal.charge(&request).await.expect("created"), expected);
    // The same request again: the cached token, the same PayPal-Request-Id.
    assert_eq!(paypal.charge(&request).await.expect("replayed"), expected);
}

#[tokio::test]
async fn amounts_use_the_currencys_decimals() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let mut yen = charge_request("wallet", 1500, "JPY");
    yen.idempotency_key = "idem-yen".to_owned();
    create_order_mock("idem-yen", order_body("JPY", "1500", None))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": ORDER,
            "status": "CREATED",
            "links": [
                { "href": format!("https://api-m.paypal.com/v2/checkout/orders/{ORDER}"), "rel": "self", "method": "GET" },
                { "href": format!("https://www.paypal.com/checkoutnow?token={ORDER}"), "rel": "approve", "method": "GET" }
            ]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut dinar = charge_request("wallet", 1234, "KWD");
    dinar.idempotency_key = "idem-kwd".to_owned();
    create_order_mock("idem-kwd", order_body("KWD", "1.234", None))
        .respond_with(ResponseTemplate::new(201).set_body_json(payer_action_order()))
        .expect(1)
        .mount(&server)
        .await;

    let paypal = connector(&server, fast_retry());
    let yen_outcome = paypal.charge(&yen).await.expect("created");
    assert!(
        matches!(yen_outcome, ChargeOutcome::RequiresAction { ref action, .. } if action.kind == "redirect")
    );
    paypal.charge(&dinar).await.expect("created");

    // 10.50 HUF cannot be sent: PayPal takes whole forints. Nothing goes out.
    let forint = charge_request("wallet", 1050, "HUF");
    let err = paypal.charge(&forint).await.expect_err("not expressible");
    assert!(matches!(err, ConnectorError::InvalidRequest { .. }), "{err:?}");
}

#[tokio::test]
async fn a_vaulted_payer_is_charged_at_once_and_the_capture_id_is_kept() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let mut request = wallet_charge();
    request.payment_method_token = Some("8kk8451t".to_owned());
    create_order_mock(
        "idem-0195f0e2-charge-1",
        order_body("USD", "10.50", Some(json!({ "paypal": { "vault_id": "8kk8451t" } }))),
    )
    .respond_with(ResponseTemplate::new(201).set_body_json(completed_order("0.67")))
    .expect(1)
    .mount(&server)
    .await;

    let outcome = connector(&server, fast_retry()).charge(&request).await.expect("charged");
    assert_eq!(
        outcome,
        ChargeOutcome::Succeeded { provider_payment_id: CAPTURE.to_owned(), provider_fee_minor: Some(67) }
    );
}

#[tokio::test]
async fn an_instrument_decline_is_a_failed_outcome() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let mut request = wallet_charge();
    request.payment_method_token = Some("8kk8451t".to_owned());
    create_order_mock(
        "idem-0195f0e2-charge-1",
        order_body("USD", "10.50", Some(json!({ "paypal": { "vault_id": "8kk8451t" } }))),
    )
    .respond_with(ResponseTemplate::new(422).set_body_json(json!({
        "name": "UNPROCESSABLE_ENTITY",
        "details": [{ "issue": "INSTRUMENT_DECLINED", "description": "The instrument presented was either declined by the processor or bank, or it can't be used for this payment." }],
        "message": "The requested action could not be performed, semantically incorrect, or failed business validation.",
        "debug_id": "c9a75b43fc807",
        "links": [{ "href": "https://developer.paypal.com/api/rest/reference/orders/v2/errors/#INSTRUMENT_DECLINED", "rel": "information_link", "method": "GET" }]
    })))
    .expect(1)
    .mount(&server)
    .await;

    match connector(&server, fast_retry()).charge(&request).await.expect("a decline is an answer") {
        ChargeOutcome::Failed { provider_payment_id: None, code, message } => {
            assert_eq!(code, "INSTRUMENT_DECLINED");
            assert!(message.contains("declined by the processor"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_5xx_is_retried_with_the_same_paypal_request_id() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    create_order_mock("idem-0195f0e2-charge-1", order_body("USD", "10.50", None))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "name": "SERVICE_UNAVAILABLE", "message": "Service Unavailable.", "debug_id": "90957fca61718"
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    create_order_mock("idem-0195f0e2-charge-1", order_body("USD", "10.50", None))
        .respond_with(ResponseTemplate::new(201).set_body_json(payer_action_order()))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = connector(&server, fast_retry()).charge(&wallet_charge()).await.expect("retried");
    assert!(
        matches!(outcome, ChargeOutcome::RequiresAction { ref provider_payment_id, .. } if provider_payment_id == ORDER)
    );
}

#[tokio::test]
async fn a_provider_slower_than_the_timeout_is_transient_after_max_attempts() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    create_order_mock("idem-0195f0e2-charge-1", order_body("USD", "10.50", None))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(payer_action_order()).set_delay(Duration::from_secs(3)),
        )
        .expect(3)
        .mount(&server)
        .await;

    let err = connector(&server, short_timeout()).charge(&wallet_charge()).await.expect_err("times out");
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn an_expired_token_is_replaced_once() {
    let server = MockServer::start().await;
    mount_token(&server, 2).await;
    create_order_mock("idem-0195f0e2-charge-1", order_body("USD", "10.50", None))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_token", "error_description": "Token signature verification failed"
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    create_order_mock("idem-0195f0e2-charge-1", order_body("USD", "10.50", None))
        .respond_with(ResponseTemplate::new(201).set_body_json(payer_action_order()))
        .expect(1)
        .mount(&server)
        .await;

    connector(&server, fast_retry()).charge(&wallet_charge()).await.expect("second token works");
}

#[tokio::test]
async fn bad_credentials_are_rejected_without_retrying() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/oauth2/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client", "error_description": "Client Authentication failed"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let err = connector(&server, fast_retry()).charge(&wallet_charge()).await.expect_err("rejected");
    match err {
        ConnectorError::Rejected { status: 401, code, .. } => assert_eq!(code, "invalid_client"),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn fetch_captures_an_approved_order() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/checkout/orders/{ORDER}")))
        .and(header("authorization", bearer().as_str()))
        .and(NoHeader("paypal-request-id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": ORDER,
            "intent": "CAPTURE",
            "status": "APPROVED",
            "purchase_units": [{ "reference_id": "pay_1", "amount": { "currency_code": "USD", "value": "10.50" } }],
            "links": [{ "href": format!("https://api-m.paypal.com/v2/checkout/orders/{ORDER}/capture"), "rel": "capture", "method": "POST" }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v2/checkout/orders/{ORDER}/capture")))
        .and(header("authorization", bearer().as_str()))
        .and(header("paypal-request-id", "idem-0195f0e2-charge-1:capture"))
        .and(header("prefer", "return=representation"))
        .and(body_json(json!({})))
        .respond_with(ResponseTemplate::new(201).set_body_json(completed_order("0.67")))
        .expect(1)
        .mount(&server)
        .await;

    let outcome =
        connector(&server, fast_retry()).fetch(&wallet_charge(), Some(ORDER)).await.expect("fetched");
    assert_eq!(
        outcome,
        Some(ChargeOutcome::Succeeded {
            provider_payment_id: CAPTURE.to_owned(),
            provider_fee_minor: Some(67)
        })
    );
}

#[tokio::test]
async fn fetch_without_an_id_replays_the_create_with_the_same_request_id() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    create_order_mock("idem-0195f0e2-charge-1", order_body("USD", "10.50", None))
        .respond_with(ResponseTemplate::new(200).set_body_json(completed_order("0.67")))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = connector(&server, fast_retry()).fetch(&wallet_charge(), None).await.expect("fetched");
    assert!(
        matches!(outcome, Some(ChargeOutcome::Succeeded { ref provider_payment_id, .. }) if provider_payment_id == CAPTURE)
    );
}

#[tokio::test]
async fn fetch_of_a_capture_id_reads_the_capture() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/checkout/orders/{CAPTURE}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "name": "RESOURCE_NOT_FOUND",
            "details": [{ "issue": "INVALID_RESOURCE_ID", "description": "Specified resource ID does not exist. Please check the resource ID and try again." }],
            "message": "The specified resource does not exist.",
            "debug_id": "f8f7b2c1a0e9d"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/payments/captures/{CAPTURE}")))
        .and(header("authorization", bearer().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": CAPTURE,
            "status": "PENDING",
            "status_details": { "reason": "PENDING_REVIEW" },
            "amount": { "currency_code": "USD", "value": "10.50" },
            "final_capture": true,
            "custom_id": "pay_1",
            "create_time": "2026-11-25T10:00:05Z",
            "update_time": "2026-11-25T10:00:05Z"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let outcome =
        connector(&server, fast_retry()).fetch(&wallet_charge(), Some(CAPTURE)).await.expect("fetched");
    assert_eq!(outcome, Some(ChargeOutcome::Processing { provider_payment_id: CAPTURE.to_owned() }));
}

fn refund_mock(value: &str, note: Option<&str>) -> wiremock::MockBuilder {
    let mut body = json!({ "amount": { "currency_code": "USD", "value": value }, "custom_id": "ref_1" });
    if let Some(note) = note {
        body["note_to_payer"] = json!(note);
    }
    Mock::given(method("POST"))
        .and(path(format!("/v2/payments/captures/{CAPTURE}/refund")))
        .and(header("authorization", bearer().as_str()))
        .and(header("paypal-request-id", "idem-0195f0e2-refund-1"))
        .and(header("prefer", "return=representation"))
        .and(body_json(body))
}

#[tokio::test]
async fn a_full_refund_refunds_the_capture() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    refund_mock("10.50", Some("Plan cancelled"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "1JU08902781691411",
            "amount": { "value": "10.50", "currency_code": "USD" },
            "status": "COMPLETED",
            "note_to_payer": "Plan cancelled",
            "custom_id": "ref_1",
            "seller_payable_breakdown": {
                "gross_amount": { "value": "10.50", "currency_code": "USD" },
                "paypal_fee": { "value": "0.00", "currency_code": "USD" },
                "net_amount": { "value": "10.50", "currency_code": "USD" },
                "total_refunded_amount": { "value": "10.50", "currency_code": "USD" }
            },
            "links": [{ "href": "https://api-m.paypal.com/v2/payments/refunds/1JU08902781691411", "rel": "self", "method": "GET" }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut request = refund_request(CAPTURE, 1050, "USD");
    request.reason = Some("Plan cancelled".to_owned());
    let outcome = connector(&server, fast_retry()).refund(&request).await.expect("refunded");
    assert_eq!(outcome, RefundOutcome::Succeeded { provider_refund_id: "1JU08902781691411".to_owned() });
}

#[tokio::test]
async fn a_partial_refund_may_be_pending() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    refund_mock("4.00", None)
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "2GG279541U471931P",
            "status": "PENDING",
            "status_details": { "reason": "ECHECK" },
            "links": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = connector(&server, fast_retry())
        .refund(&refund_request(CAPTURE, 400, "USD"))
        .await
        .expect("accepted");
    assert_eq!(outcome, RefundOutcome::Pending { provider_refund_id: "2GG279541U471931P".to_owned() });
}

#[tokio::test]
async fn a_refund_paypal_refuses_is_a_failed_refund() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    refund_mock("10.50", None)
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "name": "UNPROCESSABLE_ENTITY",
            "message": "The requested action could not be performed, semantically incorrect, or failed business validation.",
            "debug_id": "bd4a5ec3e1b2c",
            "details": [{ "issue": "CAPTURE_FULLY_REFUNDED", "description": "The capture has already been fully refunded" }]
        })))
        .expect(1)
        .mount(&server)
        .await;
    match connector(&server, fast_retry())
        .refund(&refund_request(CAPTURE, 1050, "USD"))
        .await
        .expect("an answer")
    {
        RefundOutcome::Failed { provider_refund_id: None, code, .. } => {
            assert_eq!(code, "CAPTURE_FULLY_REFUNDED")
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}
