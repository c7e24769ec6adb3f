use studyspot_alerts::{AlertsHandler, DEFAULT_OPS_PORT, NAME};
use studyspot_consumer_runtime::{ConsumerSpec, run_consumer};
use studyspot_schemas::alerts;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run_consumer(ConsumerSpec {
        name: NAME,
        topics: vec![alerts::COMMANDS.name],
        handler: AlertsHandler,
        migrator: &studyspot_alerts_projection::MIGRATIONS,
        default_ops_port: DEFAULT_OPS_PORT,
        sidecars: Vec::new(),
    })
    .await?;
    Ok(())
}
