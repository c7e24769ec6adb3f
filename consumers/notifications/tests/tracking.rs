//! Delivery tracking end to end: the real broker and PostgreSQL, a notifications consumer process
//! with its delivery worker, the gateway, an SMTP sink and a fake Twilio. An HTML e-mail goes out
//! with an open pixel and its link rewritten to a signed click redirect; the test loads the pixel
//! and follows the link from the message the sink received; Twilio gets a per-message signed
//! status callback, to which the test posts a signed `delivered`; the dashboard counts it all.

use std::time::Duration;

use chrono::Utc;
use mail_parser::MessageParser;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use studyspot_schemas::notifications::{
    CreateTemplate, NotificationTracked, RecordDeliveryStatus, SetPreferences,
};
use studyspot_test_world::{Consumer, World, eventually, smtp::SmtpSink, stop};
use studyspot_tokens::Role;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

/// The gateway as recipients and Twilio reach it (a proxy in front of the test's gateway).
const PUBLIC: &str = "https://hooks.studyspot.test";
const TWILIO_TOKEN: &str = "twilio-test-token";
const SECRET: &str = "tracking-test-secret-of-at-least-32-bytes";

fn consumer(world: &World, sink: &SmtpSink, twilio: &MockServer) -> Consumer {
    let port = sink.port().to_string();
    let twilio = twilio.uri();
    let env = [
        ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__HOST", "127.0.0.1"),
        ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__PORT", port.as_str()),
        ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__TLS", "none"),
        ("STUDYSPOT_NOTIFICATIONS__CHANNELS__EMAIL__FROM", "StudySpot <no-reply@studyspot.test>"),
        ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__BASE_URL", twilio.as_str()),
        ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__ACCOUNT_SID", "AC123"),
        ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__AUTH_TOKEN", TWILIO_TOKEN),
        // Quoted: the environment's values are parsed, and a bare number is not a string.
        ("STUDYSPOT_NOTIFICATIONS__CHANNELS__SMS__FROM", "\"+15005550006\""),
        ("STUDYSPOT_NOTIFICATIONS__DELIVERY__POLL_INTERVAL_MS", "50"),
        ("STUDYSPOT_NOTIFICATIONS__TRACKING__PUBLIC_BASE_URL", PUBLIC),
        ("STUDYSPOT_NOTIFICATIONS__TRACKING__SIGNING_KEY_ID", "e2e"),
        ("STUDYSPOT_NOTIFICATIONS__TRACKING__SECRETS__E2E", SECRET),
    ];
    world.spawn_consumer_with(None, &world.database_url, &env)
}

