use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use secrecy::ExposeSecret;

/// StudySpot's Confluent-compatible schema registry.
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
    let _traces = studyspot_telemetry::init_logs("schema-registry", &settings.telemetry.log_format);
    studyspot_telemetry::install_metrics();
    let pool = studyspot_schema_registry::connect(
        settings.postgres.url.expose_secret(),
        settings.postgres.max_connections,
    )
    .await
    .context("cannot reach PostgreSQL for the registry store")?;
    let app = studyspot_schema_registry::router(pool).await?;
    let listen = &settings.registry.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (is another registry running?)"))?;
    tracing::info!(%listen, "schema registry listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(())
}
