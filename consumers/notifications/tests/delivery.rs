//! Notifications end to end: the real broker and PostgreSQL, a real notifications consumer
//! process with its delivery worker, the gateway, and an SMTP sink that parses what arrives.

use std::time::Duration;

use chrono::{Timelike as _, Utc};
use mail_parser::MessageParser;
use serde_json::{Value, json};
use studyspot_schemas::{
    billing::{self, PaymentSucceeded},
    notifications::{CreateTemplate, SetPreferences},
};
use studyspot_test_world::{Consumer, World, eventually, smtp::SmtpSink, stop};

async fn world() -> World {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    // Notifications reads billing's events too.
    world.create_topics(&[&billing::EVENTS]).await;
    world
}

fn consumer(world: &World, sink: &SmtpSink, env: &[(&str, &str)]) -> Consumer {
    world.spawn_mailing_consumer(sink.port(), env)
}

fn preferences(
    world: &World,
    name: &str,
    email: &str,
    time_zone: &str,
    quiet: Option<(String, String)>,
) -> SetPreferences {
    SetPreferences {
        metadata: world.named_metadata(name),
        recipient_id: "mem_ada".into(),
        email: Some(email.into()),
        phone: None,
        whatsapp: None,
        push_token: None,
        webhook_url: None,
        webhook_secret: None,
        time_zone: time_zone.into(),
        quiet_start: quiet.as_ref().map(|q| q.0.clone()),
        quiet_end: quiet.map(|q| q.1),
        opted_out_channels: Vec::new(),
        opted_out_categories: vec!["marketing".into()],
        category_caps: Default::default(),
        daily_cap: None,
    }
}

