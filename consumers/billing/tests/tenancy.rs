//! Tenancy inside billing: two organizations on one billing process, whose staff name the same
//! member id and the same ids. A reference to the other organization's record is refused exactly
//! as if it did not exist, an id taken in one organization never blocks or duplicates the same id
//! in the other, and a rebuild from the log gives the same projection.

use std::time::Duration;

use serde_json::{Value, json};
use studyspot_schemas::billing;
use studyspot_test_world::{World, stop};
use studyspot_tokens::{Claims, Role, mint};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

mod support;

use support::{Api, fixture, stripe_consumer, world};

const TOPICS: [&str; 2] = [billing::COMMANDS.name, billing::CATALOG_COMMANDS.name];

/// What a rebuild cannot reproduce: the provider worker's bookkeeping (see rebuild.rs).
const EXCLUDED: [&str; 9] = [
    "provider_calls.status",
    "provider_calls.connector",
    "provider_calls.provider_payment_id",
    "provider_calls.attempts",
    "provider_calls.reports",
    "provider_calls.last_error",
    "provider_calls.next_attempt_at",
    "provider_calls.first_attempt_at",
    "provider_calls.leased_until",
];

/// A staff client of a second organization, `<world's organization>_b`, on the same gateway.
fn other_organization(world: &World, base: &str, settings: &studyspot_config::Settings) -> (String, Api) {
    let org = format!("{}_b", world.organization_id());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = Claims {
        sub: "user:staff".into(),
        org: Some(org.clone()),
        roles: vec![Role::Staff],
        member_id: None,
        iss: settings.auth.issuer.clone(),
        aud: settings.auth.audience.clone(),
        iat: now,
        exp: now + 3600,
        nbf: None,
        scope: None,
    };
    let token = mint(&settings.auth, &claims).expect("token");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    (org, Api { client, base: base.to_owned(), token })
}

fn applied(what: &str, decided: &Value, log: &str) {
    assert_eq!(decided["status"], "applied", "{what}: {decided}\n{log}");
}

fn refused(what: &str, decided: &Value, code: &str) {
    assert_eq!(decided["status"], "rejected", "{what}: {decided}");
    assert_eq!(decided["rejection"]["code"], code, "{what}: {decided}");
}

/// The subscription's one invoice, once numbered.
async fn numbered_invoice(api: &Api, subscription_id: &str) -> Value {
    let page = api
        .until(
            &format!("/api/subscriptions/{subscription_id}/invoices?limit=10"),
            "a numbered invoice",
            |b| b["items"].as_array().is_some_and(|items| items.len() == 1 && items[0]["number"].is_string()),
        )
        .await;
    page["items"][0].clone()
}

/// A world with a gateway, a billing consumer on a fake Stripe that accepts every charge, staff
/// clients of two organizations (A, the world's, and B), and the same plan id defined in both.
struct Two {
    world: World,
    stripe: MockServer,
    a: Api,
    b: Api,
    consumer: studyspot_test_world::Consumer,
}

async fn two_organizations() -> Two {
    let world = world().await;
    let stripe = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("stripe_payment_intent_succeeded.json")),
        )
        .mount(&stripe)
        .await;
    let (base, settings) = world.gateway_with_settings().await;
    let a = Api::new(&world, base.clone(), &settings, Role::Staff);
    let (_, b) = other_organization(&world, &base, &settings);
    let scheduler_off = [("STUDYSPOT_BILLING__SUBSCRIPTIONS__SCHEDULER_INTERVAL_SECS", "0")];
    let consumer = stripe_consumer(&world, &stripe, &scheduler_off);
    for api in [&a, &b] {
        let (_, plan) = api
            .command_with_id(
                "/api/subscriptions/plans",
                json!({ "plan_id": "plan_basic", "name": "Basic", "tier": "basic", "cycle": "monthly",
                        "price_minor": 3000, "currency": "EUR",
                        "allowances": [{ "metric": "bookings", "included": 10, "overage_unit_minor": 50 }] }),
            )
            .await;
        applied("plan", &plan, &consumer.log());
    }
    Two { world, stripe, a, b, consumer }
}