/// The first `attr="…"` value in `html` that starts with `prefix`.
fn attribute_starting(html: &str, prefix: &str) -> String {
    let start = html.find(prefix).unwrap_or_else(|| panic!("{prefix} in {html}"));
    html[start..].split('"').next().expect("quoted").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn opens_clicks_and_twilio_deliveries_reach_the_dashboard() {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    let sink = SmtpSink::accepting().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC123/Messages.json"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM_e2e", "status": "queued" })),
        )
        .mount(&twilio)
        .await;
    let mut consumer = consumer(&world, &sink, &twilio);
    let (base, settings) = world
        .gateway_configured(|s| {
            let t = &mut s.notifications.tracking;
            t.public_base_url = PUBLIC.into();
            t.signing_key_id = "e2e".into();
            t.secrets.insert("e2e".into(), SECRET.to_owned().into());
            t.twilio_auth_token = TWILIO_TOKEN.to_owned().into();
        })
        .await;
    let token = world.token(&settings, Role::Staff, None);
    let http = reqwest::Client::builder().redirect(Policy::none()).build().expect("client");
    let local = |public: &str| format!("{base}{}", public.strip_prefix(PUBLIC).expect("a public URL"));

    world
        .send(&CreateTemplate {
            metadata: world.named_metadata("template"),
            template_id: "welcome".into(),
            channel: "email".into(),
            locale: "en".into(),
            subject: Some("Welcome, {{ name }}".into()),
            body: "Hello {{ name }}, see https://example.org/welcome".into(),
            html: Some(
                "<html><body><p>Hello {{ name }}, see <a href=\"https://example.org/welcome?from=mail\">your seat</a> \
                 or <a href=\"mailto:help@example.org\">write</a>.</p></body></html>"
                    .into(),
            ),
            sample_variables: [("name".to_owned(), "Ada".to_owned())].into(),
        })
        .await;
    world
        .send(&SetPreferences {
            metadata: world.named_metadata("prefs"),
            recipient_id: "mem_ada".into(),
            email: Some("ada@example.org".into()),
            phone: Some("+4915112345678".into()),
            whatsapp: None,
            push_token: None,
            webhook_url: None,
            webhook_secret: None,
            time_zone: "UTC".into(),
            quiet_start: None,
            quiet_end: None,
            opted_out_channels: Vec::new(),
            opted_out_categories: Vec::new(),
            category_caps: Default::default(),
            daily_cap: None,
        })
        .await;
    eventually("the template and preferences", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM notifications.templates) + (SELECT count(*) FROM notifications.preferences)",
        )
        .fetch_one(&world.pool().await)
        .await
        .unwrap_or(0);
        (n == 2).then_some(())
    })
    .await;

    for body in [
        json!({ "notification_id": "ntf_mail", "recipient_id": "mem_ada", "channel": "email",
                "category": "transactional", "template_id": "welcome", "variables": { "name": "Ada" } }),
        json!({ "notification_id": "ntf_sms", "recipient_id": "mem_ada", "channel": "sms",
                "category": "transactional", "body": "Your seat is ready." }),
    ] {
        let response = http
            .post(format!("{base}/api/notifications"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 202);
    }

    // The e-mail as the recipient got it: a pixel and the web link through the redirect.
    let mail = eventually("the e-mail at the SMTP sink", Duration::from_secs(60), || async {
        sink.captured().into_iter().next()
    })
    .await;
    let parsed = MessageParser::default().parse(&mail.data).expect("a MIME message");
    let html = parsed.body_html(0).expect("an HTML part").into_owned();
    assert!(html.contains("href=\"mailto:help@example.org\""), "mailto untouched: {html}");
    assert!(!html.contains("href=\"https://example.org"), "the web link is rewritten: {html}");
    let pixel = attribute_starting(&html, &format!("{PUBLIC}/api/notifications/tracking/open/"));
    let click = attribute_starting(&html, &format!("{PUBLIC}/api/notifications/tracking/click/"));
    let stored: Option<String> =
        sqlx::query_scalar("SELECT html FROM notifications.notifications WHERE notification_id = 'ntf_mail'")
            .fetch_one(&world.pool().await)
            .await
            .expect("stored html");
    assert!(!stored.unwrap_or_default().contains("/tracking/"), "the stored message stays the rendered one");

    let response = http.get(local(&pixel)).send().await.expect("pixel");
    assert_eq!(
        (response.status().as_u16(), response.headers()["content-type"].to_str().ok()),
        (200, Some("image/gif"))
    );
    let response = http.get(local(&click)).send().await.expect("click");
    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(response.headers()["location"], "https://example.org/welcome?from=mail");

    // The SMS went to Twilio with its own signed status callback; Twilio says delivered.
    let callback = eventually("the SMS at Twilio", Duration::from_secs(60), || async {
        let requests = twilio.received_requests().await.unwrap_or_default();
        requests.first().map(|r| {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&r.body).into_owned().collect();
            form.into_iter().find(|(k, _)| k == "StatusCallback").map(|(_, v)| v).expect("a StatusCallback")
        })
    })
    .await;
    assert!(callback.starts_with(&format!("{PUBLIC}/api/notifications/tracking/twilio/")), "{callback}");
    let form: Vec<(String, String)> =
        [("MessageSid", "SM_e2e"), ("MessageStatus", "delivered"), ("AccountSid", "AC123")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let signature = studyspot_notification_channels::twilio_signature(TWILIO_TOKEN, &callback, &form);
    let response = http
        .post(local(&callback))
        .header("X-Twilio-Signature", signature)
        .form(&form)
        .send()
        .await
        .expect("callback");
    assert_eq!(response.status().as_u16(), 202);
    // WhatsApp-style read receipt to the configured callback URL: found by the message's sid once
    // the send is recorded (404 until then).
    let by_sid = format!("{PUBLIC}/api/notifications/tracking/twilio");
    let read: Vec<(String, String)> = [("MessageSid", "SM_e2e"), ("MessageStatus", "read")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let signature = studyspot_notification_channels::twilio_signature(TWILIO_TOKEN, &by_sid, &read);
    eventually("the read receipt found by sid", Duration::from_secs(60), || async {
        let response = http
            .post(local(&by_sid))
            .header("X-Twilio-Signature", &signature)
            .form(&read)
            .send()
            .await
            .ok()?;
        (response.status().as_u16() == 202).then_some(())
    })
    .await;

    let today = Utc::now();
    let range = format!(
        "from={}&to={}",
        (today - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        (today + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let dashboard = eventually("the dashboard with every status", Duration::from_secs(60), || async {
        let body: Value = http
            .get(format!("{base}/api/notifications/analytics/dashboard?{range}"))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let t = &body["tracking"]["totals"];
        (t["sent"] == 2 && t["delivered"] == 2 && t["opened"] == 2 && t["clicked"] == 1).then_some(body)
    })
    .await;
    let tracking = &dashboard["tracking"];
    let channel = |name: &str| {
        tracking["by_channel"].as_array().expect("by channel").iter().find(|c| c["key"] == name).cloned()
    };
    let email = channel("email").expect("email");
    assert_eq!(
        (
            &email["sent"],
            &email["delivered"],
            &email["opened"],
            &email["opens"],
            &email["clicked"],
            &email["clicks"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(1), &json!(1), &json!(1)),
        "{email}"
    );
    assert_eq!(email["open_rate"], 1.0);
    let sms = channel("sms").expect("sms");
    assert_eq!(
        (&sms["delivered"], &sms["opened"], &sms["bounced"]),
        (&json!(1), &json!(1), &json!(0)),
        "{sms}"
    );
    let template = tracking["by_template"]
        .as_array()
        .expect("by template")
        .iter()
        .find(|t| t["key"] == "welcome")
        .cloned();
    assert_eq!(template.map(|t| t["clicked"].clone()), Some(json!(1)), "{tracking}");
    let outside_campaigns = &tracking["by_campaign"][0];
    assert_eq!(
        (&outside_campaigns["key"], &outside_campaigns["sent"]),
        (&Value::Null, &json!(2)),
        "{tracking}"
    );

    // Every status is announced to downstream readers. The outbox publishes after the batch
    // commits: read the topic until all four are there (a CI run read it at once and found three).
    let codec = studyspot_bus::Codec::new(&settings.registry.url).expect("codec");
    let tracked = eventually("every status announced", Duration::from_secs(30), || async {
        let mut tracked = Vec::new();
        for e in world.read_all(studyspot_schemas::notifications::EVENTS.name) {
            let decoded = codec.decode(e.payload.as_deref().expect("payload")).await.expect("decode");
            if let Ok(t) = decoded.into_record::<studyspot_schemas::notifications::NotificationTracked>() {
                tracked.push((t.notification_id, t.status, t.first));
            }
        }
        tracked.sort();
        (tracked.len() >= 4).then_some(tracked)
    })
    .await;
    assert_eq!(
        tracked,
        [
            ("ntf_mail".into(), "clicked".into(), true),
            ("ntf_mail".into(), "opened".into(), true),
            ("ntf_sms".into(), "delivered".into(), true),
            ("ntf_sms".into(), "opened".into(), true),
        ],
        "{}",
        consumer.log()
    );
    stop(&mut consumer);
}

fn status(
    world: &World,
    name: &str,
    notification_id: &str,
    status: &str,
    url: Option<&str>,
) -> RecordDeliveryStatus {
    RecordDeliveryStatus {
        metadata: world.named_metadata(name),
        notification_id: notification_id.into(),
        recipient_id: "mem_ada".into(),
        status: status.into(),
        url: url.map(Into::into),
        provider_status: None,
        source: "test".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_count_once_opens_keep_their_total_bounces_mark_the_address_and_the_rest_is_refused() {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    let sink = SmtpSink::accepting().await;
    let twilio = MockServer::start().await;
    let mut consumer = consumer(&world, &sink, &twilio);
    let (base, token) = world.gateway().await;
    let http = reqwest::Client::new();
    world
        .send(&SetPreferences {
            metadata: world.named_metadata("prefs"),
            recipient_id: "mem_ada".into(),
            email: Some("ada@example.org".into()),
            phone: None,
            whatsapp: None,
            push_token: None,
            webhook_url: None,
            webhook_secret: None,
            time_zone: "UTC".into(),
            quiet_start: None,
            quiet_end: None,
            opted_out_channels: Vec::new(),
            opted_out_categories: Vec::new(),
            category_caps: Default::default(),
            daily_cap: None,
        })
        .await;
    let pool = world.pool().await;
    eventually("preferences applied", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications.preferences")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        (n == 1).then_some(())
    })
    .await;
    let response = http
        .post(format!("{base}/api/notifications"))
        .bearer_auth(&token)
        .json(&json!({ "notification_id": "ntf_1", "recipient_id": "mem_ada", "channel": "email",
                       "category": "transactional", "subject": "Hi", "body": "Hello." }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 202);
    eventually("sent", Duration::from_secs(60), || async {
        let s: Option<String> = sqlx::query_scalar(
            "SELECT status FROM notifications.notifications WHERE notification_id = 'ntf_1'",
        )
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten();
        (s.as_deref() == Some("sent")).then_some(())
    })
    .await;

    let open = status(&world, "open-1", "ntf_1", "opened", None);
    world.send(&open).await;
    world.send(&open).await; // redelivered: one open
    world.send(&status(&world, "open-2", "ntf_1", "opened", None)).await;
    world.send(&status(&world, "bounce", "ntf_1", "bounced", None)).await;
    let unknown = status(&world, "unknown", "ntf_nope", "delivered", None);
    world.send(&unknown).await;
    let unheard_of = status(&world, "unheard-of", "ntf_1", "read", None);
    world.send(&unheard_of).await;

    let outcomes: Vec<(String, String, Option<String>)> =
        eventually("every status decided", Duration::from_secs(60), || async {
            let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
                "SELECT command_id, outcome, code FROM notifications.command_outcomes \
                 WHERE command_type = 'studyspot.notifications.RecordDeliveryStatus' ORDER BY command_id",
            )
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
            (rows.len() == 5).then_some(rows)
        })
        .await;
    let outcome = |id: &str| outcomes.iter().find(|o| o.0 == id).map(|o| (o.1.as_str(), o.2.as_deref()));
    assert_eq!(outcome(&unknown.metadata.event_id), Some(("rejected", Some("notification_not_found"))));
    assert_eq!(
        outcome(&unheard_of.metadata.event_id).map(|o| o.0),
        Some("dead_lettered"),
        "{}",
        consumer.log()
    );
    assert_eq!(outcome(&open.metadata.event_id), Some(("applied", None)));

    let (opens, opened, bounced): (i32, bool, bool) = sqlx::query_as(
        "SELECT opens, first_opened_at IS NOT NULL, bounced_at IS NOT NULL FROM notifications.tracking \
         WHERE notification_id = 'ntf_1'",
    )
    .fetch_one(&pool)
    .await
    .expect("tracked");
    assert_eq!((opens, opened, bounced), (2, true, true));
    let marked: Option<String> = sqlx::query_scalar(
        "SELECT code FROM notifications.marked_addresses WHERE channel = 'email' AND address = 'ada@example.org'",
    )
    .fetch_optional(&pool)
    .await
    .expect("marks");
    assert_eq!(marked.as_deref(), Some("bounced"), "a bounce marks the address");

    // The outbox publishes after the batch commits: read the topic until the three announcements
    // of the applied statuses are there (a CI run read it at once and found one).
    let codec = studyspot_bus::Codec::new(&world.registry_url).expect("codec");
    let firsts = eventually("the applied statuses announced", Duration::from_secs(30), || async {
        let mut firsts = Vec::new();
        for e in world.read_all(studyspot_schemas::notifications::EVENTS.name) {
            let decoded = codec.decode(e.payload.as_deref().expect("payload")).await.expect("decode");
            if let Ok(t) = decoded.into_record::<NotificationTracked>() {
                firsts.push((t.status, t.first));
            }
        }
        (firsts.len() >= 3).then_some(firsts)
    })
    .await;
    assert_eq!(
        firsts,
        [("opened".to_owned(), true), ("opened".to_owned(), false), ("bounced".to_owned(), true)],
        "the second open is not a first; the redelivered one is not announced again"
    );
    stop(&mut consumer);
}
