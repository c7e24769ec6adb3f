//! The alerts scheduler: every `alerts.evaluation_interval_secs` it asks each organization with
//! enabled rules for an evaluation with a time-carrying `EvaluateRules` ("evaluate at now"). The
//! clock is read here, outside `decide`: the instant travels in the command, so a replay
//! evaluates the same.

use std::time::Duration;

use chrono::{DateTime, Utc};
use studyspot_bus::TraceContext;
use studyspot_consumer_runtime::{Sidecar, SidecarContext};
use studyspot_schemas::{EventMetadata, alerts::EvaluateRules};

const ACTOR: &str = "service:alerts-scheduler";

/// The tick for `organization_id` at `up_to`; its id is derived from both, so two schedulers
/// (or a restart) asking for the same instant produce one tick.
pub fn tick_for(organization_id: &str, up_to: DateTime<Utc>) -> EvaluateRules {
    let name = format!("evaluate-rules/{organization_id}/{}", up_to.timestamp_millis());
    EvaluateRules {
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
            let every = ctx.settings.alerts.evaluation_interval_secs;
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
                // Whole seconds, so instances ticking together name the same tick.
                let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_else(Utc::now);
                if let Err(e) = schedule(&ctx, now).await {
                    tracing::warn!(error = %e, "alerts scheduler could not ask for an evaluation; retrying next tick");
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
    let organizations = studyspot_alerts_projection::alerting::organizations_with_rules(&mut *tx).await?;
    for organization_id in &organizations {
        ctx.outbox.enqueue(&mut tx, &tick_for(organization_id, now), &TraceContext::root()).await?;
    }
    tx.commit().await?;
    if !organizations.is_empty() {
        ctx.outbox.wake();
        tracing::debug!(organizations = organizations.len(), up_to = %now, "rule evaluations requested");
    }
    Ok(())
}
