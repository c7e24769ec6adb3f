use studyspot_consumer_runtime::{ConsumerSpec, run_consumer};
use studyspot_notifications::{DEFAULT_OPS_PORT, NAME, NotificationsHandler};
use studyspot_schemas::notifications;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run_consumer(ConsumerSpec {
        name: NAME,
        topics: vec![notifications::COMMANDS.name],
        handler: NotificationsHandler,
        migrator: &studyspot_notifications_projection::MIGRATIONS,
        default_ops_port: DEFAULT_OPS_PORT,
        sidecars: Vec::new(),
    })
    .await?;
    Ok(())
}
