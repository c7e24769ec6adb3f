//! The billing scheduler: every `billing.subscriptions.scheduler_interval_secs` it asks for each
//! organization's due billing with a time-carrying `RunBilling` ("bill up to now"). The clock is
//! read here, outside `decide`: the instant travels in the command, so a replay bills the same.

use std::time::Duration;

use chrono::{DateTime, Utc};
use studyspot_bus::TraceContext;
use studyspot_consumer_runtime::{Sidecar, SidecarContext};
use studyspot_schemas::{EventMetadata, billing::RunBilling};

const ACTOR: &str = "service:billing-scheduler";

/// The run for `organization_id` up to `up_to`; its id is derived from both, so two schedulers
/// (or a restart) asking for the same instant produce one run.
pub fn run_for(organization_id: &str, up_to: DateTime<Utc>) -> RunBilling {
    let name = format!("run-billing/{organization_id}/{}", up_to.timestamp_millis());
    RunBilling {
        metadata: EventMetadata {
            event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string(),
            occurred_at: up_to.timestamp_millis(),
            correlation_id: name.clone(),
            causation_id: None,
            organization_id: organization_id.to_owned(),
            actor: ACTOR.to_owned(),
        },
        up_to: up_to.timestamp_millis(),
    }
}

pub fn sidecar() -> Sidecar {
    Box::new(|ctx: SidecarContext| {
        Box::pin(async move {
            let every = ctx.settings.billing.subscriptions.scheduler_interval_secs;
            if every == 0 {
                return;
            }
            let mut ticks = tokio::time::interval(Duration::from_secs(every));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = ctx.shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                // Whole seconds, so instances ticking together name the same run.
                let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_else(Utc::now);
                if let Err(e) = schedule(&ctx, now).await {
                    tracing::warn!(error = %e, "billing scheduler could not ask for due billing; retrying next tick");
                }
            }
        })
    })
}

async fn schedule(
    ctx: &SidecarContext,
    now: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut tx = ctx.pool.begin().await?;
    let organizations = studyspot_billing_projection::subscriptions::organizations_due(&mut *tx, now).await?;
    for organization_id in &organizations {
        ctx.outbox.enqueue(&mut tx, &run_for(organization_id, now), &TraceContext::root()).await?;
    }
    tx.commit().await?;
    if !organizations.is_empty() {
        ctx.outbox.wake();
        tracing::info!(organizations = organizations.len(), up_to = %now, "billing runs requested");
    }
    Ok(())
}
