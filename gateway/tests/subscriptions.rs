//! Subscriptions through the gateway against the real broker and PostgreSQL: plan, coupon and
//! subscription requests checked field by field and by role, the exact Avro commands on the catalog
//! and billing command topics (over HTTP and gRPC), and the reads of plans, subscriptions, usage,
//! invoices, credit notes and the subscriptions dashboard.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgConnection;
use studyspot_billing_projection as projection;
use studyspot_bus::{Codec, InboundMessage, headers};
use studyspot_schemas::{Record, billing};
use studyspot_tokens::Role;
use support::TestGateway;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("time").with_timezone(&Utc)
}

fn plan_body() -> Value {
    json!({
        "plan_id": "plan_pro",
        "name": "Pro",
        "tier": "premium",
        "cycle": "monthly",
        "price_minor": 2900,
        "currency": "EUR",
        "trial_days": 14,
        "tax_rate_bps": 1900,
        "allowances": [
            { "metric": "bookings", "included": 10, "overage_unit_minor": 150 },
            { "metric": "seat_hours", "included": 40, "overage_unit_minor": 0 },
        ],
    })
}

/// `plan_body()` with `field` set to `value` (`allowances` entries by index: "allowances.1.metric").
fn plan_with(path: &str, value: Value) -> Value {
    let mut body = plan_body();
    let mut target = &mut body;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        target = match part.parse::<usize>() {
            Ok(n) => &mut target[n],
            Err(_) => &mut target[*part],
        };
    }
    target[parts[parts.len() - 1]] = value;
    body
}

async fn post(gw: &TestGateway, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let (status, _, answer) = TestGateway::send(gw.request(Method::POST, path, Some(token)).json(body)).await;
    (status, answer)
}

async fn get(gw: &TestGateway, path: &str, token: &str) -> (u16, Value) {
    let (status, _, body) = TestGateway::send(gw.request(Method::GET, path, Some(token))).await;
    (status, body)
}

async fn decode<R: Record>(gw: &TestGateway, record: &InboundMessage) -> R {
    let codec = Codec::new(&gw.settings.registry.url).expect("codec");
    let decoded = codec.decode(record.payload.as_deref().expect("payload")).await.expect("decode");
    decoded.into_record().unwrap_or_else(|e| panic!("a {}: {e}", R::FULL_NAME))
}

fn key(record: &InboundMessage) -> &str {
    std::str::from_utf8(record.key.as_deref().expect("key")).expect("utf-8 key")
}

