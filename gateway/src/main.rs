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
    // Before anything else, so a stop during start-up is a clean stop too.
    let shutdown = studyspot_telemetry::shutdown_token().context("cannot listen for SIGTERM / SIGINT")?;
    let settings = studyspot_config::Settings::load(args.config.as_deref())?;
    let _traces = studyspot_telemetry::init_logs("gateway", &settings.telemetry.log_format);
    studyspot_telemetry::install_metrics();
    studyspot_gateway::serve(&settings, shutdown).await?;
    Ok(())
}
