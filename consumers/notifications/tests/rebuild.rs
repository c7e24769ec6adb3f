//! A rebuild of notifications' projection from history equals the live one. The history, made
//! through the gateway and the topics with a real notifications process, its delivery worker, an
//! SMTP sink, a fake Twilio and a webhook endpoint the test holds, has templates (one refused),
//! preferences, e-mail, SMS, in-app and webhook sends, an SMS Twilio refused once that the worker
//! retried, refused sends, one command delivered twice, a poison record and a malformed command
//! (both dead letters), a send written with SendNotification's version from before campaigns and
//! digests, other domains' events (a payment's receipt, an alert's message, a check-in), a
//! delivery status, a read receipt, a deferred send cancelled, and a send cancelled while the
//! worker was already delivering it. Then a rebuild is swapped in under the running process
//! while sends keep arriving, and the process goes on in it.

#[path = "rebuild/held.rs"]
mod held;

use std::{collections::HashMap, time::Duration};

use chrono::Utc;
use held::HeldEndpoint;
use serde_json::{Value, json};
use studyspot_schemas::{
    alerts::{self, AlertFired, Receiver},
    attendance::{self, CheckedIn},
    billing::{self, PaymentSucceeded},
    notifications::{
        self, CreateTemplate, MarkNotificationsRead, RecordDeliveryStatus, SendNotification, SetPreferences,
    },
};
use studyspot_test_world::{Api, Consumer, World, eventually, smtp::SmtpSink, stop};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

const TOPICS: [&str; 5] = [
    notifications::COMMANDS.name,
    notifications::CATALOG_COMMANDS.name,
    billing::EVENTS.name,
    attendance::EVENTS.name,
    alerts::EVENTS.name,
];

/// Columns a rebuild cannot reproduce, and why: the delivery worker's own bookkeeping of each
/// send (how many tries it made, when it means to try next, the last error it met) is written
/// beside consuming, on the wall clock; a rebuild starts no worker. What the tries came to
/// reaches the projection through the report the worker publishes (`RecordDeliveryOutcome`,
/// with the attempts), which the rebuild applies like the live process did: the notification's
/// own `attempts`, status, failure and the delivery's status are compared.
const EXCLUDED: [&str; 3] = ["deliveries.attempts", "deliveries.next_attempt_at", "deliveries.last_error"];

const TWILIO_TOKEN: &str = "twilio-test-token";

async fn world() -> World {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    // Notifications reads these domains' events: the topics exist in every real deployment.
    world.create_topics(&[&billing::EVENTS, &attendance::EVENTS, &alerts::EVENTS]).await;
    world
}

fn consumer(world: &World, sink: &SmtpSink, twilio: &MockServer) -> Consumer {
    let port = sink.port().to_string();
    let twilio = twilio.uri();
    world.spawn_consumer_with(
        None,
        &world.database_url,
        &[
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST", "127.0.0.1"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__PORT", port.as_str()),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__TLS", "none"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__FROM", "StudySpot <no-reply@studyspot.test>"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__BASE_URL", twilio.as_str()),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__ACCOUNT_SID", "AC123"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__AUTH_TOKEN", TWILIO_TOKEN),
            // Quoted: the environment's values are parsed, and a bare number is not a string.
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__FROM", "\"+15005550006\""),
            // One try per attempt: a refusal is retried by the worker's schedule, not the client.
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__RETRY__MAX_ATTEMPTS", "1"),
            // The held webhook answers when the test lets it.
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__RETRY__TIMEOUT_MS", "60000"),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__POLL_INTERVAL_MS", "50"),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__RETRY_SCHEDULE_SECS", "[1, 1, 1]"),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__JITTER_PERCENT", "0"),
        ],
    )
}