/// The notifications the gateway lists for the member.
async fn listed(base: &str, token: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let body: Value = client
        .get(format!("{base}/api/notifications?recipient_id=mem_ada"))
        .bearer_auth(token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .unwrap_or(Value::Null);
    body["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_succeeded_payment_sends_one_receipt_email_rendered_from_the_organizations_template() {
    let world = world().await;
    let sink = SmtpSink::accepting().await;
    let mut consumer = consumer(&world, &sink, &[]);
    let (base, token) = world.gateway().await;

    world
        .send(&CreateTemplate {
            metadata: world.named_metadata("template"),
            template_id: "payment_receipt".into(),
            channel: "email".into(),
            locale: "en".into(),
            subject: Some("Receipt for {{ amount }}".into()),
            body: "Hello! We received {{ amount }} by {{ method }} (payment {{ payment_id }}).".into(),
            html: None,
            sample_variables: [("amount", "EUR 1.00"), ("method", "card"), ("payment_id", "pay_x")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        })
        .await;
    world.send(&preferences(&world, "prefs", "ada@example.org", "Europe/Berlin", None)).await;
    // Billing's event, as billing publishes it; delivered twice, it is one receipt.
    let paid = PaymentSucceeded {
        metadata: world.named_metadata("paid"),
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
    };
    // The template and preferences are on other partitions or topics: wait until both applied.
    eventually("the template and preferences", Duration::from_secs(60), || async {
        let pool = world.pool().await;
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM notifications.templates) + (SELECT count(*) FROM notifications.preferences)",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        (n == 2).then_some(())
    })
    .await;
    world.send(&paid).await;
    world.send(&paid).await;

    let mail = eventually("the receipt at the SMTP sink", Duration::from_secs(60), || async {
        sink.captured().into_iter().next()
    })
    .await;
    let parsed = MessageParser::default().parse(&mail.data).expect("a MIME message");
    assert_eq!(parsed.subject(), Some("Receipt for EUR 20.00"));
    assert_eq!(
        parsed.body_text(0).as_deref().map(str::trim),
        Some("Hello! We received EUR 20.00 by card (payment pay_1)."),
        "{}",
        consumer.log()
    );
    assert!(mail.rcpt_to.iter().any(|r| r.contains("ada@example.org")), "{:?}", mail.rcpt_to);

    let sent = eventually("the notification sent", Duration::from_secs(60), || async {
        let items = listed(&base, &token).await;
        items.iter().all(|n| n["status"] == "sent").then_some(items).filter(|i| !i.is_empty())
    })
    .await;
    assert_eq!(sent.len(), 1, "one receipt for one payment: {sent:?}");
    assert_eq!(sink.captured().len(), 1);
    stop(&mut consumer);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_quiet_hours_a_message_waits_for_their_end_but_a_critical_one_and_a_due_schedule_go_out() {
    let world = world().await;
    let sink = SmtpSink::accepting().await;
    let mut consumer = consumer(&world, &sink, &[]);
    let (base, token) = world.gateway().await;
    // Quiet from an hour ago until two hours from now, in Tokyo.
    let tokyo = Utc::now().with_timezone(&chrono_tz::Asia::Tokyo);
    let hhmm = |h: i64| format!("{:02}:{:02}", (i64::from(tokyo.hour()) + h).rem_euclid(24), tokyo.minute());
    world
        .send(&preferences(&world, "prefs", "ada@example.org", "Asia/Tokyo", Some((hhmm(-1), hhmm(2)))))
        .await;
    eventually("preferences applied", Duration::from_secs(60), || async {
        let pool = world.pool().await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications.preferences")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        (n == 1).then_some(())
    })
    .await;

    let client = reqwest::Client::new();
    let post = |body: Value| {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        async move {
            let response = client
                .post(format!("{base}/api/notifications"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status().as_u16(), 202);
        }
    };
    post(json!({ "notification_id": "ntf_quiet", "recipient_id": "mem_ada", "channel": "email",
                 "category": "transactional", "subject": "Your booking", "body": "See you tomorrow." }))
    .await;
    post(json!({ "notification_id": "ntf_alarm", "recipient_id": "mem_ada", "channel": "email",
                 "category": "operational", "critical": true, "subject": "Fire alarm", "body": "Leave the building." }))
    .await;
    let due = Utc::now() + chrono::Duration::seconds(2);
    post(json!({ "notification_id": "ntf_later", "recipient_id": "mem_ada", "channel": "in_app",
                 "category": "attendance", "body": "Your seat is ready.", "send_at": due.to_rfc3339() }))
    .await;

    let items = eventually("all three decided", Duration::from_secs(60), || async {
        let items = listed(&base, &token).await;
        let done = items.len() == 3
            && items.iter().any(|n| n["notification_id"] == "ntf_alarm" && n["status"] == "sent")
            && items.iter().any(|n| n["notification_id"] == "ntf_later" && n["status"] == "sent");
        done.then_some(items)
    })
    .await;
    let quiet = items.iter().find(|n| n["notification_id"] == "ntf_quiet").expect("listed");
    assert_eq!(quiet["status"], "deferred", "{quiet}\n{}", consumer.log());
    let until = sqlx::query_scalar::<_, chrono::DateTime<Utc>>(
        "SELECT not_before FROM notifications.notifications WHERE notification_id = 'ntf_quiet'",
    )
    .fetch_one(&world.pool().await)
    .await
    .expect("deferred until");
    let local_end = until.with_timezone(&chrono_tz::Asia::Tokyo);
    assert_eq!(
        format!("{:02}:{:02}", local_end.hour(), local_end.minute()),
        hhmm(2),
        "the end of their quiet hours"
    );
    let later_sent: chrono::DateTime<Utc> = sqlx::query_scalar(
        "SELECT sent_at FROM notifications.notifications WHERE notification_id = 'ntf_later'",
    )
    .fetch_one(&world.pool().await)
    .await
    .expect("sent at");
    assert!(
        later_sent >= due - chrono::Duration::milliseconds(5),
        "not before its schedule: {later_sent} < {due}"
    );
    // Only the critical one reached the mailbox.
    let subjects: Vec<String> = sink
        .captured()
        .iter()
        .filter_map(|m| MessageParser::default().parse(&m.data).and_then(|p| p.subject().map(str::to_owned)))
        .collect();
    assert_eq!(subjects, ["Fire alarm"]);
    stop(&mut consumer);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_mail_server_is_retried_on_schedule_then_the_message_fails() {
    let world = world().await;
    // A sink that is gone: nothing listens on its port.
    let port = {
        let sink = SmtpSink::accepting().await;
        sink.port()
    };
    let mut consumer = world.spawn_consumer_with(
        None,
        &world.database_url,
        &[
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST", "127.0.0.1"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__PORT", &port.to_string()),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__TLS", "none"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__FROM", "no-reply@studyspot.test"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__RETRY__MAX_ATTEMPTS", "1"),
            ("STUDYSPOT_NOTIFICATIONS__CHANNELS__RETRY__TIMEOUT_MS", "500"),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__POLL_INTERVAL_MS", "50"),
            ("STUDYSPOT_NOTIFICATIONS__DELIVERY__RETRY_SCHEDULE_SECS", "[0, 1]"),
        ],
    );
    let (base, token) = world.gateway().await;
    world.send(&preferences(&world, "prefs", "ada@example.org", "UTC", None)).await;
    eventually("preferences applied", Duration::from_secs(60), || async {
        let pool = world.pool().await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications.preferences")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        (n == 1).then_some(())
    })
    .await;
    let response = reqwest::Client::new()
        .post(format!("{base}/api/notifications"))
        .bearer_auth(&token)
        .json(&json!({ "notification_id": "ntf_lost", "recipient_id": "mem_ada", "channel": "email",
                       "category": "transactional", "body": "Hello" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 202);
    let failed = eventually("the message failed", Duration::from_secs(60), || async {
        let items = listed(&base, &token).await;
        items.into_iter().find(|n| n["status"] == "failed")
    })
    .await;
    let (attempts, code): (i32, Option<String>) = sqlx::query_as(
        "SELECT attempts, failure_code FROM notifications.notifications WHERE notification_id = 'ntf_lost'",
    )
    .fetch_one(&world.pool().await)
    .await
    .expect("row");
    assert_eq!((attempts, code.as_deref()), (3, Some("retries_exhausted")), "{failed}\n{}", consumer.log());
    stop(&mut consumer);
}

async fn post(base: &str, token: &str, body: Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/notifications"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 202);
}

/// The notification's status and reason or failure code, once it is no longer waiting.
async fn settled(world: &World, id: &str) -> (String, Option<String>) {
    eventually(&format!("{id} settled"), Duration::from_secs(60), || async {
        let pool = world.pool().await;
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT status, reason, failure_code FROM notifications.notifications WHERE notification_id = $1",
        )
        .bind(id)
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten();
        row.filter(|(status, _, _)| !matches!(status.as_str(), "queued" | "deferred"))
            .map(|(status, reason, code)| (status, code.or(reason)))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hard_bounce_marks_the_address_until_the_member_sets_it_again() {
    let world = world().await;
    let sink = SmtpSink::start("550 5.1.1 <ada@example.org>: Recipient address rejected: User unknown").await;
    let mut consumer = consumer(&world, &sink, &[]);
    let (base, token) = world.gateway().await;
    let applied = |n: i64| {
        let world = &world;
        async move {
            eventually("preferences applied", Duration::from_secs(60), || async {
                let pool = world.pool().await;
                let set: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM notifications.preferences p WHERE NOT EXISTS \
                     (SELECT 1 FROM notifications.marked_addresses m WHERE m.recipient_id = p.recipient_id)",
                )
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
                (set == n).then_some(())
            })
            .await;
        }
    };
    world.send(&preferences(&world, "prefs", "ada@example.org", "UTC", None)).await;
    applied(1).await;
    let body = |id: &str| {
        json!({ "notification_id": id, "recipient_id": "mem_ada", "channel": "email",
                "category": "transactional", "body": "Hello" })
    };
    post(&base, &token, body("ntf_bounce")).await;
    assert_eq!(
        settled(&world, "ntf_bounce").await,
        ("failed".into(), Some("550".into())),
        "{}",
        consumer.log()
    );
    post(&base, &token, body("ntf_after")).await;
    assert_eq!(settled(&world, "ntf_after").await, ("suppressed".into(), Some("address_marked".into())));
    assert_eq!(sink.connections(), 1, "nothing more was sent to the bounced address");

    world.send(&preferences(&world, "prefs-again", "ada@example.org", "UTC", None)).await;
    applied(1).await;
    post(&base, &token, body("ntf_again")).await;
    assert_eq!(settled(&world, "ntf_again").await, ("failed".into(), Some("550".into())), "tried again");
    assert_eq!(sink.connections(), 2);
    stop(&mut consumer);
}
