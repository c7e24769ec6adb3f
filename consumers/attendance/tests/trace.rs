//! One trace spans the gateway, the consumer and the follow-on event: spans are exported over
//! OTLP/HTTP to a collector (a fake one here, which keeps what it receives), each hop a child of the
//! one before, and the follow-on event's `traceparent` names the consumer's span.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, extract::State, routing::post};
use serde_json::{Value, json};
use studyspot_bus::headers;
use studyspot_schemas::{Record, attendance};
use studyspot_telemetry::OtlpTarget;
use support::{eventually, stop, world};

#[derive(Debug, Clone)]
struct ExportedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<ExportedSpan>>>);

impl Collector {
    /// Serves OTLP/HTTP JSON on a free port; returns the base URL.
    async fn start(&self) -> String {
        let app = axum::Router::new().route("/v1/traces", post(receive)).with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    fn spans(&self) -> Vec<ExportedSpan> {
        self.0.lock().expect("spans").clone()
    }
}

async fn receive(State(collector): State<Collector>, Json(request): Json<Value>) -> Json<Value> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    for resource in request["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .map(|a| text(&a["value"]["stringValue"]))
            .unwrap_or_default();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                collector.0.lock().expect("spans").push(ExportedSpan {
                    service: service.clone(),
                    name: text(&span["name"]),
                    trace_id: text(&span["traceId"]).to_lowercase(),
                    span_id: text(&span["spanId"]).to_lowercase(),
                    parent_span_id: text(&span["parentSpanId"]).to_lowercase(),
                });
            }
        }
    }
    Json(json!({}))
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_spans_gateway_consumer_and_follow_on_event() {
    let collector = Collector::default();
    let collector_url = collector.start().await;
    // This test process plays the gateway, so its spans are exported as the gateway's.
    let gateway_export = studyspot_telemetry::init_logs_exporting(
        "gateway",
        "text",
        Some(&OtlpTarget { traces_endpoint: format!("{collector_url}/v1/traces"), json: true }),
    );
    assert!(gateway_export.is_enabled());

    let world = world().await;
    let (gateway, token) = world.gateway().await;

    let mut consumer = world.spawn_consumer_with(
        None,
        &world.database_url,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector_url.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            // Export each batch of spans within a tenth of a second, not the default five.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );

    // The app calling the gateway is itself traced: its span is the root.
    let app_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let app_span = "00f067aa0ba902b7";
    let response = reqwest::Client::new()
        .post(format!("{gateway}/api/attendance/check-ins"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{app_trace}-{app_span}-01"))
        .json(&json!({ "member_id": "mem_1", "venue_id": "ven_1" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 202);
    let command_id =
        response.json::<Value>().await.expect("body")["command_id"].as_str().expect("id").to_owned();
    // Flushes the gateway's spans.
    drop(gateway_export);

    let checked_in = eventually("the CheckedIn event", Duration::from_secs(60), || async {
        world
            .read_all(attendance::EVENTS.name)
            .into_iter()
            .find(|m| m.headers.get(headers::CAUSATION_ID) == Some(command_id.as_str()))
    })
    .await;
    let handed_on = checked_in.headers.trace().expect("the follow-on event carries a traceparent");
    assert_eq!(handed_on.trace_id_hex(), app_trace, "the follow-on event stays in the app's trace");

    let (gateway_span, apply_span) =
        eventually("both hops' spans at the collector", Duration::from_secs(30), || {
            let spans = collector.spans();
            async move {
                let in_trace = |service: &str| {
                    spans.iter().find(|s| s.trace_id == app_trace && s.service == service).cloned()
                };
                Some((in_trace("studyspot-gateway")?, in_trace("studyspot-attendance")?))
            }
        })
        .await;
    assert_eq!(gateway_span.parent_span_id, app_span, "the gateway continues the caller's span");
    assert_eq!(gateway_span.name, "POST /api/attendance/check-ins");
    assert_eq!(apply_span.parent_span_id, gateway_span.span_id, "the consumer continues the gateway's span");
    assert_eq!(apply_span.name, format!("apply {}", attendance::CheckIn::FULL_NAME));
    assert_eq!(
        hex(&handed_on.parent_id),
        apply_span.span_id,
        "the follow-on event names the consumer's span, so the next consumer continues it"
    );
    stop(&mut consumer);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
