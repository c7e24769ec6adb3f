//! Monitoring at the door: batched and single samples on one route, rules, routes, inhibitions
//! and silences checked field by field (HTTP 422 / gRPC InvalidArgument naming the field), and
//! what reaches alerts' command topic.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use reqwest::Method;
use serde_json::{Value, json};
use studyspot_bus::Codec;
use studyspot_grpc_api::{
    MonitoringCommandRequest, RecordMetricSampleRequest, RecordMetricSamplesRequest,
    gateway_client::GatewayClient,
};
use studyspot_schemas::alerts::{self, RecordMetricSample, RecordMetricSamples};
use studyspot_tokens::Role;
use support::TestGateway;
use tonic::{Code, Request, transport::Channel};
use tonic_types::StatusExt;

async fn post(gw: &TestGateway, token: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = TestGateway::send(gw.request(Method::POST, path, Some(token)).json(&body)).await;
    (status, body)
}

fn field(body: &Value) -> &str {
    body["error"]["field"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn samples_single_or_batched_and_every_bad_field_named() {
    let gw = TestGateway::start(|_| {}).await;
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);

    let (status, single) =
        post(&gw, &staff, "/api/monitoring/metrics", json!({ "metric": "queue_depth", "value": 3.0 })).await;
    assert_eq!(status, 202, "{single}");
    let batch = json!({ "samples": [
        { "metric": "queue_depth", "labels": { "queue": "a" }, "value": 1.0, "sampled_at": 1_795_608_000_000_i64 },
        { "metric": "queue_depth", "labels": { "queue": "b" }, "value": 2.0 },
    ] });
    let (status, batched) = post(&gw, &staff, "/api/monitoring/metrics", batch).await;
    assert_eq!(status, 202, "{batched}");

    let codec = Codec::new(&gw.settings.registry.url).expect("codec");
    let mut seen = Vec::new();
    for record in gw.read_all(alerts::COMMANDS.name) {
        let decoded = codec.decode(record.payload.as_deref().expect("payload")).await.expect("decode");
        match decoded.full_name.as_str() {
            "studyspot.alerts.RecordMetricSample" => {
                let c: RecordMetricSample = decoded.into_record().expect("single");
                seen.push(format!("single {}={}", c.metric, c.value));
            }
            "studyspot.alerts.RecordMetricSamples" => {
                let c: RecordMetricSamples = decoded.into_record().expect("batch");
                assert_eq!(c.samples[0].sampled_at, 1_795_608_000_000);
                assert!(c.samples[1].sampled_at > 0, "now when absent");
                seen.push(format!("batch of {}", c.samples.len()));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(seen, ["single queue_depth=3", "batch of 2"]);

    for (path, body, expected) in [
        (
            "/api/monitoring/metrics",
            json!({ "samples": [{ "metric": "ok", "value": 1.0 }], "value": 2.0 }),
            "samples",
        ),
        (
            "/api/monitoring/metrics",
            json!({ "samples": [{ "metric": "ok", "value": 1.0 }, { "metric": "9bad", "value": 1.0 }] }),
            "samples[1].metric",
        ),
        (
            "/api/monitoring/metrics",
            json!({ "metric": "ok", "labels": { "__x": "y" }, "value": 1.0 }),
            "labels.__x",
        ),
        (
            "/api/monitoring/alerts",
            json!({ "name": "A", "metric": "m", "window_seconds": 60, "op": "=>", "threshold": 1, "severity": "critical" }),
            "op",
        ),
        (
            "/api/monitoring/alerts",
            json!({ "name": "A", "metric": "m", "window_seconds": 0, "op": ">", "threshold": 1, "severity": "critical" }),
            "window_seconds",
        ),
        (
            "/api/monitoring/alerts",
            json!({ "name": "A", "metric": "m", "window_seconds": 60, "op": ">", "threshold": 1, "severity": "critical",
                    "matchers": [{ "name": "venue", "op": "~", "value": "x" }] }),
            "matchers[0].op",
        ),
        (
            "/api/monitoring/routes",
            json!({ "receivers": [{ "recipient_id": "usr_1", "channel": "pigeon" }] }),
            "receivers[0].channel",
        ),
        (
            "/api/monitoring/routes",
            json!({ "receivers": [{ "recipient_id": "usr_1", "channel": "sms" }],
                    "mute_time_intervals": [{ "start": "18:00", "end": "08:00", "time_zone": "Europe/Berlin" }] }),
            "mute_time_intervals[0].end",
        ),
        (
            "/api/monitoring/inhibit-rules",
            json!({ "source_matchers": [], "target_matchers": [{ "name": "severity", "op": "=", "value": "warning" }] }),
            "source_matchers",
        ),
        (
            "/api/monitoring/silences",
            json!({ "matchers": [{ "name": "alertname", "op": "=", "value": "A" }],
                    "starts_at": "2026-11-25T12:00:00Z", "ends_at": "2026-11-25T11:00:00Z" }),
            "ends_at",
        ),
    ] {
        let (status, body) = post(&gw, &staff, path, body).await;
        assert_eq!((status, field(&body)), (422, expected), "{path}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed");
    }

    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));
    let (status, _) =
        post(&gw, &member, "/api/monitoring/silences", json!({ "matchers": [], "ends_at": "x" })).await;
    assert_eq!(status, 403, "members do not silence alerts");
    let (status, body) =
        TestGateway::send(gw.request(Method::GET, "/api/monitoring/alerts/active", Some(&staff)))
            .await
            .into_parts();
    assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
}

trait IntoParts {
    fn into_parts(self) -> (u16, Value);
}

impl IntoParts for (u16, reqwest::header::HeaderMap, Value) {
    fn into_parts(self) -> (u16, Value) {
        (self.0, self.2)
    }
}

fn authorized<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_operations_over_grpc() {
    let gw = TestGateway::start(|_| {}).await;
    let mut client = GatewayClient::new(
        Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect"),
    );
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let samples = RecordMetricSamplesRequest {
        samples: vec![RecordMetricSampleRequest {
            metric: "queue_depth".into(),
            value: 1.0,
            ..Default::default()
        }],
    };
    let accepted =
        client.record_metric_samples(authorized(samples, &staff)).await.expect("accepted").into_inner();
    assert_eq!(accepted.aggregate_id, "queue_depth");

    let rule = json!({ "rule_id": "rul_1", "name": "A", "metric": "m", "window_seconds": 60, "op": ">",
                       "threshold": 1, "severity": "critical" });
    let accepted = client
        .define_alert_rule(authorized(MonitoringCommandRequest { body_json: rule.to_string() }, &staff))
        .await
        .expect("accepted")
        .into_inner();
    assert_eq!((accepted.aggregate_field.as_str(), accepted.aggregate_id.as_str()), ("rule_id", "rul_1"));

    let bad = json!({ "name": "A", "metric": "m", "window_seconds": 60, "op": ">", "threshold": 1, "severity": "loud" });
    let refused = client
        .define_alert_rule(authorized(MonitoringCommandRequest { body_json: bad.to_string() }, &staff))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let details = refused.get_error_details();
    assert_eq!(details.bad_request().expect("bad request").field_violations[0].field, "severity");
}

/// The monitoring lists answer `{"items": […]}`, and the OpenAPI document says so (it said a bare
/// array, which a client generated from it would fail to read; schemathesis found it).
#[tokio::test(flavor = "multi_thread")]
async fn the_lists_answer_the_shape_the_document_gives() {
    let gw = TestGateway::start(|_| {}).await;
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let document = serde_json::to_value(studyspot_gateway::openapi_document()).expect("json");
    for path in [
        "/api/monitoring/alerts",
        "/api/monitoring/alerts/active",
        "/api/monitoring/alerts/history",
        "/api/monitoring/dashboards",
        "/api/monitoring/health-checks",
        "/api/monitoring/reports",
        "/api/monitoring/silences",
    ] {
        let (status, _, body) = TestGateway::send(gw.request(Method::GET, path, Some(&staff))).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body["items"].is_array(), "{path}: {body}");
        let schema =
            &document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        let component = schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/"));
        let documented = component.map(|name| &document["components"]["schemas"][name]);
        assert_eq!(
            documented.map(|d| (&d["type"], &d["properties"]["items"]["type"], &d["required"])),
            Some((&json!("object"), &json!("array"), &json!(["items"]))),
            "{path} is documented as {schema}"
        );
    }
}
