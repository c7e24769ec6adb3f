//! The gateway: thin. It validates a request's shape, turns it into a command event, produces it
//! and answers `202 Accepted` with the command id. It owns no tables and holds no business rules.

mod caller;
mod commands;
mod error;
mod ops;

use std::{sync::Arc, time::Instant};

use axum::{Router, extract::DefaultBodyLimit, routing::post};
use studyspot_bus::{BusSettings, Codec, Producer};
use studyspot_config::Settings;

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
        .layer(axum::middleware::from_fn(record_request))
        .with_state(state);
    Ok(api.merge(studyspot_telemetry::ops_router("gateway", readiness)))
}

/// Request counts and latency per route and status.
async fn record_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let response = next.run(request).await;
    metrics::histogram!(
        "studyspot_gateway_request_seconds",
        "route" => route,
        "method" => method,
        "status" => response.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    response
}
