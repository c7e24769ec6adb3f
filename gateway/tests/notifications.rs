//! Notifications through the gateway against the real broker and PostgreSQL: template, preference
//! and cancel requests checked field by field and by role, the exact Avro commands on the command
//! and catalog command topics (over HTTP and gRPC), the template preview, and the reads of
//! notifications, templates, preferences, the in-app inbox and the delivery dashboard.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgConnection;
use studyspot_bus::{Codec, InboundMessage, headers};
use studyspot_notifications_projection::{self as projection, Notification};
use studyspot_schemas::{Record, notifications};
use studyspot_tokens::Role;
use support::TestGateway;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("time").with_timezone(&Utc)
}

async fn post(gw: &TestGateway, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let (status, _, answer) = TestGateway::send(gw.request(Method::POST, path, Some(token)).json(body)).await;
    (status, answer)
}

async fn get(gw: &TestGateway, path: &str, token: &str) -> (u16, Value) {
    let (status, _, body) = TestGateway::send(gw.request(Method::GET, path, Some(token))).await;
    (status, body)
}

async fn decode<R: Record>(gw: &TestGateway, record: &InboundMessage) -> R {
    let codec = Codec::new(&gw.settings.registry.url).expect("codec");
    let decoded = codec.decode(record.payload.as_deref().expect("payload")).await.expect("decode");
    decoded.into_record().unwrap_or_else(|e| panic!("a {}: {e}", R::FULL_NAME))
}

fn key(record: &InboundMessage) -> &str {
    std::str::from_utf8(record.key.as_deref().expect("key")).expect("utf-8 key")
}

fn ids(body: &Value, field: &str) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {body}"))
        .iter()
        .map(|i| i[field].as_str().expect("id").to_owned())
        .collect()
}

