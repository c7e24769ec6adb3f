//! Health checks and logs at the door: every bad field named (HTTP 422 / gRPC InvalidArgument),
//! typed gRPC messages with the HTTP defaults, and the commands that reach alerts' topic.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use studyspot_bus::Codec;
use studyspot_grpc_api::{
    DefineHealthCheckRequest, HealthCheckRequest, ListRequest, LogRecordInput, RecordLogsRequest,
    gateway_client::GatewayClient,
};
use studyspot_schemas::alerts::{self, DefineHealthCheck, RecordLogs};
use studyspot_tokens::Role;
use support::TestGateway;
use tonic::{Code, Request, transport::Channel};
use tonic_types::StatusExt;

async fn post(gw: &TestGateway, token: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = TestGateway::send(gw.request(Method::POST, path, Some(token)).json(&body)).await;
    (status, body)
}

fn authorized<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_field_is_named() {
    let gw = TestGateway::start(|_| {}).await;
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let check = |extra: Value| {
        let mut body = json!({ "name": "Stripe", "target": "https://api.stripe.com/healthcheck" });
        body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        body
    };
    for (path, body, expected) in [
        ("/api/monitoring/health-checks", check(json!({ "target": "api.stripe.com" })), "target"),
        ("/api/monitoring/health-checks", check(json!({ "kind": "tcp", "target": "db:0" })), "target"),
        ("/api/monitoring/health-checks", check(json!({ "kind": "icmp" })), "kind"),
        ("/api/monitoring/health-checks", check(json!({ "interval_seconds": 0 })), "interval_seconds"),
        ("/api/monitoring/health-checks", check(json!({ "timeout_ms": 60_001 })), "timeout_ms"),
        ("/api/monitoring/health-checks", check(json!({ "failure_threshold": 0 })), "failure_threshold"),
        ("/api/monitoring/health-checks", check(json!({ "expected_status": 99 })), "expected_status"),
        ("/api/monitoring/health-checks", check(json!({ "severity": "loud" })), "severity"),
        ("/api/monitoring/health-checks", check(json!({ "labels": { "__x": "y" } })), "labels.__x"),
        ("/api/monitoring/logs", json!({ "records": [] }), "records"),
        (
            "/api/monitoring/logs",
            json!({ "records": [{ "level": "info", "service": "b", "message": "m" },
                                { "level": "info", "service": " ", "message": "m" }] }),
            "records[1].service",
        ),
        (
            "/api/monitoring/logs",
            json!({ "records": [{ "time": "yesterday", "level": "info", "service": "b", "message": "m" }] }),
            "records[0].time",
        ),
        (
            "/api/monitoring/logs",
            json!({ "records": [{ "level": "info", "service": "b", "message": "x".repeat(16 * 1024 + 1) }] }),
            "records[0].message",
        ),
    ] {
        let (status, body) = post(&gw, &staff, path, body).await;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some(expected)), "{path}: {body}");
    }
    let too_much: Vec<Value> = (0..5)
        .map(|_| json!({ "level": "info", "service": "b", "message": "x".repeat(15 * 1024) }))
        .collect();
    let (status, body) = post(&gw, &staff, "/api/monitoring/logs", json!({ "records": too_much })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("body_too_large")), "{body}");

    for query in ["level=loud", "from=yesterday", "colour=red"] {
        let (status, _, body) = TestGateway::send(gw.request(
            Method::GET,
            &format!("/api/monitoring/logs?{query}"),
            Some(&staff),
        ))
        .await;
        assert_eq!(status, 422, "{query}: {body}");
    }
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));
    let (status, _) = post(
        &gw,
        &member,
        "/api/monitoring/logs",
        json!({ "records": [{ "level": "info", "service": "b", "message": "m" }] }),
    )
    .await;
    assert_eq!(status, 403, "members do not send logs");
    let (status, _, _) =
        TestGateway::send(gw.request(Method::GET, "/api/monitoring/health-checks/hck_none", Some(&staff)))
            .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_operations_over_grpc_with_typed_messages() {
    let gw = TestGateway::start(|_| {}).await;
    let mut client = GatewayClient::new(
        Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect"),
    );
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);

    let define = DefineHealthCheckRequest {
        health_check_id: Some("hck_db".into()),
        name: "Database".into(),
        kind: Some("tcp".into()),
        target: "db.internal:5432".into(),
        labels: BTreeMap::from([("team".to_owned(), "platform".to_owned())]),
        ..Default::default()
    };
    let accepted =
        client.define_health_check(authorized(define, &staff)).await.expect("accepted").into_inner();
    assert_eq!(
        (accepted.aggregate_field.as_str(), accepted.aggregate_id.as_str()),
        ("health_check_id", "hck_db")
    );

    let logs = RecordLogsRequest {
        records: vec![LogRecordInput {
            time: Some("2026-11-25T12:00:00Z".into()),
            level: "error".into(),
            service: "billing".into(),
            message: "charge failed".into(),
            fields: BTreeMap::from([("payment_id".to_owned(), "pay_1".to_owned())]),
        }],
    };
    let accepted = client.record_logs(authorized(logs, &staff)).await.expect("accepted").into_inner();
    assert_eq!(accepted.aggregate_id, "billing");

    let bad = RecordLogsRequest {
        records: vec![LogRecordInput { level: "loud".into(), service: "b".into(), ..Default::default() }],
    };
    let refused = client.record_logs(authorized(bad, &staff)).await.expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let details = refused.get_error_details();
    assert_eq!(details.bad_request().expect("bad request").field_violations[0].field, "records[0].level");

    // Reads before alerts wrote anything: empty, and an unknown check is not found.
    let page = client
        .search_logs(authorized(
            ListRequest {
                filters: BTreeMap::from([("level".to_owned(), "warn".to_owned())]),
                ..Default::default()
            },
            &staff,
        ))
        .await
        .expect("page")
        .into_inner();
    assert!(page.items.is_empty() && page.next_cursor.is_none());
    let checks = client.list_health_checks(authorized(ListRequest::default(), &staff)).await.expect("page");
    assert!(checks.into_inner().items.is_empty());
    let missing = client
        .get_health_check(authorized(
            HealthCheckRequest { health_check_id: "hck_db".into(), ..Default::default() },
            &staff,
        ))
        .await
        .expect_err("not yet");
    assert_eq!(missing.code(), Code::NotFound);

    // What reached alerts: the HTTP defaults filled in, the log's time parsed.
    let codec = Codec::new(&gw.settings.registry.url).expect("codec");
    let mut seen = Vec::new();
    for record in gw.read_all(alerts::COMMANDS.name) {
        let decoded = codec.decode(record.payload.as_deref().expect("payload")).await.expect("decode");
        match decoded.full_name.as_str() {
            "studyspot.alerts.DefineHealthCheck" => {
                let c: DefineHealthCheck = decoded.into_record().expect("DefineHealthCheck");
                assert_eq!(
                    (c.interval_seconds, c.timeout_ms, c.failure_threshold, c.severity.as_str(), c.enabled),
                    (30, 5000, 3, "critical", true)
                );
                assert_eq!((c.kind.as_str(), c.target.as_str()), ("tcp", "db.internal:5432"));
                assert_eq!(c.metadata.organization_id, "org_1");
                seen.push("check");
            }
            "studyspot.alerts.RecordLogs" => {
                let c: RecordLogs = decoded.into_record().expect("RecordLogs");
                assert_eq!(c.records[0].time, 1_795_608_000_000);
                assert_eq!(c.records[0].fields["payment_id"], "pay_1");
                seen.push("logs");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(seen, ["check", "logs"]);
}
