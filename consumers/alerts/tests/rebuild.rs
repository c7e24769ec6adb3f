//! A rebuild of alerts' projection from history equals the live one. The history, made through the gateway
//! and the topics with a real alerts process (its scheduler ticking every second, its prober probing a fake
//! target, its insight and retention ticks), holds a route written with DefineRoute's version from before
//! grouping, a payment failure rule that fires and resolves (billing's payment outcomes, as derived samples),
//! a daily report rendered mid-history, a health check whose target goes down and comes back while a silence
//! holds its alert's notification back, posted samples and logs, a log retention tick, venue occupancy from
//! attendance's events, refused commands (a bad matcher, an unknown silence, a tick older than the clock),
//! one command delivered twice, a poison record and a malformed command (dead letters), and a batch retried
//! after a crash. The prober's, scheduler's and insight ticks run only in the live process: what they saw
//! travels in time-carrying commands, which the rebuild applies like the live process did. Then a rebuild is
//! swapped in under the running process while samples keep arriving, and it goes on in it.

use std::{
    os::unix::process::ExitStatusExt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Days, TimeZone as _, Utc};
use serde_json::{Value, json};
use studyspot_schemas::{
    EventMetadata,
    alerts::{
        self, AlertFired, AlertResolved, DefineRoute, ExpireSilence, GenerateReports, Matcher, MetricSample,
        Receiver, RecordMetricSample, RecordMetricSamples,
    },
    attendance::{self, CheckedIn, VenueDefined},
    billing::{self, PaymentFailed, PaymentSucceeded},
    notifications,
};
use studyspot_test_world::{Api, Consumer, World, eventually, exited, stop};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Tables whose rows carry a sequence's number (`id`), and that number's column. A sequence
/// hands numbers out outside transactions: a batch rolled back and applied again (a malformed
/// command in it goes to the dead letters, a process dies before committing) has used up
/// numbers, and the live process and a rebuild batch differently, so the numbers differ while
/// the rows and their order do not. The checksum leaves the number out; the order it gives the
/// rows is compared on its own.
const NUMBERED: [&str; 5] = [
    "metric_samples",
    "alert_history",
    "alert_notifications",
    "alert_group_notifications",
    "health_check_results",
];

const EXCLUDED: [&str; 5] = [
    "metric_samples.id",
    "alert_history.id",
    "alert_notifications.id",
    "alert_group_notifications.id",
    "health_check_results.id",
];

/// The live alert of `rule_id` once `accept` holds for it.
async fn alert_until(api: &Api, rule_id: &str, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
    eventually(what, Duration::from_secs(90), || async {
        let (_, body) = api.get("/api/monitoring/alerts/active").await;
        body["items"]
            .as_array()
            .and_then(|items| items.iter().find(|a| a["rule_id"] == rule_id && accept(a)).cloned())
    })
    .await
}

async fn until_resolved(api: &Api, rule_id: &str) {
    eventually(&format!("{rule_id} resolved"), Duration::from_secs(90), || async {
        let (status, body) = api.get("/api/monitoring/alerts/active").await;
        let gone = body["items"].as_array().is_some_and(|i| !i.iter().any(|a| a["rule_id"] == rule_id));
        (status == 200 && gone).then_some(())
    })
    .await;
}

fn matcher(name: &str, op: &str, value: &str) -> Matcher {
    Matcher { name: name.into(), op: op.into(), value: value.into() }
}

fn failed(world: &World, i: usize) -> PaymentFailed {
    PaymentFailed {
        metadata: world.metadata("service:billing"),
        payment_id: format!("pay_f{i}"),
        member_id: format!("mem_{i}"),
        amount_minor: 3000,
        currency: "EUR".into(),
        method: "card".into(),
        connector: "stripe".into(),
        code: "card_declined".into(),
        message: "Your card was declined.".into(),
    }
}

fn succeeded(world: &World, i: usize) -> PaymentSucceeded {
    PaymentSucceeded {
        metadata: world.metadata("service:billing"),
        payment_id: format!("pay_s{i}"),
        member_id: format!("mem_{i}"),
        amount_minor: 3000,
        currency: "EUR".into(),
        method: "card".into(),
        connector: "stripe".into(),
        provider_payment_id: None,
        gateway_fee_minor: 0,
        processing_fee_minor: 0,
        invoice_id: None,
    }
}

