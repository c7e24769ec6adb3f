//! Two organizations using the same notification ids each see only their own: the same id is
//! accepted and delivered in both (to each one's recipient), a digest opened under the same id in
//! both is sealed and sent alone, a command of one organization naming a notification only the
//! other has (send now, a delivery outcome, a tracking status) is decided as if it did not exist
//! and changes nothing of the other's, and a rebuild from history gives the same projection. A
//! provider that de-duplicates by idempotency key (Twilio) sends both organizations' message of
//! the same id, once each.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use mail_parser::MessageParser;
use serde_json::json;
use studyspot_schemas::{
    EventMetadata, Record, alerts, attendance, billing,
    notifications::{
        self, RecordDeliveryOutcome, RecordDeliveryStatus, ReleaseNotification, SendNotification,
        SetPreferences,
    },
};
use studyspot_test_world::{Consumer, World, eventually, smtp::SmtpSink, stop};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::method};

const TOPICS: [&str; 5] = [
    notifications::COMMANDS.name,
    notifications::CATALOG_COMMANDS.name,
    billing::EVENTS.name,
    attendance::EVENTS.name,
    alerts::EVENTS.name,
];

/// The delivery worker's own bookkeeping, which a rebuild does not reproduce (see `rebuild.rs`).
const EXCLUDED: [&str; 3] = ["deliveries.attempts", "deliveries.next_attempt_at", "deliveries.last_error"];

async fn world() -> World {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    // Notifications reads these domains' events: the topics exist in every real deployment.
    world.create_topics(&[&billing::EVENTS, &attendance::EVENTS, &alerts::EVENTS]).await;
    world
}

fn consumer(world: &World, sink: &SmtpSink) -> Consumer {
    world.spawn_mailing_consumer(sink.port(), &[])
}

fn meta(org: &str) -> EventMetadata {
    let id = uuid::Uuid::now_v7().to_string();
    EventMetadata {
        event_id: id.clone(),
        occurred_at: Utc::now().timestamp_millis(),
        correlation_id: id,
        causation_id: None,
        organization_id: org.into(),
        actor: "user:test".into(),
    }
}

/// `mem_1` of `org` reads e-mail at `email`.
fn preferences(org: &str, email: &str) -> SetPreferences {
    SetPreferences {
        metadata: meta(org),
        recipient_id: "mem_1".into(),
        email: Some(email.into()),
        phone: None,
        whatsapp: None,
        push_token: None,
        webhook_url: None,
        webhook_secret: None,
        time_zone: "Europe/Berlin".into(),
        quiet_start: None,
        quiet_end: None,
        opted_out_channels: Vec::new(),
        opted_out_categories: Vec::new(),
        category_caps: Default::default(),
        daily_cap: None,
    }
}