fn vars<M: FromIterator<(String, String)>>(pairs: &[(&str, &str)]) -> M {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A complete, valid preferences request for `recipient`.
fn preferences_body(recipient: &str) -> Value {
    json!({
        "recipient_id": recipient,
        "email": "ada@example.org",
        "phone": "+4915112345678",
        "whatsapp": "+4915112345679",
        "push_token": "fcm-token-1",
        "webhook_url": "https://hooks.example.org/studyspot",
        "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "time_zone": "Europe/Berlin",
        "quiet_start": "22:00",
        "quiet_end": "07:30",
        "opted_out_channels": ["sms"],
        "opted_out_categories": ["marketing"],
        "category_caps": { "operational": 3, "billing": 0 },
        "daily_cap": 10,
    })
}

/// `preferences_body("mem_1")` with `field` set to `value` (Null removes it).
fn preferences_with(field: &str, value: Value) -> Value {
    let mut body = preferences_body("mem_1");
    let object = body.as_object_mut().expect("object");
    if value.is_null() {
        object.remove(field);
    } else {
        object.insert(field.to_owned(), value);
    }
    body
}

fn template_body() -> Value {
    json!({
        "template_id": "tpl_receipt",
        "channel": "email",
        "locale": "de-DE",
        "subject": "Beleg {{ number }}",
        "body": "Danke {{ name }}, wir haben {{ amount }} erhalten.",
        "html": "<p>Danke {{ name }}</p>",
        "sample_variables": { "number": "INV-7", "name": "Ada", "amount": "EUR 20.00" },
    })
}

fn template_with(field: &str, value: Value) -> Value {
    let mut body = template_body();
    body[field] = value;
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_notification_requests_name_the_field_and_only_the_right_callers_act() {
    let gw = TestGateway::start(|_| {}).await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));
    let prefs = "/api/notifications/subscriptions";
    let templates = "/api/notifications/templates";
    // path, body, expected status, code and field.
    let cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            prefs,
            preferences_with("time_zone", json!("Mars/Olympus_Mons")),
            422,
            "validation_failed",
            "time_zone",
        ),
        (prefs, preferences_with("quiet_end", Value::Null), 422, "validation_failed", "quiet_end"),
        (prefs, preferences_with("quiet_start", Value::Null), 422, "validation_failed", "quiet_start"),
        (prefs, preferences_with("quiet_end", json!("25:00")), 422, "validation_failed", "quiet_end"),
        (prefs, preferences_with("quiet_end", json!("22:00")), 422, "validation_failed", "quiet_end"),
        (
            prefs,
            preferences_with("webhook_secret", json!("s3cret")),
            422,
            "validation_failed",
            "webhook_secret",
        ),
        (
            prefs,
            preferences_with("webhook_secret", json!("whsec_!!!")),
            422,
            "validation_failed",
            "webhook_secret",
        ),
        (prefs, preferences_with("webhook_url", Value::Null), 422, "validation_failed", "webhook_secret"),
        (
            prefs,
            preferences_with("webhook_url", json!("ftp://example.org")),
            422,
            "validation_failed",
            "webhook_url",
        ),
        (prefs, preferences_with("phone", json!("0151 1234567")), 422, "validation_failed", "phone"),
        (prefs, preferences_with("whatsapp", json!("+0123")), 422, "validation_failed", "whatsapp"),
        (prefs, preferences_with("email", json!("ada")), 422, "validation_failed", "email"),
        (
            prefs,
            preferences_with("opted_out_channels", json!(["pigeon"])),
            422,
            "validation_failed",
            "opted_out_channels[0]",
        ),
        (
            prefs,
            preferences_with("opted_out_categories", json!(["marketing", "gossip"])),
            422,
            "validation_failed",
            "opted_out_categories[1]",
        ),
        (
            prefs,
            preferences_with("category_caps", json!({ "billing": 1, "marketing": -1 })),
            422,
            "validation_failed",
            "category_caps.marketing",
        ),
        (
            prefs,
            preferences_with("category_caps", json!({ "gossip": 2 })),
            422,
            "validation_failed",
            "category_caps.gossip",
        ),
        (prefs, preferences_with("daily_cap", json!(-1)), 422, "validation_failed", "daily_cap"),
        (prefs, preferences_with("recipient_id", json!(" ")), 422, "validation_failed", "recipient_id"),
        (prefs, preferences_with("daily_cap", json!("ten")), 400, "invalid_json", "daily_cap"),
        (prefs, preferences_with("pager", json!("+1")), 400, "invalid_json", "pager"),
        (templates, template_with("channel", json!("pigeon")), 422, "validation_failed", "channel"),
        (templates, template_with("locale", json!("de_DE")), 422, "validation_failed", "locale"),
        (templates, template_with("body", json!("")), 422, "validation_failed", "body"),
        (templates, template_with("body", json!("Hi {{ nickname }}")), 422, "validation_failed", "body"),
        (templates, template_with("subject", json!("{% if %}")), 422, "validation_failed", "subject"),
        (templates, template_with("template_id", json!("")), 422, "validation_failed", "template_id"),
        (
            "/api/notifications/cancel",
            json!({ "recipient_id": "mem_1", "transaction_id": "" }),
            422,
            "validation_failed",
            "transaction_id",
        ),
        (
            "/api/notifications",
            json!({ "notification_id": "inbox", "recipient_id": "mem_1", "channel": "in_app",
                "category": "operational", "body": "Hi" }),
            422,
            "validation_failed",
            "notification_id",
        ),
    ];
    for (path, body, status, code, field) in cases {
        let (got_status, got) = post(&gw, path, &owner, &body).await;
        assert_eq!(got_status, status, "{path} {body}: {got}");
        assert_eq!(got["error"]["code"], code, "{path} {body}: {got}");
        assert_eq!(got["error"]["field"], field, "{path} {body}: {got}");
    }
    let (_, got) = post(&gw, templates, &owner, &template_with("body", json!("Hi {{ nickname }}"))).await;
    let message = got["error"]["message"].as_str().expect("message");
    assert!(message.contains("`nickname`") && message.contains("sample_variables"), "{message}");

    let (status, answer) = post(&gw, prefs, &member, &preferences_body("mem_2")).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "a member sets only their own preferences: {answer}"
    );
    for (path, body) in [
        (templates, template_body()),
        ("/api/notifications/templates/preview", json!({ "body": "Hi" })),
        ("/api/notifications/cancel", json!({ "recipient_id": "mem_1", "transaction_id": "txn_1" })),
    ] {
        let (status, answer) = post(&gw, path, &member, &body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{path}: {answer}");
    }

    assert!(gw.read_all(notifications::COMMANDS.name).is_empty(), "refused requests produce nothing");
    assert!(gw.read_all(notifications::CATALOG_COMMANDS.name).is_empty(), "refused requests produce nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn notification_requests_become_exactly_their_commands() {
    let gw = TestGateway::start(|_| {}).await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));

    // Templates go on the catalog command topic, keyed by the organization.
    let (status, answer) = post(&gw, "/api/notifications/templates", &owner, &template_body()).await;
    assert_eq!((status, answer["template_id"].as_str()), (202, Some("tpl_receipt")), "{answer}");
    let template_command_id = answer["command_id"].as_str().expect("command id").to_owned();
    let plain = json!({ "channel": "in_app", "body": "Your seat is ready" });
    let (status, answer) = post(&gw, "/api/notifications/templates", &owner, &plain).await;
    assert_eq!(status, 202, "{answer}");
    let generated = answer["template_id"].as_str().expect("template id").to_owned();
    assert!(generated.starts_with("tpl_"), "{generated}");

    let catalog = gw.read_all(notifications::CATALOG_COMMANDS.name);
    assert_eq!(catalog.len(), 2);
    assert!(catalog.iter().all(|r| key(r) == "org_1"), "keyed by the organization");
    assert_eq!(catalog[0].headers.get(headers::EVENT_ID), Some(template_command_id.as_str()));
    let created: notifications::CreateTemplate = decode(&gw, &catalog[0]).await;
    assert_eq!(
        (created.metadata.organization_id.as_str(), created.metadata.actor.as_str()),
        ("org_1", "user:ada")
    );
    assert_eq!(
        created,
        notifications::CreateTemplate {
            metadata: created.metadata.clone(),
            template_id: "tpl_receipt".into(),
            channel: "email".into(),
            locale: "de-DE".into(),
            subject: Some("Beleg {{ number }}".into()),
            body: "Danke {{ name }}, wir haben {{ amount }} erhalten.".into(),
            html: Some("<p>Danke {{ name }}</p>".into()),
            sample_variables: vars(&[("number", "INV-7"), ("name", "Ada"), ("amount", "EUR 20.00")]),
        }
    );
    let defaulted: notifications::CreateTemplate = decode(&gw, &catalog[1]).await;
    assert_eq!(
        defaulted,
        notifications::CreateTemplate {
            metadata: defaulted.metadata.clone(),
            template_id: generated,
            channel: "in_app".into(),
            locale: "en".into(),
            subject: None,
            body: "Your seat is ready".into(),
            html: None,
            sample_variables: Default::default(),
        }
    );

    // Preferences and cancellations go on the command topic, keyed by the recipient.
    let (status, answer) =
        post(&gw, "/api/notifications/subscriptions", &member, &preferences_body("mem_1")).await;
    assert_eq!((status, answer["recipient_id"].as_str()), (202, Some("mem_1")), "{answer}");
    let (status, answer) =
        post(&gw, "/api/notifications/subscriptions", &owner, &json!({ "recipient_id": "mem_2" })).await;
    assert_eq!(status, 202, "an operator sets anyone's of the organization: {answer}");
    let cancel = json!({ "recipient_id": "mem_1", "transaction_id": "txn_booking_9" });
    let (status, answer) = post(&gw, "/api/notifications/cancel", &owner, &cancel).await;
    assert_eq!((status, answer["transaction_id"].as_str()), (202, Some("txn_booking_9")), "{answer}");

    let commands = gw.read_all(notifications::COMMANDS.name);
    let keys: Vec<&str> = commands.iter().map(key).collect();
    assert_eq!(keys, ["mem_1", "mem_2", "mem_1"]);
    let set: notifications::SetPreferences = decode(&gw, &commands[0]).await;
    assert_eq!(set.metadata.actor, "user:mem_1", "the member acted");
    assert_eq!(
        set,
        notifications::SetPreferences {
            metadata: set.metadata.clone(),
            recipient_id: "mem_1".into(),
            email: Some("ada@example.org".into()),
            phone: Some("+4915112345678".into()),
            whatsapp: Some("+4915112345679".into()),
            push_token: Some("fcm-token-1".into()),
            webhook_url: Some("https://hooks.example.org/studyspot".into()),
            webhook_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            time_zone: "Europe/Berlin".into(),
            quiet_start: Some("22:00".into()),
            quiet_end: Some("07:30".into()),
            opted_out_channels: vec!["sms".into()],
            opted_out_categories: vec!["marketing".into()],
            category_caps: [("operational".to_owned(), 3), ("billing".to_owned(), 0)].into(),
            daily_cap: Some(10),
        }
    );
    let minimal: notifications::SetPreferences = decode(&gw, &commands[1]).await;
    assert_eq!(
        minimal,
        notifications::SetPreferences {
            metadata: minimal.metadata.clone(),
            recipient_id: "mem_2".into(),
            email: None,
            phone: None,
            whatsapp: None,
            push_token: None,
            webhook_url: None,
            webhook_secret: None,
            time_zone: "UTC".into(),
            quiet_start: None,
            quiet_end: None,
            opted_out_channels: vec![],
            opted_out_categories: vec![],
            category_caps: Default::default(),
            daily_cap: None,
        }
    );
    let cancelled: notifications::CancelNotifications = decode(&gw, &commands[2]).await;
    assert_eq!(
        cancelled,
        notifications::CancelNotifications {
            metadata: cancelled.metadata.clone(),
            recipient_id: "mem_1".into(),
            transaction_id: "txn_booking_9".into(),
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_preview_renders_and_names_the_undefined_variable() {
    let gw = TestGateway::start(|_| {}).await;
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let preview = "/api/notifications/templates/preview";
    let template = json!({
        "subject": "Receipt {{ number }}",
        "body": "Thanks {{ name }}, we received {{ amount }}.",
        "html": "<p>Thanks {{ name }}</p>",
        "variables": { "number": "INV-7", "name": "Ada <3", "amount": "EUR 20.00" },
    });
    let (status, body) = post(&gw, preview, &staff, &template).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "subject": "Receipt INV-7",
            "body": "Thanks Ada <3, we received EUR 20.00.",
            "html": "<p>Thanks Ada &lt;3</p>",
        }),
        "text as given, HTML escaped"
    );

    let mut missing = template.clone();
    missing["variables"] = json!({ "number": "INV-7", "name": "Ada" });
    let (status, body) = post(&gw, preview, &staff, &missing).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("body")), "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("`amount`") && message.contains("undefined"), "{message}");

    let broken = json!({ "body": "Hi", "html": "<p>{% for %}</p>" });
    let (status, body) = post(&gw, preview, &staff, &broken).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("html")), "{body}");

    let (status, body) = post(&gw, preview, &staff, &json!({ "body": "Plain" })).await;
    assert_eq!((status, body), (200, json!({ "subject": null, "body": "Plain", "html": null })));
    assert!(gw.read_all(notifications::CATALOG_COMMANDS.name).is_empty(), "a preview publishes nothing");
}

