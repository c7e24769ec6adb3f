//! A rebuild of billing's projection from history equals the live one. The history, made through
//! the gateway with a real billing process and a fake Stripe, holds plans (one written with an
//! older version of DefinePlan), a payment method, subscriptions billed and paid, a charge the
//! provider refused once and the worker retried, a rejected command, usage delivered twice and a
//! dead letter. Then a rebuild is swapped in under the running process, which goes on in it.

use std::time::Duration;

use serde_json::json;
use studyspot_schemas::{EventMetadata, billing};
use studyspot_test_world::{World, stop};
use studyspot_tokens::Role;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

mod support;

use support::{Api, fixture, stripe_consumer, world};

const TOPICS: [&str; 2] = [billing::COMMANDS.name, billing::CATALOG_COMMANDS.name];

/// Columns a rebuild cannot reproduce, and why: the provider worker's own bookkeeping on each call
/// (leases, attempts, errors, provider ids, status) is written beside consuming, on the wall clock;
/// a rebuild starts no worker, and what the calls came to reaches the projection through the
/// commands the worker reported. Everything else is compared, invoice numbers included: they are
/// handed out in the order of the organization's partition of the catalog command topic.
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

fn legacy_plan(world: &World) -> billing::DefinePlan {
    billing::DefinePlan {
        metadata: EventMetadata {
            event_id: uuid::Uuid::now_v7().to_string(),
            occurred_at: 1_924_992_000_000,
            correlation_id: "legacy-plan".into(),
            causation_id: None,
            organization_id: world.organization_id(),
            actor: "user:test".into(),
        },
        plan_id: "plan_legacy".into(),
        name: "Legacy".into(),
        tier: "basic".into(),
        cycle: "monthly".into(),
        price_minor: 1_500,
        currency: "EUR".into(),
        trial_days: 0,
        tax_rate_bps: 0,
        allowances: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuild_of_billing_equals_the_live_projection_and_is_swapped_in() {
    let world = world().await;
    let stripe = MockServer::start().await;
    // The first charge is refused with a server error (the worker retries it), then all succeed.
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {"message": "try again"}})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stripe)
        .await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("stripe_payment_intent_succeeded.json")),
        )
        .mount(&stripe)
        .await;
    let (base, settings) = world.gateway_with_settings().await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    let scheduler_off = [("STUDYSPOT_BILLING__SUBSCRIPTIONS__SCHEDULER_INTERVAL_SECS", "0")];
    let mut consumer = stripe_consumer(&world, &stripe, &scheduler_off);

    for (path, body) in [
        (
            "/api/subscriptions/plans",
            json!({ "plan_id": "plan_basic", "name": "Basic", "tier": "basic", "cycle": "monthly",
                    "price_minor": 3000, "currency": "EUR",
                    "allowances": [{ "metric": "bookings", "included": 10, "overage_unit_minor": 50 }] }),
        ),
        (
            "/api/payments/methods",
            json!({ "payment_method_id": "pm_a", "member_id": "mem_a", "method": "card",
                    "provider_token": "pm_card_visa" }),
        ),
        (
            "/api/payments/methods",
            json!({ "payment_method_id": "pm_b", "member_id": "mem_b", "method": "card",
                    "provider_token": "pm_card_visa" }),
        ),
    ] {
        let (_, decided) = api.command_with_id(path, body).await;
        assert_eq!(decided["status"], "applied", "{path}: {decided}\n{}", consumer.log());
    }
    // Schema evolution: a plan written before DefinePlan had taxes and allowances.
    world.send_older(&legacy_plan(&world), &["tax_rate_bps", "allowances"]).await;
    for (id, member, plan) in [("sub_a", "mem_a", "plan_basic"), ("sub_b", "mem_b", "plan_legacy")] {
        let (_, created) = api
            .command_with_id(
                "/api/subscriptions",
                json!({ "subscription_id": id, "member_id": member, "plan_id": plan,
                        "effective_at": "2031-01-01T00:00:00Z" }),
            )
            .await;
        assert_eq!(created["status"], "applied", "{created}\n{}", consumer.log());
    }
    let (_, refused) = api
        .command_with_id(
            "/api/subscriptions",
            json!({ "subscription_id": "sub_c", "member_id": "mem_c", "plan_id": "plan_nowhere",
                    "effective_at": "2031-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(refused["status"], "rejected", "{refused}");
    for _ in 0..2 {
        let (_, used) = api
            .command_with_id(
                "/api/subscriptions/usage",
                json!({ "usage_id": "use_jan", "subscription_id": "sub_a", "metric": "bookings",
                        "quantity": 12, "effective_at": "2031-01-10T00:00:00Z" }),
            )
            .await;
        assert_eq!(used["status"], "applied", "{used}");
    }
    world.send_raw(billing::COMMANDS.name, "mem_a", b"not avro at all".to_vec()).await;
    assert_eq!(world.run_billing("2031-02-01T00:00:00Z").await, "applied");
    let mut numbers = Vec::new();
    for id in ["sub_a", "sub_b"] {
        let paid = api
            .until(&format!("/api/subscriptions/{id}/invoices?limit=10"), "two invoices, paid", |b| {
                let items = b["items"].as_array().map_or(&[][..], Vec::as_slice);
                items.len() == 2 && items.iter().all(|i| i["status"] == "paid")
            })
            .await;
        let items = paid["items"].as_array().map_or(&[][..], Vec::as_slice);
        numbers.extend(items.iter().map(|i| i["number"].as_str().unwrap_or_default().to_owned()));
    }
    numbers.sort();
    assert_eq!(numbers, ["INV-000001", "INV-000002", "INV-000003", "INV-000004"], "one series, no gaps");
    let retried = stripe.received_requests().await.unwrap_or_default();
    assert!(retried.len() > 4, "the refused charge was retried: {} calls", retried.len());
    world.caught_up("billing", &TOPICS).await;
    // Compared at rest: the worker reports through the log at any moment.
    assert!(stop(&mut consumer).success(), "{}", consumer.log());

    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into billing_rebuild_1"), "unexpected report: {report}");
    let live = world.checksum("billing", &EXCLUDED).await;
    assert_eq!(world.checksum("billing_rebuild_1", &EXCLUDED).await, live, "rebuild vs live");
    for (table, rows) in
        [("invoices", 4), ("invoice_numbers", 4), ("subscriptions", 2), ("plans", 2), ("provider_calls", 4)]
    {
        assert!(live.tables.iter().any(|t| t.table == table && t.rows == rows), "{table}: {live:?}");
    }

    // Swapped in under the running process (its sidecars too), which then goes on in it.
    let mut consumer = stripe_consumer(&world, &stripe, &scheduler_off);
    let report = world.rebuild(&[], Duration::from_secs(180)).await;
    assert!(report.contains("kept as billing_old_2"), "unexpected report: {report}");
    let (id, plan) = api
        .command_with_id(
            "/api/subscriptions/plans",
            json!({ "plan_id": "plan_after", "name": "After", "tier": "basic", "cycle": "monthly",
                    "price_minor": 100, "currency": "EUR" }),
        )
        .await;
    assert_eq!(plan["status"], "applied", "{plan}\n{}", consumer.log());
    world.caught_up("billing", &TOPICS).await;
    assert!(stop(&mut consumer).success(), "{}", consumer.log());
    let pool = world.pool().await;
    for (schema, want) in [("billing", 1i64), ("billing_old_2", 0)] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {schema}.command_outcomes WHERE command_id = $1"
        )))
        .bind(&id)
        .fetch_one(&pool)
        .await
        .expect("outcome");
        assert_eq!(n, want, "{schema}");
    }
    pool.close().await;
    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into billing_rebuild_3"), "unexpected report: {report}");
    assert_eq!(
        world.checksum("billing_rebuild_3", &EXCLUDED).await,
        world.checksum("billing", &EXCLUDED).await,
        "a rebuild vs the swapped-in projection the live process went on in"
    );
}