fn preferences(world: &World, recipient: &str, webhook: Option<&str>) -> SetPreferences {
    SetPreferences {
        metadata: world.metadata("user:test"),
        recipient_id: recipient.into(),
        email: webhook.is_none().then(|| format!("{recipient}@example.org")),
        phone: webhook.is_none().then(|| "+4915112345678".into()),
        whatsapp: None,
        push_token: None,
        webhook_url: webhook.map(str::to_owned),
        webhook_secret: webhook.map(|_| "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        time_zone: "Europe/Berlin".into(),
        quiet_start: None,
        quiet_end: None,
        opted_out_channels: Vec::new(),
        opted_out_categories: vec!["marketing".into()],
        category_caps: Default::default(),
        daily_cap: None,
    }
}

fn template(world: &World, id: &str, body: &str) -> CreateTemplate {
    CreateTemplate {
        metadata: world.metadata("user:test"),
        template_id: id.into(),
        channel: "email".into(),
        locale: "en".into(),
        subject: Some("Receipt for {{ amount }}".into()),
        body: body.into(),
        html: None,
        sample_variables: [("amount", "EUR 1.00"), ("method", "card"), ("payment_id", "pay_x")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

fn direct_send(world: &World, id: &str, channel: &str, body: &str) -> SendNotification {
    SendNotification {
        metadata: world.metadata("service:test"),
        notification_id: id.into(),
        recipient_id: "mem_ada".into(),
        channel: channel.into(),
        category: "transactional".into(),
        subject: Some(format!("About {id}")),
        body: body.into(),
        template_id: None,
        variables: HashMap::new(),
        locale: None,
        critical: false,
        transaction_id: None,
        send_at: None,
        campaign_id: None,
        digest_key: None,
        digest_window_secs: None,
        digest_at_local: None,
    }
}

/// Sends a notification through the gateway and waits for notifications' decision.
async fn send(api: &Api, body: Value) -> Value {
    api.command("/api/notifications", body).await
}

async fn scalar(world: &World, sql: &str) -> i64 {
    let pool = world.pool().await;
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&pool).await.unwrap_or(-1);
    pool.close().await;
    n
}

/// Waits until the live notification `id` is `want`.
async fn reaches(world: &World, id: &str, want: &str) {
    let sql = format!(
        "SELECT count(*) FROM notifications.notifications WHERE notification_id = '{id}' AND status = '{want}'"
    );
    eventually(&format!("{id} {want}"), Duration::from_secs(60), || async {
        (scalar(world, &sql).await == 1).then_some(())
    })
    .await;
}

/// Every send settled (sent, failed, or decided otherwise), every report applied, nothing left
/// in the outbox, and the live consumer at the end of its topics.
async fn at_rest(world: &World) {
    eventually("every send settled and the outbox empty", Duration::from_secs(120), || async {
        let waiting = scalar(
            world,
            "SELECT (SELECT count(*) FROM notifications.deliveries WHERE status IN ('pending', 'reported') \
               AND next_attempt_at < now() + interval '1 hour') \
             + (SELECT count(*) FROM notifications.outbox WHERE published_at IS NULL)",
        )
        .await;
        (waiting == 0).then_some(())
    })
    .await;
    world.caught_up("notifications", &TOPICS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_of_notifications_equals_the_live_projection_and_is_swapped_in() {
    let world = world().await;
    let sink = SmtpSink::accepting().await;
    let twilio = MockServer::start().await;
    // Twilio refuses the first SMS with a server error (the worker retries it), then accepts.
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/2010-04-01/Accounts/AC123/Messages.json"))
        .respond_with(
            ResponseTemplate::new(500).set_body_json(json!({ "code": 20500, "message": "try again" })),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&twilio)
        .await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/2010-04-01/Accounts/AC123/Messages.json"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM_rebuild", "status": "queued" })),
        )
        .mount(&twilio)
        .await;
    let hook = HeldEndpoint::start().await;
    let mut live = consumer(&world, &sink, &twilio);
    let api = Api::staff(&world).await;

    // Templates (one refused: it does not render) and preferences, on other partitions and
    // topics than the sends: applied before the sends that read them.
    world.send(&template(&world, "payment_receipt", "We received {{ amount }} by {{ method }}.")).await;
    world.send(&template(&world, "broken", "Hello {{ amount")).await;
    world.send(&preferences(&world, "mem_ada", None)).await;
    world.send(&preferences(&world, "mem_hook", Some(&hook.url))).await;
    eventually("the templates and preferences", Duration::from_secs(60), || async {
        let n = scalar(
            &world,
            "SELECT (SELECT count(*) FROM notifications.templates) + (SELECT count(*) FROM notifications.preferences)",
        )
        .await;
        (n == 3).then_some(())
    })
    .await;

    // Accepted sends on every channel; the SMS is refused once by Twilio and retried.
    for (id, channel, extra) in [
        (
            "ntf_mail",
            "email",
            json!({ "template_id": "payment_receipt",
                                      "variables": { "amount": "EUR 9.00", "method": "card" } }),
        ),
        ("ntf_sms", "sms", json!({ "body": "Your seat is ready." })),
        ("ntf_inbox", "in_app", json!({ "body": "Welcome to the reading room." })),
    ] {
        let mut body = json!({ "notification_id": id, "recipient_id": "mem_ada", "channel": channel,
                               "category": "transactional" });
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        let decided = send(&api, body).await;
        assert_eq!(decided["status"], "applied", "{id}: {decided}\n{}", live.log());
    }
    // Refused: a template the organization does not have and no text, an id used already.
    let refused = send(
        &api,
        json!({ "notification_id": "ntf_nowhere", "recipient_id": "mem_ada", "channel": "email",
                      "category": "transactional", "template_id": "nowhere" }),
    )
    .await;
    assert_eq!(refused["rejection"]["code"], "template_not_found", "{refused}");
    let refused = send(
        &api,
        json!({ "notification_id": "ntf_mail", "recipient_id": "mem_ada", "channel": "in_app",
                      "category": "transactional", "body": "Again" }),
    )
    .await;
    assert_eq!(refused["rejection"]["code"], "notification_exists", "{refused}");
    // Deferred until tomorrow, in a transaction that is cancelled below.
    let tomorrow = (Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let later = send(
        &api,
        json!({ "notification_id": "ntf_later", "recipient_id": "mem_ada", "channel": "email",
                      "category": "transactional", "body": "See you tomorrow.", "send_at": tomorrow,
                      "transaction_id": "txn_later" }),
    )
    .await;
    assert_eq!(later["status"], "applied", "{later}");

    // One command delivered twice, a poison record, a malformed command (a channel nobody has).
    let twice = direct_send(&world, "ntf_twice", "in_app", "Delivered twice, sent once.");
    world.send(&twice).await;
    world.send(&twice).await;
    world.send_raw(notifications::COMMANDS.name, "mem_ada", b"not avro at all".to_vec()).await;
    world.send(&direct_send(&world, "ntf_pigeon", "pigeon", "Coo.")).await;
    // Schema evolution: a send written with SendNotification before campaigns and digests.
    world
        .send_older(
            &direct_send(&world, "ntf_legacy", "email", "Written before digests existed."),
            &["campaign_id", "digest_key", "digest_window_secs", "digest_at_local"],
        )
        .await;

    // Other domains' events: a payment's receipt (the organization's template), an alert's
    // message to its receiver, a check-in (who visits where, for segments).
    world
        .send(&PaymentSucceeded {
            metadata: world.metadata("service:billing"),
            payment_id: "pay_1".into(),
            member_id: "mem_ada".into(),
            amount_minor: 2_000,
            currency: "EUR".into(),
            method: "card".into(),
            connector: "stripe".into(),
            provider_payment_id: Some("pi_1".into()),
            gateway_fee_minor: 88,
            processing_fee_minor: 0,
            invoice_id: None,
        })
        .await;
    let now = Utc::now().timestamp_millis();
    world
        .send(&AlertFired {
            metadata: world.metadata("service:alerts"),
            fingerprint: "fp_disk".into(),
            rule_id: "rul_disk".into(),
            alert_name: "DiskFull".into(),
            severity: "warning".into(),
            labels: [("alertname".to_owned(), "DiskFull".to_owned())].into(),
            annotations: [("summary".to_owned(), "The disk is nearly full".to_owned())].into(),
            value: 0.97,
            started_at: now - 60_000,
            fired_at: now,
            group_key: "{}:{alertname=\"DiskFull\"}".into(),
            receivers: vec![Receiver { recipient_id: "usr_oncall".into(), channel: "in_app".into() }],
            repeat: false,
        })
        .await;
    world
        .send(&CheckedIn {
            metadata: world.metadata("service:attendance"),
            session_id: "ses_1".into(),
            member_id: "mem_ada".into(),
            venue_id: "ven_a".into(),
            seat_id: None,
            occupancy: 1,
            zone_id: None,
            zone_occupancy: None,
            booking_id: None,
            subscription_id: None,
            pass_id: None,
            venue_name: None,
            seat_label: None,
        })
        .await;

    for id in ["ntf_mail", "ntf_sms", "ntf_inbox", "ntf_twice", "ntf_legacy"] {
        reaches(&world, id, "sent").await;
    }
    let (attempts, calls): (i64, usize) = (
        scalar(
            &world,
            "SELECT attempts::bigint FROM notifications.notifications WHERE notification_id = 'ntf_sms'",
        )
        .await,
        twilio.received_requests().await.unwrap_or_default().len(),
    );
    assert_eq!((attempts, calls), (2, 2), "the SMS was refused once and retried\n{}", live.log());
    eventually("the receipt, the alert's message and the check-in's sent", Duration::from_secs(60), || async {
        let n = scalar(
            &world,
            "SELECT count(*) FROM notifications.notifications WHERE status = 'sent' \
             AND (recipient_id = 'usr_oncall' OR category = 'attendance' OR body LIKE 'We received EUR 20.00%')",
        )
        .await;
        (n == 3).then_some(())
    })
    .await;

    // What became of them: Twilio says delivered; the member reads their in-app message.
    world
        .send(&RecordDeliveryStatus {
            metadata: world.metadata("service:gateway"),
            notification_id: "ntf_sms".into(),
            recipient_id: "mem_ada".into(),
            status: "delivered".into(),
            url: None,
            provider_status: Some("delivered".into()),
            source: "twilio".into(),
        })
        .await;
    world
        .send(&MarkNotificationsRead {
            metadata: world.metadata("user:mem_ada"),
            recipient_id: "mem_ada".into(),
            notification_ids: vec!["ntf_inbox".into(), "ntf_twice".into()],
        })
        .await;
    let cancelled = api
        .command(
            "/api/notifications/cancel",
            json!({ "recipient_id": "mem_ada", "transaction_id": "txn_later" }),
        )
        .await;
    assert_eq!(cancelled["status"], "applied", "{cancelled}");
    reaches(&world, "ntf_later", "cancelled").await;

    // A cancel applied while the worker is already sending: the endpoint holds the request, the
    // cancel is applied (the delivery was still pending), then the endpoint answers and the
    // worker's report says it went out. A rebuild meets the cancel before the report too.
    let hooked = send(
        &api,
        json!({ "notification_id": "ntf_hook", "recipient_id": "mem_hook", "channel": "webhook",
                      "category": "operational", "body": "Seat 12 is free.", "transaction_id": "txn_hook" }),
    )
    .await;
    assert_eq!(hooked["status"], "applied", "{hooked}");
    eventually("the webhook at the endpoint", Duration::from_secs(60), || async {
        (hook.arrived() == 1).then_some(())
    })
    .await;
    let cancelled = api
        .command(
            "/api/notifications/cancel",
            json!({ "recipient_id": "mem_hook", "transaction_id": "txn_hook" }),
        )
        .await;
    assert_eq!(cancelled["status"], "applied", "{cancelled}");
    reaches(&world, "ntf_hook", "cancelled").await;
    hook.release();
    reaches(&world, "ntf_hook", "sent").await;

    at_rest(&world).await;
    // Compared at rest: the worker reports through the log at any moment.
    assert!(stop(&mut live).success(), "{}", live.log());
    let dead = world.read_all(notifications::COMMANDS.dead_letter);
    assert_eq!(dead.len(), 2, "the poison record and the malformed command");

    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into notifications_rebuild_1"), "unexpected report: {report}");
    let live_sum = world.checksum("notifications", &EXCLUDED).await;
    assert_eq!(world.checksum("notifications_rebuild_1", &EXCLUDED).await, live_sum, "rebuild vs live");
    // ntf_mail, _sms, _inbox, _later, _twice, _legacy, _hook, the receipt, the alert's message,
    // the check-in's confirmation.
    for (table, rows) in
        [("notifications", 10), ("templates", 1), ("preferences", 2), ("tracking", 1), ("visits", 1)]
    {
        assert!(live_sum.tables.iter().any(|t| t.table == table && t.rows == rows), "{table}: {live_sum:?}");
    }

    // Swapped in under the running process while sends keep arriving; it goes on in it.
    let mut live = consumer(&world, &sink, &twilio);
    let traffic = async {
        for n in 0..10 {
            let decided = send(&api, json!({ "notification_id": format!("ntf_during_{n}"), "recipient_id": "mem_ada",
                              "channel": "in_app", "category": "transactional", "body": format!("During {n}") }))
                .await;
            assert_eq!(decided["status"], "applied", "{decided}");
        }
    };
    let (report, ()) = tokio::join!(world.rebuild(&[], Duration::from_secs(180)), traffic);
    assert!(report.contains("kept as notifications_old_2"), "unexpected report: {report}");
    let after = send(
        &api,
        json!({ "notification_id": "ntf_after", "recipient_id": "mem_ada", "channel": "email",
                      "category": "transactional", "body": "After the swap." }),
    )
    .await;
    assert_eq!(after["status"], "applied", "{after}\n{}", live.log());
    reaches(&world, "ntf_after", "sent").await;
    for n in 0..10 {
        reaches(&world, &format!("ntf_during_{n}"), "sent").await;
    }
    at_rest(&world).await;
    assert!(stop(&mut live).success(), "{}", live.log());
    let stale = scalar(
        &world,
        "SELECT count(*) FROM notifications_old_2.notifications WHERE notification_id = 'ntf_after'",
    )
    .await;
    assert_eq!(stale, 0, "the old projection no longer moves");

    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into notifications_rebuild_3"), "unexpected report: {report}");
    let rebuilt = world.checksum("notifications_rebuild_3", &EXCLUDED).await;
    assert_eq!(
        rebuilt,
        world.checksum("notifications", &EXCLUDED).await,
        "a rebuild vs the swapped-in projection the live process went on in"
    );
    assert!(rebuilt.tables.iter().any(|t| t.table == "notifications" && t.rows == 21), "{rebuilt:?}");
}