/// Issue 21 item 3: a template that loops for ever, writes too much or is too long is refused with
/// a 422 whose code names the limit and whose field names the part — quickly, without pinning a
/// thread of the gateway — over HTTP and gRPC, for previews and publishing alike.
#[tokio::test(flavor = "multi_thread")]
async fn templates_past_a_limit_are_refused_quickly_with_the_limit_and_the_part() {
    use std::time::{Duration, Instant};
    use studyspot_grpc_api::{CreateTemplateRequest, PreviewTemplateRequest, gateway_client::GatewayClient};
    use tonic::{Code, Request, transport::Channel};
    use tonic_types::StatusExt;

    let gw = TestGateway::start(|_| {}).await;
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let nested = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";
    // One request each; the old gateway rendered the nested loops (10^10 steps) on its async
    // worker for hours, so every request is given a deadline rather than awaited.
    let deadline = Duration::from_secs(5);
    let refused = |path: &'static str, body: Value| {
        let gw = &gw;
        let staff = &staff;
        async move {
            let started = Instant::now();
            let (status, answer) = tokio::time::timeout(deadline, post(gw, path, staff, &body))
                .await
                .unwrap_or_else(|_| panic!("{path} did not answer within {deadline:?}"));
            assert!(started.elapsed() < deadline, "{:?}", started.elapsed());
            (status, answer["error"]["code"].clone(), answer["error"]["field"].clone(), answer)
        }
    };
    let preview = "/api/notifications/templates/preview";
    let (status, code, field, answer) = refused(preview, json!({ "body": nested })).await;
    assert_eq!((status, code, field), (422, json!("template_too_costly"), json!("body")), "{answer}");

    let huge = json!({ "body": "Hi", "html": "{% for i in range(2000) %}{{ 'y' * 200 }}{% endfor %}" });
    let (status, code, field, answer) = refused(preview, huge).await;
    assert_eq!((status, code, field), (422, json!("template_output_too_large"), json!("html")), "{answer}");

    let long = json!({ "subject": "a".repeat(64 * 1024 + 1), "body": "Hi" });
    let (status, code, field, answer) = refused(preview, long).await;
    // The body limit (64 KiB) comes first for a single part this long.
    assert!(
        (status, &code, &field) == (422, &json!("template_too_large"), &json!("subject"))
            || (status, &code) == (413, &json!("body_too_large")),
        "{answer}"
    );

    // Publishing renders the sample variables the same way, and publishes nothing refused.
    let create = "/api/notifications/templates";
    let costly = json!({ "channel": "email", "subject": "Hi", "body": "Hi", "html": nested });
    let (status, code, field, answer) = refused(create, costly).await;
    assert_eq!((status, code, field), (422, json!("template_too_costly"), json!("html")), "{answer}");
    assert!(gw.read_all(notifications::CATALOG_COMMANDS.name).is_empty(), "nothing published");

    // gRPC: the same code (ErrorInfo reason) and part (BadRequest field).
    let mut client = GatewayClient::new(
        Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect"),
    );
    let mut request = Request::new(PreviewTemplateRequest { body: nested.into(), ..Default::default() });
    request.metadata_mut().insert("authorization", format!("Bearer {staff}").parse().expect("metadata"));
    let status = tokio::time::timeout(deadline, client.preview_template(request))
        .await
        .expect("gRPC preview answers in time")
        .expect_err("too costly");
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some("template_too_costly"));
    assert_eq!(details.bad_request().expect("bad request").field_violations[0].field, "body");
    let mut request = Request::new(CreateTemplateRequest {
        channel: "in_app".into(),
        body: "{{ 'z' * 300000 }}".into(),
        ..Default::default()
    });
    request.metadata_mut().insert("authorization", format!("Bearer {staff}").parse().expect("metadata"));
    let status = tokio::time::timeout(deadline, client.create_template(request))
        .await
        .expect("gRPC create answers in time")
        .expect_err("too large");
    let details = status.get_error_details();
    assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some("template_output_too_large"));
}

