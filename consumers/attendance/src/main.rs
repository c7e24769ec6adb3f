use studyspot_attendance::{AttendanceHandler, DEFAULT_OPS_PORT, NAME};
use studyspot_consumer_runtime::{ConsumerSpec, run_consumer};
use studyspot_schemas::attendance;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run_consumer(ConsumerSpec {
        name: NAME,
        topics: vec![attendance::COMMANDS.name],
        handler: AttendanceHandler,
        migrator: &studyspot_attendance_projection::MIGRATIONS,
        default_ops_port: DEFAULT_OPS_PORT,
        sidecars: Vec::new(),
    })
    .await?;
    Ok(())
}
