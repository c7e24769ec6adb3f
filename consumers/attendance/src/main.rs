use std::path::PathBuf;

use clap::Parser;
use studyspot_attendance::{AttendanceHandler, DEFAULT_OPS_PORT, NAME};
use studyspot_consumer_runtime::{ConsumerSpec, run_consumer};
use studyspot_schemas::attendance;

/// The attendance consumer: applies attendance commands to its projection and publishes events.
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
    let spec = ConsumerSpec {
        name: NAME,
        topics: vec![attendance::COMMANDS.name],
        handler: AttendanceHandler,
        migrator: &studyspot_attendance_projection::MIGRATIONS,
        default_ops_port: DEFAULT_OPS_PORT,
    };
    run_consumer(spec, args.config).await?;
    Ok(())
}
