//! Payments end to end: the gateway, the real broker and PostgreSQL, a real billing consumer
//! process, and a fake Stripe that checks the exact requests billing's provider worker sends.

use std::time::Duration;

use serde_json::{Value, json};
use studyspot_schemas::billing;
use studyspot_test_world::{eventually, stop};
use studyspot_tokens::Role;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

mod support;

use support::{Api, consumer, fixture, stripe_consumer, world};

#[tokio::test(flavor = "multi_thread")]
async fn a_card_payment_is_charged_once_refunded_in_part_and_an_excess_refund_is_refused() {
    let world = world().await;
    let stripe = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/payment_intents"))
        .and(matchers::header("authorization", "Bearer sk_test_e2e"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("stripe_payment_intent_succeeded.json")),
        )
        .expect(1)
        .mount(&stripe)
        .await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/refunds"))
        .and(matchers::header("authorization", "Bearer sk_test_e2e"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("stripe_refund_succeeded.json")))
        .expect(1)
        .mount(&stripe)
        .await;
    let (base, settings) = world.gateway_with_settings().await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    let mut consumer = stripe_consumer(&world, &stripe, &[]);

    let (_, added) = api
        .command_with_id(
            "/api/payments/methods",
            json!({ "payment_method_id": "pm_1", "member_id": "mem_1", "method": "card",
                    "provider_token": "pm_card_visa", "label": "Visa •••• 4242" }),
        )
        .await;
    assert_eq!(added["status"], "applied", "{added}\n{}", consumer.log());
    let (_, created) = api
        .command_with_id(
            "/api/payments",
            json!({ "payment_id": "pay_1", "member_id": "mem_1", "amount_minor": 2000, "currency": "EUR",
                    "method": "card", "payment_method_id": "pm_1", "description": "Desk, March" }),
        )
        .await;
    assert_eq!(created["status"], "applied", "{created}");

    let (process_id, processing) = api.command_with_id("/api/payments/pay_1/process", json!({})).await;
    assert_eq!(processing["status"], "applied", "{processing}");
    let paid =
        api.until("/api/payments/pay_1", "the payment to succeed", |p| p["status"] == "succeeded").await;
    assert_eq!(paid["connector"], "stripe");
    assert_eq!(paid["provider_payment_id"], "pi_e2e");
    assert_eq!(paid["gateway_fee_minor"], 88, "Stripe's own fee wins over the configured one: {paid}");

    let (_, first) = api
        .command_with_id("/api/payments/pay_1/refunds", json!({ "refund_id": "re_1", "amount_minor": 500 }))
        .await;
    assert_eq!(first["status"], "applied", "{first}");
    let refunded =
        api.until("/api/payments/pay_1", "the partial refund", |p| p["status"] == "partially_refunded").await;
    assert_eq!(
        (refunded["refunded_minor"].as_i64(), refunded["reserved_minor"].as_i64()),
        (Some(500), Some(0))
    );

    let (_, excess) = api
        .command_with_id("/api/payments/pay_1/refunds", json!({ "refund_id": "re_2", "amount_minor": 1600 }))
        .await;
    assert_eq!(excess["status"], "rejected", "{excess}");
    assert_eq!(excess["rejection"]["code"], "refund_exceeds_payment");
    assert!(excess["rejection"]["reason"].as_str().is_some_and(|r| r.contains("1500")), "{excess}");

    let (status, refund) = api.get("/api/payments/refunds/re_1").await;
    assert_eq!(
        (status, refund["status"].as_str(), refund["provider_refund_id"].as_str()),
        (200, Some("succeeded"), Some("re_e2e"))
    );
    assert_eq!(api.get("/api/payments/refunds/re_2").await.0, 404, "a refused refund leaves nothing");

    // Exactly one charge and one refund reached Stripe, each with the idempotency key derived from
    // the command that decided it, and the form billing means.
    let requests = stripe.received_requests().await.expect("recorded");
    let charge: Vec<_> = requests.iter().filter(|r| r.url.path() == "/v1/payment_intents").collect();
    assert_eq!(charge.len(), 1);
    assert_eq!(
        charge[0].headers.get("idempotency-key").and_then(|v| v.to_str().ok()),
        Some(format!("studyspot-{process_id}").as_str())
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&charge[0].body).into_owned().collect();
    for (key, value) in [
        ("amount", "2000"),
        ("currency", "eur"),
        ("confirm", "true"),
        ("payment_method", "pm_card_visa"),
        ("metadata[payment_id]", "pay_1"),
        ("metadata[member_id]", "mem_1"),
    ] {
        assert!(form.contains(&(key.to_owned(), value.to_owned())), "{key}={value} in {form:?}");
    }
    let refund_form: Vec<(String, String)> = requests
        .iter()
        .find(|r| r.url.path() == "/v1/refunds")
        .map(|r| url::form_urlencoded::parse(&r.body).into_owned().collect())
        .expect("a refund request");
    assert!(refund_form.contains(&("amount".into(), "500".into())), "{refund_form:?}");
    assert!(refund_form.contains(&("payment_intent".into(), "pi_e2e".into())), "{refund_form:?}");

    // The dashboard's sums agree with the payments and refunds themselves.
    let (status, dashboard) =
        api.get("/api/payments/analytics/dashboard?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z").await;
    assert_eq!(status, 200, "{dashboard}");
    let eur = &dashboard["totals"][0];
    assert_eq!(eur["currency"], "EUR", "{dashboard}");
    assert_eq!((eur["succeeded"].as_i64(), eur["failed"].as_i64()), (Some(1), Some(0)));
    assert_eq!(eur["revenue_minor"].as_i64(), paid["amount_minor"].as_i64());
    assert_eq!(eur["refunded_minor"].as_i64(), refunded["refunded_minor"].as_i64());
    assert_eq!(eur["gateway_fees_minor"].as_i64(), Some(88));
    assert_eq!(eur["success_rate"].as_f64(), Some(1.0));
    assert_eq!(dashboard["revenue_by_connector"][0]["key"], "stripe");
    assert_eq!(dashboard["revenue_by_method"][0]["amount_minor"].as_i64(), Some(2000));

    // The outbox publishes after the batch commits: read until each awaited event is there.
    let awaited = [
        "studyspot.billing.PaymentSucceeded",
        "studyspot.billing.RefundIssued",
        "studyspot.billing.CommandRejected",
    ];
    let events =
        eventually("the payment's, refund's and rejection's events", Duration::from_secs(30), || async {
            let events = world.read_all(billing::EVENTS.name);
            let there = |name: &str| {
                events.iter().any(|e| e.headers.get(studyspot_bus::headers::RECORD_TYPE) == Some(name))
            };
            awaited.iter().all(|name| there(name)).then_some(events)
        })
        .await;
    let count = |name: &str| {
        events.iter().filter(|e| e.headers.get(studyspot_bus::headers::RECORD_TYPE) == Some(name)).count()
    };
    assert_eq!(count("studyspot.billing.PaymentSucceeded"), 1);
    assert_eq!(count("studyspot.billing.RefundIssued"), 1);
    assert_eq!(count("studyspot.billing.CommandRejected"), 1);
    stop(&mut consumer);
    stripe.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cash_pays_a_numbered_invoice_when_staff_confirm_it() {
    let world = world().await;
    let stripe = MockServer::start().await;
    let (base, settings) = world.gateway_with_settings().await;
    let api = Api::new(&world, base, &settings, Role::Owner);
    let mut consumer = stripe_consumer(&world, &stripe, &[]);

    for n in 1..=2 {
        let (_, invoiced) = api
            .command_with_id(
                "/api/payments/invoices",
                json!({ "invoice_id": format!("inv_{n}"), "member_id": "mem_1", "currency": "EUR",
                        "due_at": "2027-01-15T00:00:00Z",
                        "lines": [{ "description": "Desk, March", "quantity": 1, "unit_amount_minor": 10050,
                                    "tax_rate_bps": 1900, "tax_name": "VAT" }] }),
            )
            .await;
        assert_eq!(invoiced["status"], "applied", "{invoiced}\n{}", consumer.log());
    }
    // Numbered in the organization's series shortly after it is finalized; payable from then on.
    let invoice =
        api.until("/api/payments/invoices/inv_2", "the invoice numbered", |i| i["number"].is_string()).await;
    assert_eq!(invoice["number"], "INV-000002", "numbered per organization in order: {invoice}");
    assert_eq!(
        (invoice["total_minor"].as_i64(), invoice["lines"][0]["tax_minor"].as_i64()),
        (Some(11_960), Some(1910))
    );

    let (_, created) = api
        .command_with_id(
            "/api/payments",
            json!({ "payment_id": "pay_cash", "member_id": "mem_1", "amount_minor": 11_960, "currency": "EUR",
                    "method": "cash", "invoice_id": "inv_2" }),
        )
        .await;
    assert_eq!(created["status"], "applied", "{created}");
    api.command_with_id("/api/payments/pay_cash/process", json!({})).await;
    let waiting = api
        .until("/api/payments/pay_cash", "the cash payment to wait for staff", |p| {
            p["status"] == "requires_action"
        })
        .await;
    assert_eq!(
        (waiting["action_kind"].as_str(), waiting["connector"].as_str()),
        (Some("staff_confirmation"), Some("manual"))
    );

    let (_, confirmed) =
        api.command_with_id("/api/payments/pay_cash/confirm", json!({ "reference": "receipt 7" })).await;
    assert_eq!(confirmed["status"], "applied", "{confirmed}");
    let (_, paid) = api.get("/api/payments/invoices/inv_2").await;
    assert_eq!(
        (paid["status"].as_str(), paid["amount_paid_minor"].as_i64()),
        (Some("paid"), Some(11_960)),
        "{paid}"
    );

    let (_, again) = api.command_with_id("/api/payments/pay_cash/confirm", json!({})).await;
    assert_eq!(again["rejection"]["code"], "not_awaiting_confirmation", "{again}");
    let (_, void) =
        api.command_with_id("/api/payments/invoices/inv_2/status", json!({ "status": "void" })).await;
    assert_eq!(void["rejection"]["code"], "invalid_invoice_transition", "a paid invoice stays paid: {void}");
    assert!(stripe.received_requests().await.expect("recorded").is_empty(), "cash never reaches a provider");
    stop(&mut consumer);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_card_fails_with_the_providers_code_and_a_new_attempt_survives_an_outage() {
    let world = world().await;
    let stripe = MockServer::start().await;
    let mut declined = fixture("stripe_payment_intent_succeeded.json");
    declined["id"] = json!("pi_declined");
    declined["status"] = json!("requires_payment_method");
    declined["amount_received"] = json!(0);
    declined["latest_charge"] = Value::Null;
    let charge = || {
        Mock::given(matchers::method("POST"))
            .and(matchers::path("/v1/payment_intents"))
            .and(matchers::header("authorization", "Bearer sk_test_e2e"))
    };
    charge()
        .respond_with(ResponseTemplate::new(402).set_body_json(json!({ "error": {
            "charge": "ch_declined", "code": "card_declined", "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.", "payment_intent": declined, "type": "card_error"
        } })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stripe)
        .await;
    charge()
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({ "error": {
            "message": "An unknown error occurred", "type": "api_error"
        } })))
        .up_to_n_times(2)
        .with_priority(2)
        .mount(&stripe)
        .await;
    charge()
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("stripe_payment_intent_succeeded.json")),
        )
        .with_priority(3)
        .mount(&stripe)
        .await;
    let (base, settings) = world.gateway_with_settings().await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    // One try per round, so the outage reaches the worker, which backs off and tries again.
    let mut consumer =
        stripe_consumer(&world, &stripe, &[("STUDYSPOT_BILLING__PROVIDER__MAX_ATTEMPTS", "1")]);

    api.command_with_id(
        "/api/payments/methods",
        json!({ "payment_method_id": "pm_2", "member_id": "mem_2", "method": "card", "provider_token": "pm_card_visa" }),
    )
    .await;
    let (_, created) = api
        .command_with_id(
            "/api/payments",
            json!({ "payment_id": "pay_2", "member_id": "mem_2", "amount_minor": 2000, "currency": "EUR",
                    "method": "card", "payment_method_id": "pm_2" }),
        )
        .await;
    assert_eq!(created["status"], "applied", "{created}\n{}", consumer.log());
    let (first_id, _) = api.command_with_id("/api/payments/pay_2/process", json!({})).await;
    let failed = api.until("/api/payments/pay_2", "the decline", |p| p["status"] == "failed").await;
    assert_eq!(failed["failure_code"], "insufficient_funds", "{failed}");
    assert_eq!(failed["gateway_fee_minor"], 0);

    let (second_id, again) = api.command_with_id("/api/payments/pay_2/process", json!({})).await;
    assert_eq!(again["status"], "applied", "a failed payment may be tried again: {again}");
    let paid = api.until("/api/payments/pay_2", "the second attempt", |p| p["status"] == "succeeded").await;
    assert_eq!(paid["attempts"], 2, "{paid}");

    let keys: Vec<String> = stripe
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter_map(|r| r.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned))
        .collect();
    let first_key = format!("studyspot-{first_id}");
    let second_key = format!("studyspot-{second_id}");
    assert_eq!(
        keys,
        [first_key.as_str(), second_key.as_str(), second_key.as_str(), second_key.as_str()],
        "the decline once; the new attempt through the outage always with its own same key"
    );
    // The outbox publishes after the batch commits: read until the failure's event is there.
    let events = eventually("the failure announced", Duration::from_secs(30), || async {
        let events = world.read_all(billing::EVENTS.name);
        let failed = |e: &studyspot_bus::InboundMessage| {
            e.headers.get(studyspot_bus::headers::RECORD_TYPE) == Some("studyspot.billing.PaymentFailed")
        };
        events.iter().any(failed).then_some(events)
    })
    .await;
    let failures: Vec<_> = events
        .iter()
        .filter(|e| {
            e.headers.get(studyspot_bus::headers::RECORD_TYPE) == Some("studyspot.billing.PaymentFailed")
        })
        .collect();
    assert_eq!(failures.len(), 1);
    stop(&mut consumer);
}

