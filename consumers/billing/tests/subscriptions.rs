//! A year of a subscriber's life through the gateway, against the real broker and PostgreSQL, a
//! real billing consumer process and a fake Stripe: a coupon, overage, an upgrade prorated to the
//! second, a pause with automatic resume, renewals and a cancellation at period end. Every invoice
//! and the MRR are computed here independently and compared with what billing issued.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use studyspot_tokens::Role;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

mod support;

use studyspot_test_world::stop;
use support::{Api, fixture, stripe_consumer, world};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

/// `amount × part / whole`, rounded half up: proration as a bookkeeper does it.
fn share(amount: i64, part: DateTime<Utc>, start: DateTime<Utc>, end: DateTime<Utc>) -> i64 {
    let (part, whole) = ((end - part).num_seconds(), (end - start).num_seconds());
    (amount * part * 2 + whole) / (whole * 2)
}

struct Life<'a> {
    world: &'a studyspot_test_world::World,
    api: &'a Api,
    invoices: usize,
}

impl Life<'_> {
    /// Runs billing up to `up_to` and waits until the subscription has `expected` invoices, all paid.
    async fn bill_until(&mut self, up_to: &str, expected: usize) -> Vec<Value> {
        assert_eq!(self.world.run_billing(up_to).await, "applied", "billing up to {up_to}");
        self.invoices = expected;
        self.paid_invoices(expected).await
    }

    async fn paid_invoices(&self, expected: usize) -> Vec<Value> {
        let body = self
            .api
            .until("/api/subscriptions/sub_year/invoices?limit=100", "the year's invoices, paid", |b| {
                let items = b["items"].as_array().map_or(&[][..], Vec::as_slice);
                items.len() == expected && items.iter().all(|i| i["status"] == "paid")
            })
            .await;
        let mut items = body["items"].as_array().cloned().unwrap_or_default();
        items.sort_by_key(|i| i["issued_at"].as_str().map(str::to_owned));
        items
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_year_of_a_subscriber_through_the_gateway_bills_what_an_independent_ledger_says() {
    let world = world().await;
    let stripe = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/payment_intents"))
        .and(matchers::header("authorization", "Bearer sk_test_e2e"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("stripe_payment_intent_succeeded.json")),
        )
        .mount(&stripe)
        .await;
    let (base, settings) = world.gateway_with_settings().await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    let mut consumer = stripe_consumer(
        &world,
        &stripe,
        &[("STUDYSPOT_BILLING__SUBSCRIPTIONS__SCHEDULER_INTERVAL_SECS", "0")],
    );

    for (body, what) in [
        (
            json!({ "plan_id": "plan_basic", "name": "Basic", "tier": "basic", "cycle": "monthly",
                    "price_minor": 3000, "currency": "EUR",
                    "allowances": [{ "metric": "bookings", "included": 10, "overage_unit_minor": 50 }] }),
            "/api/subscriptions/plans",
        ),
        (
            json!({ "plan_id": "plan_premium", "name": "Premium", "tier": "premium", "cycle": "monthly",
                    "price_minor": 6000, "currency": "EUR",
                    "allowances": [{ "metric": "bookings", "included": 30, "overage_unit_minor": 40 }] }),
            "/api/subscriptions/plans",
        ),
        (
            json!({ "coupon_id": "STUDENT", "name": "Students", "percent_off_bps": 2000,
                    "duration": "repeating", "duration_cycles": 2 }),
            "/api/subscriptions/coupons",
        ),
        (
            json!({ "payment_method_id": "pm_year", "member_id": "mem_year", "method": "card",
                    "provider_token": "pm_card_visa" }),
            "/api/payments/methods",
        ),
    ] {
        let (_, decided) = api.command_with_id(what, body).await;
        assert_eq!(decided["status"], "applied", "{what}: {decided}\n{}", consumer.log());
    }

    // The independent ledger: what each invoice must come to.
    let mut expected: Vec<i64> = Vec::new();
    let mut life = Life { world: &world, api: &api, invoices: 0 };

    // January: subscribed with the student coupon, billed 20 % off at once.
    let (_, created) = api
        .command_with_id(
            "/api/subscriptions",
            json!({ "subscription_id": "sub_year", "member_id": "mem_year", "plan_id": "plan_basic",
                    "coupon_id": "STUDENT", "effective_at": "2031-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(created["status"], "applied", "{created}\n{}", consumer.log());
    expected.push(2_400);
    life.paid_invoices(1).await;

    // February: the coupon's second and last period.
    expected.push(2_400);
    life.bill_until("2031-02-01T00:00:00Z", 2).await;

    // 14 bookings against 10 included; the same usage delivered twice counts once.
    for _ in 0..2 {
        let (_, used) = api
            .command_with_id(
                "/api/subscriptions/usage",
                json!({ "usage_id": "use_feb", "subscription_id": "sub_year", "metric": "bookings",
                        "quantity": 14, "effective_at": "2031-02-10T00:00:00Z" }),
            )
            .await;
        assert_eq!(used["status"], "applied", "{used}");
    }
    let (_, usage) = api.get("/api/subscriptions/sub_year/usage").await;
    let bookings =
        usage["metrics"].as_array().and_then(|i| i.iter().find(|u| u["metric"] == "bookings")).cloned();
    assert_eq!(bookings.map(|b| b["used"].clone()), Some(json!(14)), "{usage}");

    // March: full price, and February's 4 bookings over at 0.50.
    expected.push(3_000 + 4 * 50);
    life.bill_until("2031-03-01T00:00:00Z", 3).await;

    // Upgrade on 16 March at 00:00, settled on the next invoice: 16 of March's 31 days remain.
    let (march, april, change) =
        (t("2031-03-01T00:00:00Z"), t("2031-04-01T00:00:00Z"), t("2031-03-16T00:00:00Z"));
    let (credit, charge) = (share(3_000, change, march, april), share(6_000, change, march, april));
    assert_eq!((credit, charge), (1_548, 3_097));
    let (_, changed) = api
        .command_with_id(
            "/api/subscriptions/sub_year/change-plan",
            json!({ "plan_id": "plan_premium", "proration": "next_invoice", "effective_at": "2031-03-16T00:00:00Z" }),
        )
        .await;
    assert_eq!(changed["status"], "applied", "{changed}\n{}", consumer.log());
    expected.push(6_000 + charge - credit);
    life.bill_until("2031-04-01T00:00:00Z", 4).await;

    // Paused on 11 April until 1 June: 20 of April's 30 days of Premium come back as credit.
    let (may, pause) = (t("2031-05-01T00:00:00Z"), t("2031-04-11T00:00:00Z"));
    let pause_credit = share(6_000, pause, april, may);
    let (_, paused) = api
        .command_with_id(
            "/api/subscriptions/sub_year/pause",
            json!({ "resume_at": "2031-06-01T00:00:00Z", "effective_at": "2031-04-11T00:00:00Z" }),
        )
        .await;
    assert_eq!(paused["status"], "applied", "{paused}");
    // No invoice in May; resumed on 1 June by itself, drawing the credit.
    life.bill_until("2031-05-15T00:00:00Z", 4).await;
    expected.push(6_000 - pause_credit);
    life.bill_until("2031-06-01T00:00:00Z", 5).await;

    // June to December: six renewals at the Premium price.
    expected.extend([6_000; 6]);
    life.bill_until("2031-12-01T00:00:00Z", 11).await;
    let (_, sub) = api.get("/api/subscriptions/sub_year").await;
    assert_eq!((sub["status"].as_str(), sub["mrr_minor"].as_i64()), (Some("active"), Some(6_000)), "{sub}");

    // Cancelled at the end of the December period: no January invoice, no more revenue.
    let (_, cancelled) = api
        .command_with_id(
            "/api/subscriptions/sub_year/cancel",
            json!({ "at_period_end": true, "effective_at": "2031-12-15T00:00:00Z" }),
        )
        .await;
    assert_eq!(cancelled["status"], "applied", "{cancelled}");
    let invoices = life.bill_until("2032-01-02T00:00:00Z", 11).await;
    let sub = api
        .until("/api/subscriptions/sub_year", "the subscription cancelled", |s| s["status"] == "cancelled")
        .await;
    assert_eq!(sub["mrr_minor"], 0);

    let totals: Vec<i64> = invoices
        .iter()
        .map(|i| i["total_minor"].as_i64().unwrap_or(0) - i["credit_applied_minor"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(totals, expected, "amounts due per invoice\n{invoices:#?}");
    // One member's invoices are numbered in the order they were issued: one series, no gaps.
    let numbers: Vec<&str> = invoices.iter().filter_map(|i| i["number"].as_str()).collect();
    let series: Vec<String> = (1..=11).map(|n| format!("INV-{n:06}")).collect();
    assert_eq!(numbers, series, "numbers in issue order");

    // Stripe was asked to charge exactly those amounts, once each, each naming its invoice's number.
    let requests = stripe.received_requests().await.unwrap_or_default();
    let intents: Vec<_> = requests.iter().filter(|r| r.url.path() == "/v1/payment_intents").collect();
    let field = |body: &[u8], name: &str| {
        url::form_urlencoded::parse(body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    };
    let charged: Vec<i64> =
        intents.iter().filter_map(|r| field(&r.body, "amount").and_then(|v| v.parse().ok())).collect();
    assert_eq!(charged, expected, "what Stripe was asked to charge");
    // (The worker calls the provider for due charges concurrently: in any order.)
    let mut described: Vec<String> = intents.iter().filter_map(|r| field(&r.body, "description")).collect();
    described.sort();
    let named: Vec<String> = series.iter().map(|n| format!("Invoice {n}")).collect();
    assert_eq!(described, named, "each charge names its invoice's number");

    // The dashboard's MRR as of any day of the year: 2 400 with the coupon, then 3 000, 6 000 after
    // the upgrade, nothing while paused, 6 000 again, and nothing once cancelled.
    for (to, mrr, status) in [
        ("2031-01-15T00:00:00Z", 2_400, "active"),
        ("2031-03-10T00:00:00Z", 3_000, "active"),
        ("2031-03-20T00:00:00Z", 6_000, "active"),
        ("2031-05-01T00:00:00Z", 0, "paused"),
        ("2031-07-01T00:00:00Z", 6_000, "active"),
        ("2032-01-15T00:00:00Z", 0, "cancelled"),
    ] {
        let (code, dashboard) = api
            .get(&format!("/api/subscriptions/analytics/dashboard?from=2030-12-01T00:00:00Z&to={to}"))
            .await;
        assert_eq!(code, 200, "{dashboard}");
        let eur = dashboard["currencies"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["currency"] == "EUR"))
            .cloned()
            .unwrap_or_else(|| dashboard.clone());
        assert_eq!(eur["mrr_minor"].as_i64(), Some(mrr), "MRR at {to}: {dashboard}");
        assert_eq!(eur["arr_minor"].as_i64(), Some(mrr * 12), "ARR at {to}: {dashboard}");
        assert_eq!(eur[status].as_i64(), Some(1), "{status} at {to}: {dashboard}");
    }
    stop(&mut consumer);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_without_a_card_goes_past_due_and_recovers_when_the_next_retry_charges_a_card_added_since()
 {
    let world = world().await;
    let stripe = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/payment_intents"))
        .and(matchers::body_string_contains("amount=3000"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("stripe_payment_intent_succeeded.json")),
        )
        .expect(1)
        .mount(&stripe)
        .await;
    let (base, settings) = world.gateway_with_settings().await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    let mut consumer = stripe_consumer(
        &world,
        &stripe,
        &[("STUDYSPOT_BILLING__SUBSCRIPTIONS__SCHEDULER_INTERVAL_SECS", "0")],
    );
    let (_, plan) = api
        .command_with_id(
            "/api/subscriptions/plans",
            json!({ "plan_id": "plan_basic", "name": "Basic", "tier": "basic", "cycle": "monthly",
                    "price_minor": 3000, "currency": "EUR" }),
        )
        .await;
    assert_eq!(plan["status"], "applied", "{plan}\n{}", consumer.log());
    let (_, created) = api
        .command_with_id(
            "/api/subscriptions",
            json!({ "subscription_id": "sub_nocard", "member_id": "mem_nocard", "plan_id": "plan_basic",
                    "effective_at": "2031-05-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(created["status"], "applied", "{created}");
    // Nothing to charge: the first invoice waits and dunning starts at once.
    let sub = api.until("/api/subscriptions/sub_nocard", "past due", |s| s["status"] == "past_due").await;
    assert_eq!(sub["next_retry_at"], "2031-05-02T00:00:00Z", "{sub}");

    let (_, added) = api
        .command_with_id(
            "/api/payments/methods",
            json!({ "payment_method_id": "pm_late", "member_id": "mem_nocard", "method": "card",
                    "provider_token": "pm_card_visa" }),
        )
        .await;
    assert_eq!(added["status"], "applied", "{added}");
    assert_eq!(world.run_billing("2031-05-02T00:00:00Z").await, "applied");
    let sub = api.until("/api/subscriptions/sub_nocard", "recovered", |s| s["status"] == "active").await;
    assert_eq!((sub["dunning_attempt"].as_i64(), sub["mrr_minor"].as_i64()), (Some(0), Some(3000)), "{sub}");
    let invoices = api
        .until("/api/subscriptions/sub_nocard/invoices", "paid", |b| b["items"][0]["status"] == "paid")
        .await;
    assert_eq!(invoices["items"].as_array().map(Vec::len), Some(1));
    stop(&mut consumer);
}

/// A member who pays in cash: the new subscription's invoice waits for staff (active, no payment,
/// no dunning, due after `manual_invoice_due_days`), staff record the cash in one step and the
/// invoice is paid; the next period's invoice, left unpaid, starts dunning on its due date only.
#[tokio::test(flavor = "multi_thread")]
async fn a_cash_subscriber_waits_for_staff_to_record_the_payment_and_dunning_starts_only_when_due() {
    let world = world().await;
    let (base, settings) = world.gateway_with_settings().await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    let mut consumer =
        support::consumer(&world, &[("STUDYSPOT_BILLING__SUBSCRIPTIONS__SCHEDULER_INTERVAL_SECS", "0")]);
    for (path, body) in [
        (
            "/api/subscriptions/plans",
            json!({ "plan_id": "plan_basic", "name": "Basic", "tier": "basic", "cycle": "monthly",
                    "price_minor": 3000, "currency": "EUR" }),
        ),
        (
            "/api/payments/methods",
            json!({ "payment_method_id": "pm_cash", "member_id": "mem_cash", "method": "cash" }),
        ),
        (
            "/api/subscriptions",
            json!({ "subscription_id": "sub_cash", "member_id": "mem_cash", "plan_id": "plan_basic",
                    "effective_at": "2031-05-01T00:00:00Z" }),
        ),
    ] {
        let (_, decided) = api.command_with_id(path, body).await;
        assert_eq!(decided["status"], "applied", "{path}: {decided}\n{}", consumer.log());
    }
    let (_, sub) = api.get("/api/subscriptions/sub_cash").await;
    assert_eq!(
        (sub["status"].as_str(), sub["dunning_attempt"].as_i64(), sub["next_retry_at"].as_str()),
        (Some("active"), Some(0), Some("2031-05-08T00:00:00Z")),
        "nothing failed; collection is next looked at on the invoice's due date: {sub}"
    );
    let invoices = api
        .until("/api/subscriptions/sub_cash/invoices", "the first invoice, numbered", |b| {
            b["items"][0]["number"].is_string()
        })
        .await;
    let invoice = &invoices["items"][0];
    assert_eq!(
        (invoice["status"].as_str(), invoice["due_at"].as_str(), invoice["total_minor"].as_i64()),
        (Some("open"), Some("2031-05-08T00:00:00Z"), Some(3000)),
        "{invoice}"
    );
    let (_, payments) = api.get("/api/payments?member_id=mem_cash").await;
    assert_eq!(payments["items"].as_array().map(Vec::len), Some(0), "nothing to charge: {payments}");
    let told: Vec<String> = world
        .read_all(studyspot_schemas::billing::EVENTS.name)
        .iter()
        .filter_map(|m| m.headers.get(studyspot_bus::headers::RECORD_TYPE).map(str::to_owned))
        .collect();
    assert!(
        !told
            .iter()
            .any(|t| t.ends_with("SubscriptionDunningStep") || t.ends_with("SubscriptionStatusChanged")),
        "no dunning and no status change for a subscription minutes old: {told:?}"
    );

    // Staff take the cash: one request, and the invoice is paid.
    let invoice_id = invoice["invoice_id"].as_str().expect("invoice id");
    let (_, recorded) = api
        .command_with_id(
            &format!("/api/payments/invoices/{invoice_id}/payments"),
            json!({ "method": "cash", "reference": "receipt 17" }),
        )
        .await;
    assert_eq!(recorded["status"], "applied", "{recorded}\n{}", consumer.log());
    let (_, paid) = api.get(&format!("/api/payments/invoices/{invoice_id}")).await;
    assert_eq!(
        (paid["status"].as_str(), paid["amount_paid_minor"].as_i64()),
        (Some("paid"), Some(3000)),
        "{paid}"
    );
    let (_, sub) = api.get("/api/subscriptions/sub_cash").await;
    assert_eq!((sub["status"].as_str(), &sub["next_retry_at"]), (Some("active"), &Value::Null), "{sub}");
    let (_, payments) = api.get("/api/payments?member_id=mem_cash").await;
    let payment = &payments["items"][0];
    assert_eq!(
        (payment["status"].as_str(), payment["method"].as_str(), payment["invoice_id"].as_str()),
        (Some("succeeded"), Some("cash"), Some(invoice_id)),
        "{payments}"
    );
    // Recorded again for the paid invoice: refused with a code, not a second payment.
    let (_, again) = api
        .command_with_id(
            &format!("/api/payments/invoices/{invoice_id}/payments"),
            json!({ "method": "cash", "amount_minor": 3000 }),
        )
        .await;
    assert_eq!(
        (again["status"].as_str(), again["rejection"]["code"].as_str()),
        (Some("rejected"), Some("invoice_not_payable")),
        "{again}"
    );

    // June's invoice goes unpaid: active until it is due, past due from then on.
    assert_eq!(world.run_billing("2031-06-07T00:00:00Z").await, "applied");
    api.until("/api/subscriptions/sub_cash/invoices", "June's invoice", |b| {
        b["items"].as_array().is_some_and(|items| items.len() == 2)
    })
    .await;
    let (_, sub) = api.get("/api/subscriptions/sub_cash").await;
    assert_eq!((sub["status"].as_str(), sub["dunning_attempt"].as_i64()), (Some("active"), Some(0)), "{sub}");
    assert_eq!(world.run_billing("2031-06-08T00:00:00Z").await, "applied");
    let sub = api.until("/api/subscriptions/sub_cash", "past due", |s| s["status"] == "past_due").await;
    assert_eq!(
        (sub["dunning_attempt"].as_i64(), sub["next_retry_at"].as_str()),
        (Some(1), Some("2031-06-09T00:00:00Z")),
        "{sub}"
    );
    stop(&mut consumer);
}

/// A completed session's usage (a `RecordUsage` without an instant of its own, at the event's
/// time) that arrives after a billing run moved the subscription past that time counts in the
/// current period instead of being refused and lost; an explicit instant before it is refused.
#[tokio::test(flavor = "multi_thread")]
async fn usage_arriving_after_a_run_moved_the_subscription_on_counts_once_in_the_current_period() {
    use studyspot_schemas::{EventMetadata, billing::RecordUsage};
    let world = world().await;
    let (base, settings) = world.gateway_with_settings().await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    let mut consumer =
        support::consumer(&world, &[("STUDYSPOT_BILLING__SUBSCRIPTIONS__SCHEDULER_INTERVAL_SECS", "0")]);
    let (_, plan) = api
        .command_with_id(
            "/api/subscriptions/plans",
            json!({ "plan_id": "plan_seats", "name": "Seats", "tier": "basic", "cycle": "monthly",
                    "price_minor": 1500, "currency": "EUR", "trial_days": 30,
                    "allowances": [{ "metric": "seat_hours", "included": 100, "overage_unit_minor": 0 }] }),
        )
        .await;
    assert_eq!(plan["status"], "applied", "{plan}\n{}", consumer.log());
    let (_, created) = api
        .command_with_id(
            "/api/subscriptions",
            json!({ "subscription_id": "sub_late", "member_id": "mem_late", "plan_id": "plan_seats",
                    "effective_at": "2031-05-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(created["status"], "applied", "{created}");
    // The trial's notice falls due on 28 May: the run moves the subscription on to 29 May.
    assert_eq!(world.run_billing("2031-05-29T00:00:00Z").await, "applied");
    let pool = world.pool().await;
    studyspot_test_world::eventually(
        "the run applied to the subscription",
        std::time::Duration::from_secs(60),
        || async {
            let through: Option<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT applied_through FROM billing.subscriptions WHERE subscription_id = 'sub_late'",
            )
            .fetch_optional(&pool)
            .await
            .ok()
            .flatten();
            through.filter(|at| *at >= t("2031-05-29T00:00:00Z"))
        },
    )
    .await;

    let usage = |n: &str, effective_at: Option<i64>| RecordUsage {
        metadata: EventMetadata {
            event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{}/{n}", world.id).as_bytes())
                .to_string(),
            // The session ended on 5 May, before the run's instant.
            occurred_at: t("2031-05-05T12:00:00Z").timestamp_millis(),
            correlation_id: format!("test-{n}"),
            causation_id: None,
            organization_id: world.organization_id(),
            actor: "service:billing".into(),
        },
        usage_id: format!("use_ses_{n}"),
        subscription_id: "sub_late".into(),
        member_id: "mem_late".into(),
        metric: "seat_hours".into(),
        quantity: 2,
        effective_at,
    };
    world.send(&usage("late", None)).await;
    world.send(&usage("late", None)).await;
    world.send(&usage("explicit", Some(t("2031-05-05T12:00:00Z").timestamp_millis()))).await;
    let outcomes = studyspot_test_world::eventually("both usages decided", std::time::Duration::from_secs(60), || async {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT outcome, code FROM billing.command_outcomes WHERE command_type = 'studyspot.billing.RecordUsage' ORDER BY code NULLS FIRST",
        )
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        (rows.len() == 2).then_some(rows)
    })
    .await;
    assert_eq!(
        outcomes,
        vec![
            ("applied".to_owned(), None),
            ("rejected".to_owned(), Some("effective_at_before_applied".to_owned()))
        ]
    );
    let (used, period_start): (i64, DateTime<Utc>) = sqlx::query_as(
        "SELECT used, period_start FROM billing.usage_counters WHERE subscription_id = 'sub_late'",
    )
    .fetch_one(&pool)
    .await
    .expect("a usage counter");
    assert_eq!((used, period_start), (2, t("2031-05-01T00:00:00Z")), "counted once, in the current period");
    stop(&mut consumer);
}
