use sqlx::PgConnection;
use studyspot_alerts_projection::{self as projection, Sample};
use studyspot_consumer_runtime::{Effects, HandleError, Handler, Inbound};
use studyspot_schemas::{
    Record,
    alerts::{MetricSampleRecorded, RecordMetricSample},
};

use crate::decide::samples::validate_sample;

const ACTOR: &str = "service:alerts";

#[derive(Debug, Default, Clone)]
pub struct AlertsHandler;

impl Handler for AlertsHandler {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        message: &Inbound,
        effects: &mut Effects,
    ) -> Result<(), HandleError> {
        if message.is::<RecordMetricSample>() {
            record_sample(tx, message, effects).await
        } else {
            Err(HandleError::UnknownRecord(message.record_type.clone()))
        }
    }
}

async fn record_sample(
    tx: &mut PgConnection,
    message: &Inbound,
    effects: &mut Effects,
) -> Result<(), HandleError> {
    let c: RecordMetricSample = message.record()?;
    validate_sample(&c).map_err(|m| HandleError::malformed(RecordMetricSample::FULL_NAME, m.0))?;
    let sampled_at = chrono::DateTime::from_timestamp_millis(c.sampled_at).ok_or_else(|| {
        HandleError::malformed(RecordMetricSample::FULL_NAME, "sampled_at is not a valid time")
    })?;
    let labels = serde_json::to_value(&c.labels)
        .map_err(|e| HandleError::malformed(RecordMetricSample::FULL_NAME, e.to_string()))?;
    projection::insert_sample(
        tx,
        &Sample {
            event_id: c.metadata.event_id.clone(),
            organization_id: c.metadata.organization_id.clone(),
            metric: c.metric.clone(),
            labels,
            value: c.value,
            sampled_at,
        },
    )
    .await?;
    effects.emit(MetricSampleRecorded {
        metadata: message.follow_on(0, ACTOR),
        metric: c.metric,
        labels: c.labels,
        value: c.value,
        sampled_at: c.sampled_at,
    });
    Ok(())
}
