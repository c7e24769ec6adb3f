//! What still waits to be sent, as the log tells it: which deliveries a cancel or "send now"
//! reaches, which digest a message joins.
//!
//! The delivery worker sends on the wall clock, beside the log, so the handler cannot know whether
//! it has already picked a message up; a rebuild, which starts no worker, never knows. These rules
//! read only what records wrote, so the live process and a rebuild decide alike:
//!
//! - A delivery waits until the worker's report (`RecordDeliveryOutcome`) is applied. The worker's
//!   mark `reported` (its answer is in the outbox) is no answer to the log yet, and its attempts
//!   and retry times are none at all. A cancel of a message the worker has already sent is
//!   applied, and the report applied after it says what went out (see [`super::reports`]).
//! - A digest is different: a message that joined it after the worker read it would be marked
//!   `digested` but never go out — lost. So a digest is *sealed* by a record before it is sent: a
//!   `ReleaseNotification`, which the worker publishes when the window has closed (or anyone's
//!   "send now"). The worker sends only sealed digests, and nothing joins or leaves a sealed one:
//!   what joined before the seal, in log order, is exactly what goes out, once; a message after it
//!   opens the next digest.

use chrono::{DateTime, Utc};

/// Delivery statuses that still wait: `pending`, and the worker's `reported` (its report not
/// applied yet). `settled` (a report applied) and `cancelled` are the handler's own.
pub const WAITING: [&str; 2] = ["pending", "reported"];

pub fn waiting(delivery_status: &str) -> bool {
    WAITING.contains(&delivery_status)
}

/// A digest as the log left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub closes_at: DateTime<Utc>,
    /// Its sending was asked for (the worker's or someone's "send now").
    pub sealed: bool,
    /// Its delivery's status.
    pub delivery: String,
}

impl Digest {
    /// Whether a message at `at` joins it: its window still open and its sending not yet asked.
    pub fn collects(&self, at: DateTime<Utc>) -> bool {
        !self.sealed && self.closes_at > at && waiting(&self.delivery)
    }

    /// Whether cancelling a transaction still takes a message out of it: once sealed it is on its
    /// way as it stands, and the worker may have read it.
    pub fn gives_back(&self) -> bool {
        !self.sealed && waiting(&self.delivery)
    }
}

/// What "send now" (`ReleaseNotification`) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Nothing waits to be sent: it was sent, failed, cancelled, suppressed.
    NotWaiting,
    Due {
        /// A deferred message not yet due is brought forward (it is queued, the deferral's reason
        /// gone); one already due stays as it is (the worker's ask when a window closes after
        /// quiet hours keeps `deferred`, `quiet_hours`).
        brought_forward: bool,
        /// A digest is sealed: what it holds now is what goes out.
        seal: bool,
    },
}

/// `status` and `not_before` are the notification's (for a digested message: its digest's).
pub fn release(
    status: &str,
    not_before: Option<DateTime<Utc>>,
    is_digest: bool,
    at: DateTime<Utc>,
) -> Release {
    if !matches!(status, "queued" | "deferred") {
        return Release::NotWaiting;
    }
    Release::Due {
        brought_forward: status == "deferred" && not_before.is_some_and(|due| due > at),
        seal: is_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn digest(sealed: bool, delivery: &str) -> Digest {
        Digest { closes_at: t("2026-11-26T10:00:00Z"), sealed, delivery: delivery.into() }
    }

    #[test]
    fn a_message_joins_an_open_digest_whatever_the_worker_marked() {
        // Given a digest whose window is open, when a message arrives before it closes, then it
        // joins — also when the worker already marked the delivery reported (a rebuild never
        // sees that mark, so the live process must not read it either).
        let at = t("2026-11-26T09:59:59Z");
        assert!(digest(false, "pending").collects(at));
        assert!(digest(false, "reported").collects(at));
    }

    #[test]
    fn a_sealed_digest_takes_nothing_more_and_gives_nothing_back() {
        // Given a digest whose sending was asked for (the worker read it, or is about to), when a
        // message of its key arrives inside the window, then it does not join (it would be marked
        // digested and never sent) and a cancel does not take a message out of it (it went out).
        let sealed = digest(true, "pending");
        assert!(!sealed.collects(t("2026-11-26T09:00:00Z")));
        assert!(!sealed.gives_back());
        assert!(digest(false, "pending").gives_back());
        assert!(digest(false, "reported").gives_back());
    }

    #[test]
    fn a_closed_sent_or_cancelled_digest_takes_nothing_more() {
        assert!(!digest(false, "pending").collects(t("2026-11-26T10:00:00Z")), "closed at its end");
        assert!(!digest(false, "settled").collects(t("2026-11-26T09:00:00Z")), "its report applied");
        assert!(!digest(false, "cancelled").collects(t("2026-11-26T09:00:00Z")), "emptied by cancels");
        assert!(!digest(false, "settled").gives_back());
    }

    #[test]
    fn send_now_decides_from_the_notification_not_the_workers_attempts() {
        // Given a queued message the worker tried once and will retry later (its attempts are the
        // worker's, not the log's), when "send now" arrives, then it is due now — a rebuild, which
        // never saw the attempt, decides the same.
        let at = t("2026-11-26T09:00:00Z");
        assert_eq!(
            release("queued", Some(t("2026-11-26T08:00:00Z")), false, at),
            Release::Due { brought_forward: false, seal: false }
        );
        assert_eq!(release("sent", None, false, at), Release::NotWaiting);
        assert_eq!(release("failed", None, false, at), Release::NotWaiting);
        assert_eq!(release("cancelled", None, true, at), Release::NotWaiting);
        assert_eq!(release("suppressed", None, false, at), Release::NotWaiting);
    }

    #[test]
    fn send_now_brings_a_deferred_message_forward_and_seals_a_digest() {
        let at = t("2026-11-26T09:00:00Z");
        // Deferred till tomorrow: sent now instead.
        assert_eq!(
            release("deferred", Some(t("2026-11-27T07:00:00Z")), false, at),
            Release::Due { brought_forward: true, seal: false }
        );
        // A digest deferred by quiet hours, asked for by the worker when they ended: due already,
        // it stays deferred (why it waited) and is sealed.
        assert_eq!(
            release("deferred", Some(t("2026-11-26T08:00:00Z")), true, at),
            Release::Due { brought_forward: false, seal: true }
        );
    }
}
