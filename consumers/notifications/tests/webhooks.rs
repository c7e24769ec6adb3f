//! Webhook endpoints end to end: one that keeps failing is disabled and its owner told by email
//! until they set their preferences again; one endpoint never gets more than its rate.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use mail_parser::MessageParser;
use serde_json::json;
use studyspot_schemas::{
    EventMetadata,
    alerts::{self, AlertFired, AlertResolved, Receiver},
    notifications::SetPreferences,
};
use studyspot_test_world::{Consumer, World, eventually, smtp::SmtpSink, stop};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::method};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn consumer(world: &World, sink: &SmtpSink, env: &[(&str, &str)]) -> Consumer {
    let mut all = vec![
        ("STUDYSPOT_NOTIFICATIONS__CHANNELS__RETRY__MAX_ATTEMPTS", "1"),
        ("STUDYSPOT_NOTIFICATIONS__CHANNELS__RETRY__TIMEOUT_MS", "2000"),
    ];
    all.extend_from_slice(env);
    world.spawn_mailing_consumer(sink.port(), &all)
}

fn preferences(world: &World, name: &str, url: &str) -> SetPreferences {
    SetPreferences {
        metadata: EventMetadata {
            event_id: uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{}/{name}", world.id).as_bytes(),
            )
            .to_string(),
            occurred_at: Utc::now().timestamp_millis(),
            correlation_id: format!("test-{name}"),
            causation_id: None,
            organization_id: world.organization_id(),
            actor: "user:test".into(),
        },
        recipient_id: "mem_hook".into(),
        email: Some("owner@example.org".into()),
        phone: None,
        whatsapp: None,
        push_token: None,
        webhook_url: Some(url.into()),
        webhook_secret: Some(SECRET.into()),
        time_zone: "UTC".into(),
        quiet_start: None,
        quiet_end: None,
        opted_out_channels: Vec::new(),
        opted_out_categories: Vec::new(),
        category_caps: Default::default(),
        daily_cap: None,
    }
}

async fn send_webhook(base: &str, token: &str, id: &str) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/notifications"))
        .bearer_auth(token)
        .json(&json!({ "notification_id": id, "recipient_id": "mem_hook", "channel": "webhook",
                       "category": "operational", "body": format!("event {id}") }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 202);
}

async fn status(world: &World, id: &str) -> Option<(String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT status, reason, failure_code FROM notifications.notifications WHERE notification_id = $1",
    )
    .bind(id)
    .fetch_optional(&world.pool().await)
    .await
    .ok()
    .flatten()
}

async fn preferences_applied(world: &World, at_least: i64) {
    eventually("preferences applied", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications.preferences p WHERE p.updated_at IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM notifications.marked_addresses)",
        )
        .fetch_one(&world.pool().await)
        .await
        .unwrap_or(0);
        (n >= at_least).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_failing_too_long_is_disabled_its_owner_told_and_set_again_it_receives() {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    let sink = SmtpSink::accepting().await;
    let endpoint = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&endpoint).await;
    let mut consumer = consumer(
        &world,
        &sink,
        &[
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__RETRY_SCHEDULE_SECS", "[1, 1, 1, 1, 1, 1]"),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__JITTER_PERCENT", "0"),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__WEBHOOK_DISABLE_AFTER_SECS", "2"),
        ],
    );
    let (base, token) = world.gateway().await;
    let url = format!("{}/hook", endpoint.uri());
    world.send(&preferences(&world, "prefs", &url)).await;
    preferences_applied(&world, 1).await;

    send_webhook(&base, &token, "ntf_h1").await;
    let failed = eventually("ntf_h1 failed", Duration::from_secs(60), || async {
        status(&world, "ntf_h1").await.filter(|s| s.0 == "failed")
    })
    .await;
    assert_eq!(failed.2.as_deref(), Some("endpoint_disabled"), "{failed:?}\n{}", consumer.log());
    let tries = endpoint.received_requests().await.unwrap_or_default().len();
    assert!(tries >= 2, "it was tried until it had failed long enough: {tries}");

    let mail = eventually("the owner's notice", Duration::from_secs(60), || async {
        sink.captured().into_iter().next()
    })
    .await;
    let parsed = MessageParser::default().parse(&mail.data).expect("MIME");
    assert_eq!(parsed.subject(), Some("Your webhook endpoint was disabled"));
    let text = parsed.body_text(0).unwrap_or_default().to_string();
    assert!(text.contains(&url), "{text}");
    assert!(mail.rcpt_to.iter().any(|r| r.contains("owner@example.org")));

    // Disabled: nothing more goes to it.
    send_webhook(&base, &token, "ntf_h2").await;
    let held = eventually("ntf_h2 decided", Duration::from_secs(60), || async {
        status(&world, "ntf_h2").await.filter(|s| s.0 != "queued")
    })
    .await;
    assert_eq!((held.0.as_str(), held.1.as_deref()), ("suppressed", Some("address_marked")));
    assert_eq!(endpoint.received_requests().await.unwrap_or_default().len(), tries);

    // The owner fixed it and set their preferences again.
    endpoint.reset().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(204)).mount(&endpoint).await;
    world.send(&preferences(&world, "prefs-again", &url)).await;
    preferences_applied(&world, 1).await;
    send_webhook(&base, &token, "ntf_h3").await;
    let sent = eventually("ntf_h3 sent", Duration::from_secs(60), || async {
        status(&world, "ntf_h3").await.filter(|s| s.0 == "sent")
    })
    .await;
    assert_eq!(sent.0, "sent");
    let requests = endpoint.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].headers.get("webhook-signature").is_some(), "signed");
    stop(&mut consumer);
}

