use studyspot_alerts::{AlertsHandler, DEFAULT_OPS_PORT, NAME};
use studyspot_consumer_runtime::{ConsumerSpec, run_consumer, shutdown_on_signals};
use studyspot_schemas::{alerts, attendance, billing, notifications};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before anything else, so a stop during start-up is a clean stop too.
    let shutdown = shutdown_on_signals()?;
    let spec = ConsumerSpec {
        name: NAME,
        // Billing's events: payment outcomes become the `studyspot_payments` metric; attendance's:
        // check-ins and completed sessions become `studyspot_venue_occupancy`.
        // Notifications': sends, failures and delivery statuses become `studyspot_notification_outcomes`.
        topics: vec![
            alerts::COMMANDS.name,
            billing::EVENTS.name,
            attendance::EVENTS.name,
            notifications::EVENTS.name,
        ],
        handler: AlertsHandler,
        migrator: &studyspot_alerts_projection::MIGRATIONS,
        default_ops_port: DEFAULT_OPS_PORT,
        sidecars: vec![
            studyspot_alerts::scheduler::sidecar(),
            studyspot_alerts::insight_scheduler::sidecar(),
            studyspot_alerts::health::prober::sidecar(),
            studyspot_alerts::logs::retention_sidecar(),
        ],
        secrets: &[],
    };
    run_consumer(spec, shutdown).await?;
    Ok(())
}
