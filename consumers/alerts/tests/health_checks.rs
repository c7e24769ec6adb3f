//! Health checks through the gateway against the real broker and PostgreSQL, with a real alerts
//! process probing: a target (a fake HTTP server in this test) going down fires its
//! `HealthCheckDown` alert once to the operator's route and resolves once when it comes back;
//! StudySpot's own processes are probed by default (here the test's gateway, up, and a billing
//! process nobody started, down). Everything is awaited with a deadline.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};
use studyspot_schemas::{
    alerts::{self, AlertFired, AlertResolved, HealthCheckStatusChanged},
    attendance, billing, notifications,
};
use studyspot_test_world::{Api, World, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn check(api: &Api, id: &str) -> Value {
    let (status, body) = api.get(&format!("/api/monitoring/health-checks/{id}")).await;
    if status == 200 { body } else { Value::Null }
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

/// A `host:port` nobody listens on.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").to_string()
}

async fn alert_events(world: &World, rule_id: &str) -> (Vec<AlertFired>, Vec<AlertResolved>) {
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

async fn status_changes(world: &World, health_check_id: &str) -> Vec<(String, String)> {
    let mut changes = Vec::new();
    for record in world.read_all(alerts::EVENTS.name) {
        let decoded = world.codec.decode(record.payload.as_deref().expect("payload")).await.expect("decode");
        if decoded.full_name == "studyspot.alerts.HealthCheckStatusChanged" {
            let c: HealthCheckStatusChanged = decoded.into_record().expect("HealthCheckStatusChanged");
            if c.health_check_id == health_check_id {
                changes.push((c.from_status, c.to_status));
            }
        }
    }
    changes
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_going_down_fires_once_to_the_operator_and_resolves_when_it_is_back() {
    let world = World::new("alerts", env!("CARGO_BIN_EXE_studyspot-alerts")).await;
    // Alerts reads these domains' events: the topics exist in every real deployment.
    world.create_topics(&[&billing::EVENTS, &attendance::EVENTS, &notifications::EVENTS]).await;
    let api = Api::staff(&world).await;

    let healthy = Arc::new(AtomicBool::new(true));
    let target = fake_target(healthy.clone()).await;
    let nobody = format!("http://{}/ready", closed_port().await);
    let org = world.organization_id();
    let gateway_ready = format!("{}/ready", api.base);
    let consumer = world.spawn_consumer_with(
        None,
        &world.database_url,
        &[
            ("STUDYSPOT_ALERTS__EVALUATION_INTERVAL_SECS", "1"),
            ("STUDYSPOT_ALERTS__HEALTH__TICK_MS", "200"),
            ("STUDYSPOT_ALERTS__HEALTH__ORGANIZATION_ID", org.as_str()),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESS_INTERVAL_SECONDS", "1"),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESS_FAILURE_THRESHOLD", "2"),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__GATEWAY", gateway_ready.as_str()),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__BILLING", nobody.as_str()),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__NOTIFICATIONS", ""),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__ATTENDANCE", ""),
            ("STUDYSPOT_ALERTS__HEALTH__PROCESSES__ALERTS", ""),
        ],
    );

    // Bad shapes are refused at the door, naming the field.
    let (status, refused) = api
        .post("/api/monitoring/health-checks", json!({ "name": "X", "kind": "tcp", "target": "no-port" }))
        .await;
    assert_eq!((status, refused["error"]["field"].as_str()), (422, Some("target")), "{refused}");

    let route = api
        .command(
            "/api/monitoring/routes",
            json!({ "route_id": "rte_oncall", "matchers": [{ "name": "severity", "op": "=", "value": "critical" }],
                    "receivers": [{ "recipient_id": "usr_oncall", "channel": "webhook" }] }),
        )
        .await;
    assert_eq!(route["status"], "applied", "{route}");
    let defined = api
        .command(
            "/api/monitoring/health-checks",
            json!({ "health_check_id": "hck_fake", "name": "Fake API", "target": target,
                    "interval_seconds": 1, "timeout_ms": 1000, "failure_threshold": 2,
                    "labels": { "team": "platform" }, "severity": "critical" }),
        )
        .await;
    assert_eq!(defined["status"], "applied", "{defined}");

    eventually("the target to be up", Duration::from_secs(30), || async {
        let body = check(&api, "hck_fake").await;
        (body["check"]["status"] == "up").then_some(())
    })
    .await;
    // StudySpot's processes are checks of the operators' organization too: the gateway answers
    // its /ready, a billing process nobody started does not.
    let processes = eventually("the process checks to be probed", Duration::from_secs(30), || async {
        let (gateway, billing) =
            (check(&api, "hck_process_gateway").await, check(&api, "hck_process_billing").await);
        (gateway["check"]["status"] == "up" && billing["check"]["status"] == "down")
            .then_some((gateway, billing))
    })
    .await;
    assert_eq!(processes.0["check"]["labels"]["process"], "gateway", "{}", processes.0);
    assert!(processes.1["check"]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{}", processes.1);

    // The target goes down: after two failed probes its alert fires, once, to the route.
    healthy.store(false, Ordering::SeqCst);
    let active = eventually("the health check alert to fire", Duration::from_secs(60), || async {
        let (_, body) = api.get("/api/monitoring/alerts/active").await;
        body["items"].as_array().and_then(|items| {
            items.iter().find(|a| a["rule_id"] == "rul_health_hck_fake" && a["state"] == "firing").cloned()
        })
    })
    .await;
    assert_eq!(active["labels"]["alertname"], "HealthCheckDown", "{active}");
    assert_eq!(active["labels"]["health_check"], "Fake API", "{active}");
    let fired = eventually("one AlertFired", Duration::from_secs(30), || async {
        let (fired, _) = alert_events(&world, "rul_health_hck_fake").await;
        (!fired.is_empty()).then_some(fired)
    })
    .await;
    let down = check(&api, "hck_fake").await;
    assert_eq!(down["check"]["status"], "down", "{down}");
    assert_eq!(down["check"]["last_status_code"], 503, "{down}");

    // Back up: the alert resolves, once.
    healthy.store(true, Ordering::SeqCst);
    eventually("the alert to resolve", Duration::from_secs(60), || async {
        let (_, body) = api.get("/api/monitoring/alerts/active").await;
        body["items"]
            .as_array()
            .is_some_and(|items| !items.iter().any(|a| a["rule_id"] == "rul_health_hck_fake"))
            .then_some(())
    })
    .await;
    let (fired_after, resolved) = eventually("one AlertResolved", Duration::from_secs(30), || async {
        let (fired, resolved) = alert_events(&world, "rul_health_hck_fake").await;
        (!resolved.is_empty()).then_some((fired, resolved))
    })
    .await;

    assert_eq!(fired.len(), 1, "fired once, however many ticks saw it down");
    assert_eq!(fired_after.len(), 1, "and not again before it resolved");
    assert_eq!(resolved.len(), 1, "{}", consumer.log());
    let f = &fired[0];
    assert_eq!((f.alert_name.as_str(), f.severity.as_str()), ("HealthCheckDown", "critical"));
    assert_eq!(
        f.receivers.iter().map(|r| (r.recipient_id.as_str(), r.channel.as_str())).collect::<Vec<_>>(),
        [("usr_oncall", "webhook")]
    );
    assert_eq!(f.labels["team"], "platform");
    assert_eq!(resolved[0].fingerprint, f.fingerprint);

    let changes = status_changes(&world, "hck_fake").await;
    let changes: Vec<(&str, &str)> = changes.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(changes, [("unknown", "up"), ("up", "down"), ("down", "up")]);
    // The history holds every probe, newest first, paginated. How many probes it holds depends
    // on how long the steps above took (one a second), so every page is read to the end.
    let (_, page) = api.get("/api/monitoring/health-checks/hck_fake?limit=2").await;
    assert_eq!(page["history"].as_array().map(Vec::len), Some(2), "{page}");
    assert_eq!(page["history"][0]["success"], true, "{page}");
    let mut history = page["history"].as_array().cloned().unwrap_or_default();
    let mut cursor = Some(page["next_cursor"].as_str().expect("more history").to_owned());
    while let Some(after) = cursor.take() {
        let (_, older) =
            api.get(&format!("/api/monitoring/health-checks/hck_fake?limit=50&cursor={after}")).await;
        let items = older["history"].as_array().cloned().unwrap_or_default();
        assert!(!items.is_empty() || older["next_cursor"].is_null(), "an empty page with a cursor: {older}");
        history.extend(items);
        cursor = older["next_cursor"].as_str().map(str::to_owned);
    }
    let times: Vec<chrono::DateTime<chrono::Utc>> = history
        .iter()
        .map(|p| p["probed_at"].as_str().and_then(|t| t.parse().ok()).expect("probed_at"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    let failed = history.iter().filter(|p| p["success"] == false).count();
    assert!(failed >= 2, "the two failed probes that fired the alert: {history:?}");
    let (_, list) = api.get("/api/monitoring/health-checks").await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["health_check_id"].as_str())
        .collect();
    assert_eq!(ids, ["hck_fake", "hck_process_billing", "hck_process_gateway"]);
}
