//! Whether the delivery worker's report of a send changes the notification.
//!
//! The report (`RecordDeliveryOutcome`) is the one record of what the provider was told, so it
//! decides from what the log holds, never from the worker's own bookkeeping: a delivery the
//! worker marked `reported` is `pending` to a rebuild, which starts no worker, and a cancel
//! applied while the worker was already sending (the lease does not stop a cancel) left the
//! delivery `cancelled` although the message went out. Both read the same here, so a replay
//! comes to the projection the live process did.

/// `notification_status` is the notification's, `delivery_status` its delivery's (`None`: none).
pub fn report_applies(notification_status: &str, delivery_status: Option<&str>) -> bool {
    // A report applied already (a worker's retry after a crash reports again) changes nothing.
    delivery_status.is_some_and(|d| d != "settled") && !matches!(notification_status, "sent" | "failed")
}

#[cfg(test)]
mod tests {
    use super::report_applies;

    #[test]
    fn a_report_applies_whatever_the_worker_marked_and_a_rebuild_decides_alike() {
        // Live: the worker marked the delivery reported; a rebuild never sees that mark.
        assert!(report_applies("queued", Some("reported")));
        assert!(report_applies("queued", Some("pending")));
    }

    #[test]
    fn a_cancel_applied_while_the_worker_was_sending_yields_to_the_report() {
        // Cancelled in the projection, sent at the provider: what went out is what counts, and
        // a rebuild (cancel, then report, in log order) must not keep it cancelled.
        assert!(report_applies("cancelled", Some("cancelled")));
        assert!(report_applies("deferred", Some("cancelled")));
    }

    #[test]
    fn a_report_applied_once_is_not_applied_again() {
        assert!(!report_applies("sent", Some("settled")));
        assert!(!report_applies("failed", Some("reported")));
        assert!(!report_applies("queued", Some("settled")));
        assert!(!report_applies("queued", None), "a notification that never had a delivery");
    }
}
