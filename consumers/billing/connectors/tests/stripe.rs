//! The Stripe connector against a fake Stripe that checks every request exactly.

mod common;

use std::time::Duration;

use common::{NoHeader, charge_request, fast_retry, form_is, query_is, refund_request, short_timeout};
use serde_json::{Value, json};
use studyspot_payment_connectors::{
    ChargeOutcome, ConnectorError, NextAction, Payer, PaymentConnector, RefundOutcome, RetryPolicy,
    StripeConfig, StripeConnector,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk_test_51Studyspot";

async fn connector(server: &MockServer, retry: RetryPolicy) -> StripeConnector {
    let mut config = StripeConfig::new(KEY);
    config.base_url = format!("{}/", server.uri());
    StripeConnector::new(&config, retry).expect("valid config")
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// A PaymentIntent as Stripe returns it (API 2025+), with `extra` fields replaced.
fn intent(id: &str, status: &str, extra: Value) -> Value {
    merge(
        json!({
            "id": id,
            "object": "payment_intent",
            "amount": 2500,
            "amount_capturable": 0,
            "amount_details": { "tip": {} },
            "amount_received": if status == "succeeded" { 2500 } else { 0 },
            "application": null,
            "application_fee_amount": null,
            "automatic_payment_methods": { "allow_redirects": "never", "enabled": true },
            "canceled_at": null,
            "cancellation_reason": null,
            "capture_method": "automatic_async",
            "client_secret": format!("{id}_secret_abc"),
            "confirmation_method": "automatic",
            "created": 1_767_000_000,
            "currency": "usd",
            "customer": null,
            "description": "Premium plan, March",
            "excluded_payment_method_types": null,
            "last_payment_error": null,
            "latest_charge": null,
            "livemode": false,
            "metadata": { "member_id": "mem_1", "organization_id": "org_1", "payment_id": "pay_1" },
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": "pm_card_visa",
            "payment_method_configuration_details": null,
            "payment_method_options": { "card": { "installments": null, "mandate_options": null, "network": null, "request_three_d_secure": "automatic" } },
            "payment_method_types": ["card"],
            "processing": null,
            "receipt_email": null,
            "review": null,
            "setup_future_usage": null,
            "shipping": null,
            "source": null,
            "statement_descriptor": null,
            "statement_descriptor_suffix": null,
            "status": status,
            "transfer_data": null,
            "transfer_group": null
        }),
        extra,
    )
}

/// The expanded `latest_charge` with its expanded balance transaction (fee 103 cents).
fn charge_with_fee(intent_id: &str) -> Value {
    json!({
        "id": "ch_3Q1",
        "object": "charge",
        "amount": 2500,
        "amount_captured": 2500,
        "amount_refunded": 0,
        "balance_transaction": {
            "id": "txn_3Q1",
            "object": "balance_transaction",
            "amount": 2500,
            "available_on": 1_767_600_000,
            "balance_type": "payments",
            "created": 1_767_000_000,
            "currency": "usd",
            "description": "Premium plan, March",
            "exchange_rate": null,
            "fee": 103,
            "fee_details": [
                { "amount": 103, "application": null, "currency": "usd", "description": "Stripe processing fees", "type": "stripe_fee" }
            ],
            "net": 2397,
            "reporting_category": "charge",
            "source": "ch_3Q1",
            "status": "pending",
            "type": "charge"
        },
        "billing_details": { "address": null, "email": null, "name": null, "phone": null, "tax_id": null },
        "captured": true,
        "created": 1_767_000_000,
        "currency": "usd",
        "customer": null,
        "description": "Premium plan, March",
        "disputed": false,
        "failure_code": null,
        "failure_message": null,
        "livemode": false,
        "metadata": { "member_id": "mem_1", "organization_id": "org_1", "payment_id": "pay_1" },
        "outcome": { "network_status": "approved_by_network", "reason": null, "risk_level": "normal", "risk_score": 32, "seller_message": "Payment complete.", "type": "authorized" },
        "paid": true,
        "payment_intent": intent_id,
        "payment_method": "pm_card_visa",
        "refunded": false,
        "status": "succeeded"
    })
}

fn declined_intent() -> Value {
    intent(
        "pi_declined",
        "requires_payment_method",
        json!({
            "last_payment_error": {
                "charge": "ch_declined",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                "message": "Your card has insufficient funds.",
                "type": "card_error"
            },
            "latest_charge": "ch_declined",
            "payment_method": null
        }),
    )
}

/// The exact form of a confirm-on-create without a return URL.
fn create_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("amount", "2500"),
        ("currency", "usd"),
        ("confirm", "true"),
        ("payment_method", "pm_card_visa"),
        ("description", "Premium plan, March"),
        ("metadata[payment_id]", "pay_1"),
        ("metadata[organization_id]", "org_1"),
        ("metadata[member_id]", "mem_1"),
        ("automatic_payment_methods[enabled]", "true"),
        ("automatic_payment_methods[allow_redirects]", "never"),
        ("expand[0]", "latest_charge.balance_transaction"),
    ]
}

