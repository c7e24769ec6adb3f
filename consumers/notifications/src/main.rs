use studyspot_config::secrets::Secret;
use studyspot_consumer_runtime::{ConsumerSpec, run_consumer, shutdown_on_signals};
use studyspot_notifications::{DEFAULT_OPS_PORT, NAME, NotificationsHandler};
use studyspot_schemas::{alerts, attendance, billing, notifications};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before anything else, so a stop during start-up is a clean stop too.
    let shutdown = shutdown_on_signals()?;
    let spec = ConsumerSpec {
        name: NAME,
        // Billing's events (receipts, failed payments, trial ends, dunning steps, usage alerts) and
        // attendance's (check-ins): triggers, and who members are for campaign segments; alerts'
        // (AlertFired / AlertResolved) to each receiver their routing named.
        topics: vec![
            notifications::COMMANDS.name,
            notifications::CATALOG_COMMANDS.name,
            billing::EVENTS.name,
            attendance::EVENTS.name,
            alerts::EVENTS.name,
        ],
        handler: NotificationsHandler,
        migrator: &studyspot_notifications_projection::MIGRATIONS,
        default_ops_port: DEFAULT_OPS_PORT,
        sidecars: vec![studyspot_notifications::delivery::sidecar()],
        secrets: &[Secret::TrackingLinks],
    };
    run_consumer(spec, shutdown).await?;
    Ok(())
}