/// A subscription row as billing would have projected it.
async fn insert_subscription(db: &mut PgConnection, org: &str, id: &str, member: &str, created: &str) {
    sqlx::query(
        "INSERT INTO subscriptions (subscription_id, organization_id, member_id, plan_id, plan_version, currency, \
           status, anchor, period_index, current_period_start, current_period_end, covered_from, \
           covered_value_minor, applied_through, mrr_minor, created_at, updated_at) \
         VALUES ($1, $2, $3, 'plan_basic', 2, 'EUR', 'active', $4, 0, '2026-01-01T00:00:00Z', \
           '2026-02-01T00:00:00Z', '2026-01-01T00:00:00Z', 900, $4, 900, $4, $4)",
    )
    .bind(id)
    .bind(org)
    .bind(member)
    .bind(at(created))
    .execute(db)
    .await
    .expect("insert subscription");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_subscription_requests_name_the_field_and_only_operators_define_the_catalogue() {
    let gw = TestGateway::start(|_| {}).await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));
    let duplicate = json!([
        { "metric": "bookings", "included": 1, "overage_unit_minor": 1 },
        { "metric": "bookings", "included": 2, "overage_unit_minor": 1 },
    ]);
    let coupon = |extra: Value| {
        let mut body = json!({ "coupon_id": "STUDENT", "name": "Students", "duration": "once" });
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        body
    };
    // path, body, expected status, code and field.
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "/api/subscriptions/plans",
            plan_with("cycle", json!("fortnightly")),
            422,
            "validation_failed",
            "cycle",
        ),
        ("/api/subscriptions/plans", plan_with("tier", json!("gold")), 422, "validation_failed", "tier"),
        (
            "/api/subscriptions/plans",
            plan_with("allowances.1.metric", json!("coffee")),
            422,
            "validation_failed",
            "allowances[1].metric",
        ),
        (
            "/api/subscriptions/plans",
            plan_with("allowances", duplicate),
            422,
            "validation_failed",
            "allowances[1].metric",
        ),
        (
            "/api/subscriptions/plans",
            plan_with("allowances.0.included", json!(-1)),
            422,
            "validation_failed",
            "allowances[0].included",
        ),
        (
            "/api/subscriptions/plans",
            plan_with("allowances.1.overage_unit_minor", json!(-5)),
            422,
            "validation_failed",
            "allowances[1].overage_unit_minor",
        ),
        (
            "/api/subscriptions/plans",
            plan_with("price_minor", json!(-1)),
            422,
            "validation_failed",
            "price_minor",
        ),
        (
            "/api/subscriptions/plans",
            plan_with("currency", json!("eur")),
            422,
            "validation_failed",
            "currency",
        ),
        (
            "/api/subscriptions/plans",
            plan_with("tax_rate_bps", json!(10_001)),
            422,
            "validation_failed",
            "tax_rate_bps",
        ),
        (
            "/api/subscriptions/plans",
            plan_with("trial_days", json!(731)),
            422,
            "validation_failed",
            "trial_days",
        ),
        ("/api/subscriptions/plans", plan_with("name", json!(" ")), 422, "validation_failed", "name"),
        (
            "/api/subscriptions/plans",
            plan_with("price_minor", json!("free")),
            400,
            "invalid_json",
            "price_minor",
        ),
        ("/api/subscriptions/plans", plan_with("color", json!("red")), 400, "invalid_json", "color"),
        (
            "/api/subscriptions/coupons",
            coupon(json!({ "duration": "repeating", "percent_off_bps": 2000 })),
            422,
            "validation_failed",
            "duration_cycles",
        ),
        (
            "/api/subscriptions/coupons",
            coupon(json!({ "percent_off_bps": 2000, "duration_cycles": 3 })),
            422,
            "validation_failed",
            "duration_cycles",
        ),
        (
            "/api/subscriptions/coupons",
            coupon(json!({ "percent_off_bps": 2000, "amount_off_minor": 100, "currency": "EUR" })),
            422,
            "validation_failed",
            "amount_off_minor",
        ),
        (
            "/api/subscriptions/coupons",
            coupon(json!({ "amount_off_minor": 100 })),
            422,
            "validation_failed",
            "currency",
        ),
        ("/api/subscriptions/coupons", coupon(json!({})), 422, "validation_failed", "percent_off_bps"),
        (
            "/api/subscriptions/coupons",
            coupon(json!({ "percent_off_bps": 10_001 })),
            422,
            "validation_failed",
            "percent_off_bps",
        ),
        (
            "/api/subscriptions",
            json!({ "member_id": "mem_1", "plan_id": "plan_pro", "resume_at": "2026-03-01T00:00:00Z" }),
            422,
            "validation_failed",
            "resume_at",
        ),
        (
            "/api/subscriptions",
            json!({ "member_id": "mem_1", "plan_id": "plan_pro", "subscription_id": "plans" }),
            422,
            "validation_failed",
            "subscription_id",
        ),
        (
            "/api/subscriptions",
            json!({ "member_id": "mem_1", "plan_id": "plan_pro", "trial_days": -1 }),
            422,
            "validation_failed",
            "trial_days",
        ),
        (
            "/api/subscriptions",
            json!({ "member_id": "mem_1", "plan_id": "plan_pro", "effective_at": "tomorrow" }),
            400,
            "invalid_json",
            "effective_at",
        ),
        (
            "/api/subscriptions/usage",
            json!({ "usage_id": "u1", "subscription_id": "sub_1", "metric": "coffee", "quantity": 1 }),
            422,
            "validation_failed",
            "metric",
        ),
        (
            "/api/subscriptions/usage",
            json!({ "usage_id": "u1", "subscription_id": "sub_1", "metric": "bookings", "quantity": 0 }),
            422,
            "validation_failed",
            "quantity",
        ),
    ];
    for (path, body, status, code, field) in cases {
        let (got_status, got) = post(&gw, path, &owner, &body).await;
        assert_eq!(got_status, status, "{path} {body}: {got}");
        assert_eq!(got["error"]["code"], code, "{path} {body}: {got}");
        assert_eq!(got["error"]["field"], field, "{path} {body}: {got}");
    }

    for (path, body) in [
        ("/api/subscriptions/plans", plan_body()),
        ("/api/subscriptions/coupons", coupon(json!({ "percent_off_bps": 2000 }))),
        ("/api/subscriptions/billing", json!({})),
    ] {
        let (status, answer) = post(&gw, path, &member, &body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{path}: {answer}");
    }
    let other = json!({ "member_id": "mem_2", "plan_id": "plan_pro" });
    let (status, answer) = post(&gw, "/api/subscriptions", &member, &other).await;
    assert_eq!(status, 403, "a member subscribes only themselves: {answer}");
    let backdated =
        json!({ "member_id": "mem_1", "plan_id": "plan_pro", "effective_at": "2030-01-01T00:00:00Z" });
    let (status, answer) = post(&gw, "/api/subscriptions", &member, &backdated).await;
    assert_eq!(status, 403, "a member does not move their billing clock: {answer}");
    let long_trial = json!({ "member_id": "mem_1", "plan_id": "plan_pro", "trial_days": 365 });
    let (status, answer) = post(&gw, "/api/subscriptions", &member, &long_trial).await;
    assert_eq!(status, 403, "a member does not grant themselves a trial: {answer}");
    let future = json!({ "up_to": (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339() });
    let (status, answer) = post(&gw, "/api/subscriptions/billing", &owner, &future).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (422, Some("up_to")), "{answer}");
    let (status, answer) = post(
        &gw,
        "/api/subscriptions/sub_1/cancel",
        &owner,
        &json!({ "at_period_end": true, "prorate": true }),
    )
    .await;
    assert_eq!((status, answer["error"]["field"].as_str()), (422, Some("prorate")), "{answer}");
    let (status, answer) = post(&gw, "/api/subscriptions/sub_1/cancel", &owner, &json!({})).await;
    assert_eq!(status, 404, "no subscription projected: {answer}");

    assert!(gw.read_all(billing::CATALOG_COMMANDS.name).is_empty(), "refused requests produce nothing");
    assert!(gw.read_all(billing::COMMANDS.name).is_empty(), "refused requests produce nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn catalogue_and_subscription_requests_become_exactly_their_commands() {
    let gw = TestGateway::start(|_| {}).await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));

    let (status, answer) = post(&gw, "/api/subscriptions/plans", &owner, &plan_body()).await;
    assert_eq!((status, answer["plan_id"].as_str()), (202, Some("plan_pro")), "{answer}");
    let plan_command_id = answer["command_id"].as_str().expect("command id").to_owned();
    let coupon = json!({ "coupon_id": "STUDENT", "name": "Students", "amount_off_minor": 500,
        "currency": "EUR", "duration": "repeating", "duration_cycles": 3 });
    let (status, answer) = post(&gw, "/api/subscriptions/coupons", &owner, &coupon).await;
    assert_eq!((status, answer["coupon_id"].as_str()), (202, Some("STUDENT")), "{answer}");
    let up_to = json!({ "up_to": "2026-03-01T00:00:00Z" });
    let (status, answer) = post(&gw, "/api/subscriptions/billing", &owner, &up_to).await;
    assert_eq!((status, answer["organization_id"].as_str()), (202, Some("org_1")), "{answer}");

    let catalog = gw.read_all(billing::CATALOG_COMMANDS.name);
    assert_eq!(catalog.len(), 3, "a plan, a coupon and a billing run");
    assert!(catalog.iter().all(|r| key(r) == "org_1"), "keyed by the organization");
    assert_eq!(catalog[0].headers.get(headers::EVENT_ID), Some(plan_command_id.as_str()));
    let plan: billing::DefinePlan = decode(&gw, &catalog[0]).await;
    assert_eq!((plan.metadata.organization_id.as_str(), plan.metadata.actor.as_str()), ("org_1", "user:ada"));
    assert_eq!(
        plan,
        billing::DefinePlan {
            metadata: plan.metadata.clone(),
            plan_id: "plan_pro".into(),
            name: "Pro".into(),
            tier: "premium".into(),
            cycle: "monthly".into(),
            price_minor: 2900,
            currency: "EUR".into(),
            trial_days: 14,
            tax_rate_bps: 1900,
            allowances: vec![
                billing::PlanAllowance { metric: "bookings".into(), included: 10, overage_unit_minor: 150 },
                billing::PlanAllowance { metric: "seat_hours".into(), included: 40, overage_unit_minor: 0 },
            ],
        }
    );
    let defined: billing::DefineCoupon = decode(&gw, &catalog[1]).await;
    assert_eq!(
        defined,
        billing::DefineCoupon {
            metadata: defined.metadata.clone(),
            coupon_id: "STUDENT".into(),
            name: "Students".into(),
            percent_off_bps: None,
            amount_off_minor: Some(500),
            currency: Some("EUR".into()),
            duration: "repeating".into(),
            duration_cycles: Some(3),
        }
    );
    let run: billing::RunBilling = decode(&gw, &catalog[2]).await;
    assert_eq!(run.up_to, at("2026-03-01T00:00:00Z").timestamp_millis());

    // An owner subscribes a member as of a given instant; the command is keyed by the member.
    let subscribe = json!({ "member_id": "mem_1", "plan_id": "plan_pro", "effective_at": "2026-02-01T00:00:00Z",
        "coupon_id": "STUDENT", "trial_days": 0 });
    let (status, answer) = post(&gw, "/api/subscriptions", &owner, &subscribe).await;
    assert_eq!(status, 202, "{answer}");
    let subscription_id = answer["subscription_id"].as_str().expect("subscription id").to_owned();
    assert!(subscription_id.starts_with("sub_"), "{subscription_id}");
    let commands = gw.read_all(billing::COMMANDS.name);
    assert_eq!(commands.len(), 1);
    assert_eq!(key(&commands[0]), "mem_1");
    let created: billing::CreateSubscription = decode(&gw, &commands[0]).await;
    assert_eq!(
        created,
        billing::CreateSubscription {
            metadata: created.metadata.clone(),
            subscription_id,
            member_id: "mem_1".into(),
            plan_id: "plan_pro".into(),
            effective_at: Some(at("2026-02-01T00:00:00Z").timestamp_millis()),
            trial_days: Some(0),
            paused: false,
            resume_at: None,
            coupon_id: Some("STUDENT".into()),
            payment_method_id: None,
        }
    );
    assert_eq!(created.metadata.actor, "user:ada", "the owner acted");

    // A member subscribes themselves, effective when accepted.
    let own = json!({ "member_id": "mem_1", "plan_id": "plan_pro" });
    let (status, answer) = post(&gw, "/api/subscriptions", &member, &own).await;
    assert_eq!(status, 202, "{answer}");
    let commands = gw.read_all(billing::COMMANDS.name);
    let own: billing::CreateSubscription = decode(&gw, &commands[1]).await;
    assert_eq!((own.effective_at, own.metadata.actor.as_str()), (None, "user:mem_1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_on_a_subscription_find_it_and_are_keyed_by_its_member() {
    let gw = TestGateway::start(|_| {}).await;
    let mut db = gw.projection("billing", &projection::MIGRATIONS).await;
    insert_subscription(&mut db, "org_1", "sub_1", "mem_1", "2026-01-01T00:00:00Z").await;
    insert_subscription(&mut db, "org_1", "sub_2", "mem_2", "2026-01-02T00:00:00Z").await;
    insert_subscription(&mut db, "org_2", "sub_3", "mem_1", "2026-01-03T00:00:00Z").await;
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));

    let cancel = json!({ "at_period_end": true, "reason": "moving away" });
    let (status, answer) = post(&gw, "/api/subscriptions/sub_1/cancel", &member, &cancel).await;
    assert_eq!((status, answer["subscription_id"].as_str()), (202, Some("sub_1")), "{answer}");
    let (status, _) = post(&gw, "/api/subscriptions/sub_2/cancel", &member, &cancel).await;
    assert_eq!(status, 404, "another member's subscription is not there for a member");
    let (status, _) = post(&gw, "/api/subscriptions/sub_3/cancel", &staff, &cancel).await;
    assert_eq!(status, 404, "nor another organization's for staff");
    let change = json!({ "plan_id": "plan_pro", "proration": "immediately" });
    let (status, answer) = post(&gw, "/api/subscriptions/sub_2/change-plan", &staff, &change).await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = post(
        &gw,
        "/api/subscriptions/sub_2/change-plan",
        &staff,
        &json!({ "plan_id": "plan_pro", "proration": "later" }),
    )
    .await;
    assert_eq!((status, answer["error"]["field"].as_str()), (422, Some("proration")), "{answer}");
    let pause = json!({ "resume_at": "2026-03-01T00:00:00Z" });
    let (status, answer) = post(&gw, "/api/subscriptions/sub_1/pause", &member, &pause).await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = post(&gw, "/api/subscriptions/sub_1/resume", &member, &json!({})).await;
    assert_eq!(status, 202, "{answer}");
    let credit = json!({ "credit_note_id": "cn_1", "amount_minor": 300, "memo": "sorry" });
    let (status, _) = post(&gw, "/api/subscriptions/sub_1/credit-notes", &member, &credit).await;
    assert_eq!(status, 403, "members do not credit themselves");
    let (status, answer) =
        post(&gw, "/api/subscriptions/sub_1/credit-notes", &staff, &json!({ "amount_minor": 0 })).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (422, Some("amount_minor")), "{answer}");
    let (status, answer) = post(&gw, "/api/subscriptions/sub_1/credit-notes", &staff, &credit).await;
    assert_eq!((status, answer["credit_note_id"].as_str()), (202, Some("cn_1")), "{answer}");
    let usage = json!({ "usage_id": "use_1", "subscription_id": "sub_1", "metric": "bookings", "quantity": 2,
        "effective_at": "2026-01-15T10:00:00Z" });
    let (status, _) = post(&gw, "/api/subscriptions/usage", &member, &usage).await;
    assert_eq!(status, 403, "a member's usage counts when it is accepted");
    let (status, answer) = post(&gw, "/api/subscriptions/usage", &staff, &usage).await;
    assert_eq!((status, answer["usage_id"].as_str()), (202, Some("use_1")), "{answer}");
    let elsewhere =
        json!({ "usage_id": "use_2", "subscription_id": "sub_2", "metric": "bookings", "quantity": 1 });
    assert_eq!(post(&gw, "/api/subscriptions/usage", &member, &elsewhere).await.0, 404);

    let commands = gw.read_all(billing::COMMANDS.name);
    let keys: Vec<&str> = commands.iter().map(key).collect();
    assert_eq!(
        keys,
        ["mem_1", "mem_2", "mem_1", "mem_1", "mem_1", "mem_1"],
        "keyed by the subscription's member"
    );
    let cancelled: billing::CancelSubscription = decode(&gw, &commands[0]).await;
    assert_eq!(
        cancelled,
        billing::CancelSubscription {
            metadata: cancelled.metadata.clone(),
            subscription_id: "sub_1".into(),
            member_id: "mem_1".into(),
            at_period_end: true,
            prorate: false,
            reason: Some("moving away".into()),
            effective_at: None,
        }
    );
    let changed: billing::ChangeSubscriptionPlan = decode(&gw, &commands[1]).await;
    assert_eq!(
        (changed.member_id.as_str(), changed.plan_id.as_str(), changed.proration.as_str()),
        ("mem_2", "plan_pro", "immediately")
    );
    let paused: billing::PauseSubscription = decode(&gw, &commands[2]).await;
    assert_eq!(paused.resume_at, Some(at("2026-03-01T00:00:00Z").timestamp_millis()));
    let resumed: billing::ResumeSubscription = decode(&gw, &commands[3]).await;
    assert_eq!((resumed.subscription_id.as_str(), resumed.effective_at), ("sub_1", None));
    let credited: billing::IssueCreditNote = decode(&gw, &commands[4]).await;
    assert_eq!(
        credited,
        billing::IssueCreditNote {
            metadata: credited.metadata.clone(),
            credit_note_id: "cn_1".into(),
            subscription_id: "sub_1".into(),
            member_id: "mem_1".into(),
            amount_minor: 300,
            memo: Some("sorry".into()),
        }
    );
    let used: billing::RecordUsage = decode(&gw, &commands[5]).await;
    assert_eq!(
        used,
        billing::RecordUsage {
            metadata: used.metadata.clone(),
            usage_id: "use_1".into(),
            subscription_id: "sub_1".into(),
            member_id: "mem_1".into(),
            metric: "bookings".into(),
            quantity: 2,
            effective_at: Some(at("2026-01-15T10:00:00Z").timestamp_millis()),
        }
    );
}