/// An e-mail to `mem_1` of `org`, its subject naming the organization's side (`tag`).
fn message(org: &str, tag: &str, id: &str) -> SendNotification {
    SendNotification {
        metadata: meta(org),
        notification_id: id.into(),
        recipient_id: "mem_1".into(),
        channel: "email".into(),
        category: "operational".into(),
        subject: Some(format!("{tag}: {id}")),
        body: format!("Body of {id} for {tag}."),
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

/// The command's outcome and code, once decided.
async fn decided<R: Record>(world: &World, command: &R) -> (String, Option<String>) {
    world.send(command).await;
    let id = command.metadata().event_id.clone();
    let pool = world.pool().await;
    let found = eventually(&format!("command {id} decided"), Duration::from_secs(60), || async {
        sqlx::query_as("SELECT outcome, code FROM notifications.command_outcomes WHERE command_id = $1")
            .bind(&id)
            .fetch_optional(&pool)
            .await
            .ok()
            .flatten()
    })
    .await;
    pool.close().await;
    found
}

/// (status, reason, digest id) of `org`'s notification `id`.
async fn notification(
    world: &World,
    org: &str,
    id: &str,
) -> Option<(String, Option<String>, Option<String>)> {
    let pool = world.pool().await;
    let row = sqlx::query_as(
        "SELECT status, reason, digest_id FROM notifications.notifications \
         WHERE organization_id = $1 AND notification_id = $2",
    )
    .bind(org)
    .bind(id)
    .fetch_optional(&pool)
    .await
    .expect("notification");
    pool.close().await;
    row
}

async fn count(world: &World, sql: &str, org: &str) -> i64 {
    let pool = world.pool().await;
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(org)
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

/// The mails the sink accepted: (recipient, subject), sorted.
fn mails(sink: &SmtpSink) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = sink
        .captured()
        .iter()
        .map(|m| {
            let parsed = MessageParser::default().parse(&m.data).expect("a MIME message");
            let to: Vec<&str> = m
                .rcpt_to
                .iter()
                .filter_map(|r| r.split_once('<').and_then(|(_, rest)| rest.split_once('>')).map(|(a, _)| a))
                .collect();
            (to.join(","), parsed.subject().unwrap_or_default().to_owned())
        })
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn each_organization_sees_only_its_own_notifications_under_the_same_ids() {
    let world = world().await;
    let (a, b) = (world.organization_id(), format!("{}_b", world.organization_id()));
    let sink = SmtpSink::accepting().await;
    let mut live = consumer(&world, &sink);
    for (org, email) in [(&a, "a@example.org"), (&b, "b@example.org")] {
        let prefs = preferences(org, email);
        assert_eq!(decided(&world, &prefs).await.0, "applied", "preferences of {org}");
    }

    // A schedules a message for tomorrow; only A has `ntf_later`.
    let later = SendNotification {
        send_at: Some(Utc::now().timestamp_millis() + 86_400_000),
        ..message(&a, "A", "ntf_later")
    };
    assert_eq!(decided(&world, &later).await.0, "applied");
    assert_eq!(notification(&world, &a, "ntf_later").await.map(|n| n.0).as_deref(), Some("deferred"));

    // B names it: "send now", a delivery outcome, a tracking status — each as if it did not exist.
    let release = ReleaseNotification {
        metadata: meta(&b),
        notification_id: "ntf_later".into(),
        recipient_id: "mem_1".into(),
    };
    let outcome = RecordDeliveryOutcome {
        metadata: meta(&b),
        notification_id: "ntf_later".into(),
        recipient_id: "mem_1".into(),
        outcome: "failed".into(),
        attempts: 1,
        provider_message_id: None,
        code: Some("invalid_address".into()),
        message: Some("B says so".into()),
    };
    let status = RecordDeliveryStatus {
        metadata: meta(&b),
        notification_id: "ntf_later".into(),
        recipient_id: "mem_1".into(),
        status: "bounced".into(),
        url: None,
        provider_status: None,
        source: "twilio".into(),
    };
    let not_found = ("rejected".to_owned(), Some("notification_not_found".to_owned()));
    assert_eq!(decided(&world, &release).await, not_found, "B released A's message\n{}", live.log());
    assert_eq!(decided(&world, &outcome).await, not_found, "B settled A's message\n{}", live.log());
    assert_eq!(decided(&world, &status).await, not_found, "B tracked A's message\n{}", live.log());
    assert_eq!(
        notification(&world, &a, "ntf_later").await,
        Some(("deferred".into(), Some("scheduled".into()), None)),
        "A's message as A left it"
    );
    let deliveries =
        "SELECT count(*) FROM notifications.deliveries WHERE organization_id = $1 AND status = 'pending'";
    assert_eq!(count(&world, deliveries, &a).await, 1, "A's delivery still waits");
    let marked = "SELECT count(*) FROM notifications.marked_addresses WHERE organization_id = $1";
    assert_eq!(count(&world, marked, &a).await, 0, "A's address marked by B");
    let tracked = "SELECT count(*) FROM notifications.tracking_events WHERE organization_id = $1";
    assert_eq!(count(&world, tracked, &a).await, 0, "A's message tracked by B");

    // The same id in both: each accepted, each delivered to its own recipient.
    for (org, tag) in [(&a, "A"), (&b, "B")] {
        let send = message(org, tag, "ntf_same");
        assert_eq!(
            decided(&world, &send).await,
            ("applied".into(), None),
            "ntf_same in {org}\n{}",
            live.log()
        );
    }
    // The same id opens a digest in both (one hour's window); B sends its own now.
    for (org, tag) in [(&a, "A"), (&b, "B")] {
        let send = SendNotification {
            digest_key: Some("daily".into()),
            digest_window_secs: Some(3600),
            ..message(org, tag, "ntf_digested")
        };
        assert_eq!(decided(&world, &send).await, ("applied".into(), None), "ntf_digested in {org}");
    }
    let digest_a = notification(&world, &a, "ntf_digested").await.and_then(|n| n.2).expect("A's digest");
    let digest_b = notification(&world, &b, "ntf_digested").await.and_then(|n| n.2).expect("B's digest");
    assert_eq!(digest_a, digest_b, "the digest's id derives from the message's");
    let now = ReleaseNotification {
        metadata: meta(&b),
        notification_id: "ntf_digested".into(),
        recipient_id: "mem_1".into(),
    };
    assert_eq!(decided(&world, &now).await, ("applied".into(), None), "B's send now");
    let expected = vec![
        ("a@example.org".to_owned(), "A: ntf_same".to_owned()),
        ("b@example.org".to_owned(), "B: ntf_digested".to_owned()),
        ("b@example.org".to_owned(), "B: ntf_same".to_owned()),
    ];
    let sent = eventually("three mails", Duration::from_secs(60), || async {
        let m = mails(&sink);
        (m.len() >= expected.len()).then_some(m)
    })
    .await;
    assert_eq!(sent, expected, "each organization's mails to its own recipient\n{}", live.log());
    for (org, id) in [(&a, "ntf_same"), (&b, "ntf_same"), (&b, digest_b.as_str())] {
        eventually(&format!("{id} of {org} sent"), Duration::from_secs(60), || async {
            let n = notification(&world, org, id).await;
            n.filter(|n| n.0 == "sent").map(drop)
        })
        .await;
    }
    assert_eq!(
        notification(&world, &a, &digest_a).await.map(|n| n.0).as_deref(),
        Some("deferred"),
        "A's digest waits for its window"
    );
    let sealed =
        "SELECT count(*) FROM notifications.digests WHERE organization_id = $1 AND sealed_at IS NOT NULL";
    assert_eq!(count(&world, sealed, &a).await, 0, "B's send now sealed A's digest");

    // B's open of its own ntf_same counts for B alone.
    let opened = RecordDeliveryStatus {
        metadata: meta(&b),
        notification_id: "ntf_same".into(),
        recipient_id: "mem_1".into(),
        status: "opened".into(),
        url: None,
        provider_status: None,
        source: "open_pixel".into(),
    };
    assert_eq!(decided(&world, &opened).await, ("applied".into(), None));
    let opens =
        "SELECT coalesce(sum(opens), 0)::bigint FROM notifications.tracking WHERE organization_id = $1";
    assert_eq!((count(&world, opens, &a).await, count(&world, opens, &b).await), (0, 1));

    world.caught_up("notifications", &TOPICS).await;
    assert!(stop(&mut live).success(), "{}", live.log());
    assert_eq!(sink.captured().len(), expected.len(), "nothing else was sent");

    // History rebuilt gives the same projection.
    let report = world.rebuild(&["--no-swap"], Duration::from_secs(180)).await;
    assert!(report.contains("into notifications_rebuild_1"), "unexpected report: {report}");
    assert_eq!(
        world.checksum("notifications_rebuild_1", &EXCLUDED).await,
        world.checksum("notifications", &EXCLUDED).await,
        "rebuild vs live"
    );
}

/// A fake Twilio that keeps Twilio's promise: a repeated `I-Twilio-Idempotency-Token` is answered
/// with the first request's message, and nothing is sent again. It records what it sent.
struct IdempotentTwilio {
    sent: Arc<Mutex<Vec<TwilioMessage>>>,
}

/// A message the fake Twilio sent: its token, `To` and `Body`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TwilioMessage {
    token: String,
    to: String,
    body: String,
}

impl Respond for IdempotentTwilio {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let token = request
            .headers
            .get("I-Twilio-Idempotency-Token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body).into_owned().collect();
        let mut sent = self.sent.lock().expect("fake Twilio");
        let index = match sent.iter().position(|m| m.token == token) {
            Some(first) => first,
            None => {
                sent.push(TwilioMessage {
                    token,
                    to: form.get("To").cloned().unwrap_or_default(),
                    body: form.get("Body").cloned().unwrap_or_default(),
                });
                sent.len() - 1
            }
        };
        ResponseTemplate::new(201).set_body_json(json!({ "sid": format!("SM{index}"), "status": "queued" }))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_notification_id_in_two_organizations_reaches_a_deduplicating_provider_once_each() {
    let world = world().await;
    let (a, b) = (world.organization_id(), format!("{}_b", world.organization_id()));
    let sink = SmtpSink::accepting().await;
    let twilio = MockServer::start().await;
    let sent = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST")).respond_with(IdempotentTwilio { sent: sent.clone() }).mount(&twilio).await;
    let port = sink.port().to_string();
    let twilio_url = twilio.uri();
    let mut live = world.spawn_consumer_with(
        None,
        &world.database_url,
        &[
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST", "127.0.0.1"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__PORT", port.as_str()),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__TLS", "none"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__FROM", "StudySpot <no-reply@studyspot.test>"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__BASE_URL", twilio_url.as_str()),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__ACCOUNT_SID", "AC123"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__AUTH_TOKEN", "twilio-test-token"),
            // Quoted: the environment's values are parsed, and a bare number is not a string.
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__FROM", "\"+15005550006\""),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__POLL_INTERVAL_MS", "50"),
        ],
    );
    for (org, phone) in [(&a, "+4915100000001"), (&b, "+4915100000002")] {
        let prefs = SetPreferences { phone: Some(phone.into()), ..preferences(org, "x@example.org") };
        assert_eq!(decided(&world, &prefs).await.0, "applied", "preferences of {org}");
    }
    for (org, tag) in [(&a, "A"), (&b, "B")] {
        let send = SendNotification { channel: "sms".into(), ..message(org, tag, "ntf_sms") };
        assert_eq!(decided(&world, &send).await, ("applied".into(), None), "ntf_sms in {org}");
    }
    for org in [&a, &b] {
        eventually(&format!("ntf_sms of {org} sent"), Duration::from_secs(60), || async {
            notification(&world, org, "ntf_sms").await.filter(|n| n.0 == "sent").map(drop)
        })
        .await;
    }
    world.caught_up("notifications", &TOPICS).await;
    assert!(stop(&mut live).success(), "{}", live.log());

    // Each organization's message was sent, once, to its own member: neither was taken for a
    // repeat of the other's.
    let mut messages = sent.lock().expect("fake Twilio").clone();
    messages.sort();
    let expected = |org: &str, phone: &str, tag: &str| TwilioMessage {
        token: studyspot_notification_channels::message_key(org, "ntf_sms"),
        to: phone.into(),
        body: format!("Body of ntf_sms for {tag}."),
    };
    let mut want = vec![expected(&a, "+4915100000001", "A"), expected(&b, "+4915100000002", "B")];
    want.sort();
    assert_eq!(messages, want, "{}", live.log());
    let requests = twilio.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 2, "one request per message, no retry");
}
