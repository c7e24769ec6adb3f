//! From a payment through the gateway to the receipt in the member's mailbox: a real billing
//! consumer process charging a fake Stripe, notifications (handler and delivery worker) in this
//! process reading billing's events, and an SMTP sink that parses what arrives.

use std::{sync::Arc, time::Duration};

use mail_parser::MessageParser;
use serde_json::json;
use studyspot_consumer_runtime::{Runtime, RuntimeConfig, SidecarContext};
use studyspot_schemas::{attendance, billing, notifications};
use studyspot_test_world::{World, eventually, smtp::SmtpSink, stop};
use studyspot_tokens::Role;
use tokio_util::sync::CancellationToken;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

mod support;

use support::{Api, fixture, stripe_consumer, world};

/// Notifications' topics in this world, and its consumer with the delivery worker in this process,
/// mailing through `sink`.
async fn notifications_in_process(
    world: &World,
    settings: &studyspot_config::Settings,
    sink: &SmtpSink,
) -> CancellationToken {
    let names: Vec<String> =
        studyspot_bus::admin::topic_names_with_dead_letters(studyspot_schemas::catalogue())
            .into_iter()
            .filter(|n| n.contains(".notifications.") || n.contains(".attendance."))
            .map(|n| world.topic(n))
            .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    studyspot_bus::admin::ensure_topics(&world.bus, &refs, 3, 1).await.expect("notifications' topics");
    let mut settings = settings.clone();
    settings.postgres.max_connections = 8;
    settings.notifications.delivery.poll_interval_ms = 50;
    settings.notifications.channels["email"] = json!({
        "host": "127.0.0.1", "port": sink.port(), "tls": "none", "from": "StudySpot <receipts@studyspot.test>"
    });
    let topics = [
        notifications::COMMANDS.name,
        notifications::CATALOG_COMMANDS.name,
        billing::EVENTS.name,
        attendance::EVENTS.name,
    ];
    let config = RuntimeConfig::from_settings(&settings, "notifications", &topics);
    let runtime = Runtime::connect(
        config,
        studyspot_notifications::NotificationsHandler,
        Some(&studyspot_notifications_projection::MIGRATIONS),
    )
    .await
    .expect("notifications runtime");
    let shutdown = CancellationToken::new();
    tokio::spawn(studyspot_notifications::delivery::sidecar()(SidecarContext {
        settings: Arc::new(settings),
        pool: runtime.database().pool.clone(),
        outbox: runtime.outbox(),
        shutdown: shutdown.clone(),
    }));
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move { runtime.run(shutdown).await.expect("notifications runs") }
    });
    shutdown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_made_through_the_gateway_mails_the_member_a_receipt_with_the_amount() {
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
    let sink = SmtpSink::accepting().await;
    let (base, settings) = world.gateway_with_settings().await;
    let api = Api::new(&world, base, &settings, Role::Staff);
    let mut billing = stripe_consumer(&world, &stripe, &[]);
    let notifications = notifications_in_process(&world, &settings, &sink).await;

    let (_, prefs) = api
        .command_with_id(
            "/api/notifications/subscriptions",
            json!({ "recipient_id": "mem_1", "email": "ada@example.org", "time_zone": "Europe/Berlin" }),
        )
        .await;
    assert_eq!(prefs["status"], "applied", "{prefs}");
    let (_, added) = api
        .command_with_id(
            "/api/payments/methods",
            json!({ "payment_method_id": "pm_1", "member_id": "mem_1", "method": "card",
                    "provider_token": "pm_card_visa", "label": "Visa •••• 4242" }),
        )
        .await;
    assert_eq!(added["status"], "applied", "{added}\n{}", billing.log());
    let (_, created) = api
        .command_with_id(
            "/api/payments",
            json!({ "payment_id": "pay_1", "member_id": "mem_1", "amount_minor": 2000, "currency": "EUR",
                    "method": "card", "payment_method_id": "pm_1", "description": "Desk, March" }),
        )
        .await;
    assert_eq!(created["status"], "applied", "{created}");
    let (_, processing) = api.command_with_id("/api/payments/pay_1/process", json!({})).await;
    assert_eq!(processing["status"], "applied", "{processing}");

    let mail = eventually("the receipt at the SMTP sink", Duration::from_secs(90), || async {
        sink.captured().into_iter().next()
    })
    .await;
    let parsed = MessageParser::default().parse(&mail.data).expect("a MIME message");
    assert_eq!(parsed.subject(), Some("Payment received"));
    assert_eq!(
        parsed.body_text(0).as_deref().map(str::trim),
        Some("We received your payment of EUR 20.00. Thank you!")
    );
    assert!(mail.rcpt_to.iter().any(|r| r.contains("ada@example.org")), "{:?}", mail.rcpt_to);
    let sent = eventually("the receipt recorded as sent", Duration::from_secs(60), || async {
        let (_, listed) = api.get("/api/notifications?recipient_id=mem_1").await;
        listed["items"].as_array().and_then(|i| i.iter().find(|n| n["status"] == "sent").cloned())
    })
    .await;
    assert_eq!(sent["category"], "transactional", "{sent}");
    assert_eq!(sink.captured().len(), 1, "one receipt for one payment");
    notifications.cancel();
    stop(&mut billing);
}