async fn insert_plan(
    db: &mut PgConnection,
    org: &str,
    plan: &str,
    version: i32,
    created: &str,
    allowances: Value,
) {
    sqlx::query(
        "INSERT INTO plans (organization_id, plan_id, version, name, tier, cycle, price_minor, currency, \
           trial_days, tax_rate_bps, allowances, created_at) \
         VALUES ($1, $2, $3, $2 || ' v' || $3, 'basic', 'monthly', 100 * $3, 'EUR', 0, 0, $4, $5)",
    )
    .bind(org)
    .bind(plan)
    .bind(version)
    .bind(allowances)
    .bind(at(created))
    .execute(db)
    .await
    .expect("insert plan");
}

async fn execute(db: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(db).await.expect(sql);
}

fn ids(body: &Value, field: &str) -> Vec<String> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i[field].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_reads_are_scoped_and_joined() {
    let gw = TestGateway::start(|_| {}).await;
    let mut db = gw.projection("billing", &projection::MIGRATIONS).await;
    let allowances = json!([
        { "metric": "bookings", "included": 10, "overage_unit_minor": 50 },
        { "metric": "seat_hours", "included": 20, "overage_unit_minor": 0 },
    ]);
    insert_plan(&mut db, "org_1", "plan_basic", 1, "2026-01-01T00:00:00Z", json!([])).await;
    insert_plan(&mut db, "org_1", "plan_basic", 2, "2026-01-03T00:00:00Z", allowances).await;
    insert_plan(&mut db, "org_1", "plan_pro", 1, "2026-01-02T00:00:00Z", json!([])).await;
    insert_plan(&mut db, "org_2", "plan_other", 1, "2026-01-02T00:00:00Z", json!([])).await;
    insert_subscription(&mut db, "org_1", "sub_1", "mem_1", "2026-01-01T00:00:00Z").await;
    insert_subscription(&mut db, "org_1", "sub_2", "mem_2", "2026-01-02T00:00:00Z").await;
    insert_subscription(&mut db, "org_2", "sub_3", "mem_1", "2026-01-03T00:00:00Z").await;
    execute(
        &mut db,
        "UPDATE subscriptions SET status = 'past_due', dunning_attempt = 1 WHERE subscription_id = 'sub_2';
         INSERT INTO coupons (organization_id, coupon_id, name, percent_off_bps, duration, created_at) VALUES
           ('org_1', 'STUDENT', 'Students', 2000, 'forever', '2026-01-01T00:00:00Z'),
           ('org_2', 'OTHER', 'Other', 1000, 'once', '2026-01-01T00:00:00Z');
         INSERT INTO usage_counters (organization_id, subscription_id, period_start, metric, used) VALUES
           ('org_1', 'sub_1', '2026-01-01T00:00:00Z', 'bookings', 8),
           ('org_1', 'sub_1', '2026-01-01T00:00:00Z', 'api_calls', 5),
           ('org_1', 'sub_1', '2025-12-01T00:00:00Z', 'bookings', 12);
         INSERT INTO invoices (invoice_id, organization_id, member_id, currency, subtotal_minor, tax_minor,
             total_minor, status, due_at, created_at, updated_at, subscription_id) VALUES
           ('inv_1', 'org_1', 'mem_1', 'EUR', 900, 0, 900, 'paid', '2026-01-01T00:00:00Z',
             '2025-12-01T00:00:00Z', '2025-12-01T00:00:00Z', 'sub_1'),
           ('inv_2', 'org_1', 'mem_1', 'EUR', 900, 0, 900, 'open', '2026-02-01T00:00:00Z',
             '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'sub_1'),
           ('inv_3', 'org_1', 'mem_1', 'EUR', 100, 0, 100, 'open', '2026-02-01T00:00:00Z',
             '2026-01-02T00:00:00Z', '2026-01-02T00:00:00Z', NULL),
           ('inv_4', 'org_1', 'mem_2', 'EUR', 900, 0, 900, 'open', '2026-02-01T00:00:00Z',
             '2026-01-02T00:00:00Z', '2026-01-02T00:00:00Z', 'sub_2');
         INSERT INTO credit_notes (credit_note_id, organization_id, member_id, subscription_id, currency,
             amount_minor, remaining_minor, reason, memo, created_at) VALUES
           ('cn_1', 'org_1', 'mem_1', 'sub_1', 'EUR', 300, 100, 'goodwill', 'sorry', '2026-01-05T00:00:00Z'),
           ('cn_2', 'org_1', 'mem_2', 'sub_2', 'EUR', 200, 200, 'proration', NULL, '2026-01-06T00:00:00Z');",
    )
    .await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));

    // Plans: the current version of each, newest first; or every version, page by page.
    let (status, body) = get(&gw, "/api/subscriptions/plans", &member).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body, "plan_id"), ["plan_basic", "plan_pro"], "{body}");
    assert_eq!(body["items"][0]["version"], 2);
    assert_eq!(body["items"][0]["allowances"][0]["metric"], "bookings");
    assert!(body["items"][0].get("cursor_key").is_none(), "{body}");
    let mut versions = Vec::new();
    let mut path = "/api/subscriptions/plans?all_versions=true&limit=1".to_owned();
    loop {
        let (status, body) = get(&gw, &path, &owner).await;
        assert_eq!(status, 200, "{body}");
        versions.extend(
            body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|p| format!("{}@{}", p["plan_id"].as_str().expect("id"), p["version"])),
        );
        match body["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/subscriptions/plans?all_versions=true&limit=1&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(versions, ["plan_basic@2", "plan_pro@1", "plan_basic@1"]);
    let (status, body) = get(&gw, "/api/subscriptions/plans/plan_basic", &member).await;
    assert_eq!((status, body["version"].as_i64()), (200, Some(2)), "{body}");
    let listed: Vec<i64> =
        body["versions"].as_array().expect("versions").iter().filter_map(|v| v["version"].as_i64()).collect();
    assert_eq!(listed, [2, 1]);
    assert_eq!(
        get(&gw, "/api/subscriptions/plans/plan_other", &owner).await.0,
        404,
        "another organization's"
    );
    let (status, body) = get(&gw, "/api/subscriptions/plans?all_versions=maybe", &owner).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("all_versions")), "{body}");

    // Coupons: the organization's, for operators.
    let (status, body) = get(&gw, "/api/subscriptions/coupons", &owner).await;
    assert_eq!((status, ids(&body, "coupon_id")), (200, vec!["STUDENT".to_owned()]), "{body}");
    assert_eq!(get(&gw, "/api/subscriptions/coupons", &member).await.0, 403);

    // Subscriptions: a member sees their own.
    let (status, body) = get(&gw, "/api/subscriptions", &owner).await;
    assert_eq!((status, ids(&body, "subscription_id")), (200, vec!["sub_2".to_owned(), "sub_1".to_owned()]));
    let (_, body) = get(&gw, "/api/subscriptions?status=past_due", &owner).await;
    assert_eq!(ids(&body, "subscription_id"), ["sub_2"]);
    assert_eq!(body["items"][0]["dunning_attempt"], 1);
    let (_, body) = get(&gw, "/api/subscriptions?plan_id=plan_pro", &owner).await;
    assert!(ids(&body, "subscription_id").is_empty());
    let (_, body) = get(&gw, "/api/subscriptions", &member).await;
    assert_eq!(ids(&body, "subscription_id"), ["sub_1"], "a member sees their own subscriptions only");
    assert_eq!(get(&gw, "/api/subscriptions?member_id=mem_2", &member).await.0, 403);
    let (status, body) = get(&gw, "/api/subscriptions?status=alive", &owner).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("status")), "{body}");
    let (status, body) = get(&gw, "/api/subscriptions/sub_1", &member).await;
    assert_eq!((status, body["plan_version"].as_i64()), (200, Some(2)), "{body}");
    assert_eq!(body["current_period_start"], "2026-01-01T00:00:00Z");
    assert_eq!(get(&gw, "/api/subscriptions/sub_2", &member).await.0, 404, "not another member's");
    assert_eq!(get(&gw, "/api/subscriptions/sub_3", &owner).await.0, 404, "not another organization's");

    // Usage of the current period against the plan version's allowances, by metric.
    let (status, body) = get(&gw, "/api/subscriptions/sub_1/usage", &member).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["period_start"], "2026-01-01T00:00:00Z");
    assert_eq!(
        body["metrics"],
        json!([
            { "metric": "api_calls", "used": 5, "included": null, "overage_unit_minor": null, "percent_used": null },
            { "metric": "bookings", "used": 8, "included": 10, "overage_unit_minor": 50, "percent_used": 80.0 },
            { "metric": "seat_hours", "used": 0, "included": 20, "overage_unit_minor": 0, "percent_used": 0.0 },
        ])
    );
    let (_, body) =
        get(&gw, "/api/subscriptions/sub_1/usage?period_start=2025-12-01T00:00:00Z", &member).await;
    assert_eq!(
        body["metrics"][0],
        json!({ "metric": "bookings", "used": 12, "included": 10,
        "overage_unit_minor": 50, "percent_used": 120.0 })
    );
    assert_eq!(get(&gw, "/api/subscriptions/sub_2/usage", &member).await.0, 404);
    let (status, body) = get(&gw, "/api/subscriptions/sub_1/usage?period_start=soon", &member).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("period_start")), "{body}");

    // Invoices and credit notes of a subscription.
    let (status, body) = get(&gw, "/api/subscriptions/sub_1/invoices?limit=1", &member).await;
    assert_eq!((status, ids(&body, "invoice_id")), (200, vec!["inv_2".to_owned()]), "{body}");
    let cursor = body["next_cursor"].as_str().expect("a next page").to_owned();
    let (_, body) =
        get(&gw, &format!("/api/subscriptions/sub_1/invoices?limit=1&cursor={cursor}"), &member).await;
    assert_eq!((ids(&body, "invoice_id"), &body["next_cursor"]), (vec!["inv_1".to_owned()], &Value::Null));
    assert_eq!(get(&gw, "/api/subscriptions/sub_2/invoices", &member).await.0, 404);
    let (status, body) = get(&gw, "/api/subscriptions/sub_1/credit-notes", &member).await;
    assert_eq!((status, ids(&body, "credit_note_id")), (200, vec!["cn_1".to_owned()]), "{body}");
    assert_eq!(
        (body["items"][0]["remaining_minor"].as_i64(), body["items"][0]["reason"].as_str()),
        (Some(100), Some("goodwill"))
    );
    let (_, body) = get(&gw, "/api/subscriptions/sub_2/credit-notes", &owner).await;
    assert_eq!(ids(&body, "credit_note_id"), ["cn_2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_compares_each_subscription_as_of_from_and_to() {
    let gw = TestGateway::start(|_| {}).await;
    let mut db = gw.projection("billing", &projection::MIGRATIONS).await;
    for (n, org) in ["org_1"; 8].iter().chain(["org_2"].iter()).enumerate() {
        insert_subscription(&mut db, org, &format!("s{}", n + 1), "mem_1", "2025-11-01T00:00:00Z").await;
    }
    // s1 expands, s2 churns, s3 converts from trial (new), s4 contracts, s5 starts within the range
    // (new), s6 starts after it, s7 stays paused, s8 is in USD; s9 is another organization's.
    // s1's two rows at one instant: the later seq wins.
    execute(
        &mut db,
        "INSERT INTO subscription_history (subscription_id, organization_id, effective_at, status, mrr_minor, currency)
         VALUES
           ('s1', 'org_1', '2025-12-01T00:00:00Z', 'active', 1000, 'EUR'),
           ('s1', 'org_1', '2026-01-10T00:00:00Z', 'active', 1200, 'EUR'),
           ('s1', 'org_1', '2026-01-10T00:00:00Z', 'active', 1500, 'EUR'),
           ('s2', 'org_1', '2025-12-01T00:00:00Z', 'active', 2000, 'EUR'),
           ('s2', 'org_1', '2026-01-15T00:00:00Z', 'cancelled', 0, 'EUR'),
           ('s3', 'org_1', '2025-12-20T00:00:00Z', 'trialing', 0, 'EUR'),
           ('s3', 'org_1', '2026-01-05T00:00:00Z', 'active', 3000, 'EUR'),
           ('s4', 'org_1', '2025-12-01T00:00:00Z', 'past_due', 800, 'EUR'),
           ('s4', 'org_1', '2026-01-20T00:00:00Z', 'active', 500, 'EUR'),
           ('s5', 'org_1', '2026-01-25T00:00:00Z', 'active', 700, 'EUR'),
           ('s6', 'org_1', '2026-02-05T00:00:00Z', 'active', 999, 'EUR'),
           ('s7', 'org_1', '2025-12-01T00:00:00Z', 'paused', 0, 'EUR'),
           ('s8', 'org_1', '2025-12-01T00:00:00Z', 'active', 5000, 'USD'),
           ('s9', 'org_2', '2025-12-01T00:00:00Z', 'active', 7000, 'EUR');",
    )
    .await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let path = "/api/subscriptions/analytics/dashboard?from=2026-01-01T00:00:00Z&to=2026-01-31T00:00:00Z";
    let (status, body) = get(&gw, path, &owner).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["from"].as_str(), body["to"].as_str()),
        (Some("2026-01-01T00:00:00Z"), Some("2026-01-31T00:00:00Z"))
    );
    let eur = &body["currencies"][0];
    let nrr = eur["net_revenue_retention"].as_f64().expect("nrr");
    let churn = eur["churn_rate"].as_f64().expect("churn rate");
    assert!((nrr - 2000.0 / 3800.0).abs() < 1e-9 && (churn - 1.0 / 3.0).abs() < 1e-9, "{eur}");
    let mut eur = eur.clone();
    eur.as_object_mut().expect("object").retain(|k, _| k != "net_revenue_retention" && k != "churn_rate");
    assert_eq!(
        eur,
        json!({
            "currency": "EUR", "mrr_minor": 5700, "arr_minor": 68400, "mrr_from_minor": 3800,
            "new_mrr_minor": 3700, "churned_mrr_minor": 2000, "expansion_mrr_minor": 500,
            "contraction_mrr_minor": 300,
            "trialing": 0, "active": 4, "past_due": 0, "paused": 1, "suspended": 0, "cancelled": 1,
            "growth_rate": 0.5,
        })
    );
    assert_eq!(
        body["currencies"][1],
        json!({
            "currency": "USD", "mrr_minor": 5000, "arr_minor": 60000, "mrr_from_minor": 5000,
            "new_mrr_minor": 0, "churned_mrr_minor": 0, "expansion_mrr_minor": 0, "contraction_mrr_minor": 0,
            "trialing": 0, "active": 1, "past_due": 0, "paused": 0, "suspended": 0, "cancelled": 0,
            "churn_rate": 0.0, "net_revenue_retention": 1.0, "growth_rate": 0.0,
        })
    );
    assert_eq!(body["currencies"].as_array().map(Vec::len), Some(2));

    // Before anything: no MRR at `from`, so no rates.
    let (_, body) = get(
        &gw,
        "/api/subscriptions/analytics/dashboard?from=2025-01-01T00:00:00Z&to=2025-12-02T00:00:00Z",
        &owner,
    )
    .await;
    assert_eq!(body["currencies"][0]["mrr_minor"], 3800);
    assert_eq!(body["currencies"][0]["new_mrr_minor"], 3800);
    assert_eq!(
        (&body["currencies"][0]["churn_rate"], &body["currencies"][0]["growth_rate"]),
        (&Value::Null, &Value::Null)
    );

    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));
    assert_eq!(get(&gw, path, &member).await.0, 403, "analytics are for operators");
    let backwards =
        "/api/subscriptions/analytics/dashboard?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z";
    let (status, body) = get(&gw, backwards, &owner).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("from")), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_of_now_counts_the_states_subscriptions_read() {
    let gw = TestGateway::start(|_| {}).await;
    let mut db = gw.projection("billing", &projection::MIGRATIONS).await;
    insert_subscription(&mut db, "org_1", "s1", "mem_1", "2026-01-01T00:00:00Z").await;
    // An operator cancelled the trial with an effective_at a day ahead of the clock: the
    // subscription reads cancelled now, and its history row is dated tomorrow.
    let tomorrow = (Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    execute(
        &mut db,
        &format!(
            "UPDATE subscriptions SET status = 'cancelled', mrr_minor = 0 WHERE subscription_id = 's1';
             INSERT INTO subscription_history (subscription_id, organization_id, effective_at, status, mrr_minor, currency)
             VALUES ('s1', 'org_1', '2026-01-01T00:00:00Z', 'trialing', 0, 'EUR'),
                    ('s1', 'org_1', '{tomorrow}', 'cancelled', 0, 'EUR');"
        ),
    )
    .await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let counts = |body: &Value| {
        let eur = &body["currencies"][0];
        (eur["trialing"].as_i64(), eur["cancelled"].as_i64())
    };
    let (status, now) = get(&gw, "/api/subscriptions/analytics/dashboard", &owner).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(counts(&now), (Some(0), Some(1)), "now is what the subscription reads: {now}");
    // A dashboard of a named instant is history as of that instant.
    let path = "/api/subscriptions/analytics/dashboard?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";
    let (_, past) = get(&gw, path, &owner).await;
    assert_eq!(counts(&past), (Some(1), Some(0)), "{past}");
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_operations_over_grpc_are_the_same_operations() {
    use studyspot_grpc_api::{
        CancelSubscriptionRequest, DefinePlanRequest, GetSubscriptionRequest, ListRequest, PlanAllowance,
        gateway_client::GatewayClient,
    };
    use tonic::{Code, Request, transport::Channel};
    use tonic_types::StatusExt;

    fn authorized<T>(message: T, token: &str) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
        request
    }

    let gw = TestGateway::start(|_| {}).await;
    let mut db = gw.projection("billing", &projection::MIGRATIONS).await;
    insert_subscription(&mut db, "org_1", "sub_1", "mem_1", "2026-01-01T00:00:00Z").await;
    let mut client = GatewayClient::new(
        Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect"),
    );
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));
    let allowance =
        |metric: &str| PlanAllowance { metric: metric.into(), included: 5, overage_unit_minor: 20 };
    let plan = DefinePlanRequest {
        plan_id: Some("plan_team".into()),
        name: "Team".into(),
        tier: "enterprise".into(),
        cycle: "yearly".into(),
        price_minor: 99_000,
        currency: "INR".into(),
        allowances: vec![allowance("api_calls")],
        ..Default::default()
    };

    let accepted = client.define_plan(authorized(plan.clone(), &staff)).await.expect("accepted").into_inner();
    assert_eq!((accepted.aggregate_field.as_str(), accepted.aggregate_id.as_str()), ("plan_id", "plan_team"));
    let bad =
        DefinePlanRequest { allowances: vec![allowance("api_calls"), allowance("coffee")], ..plan.clone() };
    let refused = client.define_plan(authorized(bad, &staff)).await.expect_err("unknown metric");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let details = refused.get_error_details();
    assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some("validation_failed"));
    let violations = &details.bad_request().expect("bad request").field_violations;
    assert_eq!(violations[0].field, "allowances[1].metric", "{violations:?}");
    let forbidden = client.define_plan(authorized(plan, &member)).await.expect_err("a member");
    assert_eq!(forbidden.code(), Code::PermissionDenied);

    let catalog = gw.read_all(billing::CATALOG_COMMANDS.name);
    assert_eq!(catalog.len(), 1, "only the accepted plan");
    assert_eq!(key(&catalog[0]), "org_1");
    assert_eq!(catalog[0].headers.get(headers::EVENT_ID), Some(accepted.command_id.as_str()));
    let defined: billing::DefinePlan = decode(&gw, &catalog[0]).await;
    assert_eq!(
        defined,
        billing::DefinePlan {
            metadata: defined.metadata.clone(),
            plan_id: "plan_team".into(),
            name: "Team".into(),
            tier: "enterprise".into(),
            cycle: "yearly".into(),
            price_minor: 99_000,
            currency: "INR".into(),
            trial_days: 0,
            tax_rate_bps: 0,
            allowances: vec![billing::PlanAllowance {
                metric: "api_calls".into(),
                included: 5,
                overage_unit_minor: 20,
            }],
        }
    );

    let cancel = CancelSubscriptionRequest {
        subscription_id: "sub_1".into(),
        effective_at: Some("2026-01-20T12:00:00Z".into()),
        prorate: true,
        ..Default::default()
    };
    client
        .cancel_subscription(authorized(cancel.clone(), &member))
        .await
        .expect_err("a member names no instant");
    client
        .cancel_subscription(authorized(cancel, &staff))
        .await
        .expect("staff backdate within what was applied");
    let commands = gw.read_all(billing::COMMANDS.name);
    assert_eq!(commands.len(), 1);
    assert_eq!(key(&commands[0]), "mem_1");
    let cancelled: billing::CancelSubscription = decode(&gw, &commands[0]).await;
    assert_eq!(
        (cancelled.prorate, cancelled.at_period_end, cancelled.effective_at),
        (true, false, Some(at("2026-01-20T12:00:00Z").timestamp_millis()))
    );
    let bad_time = CancelSubscriptionRequest {
        subscription_id: "sub_1".into(),
        effective_at: Some("noon".into()),
        ..Default::default()
    };
    let refused = client.cancel_subscription(authorized(bad_time, &member)).await.expect_err("bad time");
    let details = refused.get_error_details();
    assert_eq!(details.bad_request().expect("bad request").field_violations[0].field, "effective_at");

    let one = client
        .get_subscription(authorized(GetSubscriptionRequest { subscription_id: "sub_1".into() }, &member))
        .await
        .expect("own subscription")
        .into_inner();
    assert_eq!(
        (one.plan_id.as_str(), one.current_period_start.as_str()),
        ("plan_basic", "2026-01-01T00:00:00.000000Z")
    );
    let listed = client.list_subscriptions(authorized(ListRequest::default(), &staff)).await.expect("list");
    assert_eq!(listed.get_ref().items.len(), 1);
    let dashboard = client
        .get_subscriptions_dashboard(authorized(ListRequest::default(), &member))
        .await
        .expect_err("members see no analytics");
    assert_eq!(dashboard.code(), Code::PermissionDenied);
}
