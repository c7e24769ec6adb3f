//! The gateway: thin. It authenticates the caller, validates a request's shape, turns it into a
//! command event, produces it and answers `202 Accepted` with the command id; it answers a
//! command's status from its ledger and the consumers' outcomes; it serves queries from the
//! projections through a read-only role. It holds no business rules and
//! no domain state: its one table is the ledger of accepted commands.

mod attendance_routes;
mod auth;
mod billing;
mod campaign_routes;
mod client_address;
mod commands;
mod error;
mod grpc;
mod ledger;
mod limits;
mod live;
mod monitoring_insight_grpc;
mod monitoring_insight_routes;
mod monitoring_ops_grpc;
mod monitoring_ops_routes;
mod monitoring_routes;
mod notification_routes;
mod notification_tracking;
mod nul;
pub mod openapi;
mod ops;
mod queries;
mod status;
mod subscriptions;
mod webhooks;

use std::{sync::Arc, time::Duration, time::Instant};

use axum::{Router, extract::DefaultBodyLimit, routing::get};
use secrecy::ExposeSecret;
use studyspot_bus::{BusSettings, Codec, Producer, TraceContext};
use studyspot_config::{Settings, secrets::Secret};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use error::GatewayError;

/// Larger bodies are refused with 413 before they are read.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub(crate) producer: Producer,
    pub(crate) codec: Codec,
    pub(crate) topic_prefix: Arc<str>,
    pub(crate) verifier: auth::Verifier,
    pub(crate) limits: limits::RateLimits,
    pub(crate) ledger: ledger::Ledger,
    pub(crate) outcomes: status::Outcomes,
    pub(crate) max_status_wait: Duration,
    /// The projections, through the read-only role.
    pub(crate) readonly: sqlx::PgPool,
    pub(crate) live: live::Live,
    pub(crate) webhooks: webhooks::WebhookSecrets,
    pub(crate) qr: attendance_routes::QrIssuer,
    pub(crate) tracking: notification_tracking::TrackingSettings,
    pub(crate) proxies: client_address::TrustedProxies,
}

impl auth::Authenticates for AppState {
    fn verifier(&self) -> &auth::Verifier {
        &self.verifier
    }

    fn admit(&self, caller: &auth::Caller) -> Result<(), GatewayError> {
        self.limits.check(&caller.rate_key())
    }
}

