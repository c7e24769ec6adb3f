//! Metrics derived from other domains' events: each becomes a `RecordMetricSample` on alerts'
//! own organization-keyed command topic, at the event's `occurred_at` and with an id derived from
//! the event's, so samples and evaluation ticks of one organization are applied in one order and
//! a replay rebuilds the same history.
//!
//! - billing: every payment's amount by outcome and currency ([`PAYMENT_AMOUNT_METRIC`]), refunds
//!   issued ([`REFUND_VOLUME_METRIC`]) and refused ([`REFUNDS_FAILED_METRIC`]);
//! - attendance: venue capacities (remembered from `VenueDefined`) turn each occupancy change into
//!   an occupancy ratio ([`OCCUPANCY_RATIO_METRIC`]);
//! - notifications: sends, failures and first delivery statuses ([`NOTIFICATION_OUTCOMES_METRIC`]);
//!   a bounce rate is a `ratio` rule of `outcome="bounced"` over `outcome="sent"`.

use std::collections::HashMap;

use sqlx::PgConnection;
use studyspot_alerts_projection::insights::{
    self, NOTIFICATION_OUTCOMES_METRIC, OCCUPANCY_RATIO_METRIC, PAYMENT_AMOUNT_METRIC, REFUND_VOLUME_METRIC,
    REFUNDS_FAILED_METRIC,
};
use studyspot_consumer_runtime::{HandleError, Out};
use studyspot_schemas::{
    Record,
    alerts::RecordMetricSample,
    attendance::VenueDefined,
    billing::{RefundFailed, RefundIssued},
    notifications::{NotificationFailed, NotificationSent, NotificationTracked},
};

/// Whether a record is one this module derives samples from (besides those the handler's own
/// arms handle).
pub fn handles(record_type: &str) -> bool {
    [
        RefundIssued::FULL_NAME,
        RefundFailed::FULL_NAME,
        VenueDefined::FULL_NAME,
        NotificationSent::FULL_NAME,
        NotificationFailed::FULL_NAME,
        NotificationTracked::FULL_NAME,
    ]
    .contains(&record_type)
}

fn sample(out: &mut Out<'_>, metric: &str, labels: &[(&str, &str)], value: f64) {
    let sampled_at = out.message.metadata.occurred_at;
    let labels: HashMap<String, String> =
        labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    out.emit(|metadata| RecordMetricSample { metadata, metric: metric.into(), labels, value, sampled_at });
}

/// A payment's amount, beside the handler's `studyspot_payments` count.
pub(crate) fn payment_amount(
    out: &mut Out<'_>,
    outcome: &str,
    amount_minor: i64,
    currency: &str,
    connector: &str,
    method: &str,
) {
    let labels = [("outcome", outcome), ("currency", currency), ("connector", connector), ("method", method)];
    sample(out, PAYMENT_AMOUNT_METRIC, &labels, amount_minor as f64);
}

/// The occupancy ratio after a check-in or check-out, when the venue's capacity is known.
pub(crate) async fn occupancy_ratio(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    venue_id: &str,
    occupancy: i32,
) -> Result<(), HandleError> {
    let org = out.org().to_owned();
    if let Some(capacity) = insights::venue_capacity(tx, &org, venue_id).await?.filter(|c| *c > 0) {
        let ratio = f64::from(occupancy) / f64::from(capacity);
        sample(out, OCCUPANCY_RATIO_METRIC, &[("venue_id", venue_id)], ratio);
    }
    Ok(())
}

pub(crate) async fn apply(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let message = out.message;
    match message.record_type.as_str() {
        RefundIssued::FULL_NAME => {
            let e: RefundIssued = message.record()?;
            sample(out, REFUND_VOLUME_METRIC, &[("currency", &e.currency)], e.amount_minor as f64);
        }
        RefundFailed::FULL_NAME => {
            let e: RefundFailed = message.record()?;
            sample(out, REFUNDS_FAILED_METRIC, &[("code", &e.code)], 1.0);
        }
        VenueDefined::FULL_NAME => {
            let e: VenueDefined = message.record()?;
            let org = out.org().to_owned();
            insights::upsert_venue_capacity(tx, &org, &e.venue_id, e.capacity, message.occurred_at()?)
                .await?;
        }
        NotificationSent::FULL_NAME => {
            let e: NotificationSent = message.record()?;
            sample(out, NOTIFICATION_OUTCOMES_METRIC, &[("outcome", "sent"), ("channel", &e.channel)], 1.0);
        }
        NotificationFailed::FULL_NAME => {
            let e: NotificationFailed = message.record()?;
            sample(out, NOTIFICATION_OUTCOMES_METRIC, &[("outcome", "failed"), ("channel", &e.channel)], 1.0);
        }
        NotificationTracked::FULL_NAME => {
            let e: NotificationTracked = message.record()?;
            // Unique opens and clicks; a provider reports each delivery status once anyway.
            if e.first {
                let labels = [("outcome", e.status.as_str()), ("channel", e.channel.as_str())];
                sample(out, NOTIFICATION_OUTCOMES_METRIC, &labels, 1.0);
            }
        }
        other => return Err(HandleError::UnknownRecord(other.to_owned())),
    }
    Ok(())
}
