//! Attendance end to end, through the gateway, against the real broker and PostgreSQL: the
//! attendance consumer (a process) and billing (in this process) follow each other's events.
//! 500 subscribed members mint member QR tokens and check in and out concurrently across two
//! venues with less room than members; occupancy never goes negative or above capacity and ends
//! at zero, and every completed session is counted once in billing's usage.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use serde_json::{Value, json};
use studyspot_schemas::billing;
use studyspot_tokens::Role;
use support::{World, eventually, stop, world};

const MEMBERS: usize = 500;
const CAPACITY: i64 = 120;
const VENUES: [&str; 2] = ["ven_north", "ven_south"];
/// How long one request, one decision or one member's wait for a free seat may take before the
/// test gives up: generous, as 500 members share two small gateway pools.
const PATIENCE: Duration = Duration::from_secs(240);

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    /// A POST, tried again while the gateway answers 503 (its pools are small in tests), with one
    /// Idempotency-Key for all tries: a command whose first try did reach the topic is not sent
    /// twice (a QR token must not be used twice).
    async fn post(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let key = uuid::Uuid::now_v7().to_string();
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(Instant::now() < deadline, "{path}: still 503/409 after {PATIENCE:?}");
            let response = self
                .client
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .header("Idempotency-Key", &key)
                .json(body)
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            if status != 503 && status != 409 {
                return (status, response.json().await.unwrap_or(Value::Null));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let response =
            self.client.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends a command and waits for its outcome: (status, rejection code).
    async fn decided(&self, token: &str, path: &str, body: &Value) -> (String, Option<String>) {
        let (status, accepted) = self.post(token, path, body).await;
        assert_eq!(status, 202, "{path}: {accepted}");
        let id = accepted["command_id"].as_str().expect("command id");
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(Instant::now() < deadline, "{path}: command {id} undecided after {PATIENCE:?}");
            let (status, decided) = self.get(token, &format!("/api/commands/{id}?wait=30s")).await;
            assert_eq!(status, 200, "{decided}");
            let outcome = decided["status"].as_str().unwrap_or_default().to_owned();
            if outcome != "accepted" {
                return (outcome, decided["rejection"]["code"].as_str().map(str::to_owned));
            }
        }
    }
}