/// A target answering `GET /healthz` with 200 while `healthy`, 503 otherwise.
async fn fake_target(healthy: Arc<AtomicBool>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let healthy = healthy.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = socket.read(&mut buf).await;
                let status =
                    if healthy.load(Ordering::SeqCst) { "200 OK" } else { "503 Service Unavailable" };
                let response =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}/healthz")
}

fn consumer(world: &World, crash_at: Option<&str>) -> Consumer {
    let mut env = vec![
        ("STUDYSPOT_ALERTS__EVALUATION_INTERVAL_SECS", "1"),
        ("STUDYSPOT_ALERTS__INSIGHTS_INTERVAL_SECS", "2"),
        ("STUDYSPOT_ALERTS__BROKER_SAMPLE_INTERVAL_SECS", "2"),
        ("STUDYSPOT_ALERTS__HEALTH__TICK_MS", "200"),
        // Only the operators' own check: StudySpot's processes are not running here.
        ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__GATEWAY", ""),
        ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__BILLING", ""),
        ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__NOTIFICATIONS", ""),
        ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__ATTENDANCE", ""),
        ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__ALERTS", ""),
    ];
    if let Some(point) = crash_at {
        env.push(("STUDYSPOT_CRASH_AT", point));
    }
    world.spawn_consumer_with(None, &world.database_url, &env)
}

/// (AlertFired, AlertResolved) of `rule_id` on alerts' events topic so far.
async fn told(world: &World, rule_id: &str) -> (Vec<AlertFired>, Vec<AlertResolved>) {
    let (mut fired, mut resolved) = (Vec::new(), Vec::new());
    for record in world.read_all(alerts::EVENTS.name) {
        let decoded = world.codec.decode(record.payload.as_deref().expect("payload")).await.expect("decode");
        match decoded.full_name.as_str() {
            "studyspot.alerts.AlertFired" => {
                let f: AlertFired = decoded.into_record().expect("AlertFired");
                if f.rule_id == rule_id {
                    fired.push(f);
                }
            }
            "studyspot.alerts.AlertResolved" => {
                let r: AlertResolved = decoded.into_record().expect("AlertResolved");
                if r.rule_id == rule_id {
                    resolved.push(r);
                }
            }
            _ => {}
        }
    }
    (fired, resolved)
}

async fn scalar(world: &World, sql: &str) -> i64 {
    let pool = world.pool().await;
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&pool).await.unwrap_or(-1);
    pool.close().await;
    n
}