fn card_charge() -> studyspot_payment_connectors::ChargeRequest {
    let mut request = charge_request("card", 2500, "USD");
    request.payment_method_token = Some("pm_card_visa".to_owned());
    request
}

fn create_intent_mock() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("idempotency-key", "idem-0195f0e2-charge-1"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
}

#[tokio::test]
async fn charge_creates_and_confirms_a_payment_intent_and_reads_the_fee() {
    let server = MockServer::start().await;
    create_intent_mock()
        .and(form_is(&create_form()))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent(
            "pi_3Q1",
            "succeeded",
            json!({ "latest_charge": charge_with_fee("pi_3Q1") }),
        )))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = connector(&server, fast_retry()).await.charge(&card_charge()).await.expect("charged");
    assert_eq!(
        outcome,
        ChargeOutcome::Succeeded { provider_payment_id: "pi_3Q1".to_owned(), provider_fee_minor: Some(103) }
    );
}

#[tokio::test]
async fn three_d_secure_answers_requires_action_with_the_redirect_url() {
    let server = MockServer::start().await;
    let mut request = card_charge();
    request.return_url = Some("https://app.studyspot.test/payments/pay_1/return".to_owned());
    request.payer = Some(Payer { provider_customer_id: Some("cus_R1".to_owned()), ..Payer::default() });
    let mut form = create_form();
    form.retain(|(k, _)| !k.starts_with("automatic_payment_methods"));
    form.push(("return_url", "https://app.studyspot.test/payments/pay_1/return"));
    form.push(("customer", "cus_R1"));
    create_intent_mock()
        .and(form_is(&form))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent(
            "pi_3DS",
            "requires_action",
            json!({ "next_action": {
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "return_url": "https://app.studyspot.test/payments/pay_1/return",
                    "url": "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_1&payment_intent=pi_3DS"
                }
            } }),
        )))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = connector(&server, fast_retry()).await.charge(&request).await.expect("answered");
    assert_eq!(
        outcome,
        ChargeOutcome::RequiresAction {
            provider_payment_id: "pi_3DS".to_owned(),
            action: NextAction {
                kind: "redirect".to_owned(),
                url: Some(
                    "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_1&payment_intent=pi_3DS"
                        .to_owned()
                ),
            },
        }
    );
}

