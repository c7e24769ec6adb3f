use studyspot_billing::{BillingHandler, DEFAULT_OPS_PORT, NAME, decide::subscriptions::Policy};
use studyspot_consumer_runtime::{ConsumerSpec, run_consumer, shutdown_on_signals};
use studyspot_schemas::billing;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Before anything else, so a stop during start-up is a clean stop too.
    let shutdown = shutdown_on_signals()?;
    let settings = studyspot_config::Settings::load(None)?;
    let s = &settings.billing.subscriptions;
    let policy = Policy {
        trial_notice_days: s.trial_notice_days,
        dunning_retry_days: s.dunning_retry_days.clone(),
        dunning_final_action: s.dunning_final_action.clone(),
        invoice_due_days: s.invoice_due_days,
        manual_invoice_due_days: s.manual_invoice_due_days,
    };
    anyhow::ensure!(
        matches!(policy.dunning_final_action.as_str(), "cancel" | "suspend"),
        "billing.subscriptions.dunning_final_action must be cancel or suspend"
    );
    let spec = ConsumerSpec {
        name: NAME,
        // Attendance's events: completed sessions count as usage.
        topics: vec![
            billing::COMMANDS.name,
            billing::CATALOG_COMMANDS.name,
            studyspot_schemas::attendance::EVENTS.name,
        ],
        handler: BillingHandler::new(policy),
        migrator: &studyspot_billing_projection::MIGRATIONS,
        default_ops_port: DEFAULT_OPS_PORT,
        sidecars: vec![studyspot_billing::provider::sidecar(), studyspot_billing::scheduler::sidecar()],
        secrets: &[],
    };
    run_consumer(spec, shutdown).await?;
    Ok(())
}