/// `rebuilt` equals `live`: the checksum without the sequence numbers, and the order they gave.
async fn assert_same(
    world: &World,
    rebuilt: &str,
    live: &str,
) -> studyspot_consumer_runtime::checksum::Checksum {
    let live_sum = world.checksum(live, &EXCLUDED).await;
    assert_eq!(world.checksum(rebuilt, &EXCLUDED).await, live_sum, "{rebuilt} vs {live}");
    for table in NUMBERED {
        assert_eq!(
            world.ordered_digest(rebuilt, table, "t.id", &["id"]).await,
            world.ordered_digest(live, table, "t.id", &["id"]).await,
            "{table}: the rows in {rebuilt} come in another order than in {live}"
        );
    }
    live_sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_of_alerts_equals_the_live_projection_and_is_swapped_in() {
    let world = World::new("alerts", env!("CARGO_BIN_EXE_studyspot-alerts")).await;
    // Alerts reads these domains' events: the topics exist in every real deployment.
    world.create_topics(&[&billing::EVENTS, &attendance::EVENTS, &notifications::EVENTS]).await;
    let org = world.organization_id();

    // Before any process runs. Schema evolution: the on-call route written with DefineRoute
    // before it could group (group_by, group_wait_seconds, group_interval_seconds).
    world
        .send_older(
            &DefineRoute {
                metadata: world.metadata("user:test"),
                route_id: "rte_oncall".into(),
                matchers: vec![matcher("severity", "=", "critical")],
                receivers: vec![Receiver { recipient_id: "usr_oncall".into(), channel: "webhook".into() }],
                mute_time_intervals: Vec::new(),
                group_by: vec!["...".into()],
                group_wait_seconds: 0,
                group_interval_seconds: 0,
            },
            &["group_by", "group_wait_seconds", "group_interval_seconds"],
        )
        .await;
    // A sample delivered twice, a poison record, a malformed batch (no samples) between good ones.
    let now = Utc::now().timestamp_millis();
    let twice = RecordMetricSample {
        metadata: world.metadata("service:test"),
        metric: "studyspot_queue_depth".into(),
        labels: [("queue".to_owned(), "mail".to_owned())].into(),
        value: 3.0,
        sampled_at: now,
    };
    world.send(&twice).await;
    world.send(&twice).await;
    world.send_raw(alerts::COMMANDS.name, &org, b"not avro at all".to_vec()).await;
    world.send(&RecordMetricSamples { metadata: world.metadata("service:test"), samples: Vec::new() }).await;
    world
        .send(&RecordMetricSamples {
            metadata: world.metadata("service:test"),
            samples: (1..=2)
                .map(|i| MetricSample {
                    metric: "studyspot_queue_depth".into(),
                    labels: [("queue".to_owned(), "sms".to_owned())].into(),
                    value: f64::from(i),
                    sampled_at: now + i64::from(i),
                })
                .collect(),
        })
        .await;

    // A retried batch: the first process dies before committing its first batch.
    let mut doomed = consumer(&world, Some("before_commit:1"));
    let status = exited(&mut doomed, Duration::from_secs(60)).await;
    assert_eq!(status.signal(), Some(9), "the consumer should have SIGKILLed itself:\n{}", doomed.log());
    let mut live = consumer(&world, None);
    let api = Api::staff(&world).await;

    // Refused: a matcher that does not compile, expiring a silence nobody made.
    let bad = api
        .command(
            "/api/monitoring/silences",
            json!({ "matchers": [{ "name": "alertname", "op": "=~", "value": "(" }], "ends_at": "2099-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(bad["rejection"]["code"], "invalid_matcher", "{bad}\n{}", live.log());
    world
        .send(&ExpireSilence { metadata: world.metadata("user:test"), silence_id: "sil_nowhere".into() })
        .await;

    let rule = api
        .command(
            "/api/monitoring/alerts",
            json!({ "rule_id": "rul_payment_failures", "name": "PaymentFailureRate", "kind": "ratio",
                    "metric": "studyspot_payments",
                    "matchers": [{ "name": "outcome", "op": "=", "value": "failed" }],
                    "window_seconds": 120, "for_seconds": 0, "op": ">", "threshold": 0.5,
                    "severity": "critical", "labels": { "team": "billing" },
                    "annotations": { "summary": "More than half of the payments fail" },
                    "repeat_interval_seconds": 3600 }),
        )
        .await;
    assert_eq!(rule["status"], "applied", "{rule}");
    let report = api
        .command(
            "/api/monitoring/reports",
            json!({ "report_id": "rpt_daily", "name": "Daily operations", "schedule": "daily", "time_zone": "UTC",
                    "sections": ["revenue", "occupancy", "deliveries", "alerts"],
                    "recipients": [{ "recipient_id": "usr_ops", "channel": "email" }] }),
        )
        .await;
    assert_eq!(report["status"], "applied", "{report}");
    // The health check's alert is silenced: it fires, but nobody is told.
    let silence = api
        .command(
            "/api/monitoring/silences",
            json!({ "silence_id": "sil_maintenance", "comment": "Fake API maintenance",
                    "matchers": [{ "name": "alertname", "op": "=", "value": "HealthCheckDown" }],
                    "ends_at": "2099-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(silence["status"], "applied", "{silence}");
    let healthy = Arc::new(AtomicBool::new(true));
    let target = fake_target(healthy.clone()).await;
    let check = api
        .command(
            "/api/monitoring/health-checks",
            json!({ "health_check_id": "hck_fake", "name": "Fake API", "target": target,
                    "interval_seconds": 1, "timeout_ms": 1000, "failure_threshold": 2,
                    "labels": { "team": "platform" }, "severity": "critical" }),
        )
        .await;
    assert_eq!(check["status"], "applied", "{check}");

    // Samples and logs posted, one log record old enough for the retention tick to drop.
    let posted = api
        .command(
            "/api/monitoring/metrics",
            json!({ "metric": "studyspot_queue_depth", "labels": { "queue": "push" }, "value": 7 }),
        )
        .await;
    assert_eq!(posted["status"], "applied", "{posted}");
    let month_ago = Utc::now().timestamp_millis() - 30 * 86_400_000;
    let logged = api
        .command(
            "/api/monitoring/logs",
            json!({ "records": [
                { "level": "error", "service": "billing", "message": "charge failed",
                  "fields": { "payment_id": "pay_f1" } },
                { "level": "info", "service": "gateway", "message": "request served" },
                { "time": month_ago, "level": "warn", "service": "gateway", "message": "slow request" },
            ] }),
        )
        .await;
    assert_eq!(logged["status"], "applied", "{logged}");
    world.send(&studyspot_alerts::logs::retention_tick(&org, Utc::now(), 14)).await;
    eventually("the old log record dropped", Duration::from_secs(60), || async {
        (scalar(&world, "SELECT count(*) FROM alerts.log_records").await == 2).then_some(())
    })
    .await;

    // Attendance's venue and a check-in: occupancy and its ratio to the capacity.
    world
        .send(&VenueDefined {
            metadata: world.metadata("service:attendance"),
            venue_id: "ven_a".into(),
            name: "Reading room".into(),
            time_zone: "Europe/Berlin".into(),
            capacity: 40,
            zones: Vec::new(),
            seats: 40,
            version: 1,
        })
        .await;
    world
        .send(&CheckedIn {
            metadata: world.metadata("service:attendance"),
            session_id: "ses_1".into(),
            member_id: "mem_1".into(),
            venue_id: "ven_a".into(),
            seat_id: None,
            occupancy: 10,
            zone_id: None,
            zone_occupancy: None,
            booking_id: None,
            subscription_id: None,
            pass_id: None,
            venue_name: None,
            seat_label: None,
        })
        .await;

    // A burst of failed payments fires the rule, once, to the on-call route; recovery resolves.
    for i in 0..8 {
        world.send(&failed(&world, i)).await;
    }
    world.send(&succeeded(&world, 0)).await;
    alert_until(&api, "rul_payment_failures", "the payment alert firing", |a| a["state"] == "firing").await;
    for i in 1..30 {
        world.send(&succeeded(&world, i)).await;
    }
    until_resolved(&api, "rul_payment_failures").await;
    let (fired, resolved) =
        eventually("the payment alert told and resolved", Duration::from_secs(30), || async {
            let (fired, resolved) = told(&world, "rul_payment_failures").await;
            (!resolved.is_empty()).then_some((fired, resolved))
        })
        .await;
    assert_eq!((fired.len(), resolved.len()), (1, 1), "{}", live.log());
    assert_eq!(fired[0].receivers[0].recipient_id, "usr_oncall", "the route written with the older version");
    // The day's report, rendered by a tick just after its end (the figures as they stand now: the
    // health check's alert below comes after it).
    let pool = world.pool().await;
    let defined: DateTime<Utc> =
        sqlx::query_scalar("SELECT defined_at FROM alerts.reports").fetch_one(&pool).await.expect("report");
    pool.close().await;
    let tick_at = Utc.from_utc_datetime(
        &(defined.date_naive() + Days::new(1)).and_hms_opt(0, 1, 0).expect("just after midnight"),
    );
    world
        .send(&GenerateReports {
            metadata: EventMetadata {
                occurred_at: tick_at.timestamp_millis(),
                ..world.metadata("service:test")
            },
            up_to: tick_at.timestamp_millis(),
        })
        .await;
    eventually("the day's report run", Duration::from_secs(60), || async {
        (scalar(&world, "SELECT count(*) FROM alerts.report_runs").await == 1).then_some(())
    })
    .await;

    // The target goes down: its alert fires but the silence holds it back; then it is back.
    eventually("the target up", Duration::from_secs(60), || async {
        let (_, body) = api.get("/api/monitoring/health-checks/hck_fake").await;
        (body["check"]["status"] == "up").then_some(())
    })
    .await;
    healthy.store(false, Ordering::SeqCst);
    let down =
        alert_until(&api, "rul_health_hck_fake", "the health check alert firing", |a| a["state"] == "firing")
            .await;
    assert_eq!(down["labels"]["alertname"], "HealthCheckDown", "{down}");
    healthy.store(true, Ordering::SeqCst);
    until_resolved(&api, "rul_health_hck_fake").await;
    let (fired, _) = told(&world, "rul_health_hck_fake").await;
    assert!(fired.is_empty(), "the silence held the health check's notification back: {fired:?}");
    let suppressed = scalar(
        &world,
        "SELECT count(*) FROM alerts.alert_notifications WHERE rule_id = 'rul_health_hck_fake' AND decision = 'suppressed'",
    )
    .await;
    assert!(suppressed >= 1, "a suppressed decision is recorded\n{}", live.log());

    // A tick older than the clock is refused.
    world.send(&studyspot_alerts::scheduler::tick_for(&org, Utc::now() - chrono::Duration::hours(1))).await;
    eventually("the stale tick refused", Duration::from_secs(60), || async {
        let n = scalar(
            &world,
            "SELECT count(*) FROM alerts.command_outcomes WHERE outcome = 'rejected' \
             AND code = 'tick_before_applied'",
        )
        .await;
        (n >= 1).then_some(())
    })
    .await;

    // Compared at rest: the scheduler, prober and insight ticks add commands at any moment, and
    // a rebuild follows wherever the live positions stand when it reads them.
    assert!(stop(&mut live).success(), "{}", live.log());
    let dead = world.read_all(alerts::COMMANDS.dead_letter);
    assert_eq!(dead.len(), 2, "the poison record and the malformed batch");

    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into alerts_rebuild_1"), "unexpected report: {report}");
    let live_sum = assert_same(&world, "alerts_rebuild_1", "alerts").await;
    for (table, at_least) in [
        ("alert_history", 6),
        ("alert_notifications", 3),
        ("health_check_results", 5),
        ("log_records", 2),
        ("report_runs", 1),
        ("silences", 1),
        ("venue_capacities", 1),
    ] {
        assert!(
            live_sum.tables.iter().any(|t| t.table == table && t.rows >= at_least),
            "{table}: {live_sum:?}"
        );
    }
    let samples =
        scalar(&world, "SELECT count(*) FROM alerts.metric_samples WHERE metric = 'studyspot_queue_depth'")
            .await;
    assert_eq!(samples, 4, "the sample delivered twice is one; the malformed batch none");

    // Swapped in under the running process while samples keep arriving; it goes on in it.
    let mut live = consumer(&world, None);
    let traffic = async {
        for n in 0..10 {
            let posted = api
                .command(
                    "/api/monitoring/metrics",
                    json!({ "metric": "studyspot_queue_depth", "labels": { "queue": "during" }, "value": n }),
                )
                .await;
            assert_eq!(posted["status"], "applied", "{posted}");
        }
    };
    let (report, ()) = tokio::join!(world.rebuild(&[], Duration::from_secs(180)), traffic);
    assert!(report.contains("kept as alerts_old_2"), "unexpected report: {report}");
    let after = api
        .command(
            "/api/monitoring/metrics",
            json!({ "metric": "studyspot_queue_depth", "labels": { "queue": "after" }, "value": 1 }),
        )
        .await;
    assert_eq!(after["status"], "applied", "{after}\n{}", live.log());
    assert!(stop(&mut live).success(), "{}", live.log());
    let where_after = "metric = 'studyspot_queue_depth' AND labels->>'queue' = 'after'";
    assert_eq!(
        scalar(&world, &format!("SELECT count(*) FROM alerts.metric_samples WHERE {where_after}")).await,
        1
    );
    assert_eq!(
        scalar(&world, &format!("SELECT count(*) FROM alerts_old_2.metric_samples WHERE {where_after}"))
            .await,
        0,
        "the old projection no longer moves"
    );

    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into alerts_rebuild_3"), "unexpected report: {report}");
    assert_same(&world, "alerts_rebuild_3", "alerts").await;
    let samples = scalar(
        &world,
        "SELECT count(*) FROM alerts_rebuild_3.metric_samples WHERE metric = 'studyspot_queue_depth'",
    )
    .await;
    assert_eq!(samples, 15, "and the samples posted during and after the swap");
}
