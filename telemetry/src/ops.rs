use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc, sync::OnceLock};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn install_metrics() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // A recorder installed elsewhere first (a test harness) keeps working; we render ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One dependency the process needs to do its job (a database, the broker, the registry).
pub trait ReadinessCheck: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn check(&self) -> CheckFuture;
}

/// The checks behind `/ready`; `/health` only says the process is alive and serving.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl Readiness {
    pub fn with(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Runs every check concurrently; each reports `ok` or its error.
    pub async fn evaluate(&self) -> (bool, serde_json::Value) {
        let results = futures::future::join_all(self.checks.iter().map(|c| {
            let name = c.name();
            let fut = c.check();
            async move {
                let outcome = tokio::time::timeout(std::time::Duration::from_secs(2), fut)
                    .await
                    .unwrap_or_else(|_| Err("timed out after 2s".into()));
                (name, outcome)
            }
        }))
        .await;
        let ready = results.iter().all(|(_, r)| r.is_ok());
        let detail = results
            .into_iter()
            .map(|(name, r)| (name.to_string(), json!(r.err().unwrap_or_else(|| "ok".into()))))
            .collect::<serde_json::Map<_, _>>();
        (ready, serde_json::Value::Object(detail))
    }
}

#[derive(Clone)]
struct OpsState {
    service: &'static str,
    prometheus: PrometheusHandle,
    readiness: Readiness,
}

/// `/metrics`, `/health` and `/ready` for `service`, to merge into a process's router.
pub fn ops_router(service: &'static str, readiness: Readiness) -> Router {
    let state = OpsState { service, prometheus: install_metrics(), readiness };
    Router::new()
        .route("/metrics", get(metrics_endpoint))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(state)
}

/// Serves only the operational endpoints (for processes with no HTTP API of their own).
pub async fn serve_ops(
    service: &'static str,
    listen: SocketAddr,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(service, %listen, "operational endpoints listening");
    axum::serve(listener, ops_router(service, readiness)).with_graceful_shutdown(shutdown).await
}

async fn metrics_endpoint(State(state): State<OpsState>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], state.prometheus.render())
}

async fn health(State(state): State<OpsState>) -> impl IntoResponse {
    Json(json!({ "service": state.service, "status": "alive" }))
}

async fn ready(State(state): State<OpsState>) -> impl IntoResponse {
    let (ready, checks) = state.readiness.evaluate().await;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "service": state.service, "ready": ready, "checks": checks })))
}