/// A notification row as the consumer would have projected it.
async fn insert_notification(db: &mut PgConnection, n: Notification) {
    projection::insert_notification(db, &n).await.expect("insert notification");
}

fn notification(
    id: &str,
    org: &str,
    recipient: &str,
    channel: &str,
    status: &str,
    created: &str,
) -> Notification {
    Notification {
        notification_id: id.into(),
        organization_id: org.into(),
        recipient_id: recipient.into(),
        channel: channel.into(),
        category: "operational".into(),
        subject: Some(format!("About {id}")),
        body: format!("Body of {id}"),
        status: status.into(),
        created_at: at(created),
        ..Default::default()
    }
}

async fn execute(db: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(db).await.expect(sql);
}

#[tokio::test(flavor = "multi_thread")]
async fn notification_reads_are_scoped() {
    let gw = TestGateway::start(|_| {}).await;
    let mut db = gw.projection("notifications", &projection::MIGRATIONS).await;
    let failed = Notification {
        reason: None,
        attempts: 3,
        failure_code: Some("mailbox_full".into()),
        failure_message: Some("552 mailbox full".into()),
        template_id: Some("tpl_receipt".into()),
        template_version: Some(2),
        locale: Some("de-DE".into()),
        transaction_id: Some("txn_1".into()),
        updated_at: Some(at("2026-01-01T10:05:00Z")),
        ..notification("ntf_failed", "org_1", "mem_1", "email", "failed", "2026-01-01T10:00:00Z")
    };
    insert_notification(&mut db, failed).await;
    let deferred = Notification {
        reason: Some("quiet_hours".into()),
        not_before: Some(at("2026-01-02T07:00:00Z")),
        ..notification("ntf_deferred", "org_1", "mem_1", "in_app", "deferred", "2026-01-01T23:00:00Z")
    };
    insert_notification(&mut db, deferred).await;
    let sent = Notification {
        attempts: 1,
        sent_at: Some(at("2026-01-01T09:00:01Z")),
        ..notification("ntf_sent", "org_1", "mem_1", "in_app", "sent", "2026-01-01T09:00:00Z")
    };
    insert_notification(&mut db, sent).await;
    for n in [
        notification("ntf_queued", "org_1", "mem_1", "in_app", "queued", "2026-01-01T08:00:00Z"),
        notification("ntf_suppressed", "org_1", "mem_1", "in_app", "suppressed", "2026-01-01T07:00:00Z"),
        notification("ntf_cancelled", "org_1", "mem_1", "in_app", "cancelled", "2026-01-01T06:00:00Z"),
        notification("ntf_other_member", "org_1", "mem_2", "in_app", "sent", "2026-01-01T05:00:00Z"),
        notification("ntf_other_org", "org_2", "mem_1", "in_app", "sent", "2026-01-01T04:00:00Z"),
    ] {
        insert_notification(&mut db, n).await;
    }
    execute(
        &mut db,
        "INSERT INTO templates (organization_id, template_id, channel, locale, version, subject, body, html, created_at) VALUES
           ('org_1', 'tpl_receipt', 'email', 'en', 1, 'Receipt', 'v1', NULL, '2026-01-01T00:00:00Z'),
           ('org_1', 'tpl_receipt', 'email', 'en', 2, 'Receipt', 'v2', '<p>v2</p>', '2026-01-03T00:00:00Z'),
           ('org_1', 'tpl_receipt', 'email', 'de', 1, 'Beleg', 'v1 de', NULL, '2026-01-02T00:00:00Z'),
           ('org_1', 'tpl_receipt', 'sms', 'en', 1, NULL, 'sms v1', NULL, '2026-01-04T00:00:00Z'),
           ('org_2', 'tpl_theirs', 'email', 'en', 1, NULL, 'theirs', NULL, '2026-01-05T00:00:00Z');
         INSERT INTO preferences (organization_id, recipient_id, email, webhook_url, webhook_secret, time_zone,
             quiet_start, quiet_end, opted_out_channels, opted_out_categories, category_caps, daily_cap, updated_at) VALUES
           ('org_1', 'mem_1', 'ada@example.org', 'https://hooks.example.org', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
             'Europe/Berlin', '22:00', '07:30', '{sms}', '{marketing}', '{\"marketing\": 3}', 10, '2026-01-01T00:00:00Z'),
           ('org_1', 'mem_2', NULL, NULL, NULL, 'UTC', NULL, NULL, '{}', '{}', '{}', NULL, '2026-01-01T00:00:00Z'),
           ('org_2', 'mem_3', NULL, NULL, NULL, 'UTC', NULL, NULL, '{}', '{}', '{}', NULL, '2026-01-01T00:00:00Z');",
    )
    .await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));

    // One notification, with what became of it.
    let (status, body) = get(&gw, "/api/notifications/ntf_failed", &member).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            &body["status"],
            &body["attempts"],
            &body["failure_code"],
            &body["sent_at"],
            &body["template_version"]
        ),
        (&json!("failed"), &json!(3), &json!("mailbox_full"), &Value::Null, &json!(2)),
        "{body}"
    );
    let (_, body) = get(&gw, "/api/notifications/ntf_deferred", &owner).await;
    assert_eq!(
        (&body["reason"], &body["not_before"]),
        (&json!("quiet_hours"), &json!("2026-01-02T07:00:00Z")),
        "{body}"
    );
    assert_eq!(get(&gw, "/api/notifications/ntf_other_member", &member).await.0, 404, "not another member's");
    assert_eq!(
        get(&gw, "/api/notifications/ntf_other_org", &owner).await.0,
        404,
        "not another organization's"
    );

    // The list carries the same columns and filters by them.
    let (status, body) = get(&gw, "/api/notifications?status=sent", &owner).await;
    assert_eq!(
        (status, ids(&body, "notification_id")),
        (200, vec!["ntf_sent".to_owned(), "ntf_other_member".to_owned()])
    );
    assert_eq!(body["items"][0]["sent_at"], "2026-01-01T09:00:01Z");
    let (_, body) = get(&gw, "/api/notifications?transaction_id=txn_1", &owner).await;
    assert_eq!(ids(&body, "notification_id"), ["ntf_failed"]);
    let (_, body) = get(&gw, "/api/notifications?channel=in_app", &member).await;
    assert_eq!(
        ids(&body, "notification_id"),
        ["ntf_deferred", "ntf_sent", "ntf_queued", "ntf_suppressed", "ntf_cancelled"],
        "a member's own"
    );
    for (path, field) in [
        ("/api/notifications?status=lost", "status"),
        ("/api/notifications?channel=pigeon", "channel"),
        ("/api/notifications?category=gossip", "category"),
    ] {
        let (status, body) = get(&gw, path, &owner).await;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some(field)), "{path}: {body}");
    }

    // The inbox: the caller's own in-app notifications sent or on their way, newest first.
    let (status, body) = get(&gw, "/api/notifications/inbox", &member).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body, "notification_id"), ["ntf_deferred", "ntf_sent", "ntf_queued"]);
    assert_eq!(body["items"][1]["subject"], "About ntf_sent");
    assert!(body["items"][0].get("recipient_id").is_none(), "{body}");
    let mut pages = Vec::new();
    let mut path = "/api/notifications/inbox?limit=2".to_owned();
    loop {
        let (_, body) = get(&gw, &path, &member).await;
        pages.push(ids(&body, "notification_id"));
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/notifications/inbox?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, [vec!["ntf_deferred", "ntf_sent"], vec!["ntf_queued"]]);
    let other = gw.token(Some("org_1"), &[Role::Member], Some("mem_2"));
    let (_, body) = get(&gw, "/api/notifications/inbox", &other).await;
    assert_eq!(ids(&body, "notification_id"), ["ntf_other_member"]);
    let (_, body) = get(&gw, "/api/notifications/inbox", &owner).await;
    assert!(ids(&body, "notification_id").is_empty(), "an operator's own inbox: {body}");
    let (status, body) = get(&gw, "/api/notifications/inbox?recipient_id=mem_2", &member).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("recipient_id")), "{body}");

    // Templates: the latest version per template, channel and locale; or every version.
    let (status, body) = get(&gw, "/api/notifications/templates", &owner).await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<String> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| {
            format!(
                "{}/{}/{}@{}",
                t["template_id"].as_str().expect("id"),
                t["channel"].as_str().expect("channel"),
                t["locale"].as_str().expect("locale"),
                t["version"]
            )
        })
        .collect();
    assert_eq!(listed, ["tpl_receipt/sms/en@1", "tpl_receipt/email/en@2", "tpl_receipt/email/de@1"]);
    assert_eq!(body["items"][1]["html"], "<p>v2</p>");
    assert!(body["items"][0].get("cursor_key").is_none(), "{body}");
    let mut versions = Vec::new();
    let mut path = "/api/notifications/templates?all_versions=true&limit=2".to_owned();
    loop {
        let (_, body) = get(&gw, &path, &owner).await;
        versions.extend(
            body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|t| t["body"].as_str().expect("body").to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/notifications/templates?all_versions=true&limit=2&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(versions, ["sms v1", "v2", "v1 de", "v1"]);
    let (_, body) = get(&gw, "/api/notifications/templates?channel=email&locale=de", &owner).await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(get(&gw, "/api/notifications/templates", &member).await.0, 403, "templates are for operators");
    let (status, body) = get(&gw, "/api/notifications/templates?all_versions=yes", &owner).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("all_versions")), "{body}");

    // Preferences: never the webhook secret, only whether one is set.
    let (status, body) = get(&gw, "/api/notifications/subscriptions/mem_1", &member).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "recipient_id": "mem_1", "email": "ada@example.org", "phone": null, "whatsapp": null,
            "push_token": null, "webhook_url": "https://hooks.example.org", "webhook_secret_set": true,
            "time_zone": "Europe/Berlin", "quiet_start": "22:00", "quiet_end": "07:30",
            "opted_out_channels": ["sms"], "opted_out_categories": ["marketing"],
            "category_caps": { "marketing": 3 }, "daily_cap": 10, "updated_at": "2026-01-01T00:00:00Z",
        })
    );
    assert!(!body.to_string().contains("whsec_"), "{body}");
    assert_eq!(
        get(&gw, "/api/notifications/subscriptions/mem_2", &member).await.0,
        404,
        "not another member's"
    );
    let (status, body) = get(&gw, "/api/notifications/subscriptions/mem_2", &owner).await;
    assert_eq!((status, &body["webhook_secret_set"]), (200, &json!(false)), "{body}");
    assert_eq!(
        get(&gw, "/api/notifications/subscriptions/mem_3", &owner).await.0,
        404,
        "another organization's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_counts_by_status_per_channel_category_and_template() {
    let gw = TestGateway::start(|_| {}).await;
    let owner = gw.token(Some("org_1"), &[Role::Owner], None);
    let path = "/api/notifications/analytics/dashboard?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z";
    let (status, body) = get(&gw, path, &owner).await;
    assert_eq!((status, &body["totals"]["total"]), (200, &json!(0)), "nothing projected yet: {body}");

    let mut db = gw.projection("notifications", &projection::MIGRATIONS).await;
    let rows = [
        // id, org, channel, category, template, status, created
        ("n1", "org_1", "email", "billing", Some("tpl_receipt"), "sent", "2026-01-05T00:00:00Z"),
        ("n2", "org_1", "email", "billing", Some("tpl_receipt"), "sent", "2026-01-06T00:00:00Z"),
        ("n3", "org_1", "email", "billing", Some("tpl_receipt"), "failed", "2026-01-07T00:00:00Z"),
        ("n4", "org_1", "email", "marketing", None, "suppressed", "2026-01-08T00:00:00Z"),
        ("n5", "org_1", "sms", "billing", Some("tpl_receipt"), "queued", "2026-01-09T00:00:00Z"),
        ("n6", "org_1", "in_app", "operational", None, "deferred", "2026-01-10T00:00:00Z"),
        ("n7", "org_1", "in_app", "operational", None, "cancelled", "2026-01-31T23:59:59Z"),
        ("n8", "org_1", "email", "billing", Some("tpl_receipt"), "sent", "2026-02-01T00:00:00Z"),
        ("n9", "org_1", "email", "billing", Some("tpl_receipt"), "sent", "2025-12-31T23:59:59Z"),
        ("n10", "org_2", "email", "billing", Some("tpl_receipt"), "sent", "2026-01-05T00:00:00Z"),
    ];
    for (id, org, channel, category, template, status, created) in rows {
        let n = Notification {
            category: category.into(),
            template_id: template.map(str::to_owned),
            ..notification(id, org, "mem_1", channel, status, created)
        };
        insert_notification(&mut db, n).await;
    }
    let (status, body) = get(&gw, path, &owner).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["from"].as_str(), body["to"].as_str()),
        (Some("2026-01-01T00:00:00Z"), Some("2026-02-01T00:00:00Z"))
    );
    let counts = |queued: i64, deferred: i64, sent: i64, failed: i64, suppressed: i64, cancelled: i64| {
        let total = queued + deferred + sent + failed + suppressed + cancelled;
        let settled = sent + failed;
        let rate = if settled > 0 { json!(sent as f64 / settled as f64) } else { Value::Null };
        json!({ "queued": queued, "deferred": deferred, "sent": sent, "failed": failed,
            "suppressed": suppressed, "cancelled": cancelled, "total": total, "delivery_rate": rate })
    };
    let keyed = |key: Value, c: Value| {
        let mut c = c;
        c["key"] = key;
        c
    };
    assert_eq!(body["totals"], counts(1, 1, 2, 1, 1, 1), "{body}");
    assert_eq!(
        body["by_channel"],
        json!([
            keyed(json!("email"), counts(0, 0, 2, 1, 1, 0)),
            keyed(json!("in_app"), counts(0, 1, 0, 0, 0, 1)),
            keyed(json!("sms"), counts(1, 0, 0, 0, 0, 0)),
        ])
    );
    assert_eq!(
        body["by_category"],
        json!([
            keyed(json!("billing"), counts(1, 0, 2, 1, 0, 0)),
            keyed(json!("marketing"), counts(0, 0, 0, 0, 1, 0)),
            keyed(json!("operational"), counts(0, 1, 0, 0, 0, 1)),
        ])
    );
    assert_eq!(
        body["by_template"],
        json!([
            keyed(Value::Null, counts(0, 1, 0, 0, 1, 1)),
            keyed(json!("tpl_receipt"), counts(1, 0, 2, 1, 0, 0)),
        ])
    );
    let breakdown: Vec<String> = body["breakdown"]
        .as_array()
        .expect("breakdown")
        .iter()
        .map(|r| {
            format!(
                "{}/{}/{}={}",
                r["channel"].as_str().expect("channel"),
                r["category"].as_str().expect("category"),
                r["template_id"].as_str().unwrap_or("-"),
                r["total"]
            )
        })
        .collect();
    assert_eq!(
        breakdown,
        [
            "email/billing/tpl_receipt=3",
            "email/marketing/-=1",
            "in_app/operational/-=2",
            "sms/billing/tpl_receipt=1"
        ]
    );
    let (_, body) = get(
        &gw,
        "/api/notifications/analytics/dashboard?from=2027-01-01T00:00:00Z&to=2027-02-01T00:00:00Z",
        &owner,
    )
    .await;
    assert_eq!((&body["totals"], &body["by_channel"]), (&counts(0, 0, 0, 0, 0, 0), &json!([])), "{body}");

    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));
    assert_eq!(get(&gw, path, &member).await.0, 403, "analytics are for operators");
    let backwards =
        "/api/notifications/analytics/dashboard?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z";
    let (status, body) = get(&gw, backwards, &owner).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("from")), "{body}");
    let (status, body) =
        get(&gw, "/api/notifications/analytics/dashboard?since=2026-01-01T00:00:00Z", &owner).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("since")), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn notification_operations_over_grpc_are_the_same_operations() {
    use studyspot_grpc_api::{
        CancelNotificationsRequest, CreateTemplateRequest, GetNotificationRequest, GetPreferencesRequest,
        ListRequest, PreviewTemplateRequest, SetPreferencesRequest, gateway_client::GatewayClient,
    };
    use tonic::{Code, Request, transport::Channel};
    use tonic_types::StatusExt;

    fn authorized<T>(message: T, token: &str) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
        request
    }

    let gw = TestGateway::start(|_| {}).await;
    let mut db = gw.projection("notifications", &projection::MIGRATIONS).await;
    let sent = Notification {
        attempts: 1,
        sent_at: Some(at("2026-01-05T10:00:02Z")),
        transaction_id: Some("txn_1".into()),
        ..notification("ntf_1", "org_1", "mem_1", "in_app", "sent", "2026-01-05T10:00:00Z")
    };
    insert_notification(&mut db, sent).await;
    execute(
        &mut db,
        "INSERT INTO templates (organization_id, template_id, channel, locale, version, subject, body, html, created_at)
           VALUES ('org_1', 'tpl_seat', 'in_app', 'en', 1, NULL, 'Seat {{ seat }}', NULL, '2026-01-01T00:00:00Z');
         INSERT INTO preferences (organization_id, recipient_id, time_zone, opted_out_channels, opted_out_categories,
             category_caps, updated_at)
           VALUES ('org_1', 'mem_1', 'Asia/Kolkata', '{}', '{}', '{\"marketing\": 2}', '2026-01-01T00:00:00Z');",
    )
    .await;
    let mut client = GatewayClient::new(
        Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect"),
    );
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));

    // Commands.
    let template = CreateTemplateRequest {
        template_id: Some("tpl_seat".into()),
        channel: "in_app".into(),
        body: "Seat {{ seat }} is yours".into(),
        sample_variables: vars(&[("seat", "A1")]),
        ..Default::default()
    };
    let accepted =
        client.create_template(authorized(template.clone(), &staff)).await.expect("accepted").into_inner();
    assert_eq!(
        (accepted.aggregate_field.as_str(), accepted.aggregate_id.as_str()),
        ("template_id", "tpl_seat")
    );
    // A retry with the same idempotency key is the same request, whatever order its map arrives in.
    let keyed = CreateTemplateRequest {
        template_id: Some("tpl_many".into()),
        body: "{{ a }}{{ b }}{{ c }}{{ d }}{{ e }}{{ f }}".into(),
        sample_variables: vars(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5"), ("f", "6")]),
        ..template.clone()
    };
    let mut first = None;
    for attempt in 0..6 {
        let mut request = authorized(keyed.clone(), &staff);
        request.metadata_mut().insert("idempotency-key", "tpl-many-1".parse().expect("metadata"));
        let answer = client.create_template(request).await.expect("the same request").into_inner();
        assert_eq!(answer.replayed, attempt > 0);
        assert_eq!(first.get_or_insert_with(|| answer.command_id.clone()), &answer.command_id);
    }
    let forbidden = client.create_template(authorized(template, &member)).await.expect_err("a member");
    assert_eq!(forbidden.code(), Code::PermissionDenied);
    let catalog = gw.read_all(notifications::CATALOG_COMMANDS.name);
    assert_eq!(catalog.len(), 2, "the template, and the retried one once");
    assert_eq!(
        (key(&catalog[0]), catalog[0].headers.get(headers::EVENT_ID)),
        ("org_1", Some(accepted.command_id.as_str()))
    );
    let created: notifications::CreateTemplate = decode(&gw, &catalog[0]).await;
    assert_eq!((created.locale.as_str(), created.body.as_str()), ("en", "Seat {{ seat }} is yours"));

    let prefs = SetPreferencesRequest {
        recipient_id: "mem_1".into(),
        time_zone: Some("Asia/Kolkata".into()),
        opted_out_channels: vec!["email".into()],
        category_caps: [("marketing".to_owned(), 2)].into(),
        ..Default::default()
    };
    let accepted =
        client.set_preferences(authorized(prefs.clone(), &member)).await.expect("own").into_inner();
    assert_eq!(
        (accepted.aggregate_field.as_str(), accepted.aggregate_id.as_str()),
        ("recipient_id", "mem_1")
    );
    let bad = SetPreferencesRequest { time_zone: Some("Asia/Atlantis".into()), ..prefs.clone() };
    let refused = client.set_preferences(authorized(bad, &member)).await.expect_err("bad zone");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let details = refused.get_error_details();
    assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some("validation_failed"));
    assert_eq!(details.bad_request().expect("bad request").field_violations[0].field, "time_zone");
    let others = SetPreferencesRequest { recipient_id: "mem_2".into(), ..prefs };
    let forbidden = client.set_preferences(authorized(others, &member)).await.expect_err("another's");
    assert_eq!(forbidden.code(), Code::PermissionDenied);
    let cancel = CancelNotificationsRequest { recipient_id: "mem_1".into(), transaction_id: "txn_1".into() };
    let accepted =
        client.cancel_notifications(authorized(cancel, &staff)).await.expect("cancel").into_inner();
    assert_eq!(accepted.aggregate_id, "txn_1");
    let commands = gw.read_all(notifications::COMMANDS.name);
    assert_eq!(commands.iter().map(key).collect::<Vec<_>>(), ["mem_1", "mem_1"]);
    let set: notifications::SetPreferences = decode(&gw, &commands[0]).await;
    assert_eq!(
        (set.time_zone.as_str(), set.opted_out_channels.clone(), set.category_caps.get("marketing")),
        ("Asia/Kolkata", vec!["email".to_owned()], Some(&2))
    );
    let cancelled: notifications::CancelNotifications = decode(&gw, &commands[1]).await;
    assert_eq!(cancelled.transaction_id, "txn_1");

    // The preview.
    let preview = PreviewTemplateRequest {
        body: "Seat {{ seat }}".into(),
        variables: vars(&[("seat", "B2")]),
        ..Default::default()
    };
    let rendered =
        client.preview_template(authorized(preview.clone(), &staff)).await.expect("renders").into_inner();
    assert_eq!((rendered.body.as_str(), rendered.subject), ("Seat B2", None));
    let refused = client
        .preview_template(authorized(
            PreviewTemplateRequest { variables: Default::default(), ..preview },
            &staff,
        ))
        .await
        .expect_err("seat is undefined");
    let details = refused.get_error_details();
    let violation = &details.bad_request().expect("bad request").field_violations[0];
    assert!(violation.field == "body" && violation.description.contains("`seat`"), "{violation:?}");

    // Reads.
    let one = client
        .get_notification(authorized(GetNotificationRequest { notification_id: "ntf_1".into() }, &member))
        .await
        .expect("own")
        .into_inner();
    assert_eq!(
        (one.status.as_str(), one.attempts, one.sent_at.as_deref(), one.transaction_id.as_deref()),
        ("sent", 1, Some("2026-01-05T10:00:02.000000Z"), Some("txn_1"))
    );
    let listed = client
        .list_notifications(authorized(ListRequest::default(), &staff))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.items[0].attempts, 1);
    let templates = client
        .list_templates(authorized(ListRequest::default(), &staff))
        .await
        .expect("templates")
        .into_inner();
    assert_eq!(templates.items.iter().map(|t| t.template_id.as_str()).collect::<Vec<_>>(), ["tpl_seat"]);
    let preferences = client
        .get_preferences(authorized(GetPreferencesRequest { recipient_id: "mem_1".into() }, &member))
        .await
        .expect("own preferences")
        .into_inner();
    assert_eq!(
        (
            preferences.time_zone.as_str(),
            preferences.webhook_secret_set,
            preferences.category_caps.get("marketing")
        ),
        ("Asia/Kolkata", false, Some(&2))
    );
    let inbox =
        client.list_inbox(authorized(ListRequest::default(), &member)).await.expect("inbox").into_inner();
    assert_eq!(inbox.items.iter().map(|m| m.notification_id.as_str()).collect::<Vec<_>>(), ["ntf_1"]);
    let filters = [
        ("from".to_owned(), "2026-01-01T00:00:00Z".to_owned()),
        ("to".to_owned(), "2026-02-01T00:00:00Z".to_owned()),
    ];
    let dashboard = client
        .get_notifications_dashboard(authorized(
            ListRequest { filters: filters.into(), ..Default::default() },
            &staff,
        ))
        .await
        .expect("dashboard")
        .into_inner();
    let totals = dashboard.totals.expect("totals");
    assert_eq!((totals.sent, totals.total, totals.delivery_rate), (1, 1, Some(1.0)));
    assert_eq!(dashboard.by_channel[0].key.as_deref(), Some("in_app"));
    let denied = client
        .get_notifications_dashboard(authorized(ListRequest::default(), &member))
        .await
        .expect_err("members see no analytics");
    assert_eq!(denied.code(), Code::PermissionDenied);
}

