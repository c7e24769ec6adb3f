use studyspot_billing::{BillingHandler, DEFAULT_OPS_PORT, NAME};
use studyspot_consumer_runtime::{ConsumerSpec, run_consumer};
use studyspot_schemas::billing;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run_consumer(ConsumerSpec {
        name: NAME,
        topics: vec![billing::COMMANDS.name],
        handler: BillingHandler,
        migrator: &studyspot_billing_projection::MIGRATIONS,
        default_ops_port: DEFAULT_OPS_PORT,
        sidecars: vec![studyspot_billing::provider::sidecar()],
    })
    .await?;
    Ok(())
}