/// Billing's topics in this world, and billing's consumer running in this process.
async fn billing_in_process(
    world: &World,
    settings: &studyspot_config::Settings,
) -> tokio_util::sync::CancellationToken {
    let names: Vec<String> =
        studyspot_bus::admin::topic_names_with_dead_letters(studyspot_schemas::catalogue())
            .into_iter()
            .filter(|n| n.contains(".billing."))
            .map(|n| world.topic(n))
            .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    studyspot_bus::admin::ensure_topics(&world.bus, &refs, 3, 1).await.expect("billing's topics");
    let mut settings = settings.clone();
    settings.postgres.max_connections = 8;
    let s = &settings.billing.subscriptions;
    let policy = studyspot_billing::decide::subscriptions::Policy {
        trial_notice_days: s.trial_notice_days,
        dunning_retry_days: s.dunning_retry_days.clone(),
        dunning_final_action: s.dunning_final_action.clone(),
        invoice_due_days: s.invoice_due_days,
        manual_invoice_due_days: s.manual_invoice_due_days,
    };
    let topics =
        [billing::COMMANDS.name, billing::CATALOG_COMMANDS.name, studyspot_schemas::attendance::EVENTS.name];
    let config = studyspot_consumer_runtime::RuntimeConfig::from_settings(&settings, "billing", &topics);
    let runtime = studyspot_consumer_runtime::Runtime::connect(
        config,
        studyspot_billing::BillingHandler::new(policy),
        Some(&studyspot_billing_projection::MIGRATIONS),
    )
    .await
    .expect("billing runtime");
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move { runtime.run(shutdown).await.expect("billing runs") }
    });
    shutdown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_members_check_in_and_out_concurrently_and_every_session_is_billed_once() {
    let started = Instant::now();
    let world = world().await;
    let (base, settings) = world
        .gateway_configured(|s| {
            s.gateway.rate_limit_per_second = 100_000;
            s.gateway.rate_limit_burst = 100_000;
            s.postgres.max_connections = 16;
        })
        .await;
    let stop_billing = billing_in_process(&world, &settings).await;
    let mut consumer =
        world.spawn_consumer_with(None, &world.database_url, &[("STUDYSPOT_CONSUMER__MAX_BATCH", "200")]);
    let api = Arc::new(Api {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .build()
            .expect("client"),
        base,
    });
    let owner = world.token(&settings, Role::Owner, None);

    // A plan with a trial (nothing to charge) that counts seat-hours; 500 subscribers.
    let plan = json!({
        "plan_id": "plan_study", "name": "Study", "tier": "basic", "cycle": "monthly", "price_minor": 1500,
        "currency": "EUR", "trial_days": 30,
        "allowances": [{ "metric": "seat_hours", "included": 100, "overage_unit_minor": 0 }],
    });
    assert_eq!(api.decided(&owner, "/api/subscriptions/plans", &plan).await.0, "applied");
    for venue in VENUES {
        let body = json!({
            "venue_id": venue, "name": venue, "time_zone": "Europe/Berlin", "capacity": CAPACITY,
            "zones": [{ "zone_id": "quiet", "name": "Quiet", "capacity": CAPACITY / 2 }],
            "opening_hours": (1..=7).map(|d| json!({ "weekday": d, "opens": "00:00", "closes": "24:00" })).collect::<Vec<_>>(),
        });
        assert_eq!(api.decided(&owner, "/api/attendance/venues", &body).await.0, "applied");
    }
    let subscribed = stream::iter(0..MEMBERS)
        .map(|n| {
            let (api, owner) = (api.clone(), owner.clone());
            async move {
                let body = json!({ "subscription_id": format!("sub_{n}"), "member_id": format!("mem_{n}"), "plan_id": "plan_study" });
                api.post(&owner, "/api/subscriptions", &body).await.0
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<u16>>()
        .await;
    assert!(subscribed.iter().all(|s| *s == 202), "{subscribed:?}");
    // Attendance learns of the subscriptions from billing's events.
    let pool = world.pool().await;
    eventually("attendance's view of 500 trialing subscriptions", Duration::from_secs(180), || async {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM attendance.entitlements WHERE status = 'trialing'")
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
        (n == MEMBERS as i64).then_some(())
    })
    .await;
    let set_up = started.elapsed();

    // Every member: a member QR token, a check-in (again while the venue is full), a check-out.
    let visits = stream::iter(0..MEMBERS)
        .map(|n| {
            let (api, world, settings) = (api.clone(), &world, &settings);
            async move {
                let member = format!("mem_{n}");
                let token = world.token(settings, Role::Member, Some(&member));
                let venue = VENUES[n % 2];
                let mut full = 0;
                let deadline = Instant::now() + PATIENCE;
                loop {
                    assert!(Instant::now() < deadline, "{member} never got in after {full} refusals");
                    let (status, qr) = api
                        .post(&token, "/api/attendance/qr-tokens", &json!({ "kind": "member", "venue_id": venue, "member_id": member }))
                        .await;
                    assert_eq!(status, 201, "{qr}");
                    let zone = if n % 3 == 0 { json!("quiet") } else { Value::Null };
                    let body = json!({ "member_id": member, "venue_id": venue, "zone_id": zone, "qr_token": qr["token"] });
                    match api.decided(&token, "/api/attendance/check-ins", &body).await {
                        (s, _) if s == "applied" => break,
                        (_, Some(code)) if code == "venue_full" || code == "zone_full" => full += 1,
                        other => panic!("{member}'s check-in: {other:?}"),
                    }
                    // Someone will leave: ask again after a moment (a backoff, not a wait for a result).
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let out = api.decided(&token, "/api/attendance/check-outs", &json!({ "member_id": member })).await;
                assert_eq!(out, ("applied".to_owned(), None), "{member}'s check-out");
                full
            }
        })
        .buffer_unordered(MEMBERS)
        .collect::<Vec<usize>>()
        .await;
    let refused_full: usize = visits.iter().sum();
    let visited = started.elapsed() - set_up;

    // Occupancy: never negative (a CHECK), never above capacity, zero at the end.
    for venue in VENUES {
        let (peak, zone_peak, lowest): (i32, Option<i32>, i32) = sqlx::query_as(
            "SELECT max(occupancy) FILTER (WHERE zone_id = ''), max(occupancy) FILTER (WHERE zone_id = 'quiet'), \
               min(occupancy) FROM attendance.occupancy_samples WHERE venue_id = $1",
        )
        .bind(venue)
        .fetch_one(&pool)
        .await
        .expect("samples");
        assert!(peak <= CAPACITY as i32 && lowest >= 0, "{venue}: peak {peak}, lowest {lowest}");
        assert!(zone_peak.unwrap_or(0) <= (CAPACITY / 2) as i32, "{venue}: zone peak {zone_peak:?}");
    }
    let (status, occupancy) = api.get(&owner, "/api/attendance/occupancy").await;
    assert_eq!(status, 200, "{occupancy}");
    let now: Vec<(String, i64)> = occupancy
        .as_array()
        .expect("venues")
        .iter()
        .map(|v| {
            (v["venue_id"].as_str().unwrap_or_default().to_owned(), v["occupancy"].as_i64().unwrap_or(-1))
        })
        .collect();
    assert_eq!(now, [("ven_north".to_owned(), 0), ("ven_south".to_owned(), 0)]);
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attendance.sessions WHERE checked_out_at IS NOT NULL AND duration_seconds >= 0",
    )
    .fetch_one(&pool)
    .await
    .expect("sessions");
    assert_eq!(completed, MEMBERS as i64, "one completed session per member");

    // Billing counted each completed session once, as seat-hours of the member's subscription.
    let usage = eventually("every session in billing's usage", Duration::from_secs(180), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM billing.usage_records u JOIN attendance.sessions s ON u.usage_id = 'use_' || s.session_id \
             WHERE u.metric = 'seat_hours' AND u.subscription_id = s.subscription_id",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        (n == MEMBERS as i64).then_some(n)
    })
    .await;
    assert_eq!(usage, MEMBERS as i64);
    let per_subscription: Vec<(i64,)> = sqlx::query_as(
        "SELECT sum(used)::bigint FROM billing.usage_counters WHERE metric = 'seat_hours' GROUP BY subscription_id",
    )
    .fetch_all(&pool)
    .await
    .expect("counters");
    assert_eq!(per_subscription.len(), MEMBERS);
    assert!(
        per_subscription.iter().all(|(used,)| *used == 1),
        "each member's one short session is one seat-hour"
    );

    // The dashboard sees them too.
    let (status, dashboard) = api.get(&owner, "/api/attendance/analytics/dashboard").await;
    assert_eq!(status, 200, "{dashboard}");
    let check_ins: i64 = dashboard["venues"]
        .as_array()
        .expect("venues")
        .iter()
        .map(|v| v["check_ins"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(check_ins, MEMBERS as i64, "{dashboard}");
    eprintln!(
        "{MEMBERS} members: set-up {set_up:?}, visits {visited:?} ({refused_full} check-ins refused while full), total {:?}",
        started.elapsed()
    );
    stop_billing.cancel();
    stop(&mut consumer);
}