/// Issue 21: what minijinja builds in one step is not bounded by fuel (one instruction repeats a
/// string to 100 MB, a filter pads to any width). Each such amplifier, in a template whose output
/// is small, is refused by the preview and by publishing with the limit it would pass and the
/// part holding it, quickly; none is published.
#[tokio::test(flavor = "multi_thread")]
async fn every_single_step_amplifier_is_refused_by_the_preview_and_by_publishing() {
    use std::time::{Duration, Instant};

    let gw = TestGateway::start(|_| {}).await;
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let (large, costly) = ("template_output_too_large", "template_too_costly");
    let amplifiers = [
        ("{{ ('x' * 100000000)|length }}", large),
        ("{% set s = 'x' * 10000000 %}ok", large),
        ("{% set a = 'x' * 200000 %}{% set b = a ~ a %}{{ (b ~ b)|length }}", large),
        ("{% set a = 'x' * 200000 %}{{ (a + a)|length }}", large),
        ("{{ ([1] * 10000000)|length }}", costly),
        ("{{ (range(10000)|list + range(10000)|list)|length }}", costly),
        ("{{ range(100000)|length }}", costly),
        ("{{ (range(10000) * 100)|list|length }}", costly),
        ("{{ range(10000)|join('x' * 100)|length }}", large),
        ("{{ '%9999999s'|format(1)|length }}", costly),
        // Past a precision of 65 535 minijinja panicked.
        ("{{ '%.70000f'|format(1.5)|length }}", costly),
        ("{{ 'a\nb'|indent(9999999)|length }}", large),
        ("{{ 'abcdefghij'|replace('', 'y' * 100000)|length }}", large),
        ("{{ [1]|batch(1000000, 0)|first|length }}", costly),
        ("{{ [1]|slice(1000000)|length }}", costly),
        ("{{ (['x' * 100000] * 100)|string|length }}", large),
        (
            "{% set ns = namespace(l=[]) %}{% for i in range(200) %}{% set ns.l = ns.l + ['x' * 200000] %}{% endfor %}{{ ns.l|length }}",
            costly,
        ),
    ];
    for (source, code) in amplifiers {
        for (path, body, part) in [
            ("/api/notifications/templates/preview", json!({ "body": source }), "body"),
            (
                "/api/notifications/templates",
                json!({ "channel": "email", "subject": "Hi", "body": "Hi", "html": source }),
                "html",
            ),
        ] {
            let started = Instant::now();
            let (status, answer) =
                tokio::time::timeout(Duration::from_secs(5), post(&gw, path, &staff, &body))
                    .await
                    .unwrap_or_else(|_| panic!("{path} did not answer in time for {source}"));
            assert_eq!(
                (status, answer["error"]["code"].as_str(), answer["error"]["field"].as_str()),
                (422, Some(code), Some(part)),
                "{path} {source}: {answer}"
            );
            assert!(started.elapsed() < Duration::from_secs(2), "{source} took {:?}", started.elapsed());
        }
    }
    assert!(gw.read_all(notifications::CATALOG_COMMANDS.name).is_empty(), "nothing published");

    // What templates ordinarily do with the same operators and filters still renders.
    let ordinary = json!({
        "subject": "{{ first ~ ' ' ~ last }}",
        "body": "{{ '-' * 3 }} {{ (amount|int * 2) ~ ' EUR' }} {{ lines|indent(2) }} {{ range(3)|join(',') }}",
        "variables": { "first": "Ada", "last": "Lovelace", "amount": "1250", "lines": "a\nb" },
    });
    let (status, answer) = post(&gw, "/api/notifications/templates/preview", &staff, &ordinary).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["subject"], "Ada Lovelace", "{answer}");
    assert_eq!(answer["body"], "--- 2500 EUR a\n  b 0,1,2", "{answer}");
}