/// Records when each request arrived.
struct Clocked(Arc<Mutex<Vec<Instant>>>);

impl Respond for Clocked {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0.lock().expect("clock").push(Instant::now());
        ResponseTemplate::new(200)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_endpoint_gets_no_more_than_its_rate() {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    let sink = SmtpSink::accepting().await;
    let endpoint = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST")).respond_with(Clocked(arrivals.clone())).mount(&endpoint).await;
    let mut consumer = consumer(
        &world,
        &sink,
        &[
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__WEBHOOK_RATE_PER_SECOND", "2"),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__WEBHOOK_RATE_BURST", "1"),
        ],
    );
    let (base, token) = world.gateway().await;
    world.send(&preferences(&world, "prefs", &format!("{}/hook", endpoint.uri()))).await;
    preferences_applied(&world, 1).await;
    let ids: Vec<String> = (1..=6).map(|i| format!("ntf_r{i}")).collect();
    for id in &ids {
        send_webhook(&base, &token, id).await;
    }
    eventually("all six sent", Duration::from_secs(60), || async {
        let pool = world.pool().await;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications.notifications WHERE channel = 'webhook' AND status = 'sent'",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        (n == 6).then_some(())
    })
    .await;
    let mut times = arrivals.lock().expect("times").clone();
    times.sort();
    assert_eq!(times.len(), 6, "each once: {}", consumer.log());
    // Two a second with a burst of one: six take at least 2.5 s from the first to the last.
    let span = times[5] - times[0];
    assert!(span >= Duration::from_millis(2_400), "six requests within {span:?}");
    stop(&mut consumer);
}

fn receivers() -> Vec<Receiver> {
    ["webhook", "email"]
        .into_iter()
        .map(|channel| Receiver { recipient_id: "mem_hook".into(), channel: channel.into() })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_critical_alert_reaches_its_receivers_once_and_its_resolution_follows() {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    world.create_topics(&[&alerts::EVENTS]).await;
    let sink = SmtpSink::accepting().await;
    let endpoint = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST")).respond_with(Bodies(arrivals.clone())).mount(&endpoint).await;
    let mut consumer = consumer(&world, &sink, &[]);
    // Quiet hours all day: a critical alert goes out anyway.
    let mut prefs = preferences(&world, "prefs", &format!("{}/hook", endpoint.uri()));
    prefs.quiet_start = Some("00:00".into());
    prefs.quiet_end = Some("23:59".into());
    world.send(&prefs).await;
    preferences_applied(&world, 1).await;

    let at = Utc::now().timestamp_millis();
    let labels: std::collections::HashMap<String, String> =
        [("alertname", "PaymentFailureRate"), ("severity", "critical")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let fired = AlertFired {
        metadata: world.named_metadata("fired"),
        fingerprint: "fp_1".into(),
        rule_id: "rule_payments".into(),
        alert_name: "PaymentFailureRate".into(),
        severity: "critical".into(),
        labels: labels.clone(),
        annotations: [("summary".to_owned(), "40% of payments failed in 5 minutes".to_owned())].into(),
        value: 0.4,
        started_at: at - 60_000,
        fired_at: at,
        group_key: "rule_payments".into(),
        receivers: receivers(),
        repeat: false,
    };
    // Redelivered: each receiver is told once.
    world.send(&fired).await;
    world.send(&fired).await;
    let mail = eventually("the alert by email", Duration::from_secs(60), || async {
        sink.captured().into_iter().next()
    })
    .await;
    let parsed = MessageParser::default().parse(&mail.data).expect("MIME");
    assert_eq!(parsed.subject(), Some("[CRITICAL] PaymentFailureRate is firing"), "{}", consumer.log());
    let hook = eventually("the alert at the webhook", Duration::from_secs(60), || async {
        arrivals.lock().expect("bodies").first().cloned()
    })
    .await;
    let text = hook["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("[CRITICAL] PaymentFailureRate is firing\n\n40% of payments failed"), "{hook}");

    world
        .send(&AlertResolved {
            metadata: world.named_metadata("resolved"),
            fingerprint: "fp_1".into(),
            rule_id: "rule_payments".into(),
            alert_name: "PaymentFailureRate".into(),
            severity: "critical".into(),
            labels,
            annotations: Default::default(),
            started_at: at - 60_000,
            resolved_at: at + 300_000,
            group_key: "rule_payments".into(),
            receivers: receivers(),
        })
        .await;
    let resolved = eventually("the resolution at the webhook", Duration::from_secs(60), || async {
        let bodies = arrivals.lock().expect("bodies").clone();
        bodies.iter().find(|b| b["text"].as_str().is_some_and(|t| t.starts_with("[RESOLVED]"))).cloned()
    })
    .await;
    assert!(resolved["text"].as_str().is_some_and(|t| t.contains("PaymentFailureRate")));
    eventually("the resolution by email", Duration::from_secs(60), || async {
        (sink.captured().len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        arrivals.lock().expect("bodies").len(),
        2,
        "one firing and one resolved message to the webhook"
    );
    stop(&mut consumer);
}

/// Keeps each request's JSON body.
struct Bodies(Arc<Mutex<Vec<serde_json::Value>>>);

impl Respond for Bodies {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body = serde_json::from_slice(&request.body).unwrap_or_default();
        self.0.lock().expect("bodies").push(body);
        ResponseTemplate::new(200)
    }
}
