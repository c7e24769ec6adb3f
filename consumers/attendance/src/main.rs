use studyspot_attendance::{AttendanceHandler, DEFAULT_OPS_PORT, NAME};
use studyspot_config::secrets::Secret;
use studyspot_consumer_runtime::{ConsumerSpec, run_consumer, shutdown_on_signals};
use studyspot_schemas::{attendance, billing};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before anything else, so a stop during start-up is a clean stop too.
    let shutdown = shutdown_on_signals()?;
    let mut settings = studyspot_config::Settings::load(None)?;
    // The keys the handler verifies with; a weak one is refused (or, in development mode, filled
    // in) here, and named in the log once logging starts.
    settings.secure(&[Secret::QrKeys])?;
    let keys = studyspot_attendance::keys(&settings)
        .map_err(|e| anyhow::anyhow!("attendance.qr: {e} (signing_key_id must name a non-empty key)"))?;
    let spec = ConsumerSpec {
        name: NAME,
        // Billing's events: attendance keeps its own view of members' subscriptions.
        topics: vec![attendance::COMMANDS.name, billing::EVENTS.name],
        handler: AttendanceHandler::new(Some(keys)),
        migrator: &studyspot_attendance_projection::MIGRATIONS,
        default_ops_port: DEFAULT_OPS_PORT,
        sidecars: vec![studyspot_attendance::scheduler::sidecar()],
        secrets: &[Secret::QrKeys],
    };
    run_consumer(spec, shutdown).await?;
    Ok(())
}