/// (a) B's staff name A's stored card for a member id that also exists in B: not found, as if it
/// did not exist, and nothing reaches the provider — neither a payment nor a subscription whose
/// renewals would charge it.
#[tokio::test(flavor = "multi_thread")]
async fn staff_of_one_organization_cannot_charge_the_card_another_stored() {
    let Two { world, stripe, a, b, mut consumer } = two_organizations().await;
    let (_, card) = a
        .command_with_id(
            "/api/payments/methods",
            json!({ "payment_method_id": "pm_a", "member_id": "mem_1", "method": "card",
                    "provider_token": "pm_card_visa_of_a" }),
        )
        .await;
    applied("A's card", &card, &consumer.log());

    let (_, stolen) = b
        .command_with_id(
            "/api/payments",
            json!({ "payment_id": "pay_steal", "member_id": "mem_1", "amount_minor": 2000, "currency": "EUR",
                    "method": "card", "payment_method_id": "pm_a" }),
        )
        .await;
    refused("B charging A's card", &stolen, "payment_method_not_found");
    assert_eq!(b.post("/api/payments/pay_steal/process", json!({})).await.0, 404, "nothing to process");
    let (_, sub_on_card) = b
        .command_with_id(
            "/api/subscriptions",
            json!({ "subscription_id": "sub_card", "member_id": "mem_1", "plan_id": "plan_basic",
                    "payment_method_id": "pm_a", "effective_at": "2031-01-01T00:00:00Z" }),
        )
        .await;
    applied("B's subscription naming A's card", &sub_on_card, &consumer.log());
    let invoice = numbered_invoice(&b, "sub_card").await;
    assert_eq!(invoice["status"], "open", "B's invoice waits, nothing was charged: {invoice}");
    let (_, sub) = b.get("/api/subscriptions/sub_card").await;
    assert_eq!(sub["status"], "past_due", "B's subscription has no card to charge: {sub}");
    assert_eq!(b.get("/api/payments/methods/pm_a").await.0, 404, "B does not see A's card");
    // Provider calls are written in the transaction that decides them: none was, so none is made.
    let pool = world.pool().await;
    let calls: i64 = sqlx::query_scalar("SELECT count(*) FROM billing.provider_calls")
        .fetch_one(&pool)
        .await
        .expect("calls");
    assert_eq!(calls, 0, "no provider call was decided");
    pool.close().await;
    assert!(
        stripe.received_requests().await.expect("recorded").is_empty(),
        "nothing of B's reached the provider on A's card"
    );
    stop(&mut consumer);
}

/// (b) B pays an open invoice only A has, for the member id both have: not found, and A's
/// subscription (past due for want of that payment) stays as it was.
#[tokio::test(flavor = "multi_thread")]
async fn paying_anothers_invoice_is_refused_and_leaves_its_subscription_as_it_was() {
    let Two { world: _world, stripe: _stripe, a, b, mut consumer } = two_organizations().await;
    let (_, only_a) = a
        .command_with_id(
            "/api/subscriptions",
            json!({ "subscription_id": "sub_only_a", "member_id": "mem_1", "plan_id": "plan_basic",
                    "effective_at": "2031-01-01T00:00:00Z" }),
        )
        .await;
    applied("sub_only_a", &only_a, &consumer.log());
    let invoice = numbered_invoice(&a, "sub_only_a").await;
    let invoice_id = invoice["invoice_id"].as_str().expect("invoice id").to_owned();
    let (_, before) = a.get("/api/subscriptions/sub_only_a").await;
    assert_eq!(before["status"], "past_due", "{before}");

    let (_, pay_other) = b
        .command_with_id(
            "/api/payments",
            json!({ "payment_id": "pay_other", "member_id": "mem_1", "amount_minor": 3000, "currency": "EUR",
                    "method": "cash", "invoice_id": invoice_id }),
        )
        .await;
    refused("B paying A's invoice", &pay_other, "invoice_not_found");
    // What the gateway resolves itself, within the caller's organization, is not found there.
    for (path, body) in [
        ("/api/payments/pay_other/process".to_owned(), json!({})),
        ("/api/payments/pay_other/confirm".to_owned(), json!({})),
        (format!("/api/payments/invoices/{invoice_id}/status"), json!({ "status": "void" })),
        (format!("/api/payments/invoices/{invoice_id}/payments"), json!({ "method": "cash" })),
        ("/api/subscriptions/sub_only_a/credit-notes".to_owned(), json!({ "amount_minor": 3000 })),
    ] {
        assert_eq!(b.post(&path, body).await.0, 404, "{path}");
    }

    let (_, after) = a.get("/api/subscriptions/sub_only_a").await;
    assert_eq!(after, before, "A's subscription is unchanged");
    let (_, still) = a.get(&format!("/api/payments/invoices/{invoice_id}")).await;
    assert_eq!((still["status"].as_str(), still["amount_paid_minor"].as_i64()), (Some("open"), Some(0)));
    stop(&mut consumer);
}

