//! The gateway through real HTTP requests: bad input gets a clear 4xx naming the field; a good
//! command is produced to its topic and answered with 202.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use studyspot_bus::{BusSettings, Codec, admin, headers, reader};
use studyspot_config::Settings;
use studyspot_schemas::attendance;

async fn serve(settings: &Settings) -> String {
    let app = studyspot_gateway::app(settings).expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn offline_settings() -> Settings {
    let mut settings = Settings::load(None).expect("defaults");
    // Nothing listens there: these requests must fail before reaching the broker.
    settings.kafka.bootstrap_servers = "127.0.0.1:1".into();
    settings.registry.url = "http://127.0.0.1:1".into();
    settings
}

async fn post(base: &str, path: &str, org: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().post(format!("{base}{path}")).header("content-type", "application/json");
    if let Some(org) = org {
        request = request.header("x-organization-id", org);
    }
    let response = request.body(body).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// path, organization header, body, expected status, code and field.
type Case = (&'static str, Option<&'static str>, String, u16, &'static str, Option<&'static str>);

#[tokio::test]
async fn bad_input_gets_a_clear_error_naming_the_field() {
    let base = serve(&offline_settings()).await;
    let payment = json!({ "member_id": "mem_1", "amount_minor": 100, "currency": "EUR", "method": "card" });
    let cases: Vec<Case> = vec![
        ("/api/payments", None, payment.to_string(), 400, "missing_header", Some("X-Organization-Id")),
        ("/api/payments", Some("org_1"), "{not json".into(), 400, "invalid_json", None),
        (
            "/api/payments",
            Some("org_1"),
            json!({ "member_id": "mem_1" }).to_string(),
            400,
            "invalid_json",
            Some("amount_minor"),
        ),
        (
            "/api/payments",
            Some("org_1"),
            json!({ "member_id": "m", "amount_minor": "ten", "currency": "EUR", "method": "card" })
                .to_string(),
            400,
            "invalid_json",
            Some("amount_minor"),
        ),
        (
            "/api/payments",
            Some("org_1"),
            json!({ "member_id": "m", "amount_minor": 1, "currency": "EUR", "method": "card", "tip": 1 })
                .to_string(),
            400,
            "invalid_json",
            Some("tip"),
        ),
        (
            "/api/payments",
            Some("org_1"),
            json!({ "member_id": "m", "amount_minor": 1, "currency": "eur", "method": "card" }).to_string(),
            422,
            "validation_failed",
            Some("currency"),
        ),
        (
            "/api/payments",
            Some("org_1"),
            json!({ "member_id": "m", "amount_minor": 0, "currency": "EUR", "method": "card" }).to_string(),
            422,
            "validation_failed",
            Some("amount_minor"),
        ),
        (
            "/api/payments",
            Some("org_1"),
            json!({ "member_id": "m", "amount_minor": 1, "currency": "EUR", "method": "iou" }).to_string(),
            422,
            "validation_failed",
            Some("method"),
        ),
        (
            "/api/notifications",
            Some("org_1"),
            json!({ "recipient_id": "m", "channel": "fax", "category": "c", "body": "b" }).to_string(),
            422,
            "validation_failed",
            Some("channel"),
        ),
        (
            "/api/attendance/check-ins",
            Some("org_1"),
            json!({ "member_id": "", "venue_id": "v" }).to_string(),
            422,
            "validation_failed",
            Some("member_id"),
        ),
        (
            "/api/attendance/check-ins",
            Some("org_1"),
            format!("{{\"member_id\": \"{}\", \"venue_id\": \"v\"}}", "x".repeat(70_000)),
            413,
            "body_too_large",
            None,
        ),
    ];
    for (path, org, body, status, code, field) in cases {
        let (got_status, got) = post(&base, path, org, body.clone()).await;
        assert_eq!(got_status, status, "{path} {body:.80}: {got}");
        assert_eq!(got["error"]["code"], code, "{path} {body:.80}: {got}");
        if let Some(field) = field {
            assert_eq!(got["error"]["field"], field, "{path} {body:.80}: {got}");
        }
    }
    let (status, _) = post(&base, "/api/payments", Some("org_1"), vec![0xff_u8, 0xfe, 0x00]).await;
    assert_eq!(status, 400, "invalid UTF-8 is refused, not a 5xx");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_in_is_produced_to_its_topic_and_accepted() {
    let admin_url = std::env::var("STUDYSPOT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://studyspot:studyspot@127.0.0.1:5432/studyspot".into());
    let id = uuid::Uuid::now_v7().simple().to_string();
    let mut admin_db = PgConnection::connect(&admin_url).await.expect("PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE gw_{id}")))
        .execute(&mut admin_db)
        .await
        .expect("db");
    let url = format!("{}/gw_{id}", admin_url.rsplit_once('/').expect("db").0);
    let registry =
        studyspot_schema_registry::router(studyspot_schema_registry::connect(&url, 2).await.expect("pool"))
            .await
            .expect("registry");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let registry_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, registry).await });

    let mut settings = Settings::load(None).expect("defaults");
    settings.kafka.bootstrap_servers =
        std::env::var("STUDYSPOT_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    settings.kafka.topic_prefix = format!("t{id}.");
    settings.registry.url = registry_url.clone();
    let topic = format!("t{id}.{}", attendance::COMMANDS.name);
    let bus = BusSettings::from_settings(&settings, "gateway-test");
    admin::ensure_topics(&bus, &[topic.as_str()], 1, 1).await.expect("topic");
    let base = serve(&settings).await;

    let response = reqwest::Client::new()
        .post(format!("{base}/api/attendance/check-ins"))
        .header("x-organization-id", "org_1")
        .header("x-correlation-id", "corr-42")
        .json(&json!({ "member_id": "mem_1", "venue_id": "ven_1", "seat_id": "s1" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.expect("json");
    let command_id = body["command_id"].as_str().expect("command id").to_owned();
    assert_eq!(body["status_url"], format!("/api/commands/{command_id}"));

    let records =
        tokio::task::spawn_blocking(move || reader::read_to_end(&bus, &topic, Duration::from_secs(30)))
            .await
            .expect("join")
            .expect("read");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].headers.get(headers::EVENT_ID), Some(command_id.as_str()));
    assert_eq!(records[0].key.as_deref(), Some(b"ven_1".as_slice()), "keyed by venue, as the catalogue says");
    let codec = Codec::new(&registry_url).expect("codec");
    let decoded = codec.decode(records[0].payload.as_deref().expect("payload")).await.expect("decode");
    let command: attendance::CheckIn = decoded.into_record().expect("a CheckIn");
    assert_eq!(command.metadata.organization_id, "org_1");
    assert_eq!(command.metadata.correlation_id, "corr-42");
    assert_eq!(command.member_id, "mem_1");
    assert_eq!(command.seat_id.as_deref(), Some("s1"));
}
