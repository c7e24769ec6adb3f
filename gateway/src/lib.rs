//! The gateway: thin. It validates a request's shape, turns it into a command event, produces it
//! and answers `202 Accepted` with the command id. It owns no tables and holds no business rules.

mod caller;
mod commands;
mod error;
mod ops;

use std::{sync::Arc, time::Instant};

use axum::{Router, extract::DefaultBodyLimit, routing::post};
use studyspot_bus::{BusSettings, Codec, Producer, TraceContext};
use studyspot_config::Settings;
use tracing::Instrument;

pub use error::GatewayError;

/// Larger bodies are refused with 413 before they are read.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub(crate) producer: Producer,
    pub(crate) codec: Codec,
    pub(crate) topic_prefix: Arc<str>,
}

/// The gateway's routes with its operational endpoints.
pub fn app(settings: &Settings) -> Result<Router, GatewayError> {
    let bus = BusSettings::from_settings(settings, "studyspot-gateway");
    let state = AppState {
        producer: Producer::new(&bus).map_err(GatewayError::Startup)?,
        codec: Codec::new(&settings.registry.url).map_err(GatewayError::Startup)?,
        topic_prefix: settings.kafka.topic_prefix.as_str().into(),
    };
    let readiness = ops::readiness(state.producer.clone(), &settings.registry.url);
    let api = Router::new()
        .route("/api/payments", post(commands::create_payment))
        .route("/api/notifications", post(commands::send_notification))
        .route("/api/attendance/check-ins", post(commands::check_in))
        .route("/api/monitoring/metrics", post(commands::record_metric_sample))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(observe_request))
        .with_state(state);
    Ok(api.merge(studyspot_telemetry::ops_router("gateway", readiness)))
}

/// Each request runs in a span that continues the caller's W3C trace (or starts one); the trace
/// context handed on to the command event is put in the request's extensions. Counts and latency
/// per route and status go to the metrics.
async fn observe_request(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let span = request_span(&mut request, &method, &route);
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    metrics::histogram!(
        "studyspot_gateway_request_seconds",
        "route" => route,
        "method" => method,
        "status" => response.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The request's span, child of the caller's trace when it sent one; puts the trace context the
/// command event carries in the request's extensions.
fn request_span(request: &mut axum::extract::Request, method: &str, route: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let incoming =
        header("traceparent").and_then(|p| TraceContext::parse(&p, header("tracestate").as_deref()));
    if let Some(trace) = &incoming {
        studyspot_telemetry::continue_trace(&span, &trace.traceparent(), trace.tracestate.as_deref());
    }
    let handed_on = TraceContext::hand_on(studyspot_telemetry::trace_headers_of(&span), incoming);
    request.extensions_mut().insert(handed_on);
    span
}