/// The gateway process once its settings are loaded: both listeners (each serves HTTP and gRPC)
/// until `shutdown` is cancelled; then open event streams end, the background work stops, and
/// requests in flight finish before it returns.
pub async fn serve(settings: &Settings, shutdown: CancellationToken) -> Result<(), GatewayError> {
    let (app, background) = start(settings, shutdown.clone()).await?;
    let bind = |listen: String| async move {
        tokio::net::TcpListener::bind(&listen).await.map_err(|e| {
            GatewayError::Startup(format!("cannot listen on {listen} (is another gateway running?): {e}"))
        })
    };
    // Both listeners serve both protocols; grpc_listen is where gRPC clients are pointed by default.
    let http = bind(settings.gateway.http_listen.clone()).await?;
    let grpc = bind(settings.gateway.grpc_listen.clone()).await?;
    tracing::info!(http = %settings.gateway.http_listen, grpc = %settings.gateway.grpc_listen, "gateway listening");
    let serving = |listener: tokio::net::TcpListener| {
        axum::serve(listener, app.clone().into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future()
    };
    let (http, grpc) = tokio::join!(serving(http), serving(grpc));
    // The last router: the event tail's thread stops with it.
    drop(app);
    for task in background {
        let _ = task.await;
    }
    http.and(grpc).map_err(|e| GatewayError::Internal(format!("serving: {e}")))
}

/// The gateway's routes with its operational endpoints. Connects to PostgreSQL (its ledger, and
/// the projections through the read-only role) and starts the background work it needs, which
/// stops (and ends every open event stream) once `shutdown` is cancelled.
pub async fn app(settings: &Settings, shutdown: CancellationToken) -> Result<Router, GatewayError> {
    Ok(start(settings, shutdown).await?.0)
}

/// [`app`] with the background tasks it started, for [`serve`] to wait for.
async fn start(
    settings: &Settings,
    shutdown: CancellationToken,
) -> Result<(Router, Vec<tokio::task::JoinHandle<()>>), GatewayError> {
    let startup = |what: &str, e: &dyn std::fmt::Display| GatewayError::Startup(format!("{what}: {e}"));
    // Tokens, tracking links and QR codes: a weak secret is refused before anything starts
    // (development mode fills in missing ones and only warns).
    let mut settings = settings.clone();
    let warnings = settings
        .secure(&[Secret::Auth, Secret::TrackingLinks, Secret::QrKeys])
        .map_err(|e| GatewayError::Startup(e.to_string()))?;
    for warning in warnings {
        tracing::warn!("development mode: {warning}");
    }
    let settings = &settings;
    let bus = BusSettings::from_settings(settings, "studyspot-gateway");
    let ledger =
        ledger::Ledger::connect(settings.postgres.url.expose_secret(), settings.postgres.max_connections)
            .await
            .map_err(|e| startup("the ledger (postgres.url)", &e))?;
    let readonly = sqlx::postgres::PgPoolOptions::new()
        .max_connections(settings.postgres.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(settings.postgres.readonly_url.expose_secret())
        .await
        .map_err(|e| startup("the projections (postgres.readonly_url)", &e))?;
    let codec = Codec::new(&settings.registry.url).map_err(|e| startup("the codec", &e))?;
    let live = {
        let (bus, codec, prefix) = (bus.clone(), codec.clone(), settings.kafka.topic_prefix.clone());
        let shutdown = shutdown.clone();
        tokio::task::spawn_blocking(move || live::Live::start(bus, codec, &prefix, shutdown))
            .await
            .map_err(|e| startup("the event tail", &e))??
            .with_limits(
                settings.gateway.event_stream_resume_window,
                settings.gateway.event_streams_per_organization,
            )
    };
    let (outcomes, listening) = status::Outcomes::start(readonly.clone(), shutdown.clone());
    let state = AppState {
        producer: Producer::new(&bus).map_err(|e| startup("the producer", &e))?,
        codec,
        topic_prefix: settings.kafka.topic_prefix.as_str().into(),
        verifier: auth::Verifier::new(&settings.auth).map_err(|e| startup("auth", &e))?,
        limits: limits::RateLimits::new(
            settings.gateway.rate_limit_per_second,
            settings.gateway.rate_limit_burst,
        ),
        ledger: ledger.clone(),
        outcomes,
        max_status_wait: Duration::from_millis(settings.gateway.max_status_wait_ms),
        readonly: readonly.clone(),
        live,
        webhooks: webhooks::WebhookSecrets::from_settings(&settings.billing),
        qr: attendance_routes::QrIssuer::from_settings(settings),
        tracking: notification_tracking::TrackingSettings::from_settings(&settings.notifications),
        proxies: client_address::TrustedProxies::parse(&settings.gateway.trusted_proxies)
            .map_err(GatewayError::Startup)?,
    };
    let upkeep = spawn_upkeep(
        &state,
        Duration::from_secs(3600 * u64::from(settings.gateway.ledger_retention_hours.max(24))),
        shutdown,
    );
    let readiness =
        ops::readiness(state.producer.clone(), &settings.registry.url, ledger.pool().clone(), readonly);
    let (api, document) = api_routes().split_for_parts();
    let document = Arc::new(document);
    let grpc = grpc::router(state.clone(), settings.gateway.grpc_reflection || settings.development)?;
    // gRPC and HTTP on one listener (HTTP/2 cleartext for gRPC), under the same request span,
    // metrics and body limit. Every HTTP route refuses a NUL in its query or path (gRPC checks
    // its messages in `prepare`).
    let api = api
        .route("/openapi.json", get(move || async move { axum::Json(document.as_ref().clone()) }))
        .with_state(state)
        .layer(axum::middleware::from_fn(nul::refuse_in_uri))
        .merge(grpc)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(observe_request));
    Ok((api.merge(studyspot_telemetry::ops_router("gateway", readiness)), vec![listening, upkeep]))
}

/// Every API route, from the annotated handlers: the router and the OpenAPI document at once.
fn api_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa::OpenApi as _;
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(commands::create_payment, queries::payments))
        .routes(routes!(queries::payment))
        .routes(routes!(billing::process_payment))
        .routes(routes!(billing::confirm_payment))
        .routes(routes!(billing::refund_payment))
        .routes(routes!(billing::refunds))
        .routes(routes!(billing::refund))
        .routes(routes!(billing::add_payment_method, billing::payment_methods))
        .routes(routes!(billing::payment_method))
        .routes(routes!(billing::create_invoice, billing::invoices))
        .routes(routes!(billing::invoice))
        .routes(routes!(billing::change_invoice_status))
        .routes(routes!(billing::record_invoice_payment))
        .routes(routes!(billing::payments_dashboard))
        .routes(routes!(subscriptions::define_plan, subscriptions::plans))
        .routes(routes!(subscriptions::plan))
        .routes(routes!(subscriptions::define_coupon, subscriptions::coupons))
        .routes(routes!(subscriptions::create_subscription, subscriptions::subscriptions))
        .routes(routes!(subscriptions::subscription))
        .routes(routes!(subscriptions::change_plan))
        .routes(routes!(subscriptions::pause))
        .routes(routes!(subscriptions::resume))
        .routes(routes!(subscriptions::cancel))
        .routes(routes!(subscriptions::issue_credit_note, subscriptions::credit_notes))
        .routes(routes!(subscriptions::usage))
        .routes(routes!(subscriptions::invoices))
        .routes(routes!(subscriptions::record_usage))
        .routes(routes!(subscriptions::run_billing))
        .routes(routes!(subscriptions::dashboard))
        .routes(routes!(webhooks::provider_webhook))
        .routes(routes!(commands::send_notification, queries::notifications))
        .routes(routes!(notification_routes::notification))
        .routes(routes!(notification_routes::create_template, notification_routes::templates))
        .routes(routes!(notification_routes::preview_template))
        .routes(routes!(notification_routes::set_preferences))
        .routes(routes!(notification_routes::preferences))
        .routes(routes!(notification_routes::cancel_notifications))
        .routes(routes!(notification_routes::inbox))
        .routes(routes!(notification_routes::dashboard))
        .routes(routes!(campaign_routes::create_campaign, campaign_routes::campaigns))
        .routes(routes!(campaign_routes::campaign))
        .routes(routes!(campaign_routes::launch_campaign))
        .routes(routes!(campaign_routes::cancel_campaign))
        .routes(routes!(campaign_routes::mark_read))
        .routes(routes!(campaign_routes::send_now))
        .routes(routes!(notification_tracking::open_pixel))
        .routes(routes!(notification_tracking::click_redirect))
        .routes(routes!(notification_tracking::twilio_status_callback))
        .routes(routes!(notification_tracking::twilio_status_by_sid))
        .routes(routes!(commands::check_in))
        .routes(routes!(queries::sessions))
        .routes(routes!(attendance_routes::define_venue))
        .routes(routes!(attendance_routes::grant_pass))
        .routes(routes!(attendance_routes::create_booking))
        .routes(routes!(attendance_routes::cancel_booking))
        .routes(routes!(attendance_routes::cancel_bookings))
        .routes(routes!(attendance_routes::check_out))
        .routes(routes!(attendance_routes::mint_qr_token))
        .routes(routes!(attendance_routes::seat_qr))
        .routes(routes!(attendance_routes::occupancy))
        .routes(routes!(attendance_routes::dashboard))
        .routes(routes!(monitoring_routes::record_metrics, queries::metric_samples))
        .routes(routes!(monitoring_routes::define_rule, monitoring_routes::rules))
        .routes(routes!(monitoring_routes::active_alerts))
        .routes(routes!(monitoring_routes::alert_history))
        .routes(routes!(monitoring_routes::define_route))
        .routes(routes!(monitoring_routes::define_inhibit_rule))
        .routes(routes!(monitoring_routes::create_silence, monitoring_routes::silences))
        .routes(routes!(monitoring_insight_routes::define_dashboard, monitoring_insight_routes::dashboards))
        .routes(routes!(monitoring_insight_routes::dashboard))
        .routes(routes!(monitoring_insight_routes::dashboard_data))
        .routes(routes!(monitoring_insight_routes::define_report, monitoring_insight_routes::reports))
        .routes(routes!(monitoring_insight_routes::report))
        .routes(routes!(monitoring_insight_routes::report_run_file))
        .routes(routes!(monitoring_ops_routes::define_health_check, monitoring_ops_routes::health_checks))
        .routes(routes!(monitoring_ops_routes::health_check))
        .routes(routes!(monitoring_ops_routes::record_logs, monitoring_ops_routes::search_logs))
        .routes(routes!(status::command_status))
        .routes(routes!(live::events_stream))
}

/// The OpenAPI document the gateway serves at `/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

/// Expires old ledger rows and idle rate-limit buckets until `shutdown`.
fn spawn_upkeep(
    state: &AppState,
    retention: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (ledger, limits, tracking) = (state.ledger.clone(), state.limits.clone(), state.tracking.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(limits::RateLimits::sweep_interval());
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            limits.forget_idle();
            tracking.forget_idle();
            match ledger.expire(retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "ledger rows past retention removed"),
                Err(e) => tracing::warn!(error = %e, "ledger expiry failed"),
            }
        }
    })
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
