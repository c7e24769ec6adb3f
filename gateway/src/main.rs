use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// StudySpot's gateway: HTTP in, command events out.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// A settings file layered over the documented defaults (also STUDYSPOT_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let shutdown = studyspot_telemetry::shutdown_token().context("cannot listen for SIGTERM / SIGINT")?;
    let settings = studyspot_config::Settings::load(args.config.as_deref())?;
    let _traces = studyspot_telemetry::init_logs("gateway", &settings.telemetry.log_format);
    studyspot_telemetry::install_metrics();
    let app = studyspot_gateway::app(&settings).await?;
    let bind = |listen: String| async move {
        tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (is another gateway running?)"))
    };
    // Both listeners serve both protocols; grpc_listen is where gRPC clients are pointed by default.
    let http = bind(settings.gateway.http_listen.clone()).await?;
    let grpc = bind(settings.gateway.grpc_listen.clone()).await?;
    tracing::info!(http = %settings.gateway.http_listen, grpc = %settings.gateway.grpc_listen, "gateway listening");
    let grpc_server = tokio::spawn(
        axum::serve(grpc, app.clone().into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    axum::serve(http, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    grpc_server.await??;
    Ok(())
}
