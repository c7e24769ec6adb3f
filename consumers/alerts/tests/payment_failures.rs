//! Through the gateway against the real broker and PostgreSQL, with a real alerts consumer
//! process: a route and a "payment failure rate" rule are defined over HTTP, billing's payment
//! outcomes arrive on its events topic, the alerts scheduler ticks every second. A burst of
//! failed payments fires the alert once (one `AlertFired` naming the operator's webhook), and
//! successes resolve it (one `AlertResolved`). Everything is awaited with a deadline.

use std::time::Duration;

use serde_json::json;
use studyspot_schemas::{
    EventMetadata,
    alerts::{self, AlertFired, AlertResolved},
    attendance,
    billing::{self, PaymentFailed, PaymentSucceeded},
    notifications,
};
use studyspot_test_world::{Api, World, eventually};

fn metadata(world: &World) -> EventMetadata {
    let id = uuid::Uuid::now_v7().to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    EventMetadata {
        event_id: id.clone(),
        occurred_at: now as i64,
        correlation_id: id,
        causation_id: None,
        organization_id: world.organization_id(),
        actor: "service:billing".into(),
    }
}

fn failed(world: &World, i: usize) -> PaymentFailed {
    PaymentFailed {
        metadata: metadata(world),
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
        metadata: metadata(world),
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

/// (AlertFired, AlertResolved) on alerts' events topic so far.
async fn notifications(world: &World) -> (Vec<AlertFired>, Vec<AlertResolved>) {
    let (mut fired, mut resolved) = (Vec::new(), Vec::new());
    for record in world.read_all(alerts::EVENTS.name) {
        let decoded = world.codec.decode(record.payload.as_deref().expect("payload")).await.expect("decode");
        match decoded.full_name.as_str() {
            "studyspot.alerts.AlertFired" => fired.push(decoded.into_record().expect("AlertFired")),
            "studyspot.alerts.AlertResolved" => resolved.push(decoded.into_record().expect("AlertResolved")),
            _ => {}
        }
    }
    (fired, resolved)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_failed_payments_fires_once_and_recovery_resolves() {
    let world = World::new("alerts", env!("CARGO_BIN_EXE_studyspot-alerts")).await;
    // Alerts reads these domains' events: the topics exist in every real deployment.
    world.create_topics(&[&billing::EVENTS, &attendance::EVENTS, &notifications::EVENTS]).await;
    let api = Api::staff(&world).await;
    let consumer = world.spawn_consumer_with(
        None,
        &world.database_url,
        &[("STUDYSPOT_ALERTS__EVALUATION_INTERVAL_SECS", "1")],
    );

    // Bad input is refused at the door, naming the field.
    let (status, refused) = api
        .post(
            "/api/monitoring/alerts",
            json!({ "name": "X", "metric": "m", "window_seconds": 60, "op": ">", "threshold": 1, "severity": "urgent" }),
        )
        .await;
    assert_eq!((status, refused["error"]["field"].as_str()), (422, Some("severity")), "{refused}");
    assert_eq!(refused["error"]["code"], "validation_failed");
    // A regex that does not compile is alerts' refusal, with a code.
    let bad_silence = api
        .command(
            "/api/monitoring/silences",
            json!({ "matchers": [{ "name": "alertname", "op": "=~", "value": "(" }],
                    "ends_at": "2099-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(bad_silence["status"], "rejected", "{bad_silence}");
    assert_eq!(bad_silence["rejection"]["code"], "invalid_matcher", "{bad_silence}");

    let route = api
        .command(
            "/api/monitoring/routes",
            json!({ "route_id": "rte_oncall", "matchers": [{ "name": "severity", "op": "=", "value": "critical" }],
                    "receivers": [{ "recipient_id": "usr_oncall", "channel": "webhook" }] }),
        )
        .await;
    assert_eq!(route["status"], "applied", "{route}");
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
    let (_, rules) = api.get("/api/monitoring/alerts").await;
    assert_eq!(rules["items"][0]["rule_id"], "rul_payment_failures", "{rules}");

    // A burst of failed payments (and one success).
    for i in 0..8 {
        world.send(&failed(&world, i)).await;
    }
    world.send(&succeeded(&world, 0)).await;

    let active = eventually("the payment failure alert to fire", Duration::from_secs(60), || async {
        let (status, body) = api.get("/api/monitoring/alerts/active").await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        (status == 200 && items.iter().any(|a| a["state"] == "firing")).then_some(items)
    })
    .await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["labels"]["alertname"], "PaymentFailureRate");

    let fired = eventually("one AlertFired", Duration::from_secs(30), || async {
        let (fired, _) = notifications(&world).await;
        (!fired.is_empty()).then_some(fired)
    })
    .await;
    // Recovery: payments succeed again.
    for i in 1..30 {
        world.send(&succeeded(&world, i)).await;
    }
    eventually("the alert to resolve", Duration::from_secs(60), || async {
        let (status, body) = api.get("/api/monitoring/alerts/active").await;
        (status == 200 && body["items"].as_array().is_some_and(Vec::is_empty)).then_some(())
    })
    .await;
    let (fired_after, resolved) = eventually("one AlertResolved", Duration::from_secs(30), || async {
        let (fired, resolved) = notifications(&world).await;
        (!resolved.is_empty()).then_some((fired, resolved))
    })
    .await;

    assert_eq!(fired.len(), 1, "fired once, however many ticks saw it firing");
    assert_eq!(fired_after.len(), 1, "and not again before it resolved");
    assert_eq!(resolved.len(), 1, "{}", consumer.log());
    let f = &fired[0];
    assert_eq!(
        (f.alert_name.as_str(), f.severity.as_str(), f.repeat),
        ("PaymentFailureRate", "critical", false)
    );
    assert_eq!(f.receivers.len(), 1);
    assert_eq!(
        (f.receivers[0].recipient_id.as_str(), f.receivers[0].channel.as_str()),
        ("usr_oncall", "webhook")
    );
    assert!(f.value > 0.5, "{}", f.value);
    assert_eq!(f.labels["team"], "billing");
    let r = &resolved[0];
    assert_eq!(r.fingerprint, f.fingerprint);
    assert_eq!(r.receivers, f.receivers, "whoever was told it fired is told it resolved");
    assert!(r.resolved_at > f.fired_at);

    // Attendance's check-ins become the venue's occupancy samples.
    world
        .send(&studyspot_schemas::attendance::CheckedIn {
            metadata: metadata(&world),
            session_id: "ses_1".into(),
            member_id: "mem_1".into(),
            venue_id: "ven_1".into(),
            seat_id: None,
            occupancy: 7,
            zone_id: None,
            zone_occupancy: None,
            booking_id: None,
            subscription_id: None,
            pass_id: None,
            venue_name: None,
            seat_label: None,
        })
        .await;
    let occupancy = eventually("an occupancy sample", Duration::from_secs(30), || async {
        let (_, body) = api.get("/api/monitoring/metrics?metric=studyspot_venue_occupancy").await;
        body["items"].as_array().and_then(|i| i.first().cloned())
    })
    .await;
    assert_eq!((occupancy["value"].as_f64(), &occupancy["labels"]["venue_id"]), (Some(7.0), &json!("ven_1")));

    // The persisted history: inactive → pending → firing → resolved, fired and resolved decisions.
    let (_, history) = api.get("/api/monitoring/alerts/history?rule_id=rul_payment_failures").await;
    let whats: Vec<&str> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|h| h["what"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        whats,
        ["inactive→pending", "pending→firing", "fired", "firing→resolved", "resolved"],
        "{history}"
    );
}