#[tokio::test]
async fn a_card_decline_is_a_failed_outcome_with_the_decline_code() {
    let server = MockServer::start().await;
    create_intent_mock()
        .and(form_is(&create_form()))
        .respond_with(ResponseTemplate::new(402).set_body_json(json!({ "error": {
            "charge": "ch_declined",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": "Your card has insufficient funds.",
            "payment_intent": declined_intent(),
            "request_log_url": "https://dashboard.stripe.com/test/logs/req_1",
            "type": "card_error"
        } })))
        .expect(1)
        .mount(&server)
        .await;

    let outcome =
        connector(&server, fast_retry()).await.charge(&card_charge()).await.expect("a decline is an answer");
    assert_eq!(
        outcome,
        ChargeOutcome::Failed {
            provider_payment_id: Some("pi_declined".to_owned()),
            code: "insufficient_funds".to_owned(),
            message: "Your card has insufficient funds.".to_owned(),
        }
    );
}

#[tokio::test]
async fn a_5xx_is_retried_with_the_same_idempotency_key() {
    let server = MockServer::start().await;
    create_intent_mock()
        .and(form_is(&create_form()))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({ "error": {
            "message": "An unknown error occurred", "type": "api_error"
        } })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    create_intent_mock()
        .and(form_is(&create_form()))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent("pi_retry", "processing", json!({}))))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = connector(&server, fast_retry()).await.charge(&card_charge()).await.expect("retried");
    assert_eq!(outcome, ChargeOutcome::Processing { provider_payment_id: "pi_retry".to_owned() });
}

#[tokio::test]
async fn a_provider_slower_than_the_timeout_is_transient_after_max_attempts() {
    let server = MockServer::start().await;
    create_intent_mock()
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(intent("pi_slow", "succeeded", json!({})))
                .set_delay(Duration::from_secs(3)),
        )
        .expect(3)
        .mount(&server)
        .await;

    let err = connector(&server, short_timeout()).await.charge(&card_charge()).await.expect_err("times out");
    assert!(err.is_transient(), "{err}");
    assert!(err.outcome_unknown());
}

#[tokio::test]
async fn a_bad_request_is_rejected_without_retrying() {
    let server = MockServer::start().await;
    create_intent_mock()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({ "error": {
            "code": "resource_missing",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
            "message": "No such PaymentMethod: 'pm_card_visa'",
            "param": "payment_method",
            "type": "invalid_request_error"
        } })))
        .expect(1)
        .mount(&server)
        .await;

    let err = connector(&server, fast_retry()).await.charge(&card_charge()).await.expect_err("rejected");
    match err {
        ConnectorError::Rejected { status: 400, code, message, .. } => {
            assert_eq!(code, "resource_missing");
            assert!(message.contains("No such PaymentMethod"), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_charge_without_a_payment_method_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let err = connector(&server, fast_retry())
        .await
        .charge(&charge_request("card", 2500, "USD"))
        .await
        .expect_err("no token");
    assert!(matches!(err, ConnectorError::InvalidRequest { .. }), "{err:?}");
}

fn refund_mock(form: &[(&str, &str)]) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("idempotency-key", "idem-0195f0e2-refund-1"))
        .and(form_is(form))
}

fn refund_object(id: &str, amount: i64, status: &str) -> Value {
    json!({
        "id": id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": "txn_re",
        "charge": "ch_3Q1",
        "created": 1_767_100_000,
        "currency": "usd",
        "destination_details": null,
        "metadata": { "payment_id": "pay_1", "refund_id": "ref_1" },
        "payment_intent": "pi_3Q1",
        "reason": null,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": status,
        "transfer_reversal": null
    })
}

#[tokio::test]
async fn a_full_refund_posts_to_refunds_with_the_idempotency_key() {
    let server = MockServer::start().await;
    refund_mock(&[
        ("payment_intent", "pi_3Q1"),
        ("amount", "2500"),
        ("metadata[refund_id]", "ref_1"),
        ("metadata[payment_id]", "pay_1"),
        ("reason", "requested_by_customer"),
    ])
    .respond_with(ResponseTemplate::new(200).set_body_json(refund_object("re_full", 2500, "succeeded")))
    .expect(1)
    .mount(&server)
    .await;

    let mut request = refund_request("pi_3Q1", 2500, "USD");
    request.reason = Some("requested_by_customer".to_owned());
    let outcome = connector(&server, fast_retry()).await.refund(&request).await.expect("refunded");
    assert_eq!(outcome, RefundOutcome::Succeeded { provider_refund_id: "re_full".to_owned() });
}