/// Stripe's `Stripe-Signature` for `payload` at `timestamp`.
fn stripe_signature(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_webhook_makes_billing_ask_stripe_at_once_about_a_payment_waiting_for_3d_secure() {
    let world = world().await;
    let stripe = MockServer::start().await;
    let mut waiting = fixture("stripe_payment_intent_succeeded.json");
    waiting["status"] = json!("requires_action");
    waiting["latest_charge"] = Value::Null;
    waiting["next_action"] = json!({ "type": "redirect_to_url",
        "redirect_to_url": { "return_url": "https://app.example/back", "url": "https://hooks.stripe.com/3ds/pi_e2e" } });
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(waiting))
        .expect(1)
        .mount(&stripe)
        .await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/v1/payment_intents/pi_e2e"))
        .and(matchers::header("authorization", "Bearer sk_test_e2e"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("stripe_payment_intent_succeeded.json")),
        )
        .expect(1)
        .mount(&stripe)
        .await;
    let (base, settings) =
        world.gateway_configured(|s| s.billing.stripe.webhook_secret = "whsec_e2e".to_owned().into()).await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    // Without the webhook billing would ask again only in an hour.
    let mut consumer =
        stripe_consumer(&world, &stripe, &[("STUDYSPOT_BILLING__PROVIDER__AWAITING_POLL_SECS", "3600")]);
    api.command_with_id(
        "/api/payments/methods",
        json!({ "payment_method_id": "pm_3", "member_id": "mem_3", "method": "card", "provider_token": "pm_card_visa" }),
    )
    .await;
    api.command_with_id(
        "/api/payments",
        json!({ "payment_id": "pay_3", "member_id": "mem_3", "amount_minor": 2000, "currency": "EUR",
                "method": "card", "payment_method_id": "pm_3" }),
    )
    .await;
    api.command_with_id("/api/payments/pay_3/process", json!({ "return_url": "https://app.example/back" }))
        .await;
    let action = api
        .until("/api/payments/pay_3", "3-D Secure to be asked for", |p| p["status"] == "requires_action")
        .await;
    assert_eq!(action["action_url"], "https://hooks.stripe.com/3ds/pi_e2e", "{action}\n{}", consumer.log());

    let event = json!({ "id": "evt_e2e", "object": "event", "type": "payment_intent.succeeded",
        "api_version": "2025-03-31.basil", "created": 1_767_000_000, "livemode": false, "pending_webhooks": 1,
        "data": { "object": fixture("stripe_payment_intent_succeeded.json") } });
    let mut object = event;
    object["data"]["object"]["metadata"] = json!({ "payment_id": "pay_3" });
    let payload = serde_json::to_vec(&object).expect("json");
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let post = |signature: String| {
        api.client
            .post(format!("{}/api/webhooks/stripe", api.base))
            .header("stripe-signature", signature)
            .header("content-type", "application/json")
            .body(payload.clone())
            .send()
    };
    let forged = post(stripe_signature("whsec_wrong", now, &payload)).await.expect("request");
    assert_eq!(forged.status(), 401, "a wrong signature is refused");
    let stale = post(stripe_signature("whsec_e2e", now - 3600, &payload)).await.expect("request");
    assert_eq!(stale.status(), 401, "an old signature is refused");
    let accepted = post(stripe_signature("whsec_e2e", now, &payload)).await.expect("request");
    assert_eq!(accepted.status(), 202);
    let again = post(stripe_signature("whsec_e2e", now, &payload)).await.expect("request");
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.as_bytes()), Some(&b"true"[..]));

    let paid =
        api.until("/api/payments/pay_3", "the payment to succeed", |p| p["status"] == "succeeded").await;
    assert_eq!(paid["gateway_fee_minor"], 88, "{paid}");
    let notified = world
        .read_all(billing::COMMANDS.name)
        .into_iter()
        .filter(|c| {
            c.headers.get(studyspot_bus::headers::RECORD_TYPE) == Some("studyspot.billing.ProviderNotified")
        })
        .count();
    assert_eq!(notified, 1, "a redelivered webhook produces nothing new");
    stop(&mut consumer);
    stripe.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upi_goes_to_razorpay_as_an_intent_with_what_razorpay_requires_of_the_payer() {
    let world = world().await;
    let stripe = MockServer::start().await;
    let razorpay = MockServer::start().await;
    let auth = "Basic cnpwX3Rlc3RfZTJlOnNlY3JldF9lMmU="; // rzp_test_e2e:secret_e2e
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/v1/orders"))
        .and(matchers::header("authorization", auth))
        .and(matchers::query_param("receipt", "pay_upi"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "entity": "collection", "count": 0, "items": [] })),
        )
        .expect(1)
        .mount(&razorpay)
        .await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/orders"))
        .and(matchers::header("authorization", auth))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "order_e2e", "entity": "order", "amount": 49_900, "amount_paid": 0, "amount_due": 49_900,
            "currency": "INR", "receipt": "pay_upi", "offer_id": null, "status": "created", "attempts": 0,
            "notes": {}, "created_at": 1_767_000_000 })))
        .expect(1)
        .mount(&razorpay)
        .await;
    let link = "upi://pay?pa=studyspot@razorpay&pn=StudySpot&tr=pay_e2e&am=499.00&cu=INR";
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/payments/create/upi"))
        .and(matchers::header("authorization", auth))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "razorpay_payment_id": "pay_Rzp1", "link": link })),
        )
        .expect(1)
        .mount(&razorpay)
        .await;
    // The gateway behind our proxies (this test's loopback client stands in for one, a load
    // balancer at 127.0.0.5 for the other): the payer is the hop before them.
    let (base, settings) =
        world.gateway_configured(|s| s.gateway.trusted_proxies = vec!["127.0.0.0/8".into()]).await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    let razorpay_url = razorpay.uri();
    let mut consumer = consumer(
        &world,
        &[
            ("STUDYSPOT_BILLING__RAZORPAY__BASE_URL", razorpay_url.as_str()),
            ("STUDYSPOT_BILLING__RAZORPAY__KEY_ID", "rzp_test_e2e"),
            ("STUDYSPOT_BILLING__RAZORPAY__KEY_SECRET", "secret_e2e"),
            ("STUDYSPOT_BILLING__PROVIDER__AWAITING_POLL_SECS", "3600"),
        ],
    );
    api.command_with_id(
        "/api/payments",
        json!({ "payment_id": "pay_upi", "member_id": "mem_4", "amount_minor": 49_900, "currency": "INR",
                "method": "upi", "description": "Desk, March" }),
    )
    .await;
    let (status, accepted) = {
        let response = api
            .client
            .post(format!("{}/api/payments/pay_upi/process", api.base))
            .bearer_auth(&api.token)
            .header("x-forwarded-for", "203.0.113.7, 127.0.0.5")
            .header("user-agent", "Mozilla/5.0 (Linux; Android 14)")
            .json(&json!({ "payer_email": "asha.rao@example.com", "payer_phone": "+919000090000" }))
            .send()
            .await
            .expect("request");
        (response.status().as_u16(), response.json::<Value>().await.expect("body"))
    };
    assert_eq!(status, 202, "{accepted}");
    let waiting =
        api.until("/api/payments/pay_upi", "the UPI intent", |p| p["status"] == "requires_action").await;
    assert_eq!(
        (waiting["connector"].as_str(), waiting["action_kind"].as_str(), waiting["action_url"].as_str()),
        (Some("razorpay"), Some("upi_intent"), Some(link)),
        "{waiting}\n{}",
        consumer.log()
    );
    let requests = razorpay.received_requests().await.expect("recorded");
    let upi: Value = requests
        .iter()
        .find(|r| r.url.path() == "/v1/payments/create/upi")
        .map(|r| serde_json::from_slice(&r.body).expect("json body"))
        .expect("a UPI payment request");
    assert_eq!(upi["order_id"], "order_e2e");
    assert_eq!(upi["upi"], json!({ "flow": "intent" }), "UPI collect is never used");
    assert_eq!(
        (upi["email"].as_str(), upi["contact"].as_str(), upi["ip"].as_str(), upi["user_agent"].as_str()),
        (
            Some("asha.rao@example.com"),
            Some("+919000090000"),
            Some("203.0.113.7"),
            Some("Mozilla/5.0 (Linux; Android 14)")
        )
    );
    assert_eq!(upi["notes"]["payment_id"], "pay_upi");
    assert!(stripe.received_requests().await.expect("recorded").is_empty(), "UPI is routed to Razorpay only");
    stop(&mut consumer);
    razorpay.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refund_stripe_leaves_pending_settles_when_its_signed_event_arrives() {
    let world = world().await;
    let stripe = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("stripe_payment_intent_succeeded.json")),
        )
        .expect(1)
        .mount(&stripe)
        .await;
    let mut pending = fixture("stripe_refund_succeeded.json");
    pending["status"] = json!("pending");
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(200).set_body_json(pending))
        .expect(1)
        .mount(&stripe)
        .await;
    let (base, settings) =
        world.gateway_configured(|s| s.billing.stripe.webhook_secret = "whsec_e2e".to_owned().into()).await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    let mut consumer = stripe_consumer(&world, &stripe, &[]);
    api.command_with_id(
        "/api/payments/methods",
        json!({ "payment_method_id": "pm_5", "member_id": "mem_5", "method": "card", "provider_token": "pm_card_visa" }),
    )
    .await;
    api.command_with_id(
        "/api/payments",
        json!({ "payment_id": "pay_5", "member_id": "mem_5", "amount_minor": 2000, "currency": "EUR",
                "method": "card", "payment_method_id": "pm_5" }),
    )
    .await;
    api.command_with_id("/api/payments/pay_5/process", json!({})).await;
    api.until("/api/payments/pay_5", "the charge", |p| p["status"] == "succeeded").await;
    api.command_with_id("/api/payments/pay_5/refunds", json!({ "refund_id": "re_p", "amount_minor": 500 }))
        .await;
    let reported = api
        .until("/api/payments/refunds/re_p", "the pending refund", |r| r["provider_refund_id"] == "re_e2e")
        .await;
    assert_eq!(reported["status"], "pending", "{reported}\n{}", consumer.log());
    let (_, held) = api.get("/api/payments/pay_5").await;
    assert_eq!((held["reserved_minor"].as_i64(), held["refunded_minor"].as_i64()), (Some(500), Some(0)));

    let mut refund = fixture("stripe_refund_succeeded.json");
    refund["metadata"] = json!({ "refund_id": "re_p", "payment_id": "pay_5" });
    let event = json!({ "id": "evt_refund", "object": "event", "type": "refund.updated",
        "api_version": "2025-03-31.basil", "created": 1_767_000_000, "livemode": false, "pending_webhooks": 1,
        "data": { "object": refund } });
    let payload = serde_json::to_vec(&event).expect("json");
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let response = api
        .client
        .post(format!("{}/api/webhooks/stripe", api.base))
        .header("stripe-signature", stripe_signature("whsec_e2e", now, &payload))
        .header("content-type", "application/json")
        .body(payload)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 202);
    let settled = api
        .until("/api/payments/pay_5", "the refund to settle", |p| p["status"] == "partially_refunded")
        .await;
    assert_eq!(
        (settled["reserved_minor"].as_i64(), settled["refunded_minor"].as_i64()),
        (Some(0), Some(500))
    );
    let (_, refund) = api.get("/api/payments/refunds/re_p").await;
    assert_eq!(refund["status"], "succeeded");
    stop(&mut consumer);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_charge_whose_answers_were_lost_is_reconciled_from_stripe_once_stale_never_charged_twice() {
    let world = world().await;
    let stripe = MockServer::start().await;
    // Stripe took the money, but every answer to the charge is lost (a 503 after the fact).
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({ "error": {
            "message": "An unknown error occurred", "type": "api_error" } })))
        .mount(&stripe)
        .await;
    let mut found = fixture("stripe_payment_intent_succeeded.json");
    found["metadata"] = json!({ "payment_id": "pay_6" });
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/v1/payment_intents/search"))
        .and(matchers::query_param(
            "query",
            format!(
                "metadata['payment_id']:'pay_6' AND metadata['organization_id']:'{}'",
                world.organization_id()
            ),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "search_result", "data": [found], "has_more": false, "next_page": null,
            "url": "/v1/payment_intents/search" })))
        .expect(1)
        .mount(&stripe)
        .await;
    let (base, settings) = world.gateway_with_settings().await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    let mut consumer = stripe_consumer(
        &world,
        &stripe,
        &[
            ("STUDYSPOT_BILLING__PROVIDER__MAX_ATTEMPTS", "1"),
            ("STUDYSPOT_BILLING__PROVIDER__RETRY_BASE_MS", "300"),
            ("STUDYSPOT_BILLING__PROVIDER__RETRY_MAX_MS", "300"),
            ("STUDYSPOT_BILLING__PROVIDER__STALE_AFTER_SECS", "1"),
        ],
    );
    api.command_with_id(
        "/api/payments/methods",
        json!({ "payment_method_id": "pm_6", "member_id": "mem_6", "method": "card", "provider_token": "pm_card_visa" }),
    )
    .await;
    api.command_with_id(
        "/api/payments",
        json!({ "payment_id": "pay_6", "member_id": "mem_6", "amount_minor": 2000, "currency": "EUR",
                "method": "card", "payment_method_id": "pm_6" }),
    )
    .await;
    let (process_id, _) = api.command_with_id("/api/payments/pay_6/process", json!({})).await;
    let paid = api.until("/api/payments/pay_6", "reconciliation", |p| p["status"] == "succeeded").await;
    assert_eq!(paid["provider_payment_id"], "pi_e2e", "{paid}\n{}", consumer.log());

    let posts: Vec<String> = stripe
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| r.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned())
        .collect();
    assert!(posts.len() >= 2, "the charge was retried before it went stale: {posts:?}");
    assert!(posts.iter().all(|k| *k == format!("studyspot-{process_id}")), "always the same key: {posts:?}");
    stop(&mut consumer);
    stripe.verify().await;
}