/// (c) The same subscription, usage and payment ids in both organizations are separate records —
/// so are the renewal invoices derived from them — and each organization numbers its own series;
/// (d) a rebuild from the log gives the same projection.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_ids_in_two_organizations_are_separate_records_and_a_rebuild_gives_the_same() {
    let Two { world, stripe: _stripe, a, b, mut consumer } = two_organizations().await;
    for (api, quantity) in [(&a, 3), (&b, 5)] {
        let (_, card) = api
            .command_with_id(
                "/api/payments/methods",
                json!({ "payment_method_id": "pm_1", "member_id": "mem_1", "method": "cash" }),
            )
            .await;
        applied("pm_1", &card, &consumer.log());
        let (_, sub) = api
            .command_with_id(
                "/api/subscriptions",
                json!({ "subscription_id": "sub_1", "member_id": "mem_1", "plan_id": "plan_basic",
                        "effective_at": "2031-01-01T00:00:00Z" }),
            )
            .await;
        applied("sub_1", &sub, &consumer.log());
        let (_, used) = api
            .command_with_id(
                "/api/subscriptions/usage",
                json!({ "usage_id": "use_1", "subscription_id": "sub_1", "metric": "bookings",
                        "quantity": quantity, "effective_at": "2031-01-01T01:00:00Z" }),
            )
            .await;
        applied("use_1", &used, &consumer.log());
        let (_, paid) = api
            .command_with_id(
                "/api/payments",
                json!({ "payment_id": "pay_1", "member_id": "mem_1", "amount_minor": 100 * quantity,
                        "currency": "EUR", "method": "cash" }),
            )
            .await;
        applied("pay_1", &paid, &consumer.log());
    }
    let (a_invoice, b_invoice) = (numbered_invoice(&a, "sub_1").await, numbered_invoice(&b, "sub_1").await);
    assert_eq!(a_invoice["invoice_id"], b_invoice["invoice_id"], "renewal invoice ids are derived alike");
    assert_eq!(
        (a_invoice["number"].as_str(), b_invoice["number"].as_str()),
        (Some("INV-000001"), Some("INV-000001"))
    );
    for (api, quantity) in [(&a, 3), (&b, 5)] {
        let (status, usage) = api.get("/api/subscriptions/sub_1/usage").await;
        assert_eq!(status, 200, "{usage}");
        assert_eq!(usage["metrics"][0]["used"].as_i64(), Some(quantity), "{usage}");
        let (status, payment) = api.get("/api/payments/pay_1").await;
        assert_eq!((status, payment["amount_minor"].as_i64()), (200, Some(100 * quantity)), "{payment}");
        let path = format!("/api/payments/invoices/{}", a_invoice["invoice_id"].as_str().unwrap_or_default());
        let (status, invoice) = api.get(&path).await;
        assert_eq!((status, invoice["lines"].as_array().map(Vec::len)), (200, Some(1)), "{invoice}");
    }

    world.caught_up("billing", &TOPICS).await;
    assert!(stop(&mut consumer).success(), "{}", consumer.log());
    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into billing_rebuild_1"), "unexpected report: {report}");
    let live = world.checksum("billing", &EXCLUDED).await;
    assert_eq!(world.checksum("billing_rebuild_1", &EXCLUDED).await, live, "rebuild vs live");
    for (table, rows) in [
        ("subscriptions", 2),
        ("usage_records", 2),
        ("usage_counters", 2),
        ("payments", 2),
        ("payment_methods", 2),
        ("invoices", 2),
        ("invoice_lines", 2),
        ("invoice_numbers", 2),
    ] {
        assert!(live.tables.iter().any(|t| t.table == table && t.rows == rows), "{table}: {live:?}");
    }
}