#[tokio::test]
async fn a_partial_refund_sends_the_amount_and_may_be_pending() {
    let server = MockServer::start().await;
    refund_mock(&[
        ("payment_intent", "pi_3Q1"),
        ("amount", "1000"),
        ("metadata[refund_id]", "ref_1"),
        ("metadata[payment_id]", "pay_1"),
    ])
    .respond_with(ResponseTemplate::new(200).set_body_json(refund_object("re_part", 1000, "pending")))
    .expect(1)
    .mount(&server)
    .await;

    let mut request = refund_request("pi_3Q1", 1000, "USD");
    request.reason = Some("seat was out of order".to_owned()); // not one of Stripe's reasons: not sent
    let outcome = connector(&server, fast_retry()).await.refund(&request).await.expect("accepted");
    assert_eq!(outcome, RefundOutcome::Pending { provider_refund_id: "re_part".to_owned() });
}

#[tokio::test]
async fn an_already_refunded_charge_is_a_failed_refund() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({ "error": {
            "code": "charge_already_refunded",
            "message": "Charge ch_3Q1 has already been refunded.",
            "type": "invalid_request_error"
        } })))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = connector(&server, fast_retry())
        .await
        .refund(&refund_request("pi_3Q1", 2500, "USD"))
        .await
        .expect("an answer");
    assert_eq!(
        outcome,
        RefundOutcome::Failed {
            provider_refund_id: None,
            code: "charge_already_refunded".to_owned(),
            message: "Charge ch_3Q1 has already been refunded.".to_owned(),
        }
    );
}

#[tokio::test]
async fn fetch_by_id_retrieves_the_intent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_3Q1"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(NoHeader("idempotency-key"))
        .and(query_is(&[("expand[0]", "latest_charge.balance_transaction")]))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent(
            "pi_3Q1",
            "succeeded",
            json!({ "latest_charge": charge_with_fee("pi_3Q1") }),
        )))
        .expect(1)
        .mount(&server)
        .await;

    let outcome =
        connector(&server, fast_retry()).await.fetch(&card_charge(), Some("pi_3Q1")).await.expect("fetched");
    assert_eq!(
        outcome,
        Some(ChargeOutcome::Succeeded {
            provider_payment_id: "pi_3Q1".to_owned(),
            provider_fee_minor: Some(103)
        })
    );
}

#[tokio::test]
async fn fetch_without_an_id_searches_by_our_payment_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/search"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(query_is(&[
            ("query", "metadata['payment_id']:'pay_1' AND metadata['organization_id']:'org_1'"),
            ("limit", "10"),
            ("expand[0]", "data.latest_charge.balance_transaction"),
        ]))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "search_result",
            "data": [declined_intent()],
            "has_more": false,
            "next_page": null,
            "url": "/v1/payment_intents/search"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = connector(&server, fast_retry()).await.fetch(&card_charge(), None).await.expect("searched");
    assert_eq!(
        outcome,
        Some(ChargeOutcome::Failed {
            provider_payment_id: Some("pi_declined".to_owned()),
            code: "insufficient_funds".to_owned(),
            message: "Your card has insufficient funds.".to_owned(),
        })
    );
}

#[tokio::test]
async fn fetch_of_an_unknown_intent_is_none() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_nope"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({ "error": {
            "code": "resource_missing",
            "message": "No such payment_intent: 'pi_nope'",
            "param": "intent",
            "type": "invalid_request_error"
        } })))
        .expect(1)
        .mount(&server)
        .await;
    let outcome = connector(&server, fast_retry())
        .await
        .fetch(&card_charge(), Some("pi_nope"))
        .await
        .expect("answered");
    assert_eq!(outcome, None);
}
