//! The invariant checker: compares the ledger of accepted commands with the projections, the
//! topics and what reached the fake providers. Run once the system is quiet
//! ([`wait_quiet`]); every broken invariant is one [`Violation`].

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use serde_json::Value;
use sqlx::PgPool;
use studyspot_bus::{BusSettings, headers, reader};

use crate::{
    fakes::{Charge, Delivered},
    ledger::Entry,
    mix::METRIC,
    stack::CONSUMERS,
};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Verdict {
    pub commands: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub charges: usize,
    pub deliveries: usize,
    /// Copies of a message sent again after the notifications process or its database was
    /// killed between its send and the record of it, with the first copy's `Message-ID`
    /// (`webhook-id` for webhooks).
    pub resent_after_crash: usize,
    pub follow_on_events: usize,
    pub sessions: i64,
    pub usage_records: i64,
    pub samples: i64,
    pub violations: Vec<Violation>,
}

impl Verdict {
    fn violate(&mut self, invariant: &'static str, detail: String) {
        self.violations.push(Violation { invariant, detail });
    }

    /// Violations counted by invariant.
    pub fn summary(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for v in &self.violations {
            *counts.entry(v.invariant).or_default() += 1;
        }
        counts
    }
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .ok()
        .flatten()
        .unwrap_or(-1)
}

/// Waits until every accepted command has an outcome and nothing is left to do: no provider call
/// or delivery pending, every outbox row published, and the fakes saw nothing new for a while.
/// Returns whether it got quiet before `timeout` (the checker runs either way).
pub async fn wait_quiet(
    pool: &PgPool,
    ledger: &[Entry],
    activity: impl Fn() -> usize,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut last_activity = (activity(), Instant::now());
    loop {
        let decided = outcomes(pool).await.map(|o| ledger.iter().all(|e| o.contains_key(&e.command_id)));
        let mut busy = 0;
        for sql in [
            "SELECT count(*) FROM billing.provider_calls WHERE status <> 'settled'",
            "SELECT count(*) FROM notifications.deliveries WHERE status IN ('pending', 'reported') AND next_attempt_at < now() + interval '1 minute'",
            "SELECT (SELECT count(*) FROM billing.outbox WHERE published_at IS NULL) + (SELECT count(*) FROM notifications.outbox WHERE published_at IS NULL) + (SELECT count(*) FROM attendance.outbox WHERE published_at IS NULL) + (SELECT count(*) FROM alerts.outbox WHERE published_at IS NULL)",
        ] {
            busy += scalar(pool, sql).await.unsigned_abs();
        }
        let now = activity();
        if now != last_activity.0 {
            last_activity = (now, Instant::now());
        }
        if decided.unwrap_or(false) && busy == 0 && last_activity.1.elapsed() > Duration::from_secs(5) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `command_id → (consumer, outcome, follow-on event ids)` across the four consumers.
async fn outcomes(pool: &PgPool) -> anyhow::Result<HashMap<String, (String, String, Vec<String>)>> {
    let mut all = HashMap::new();
    for consumer in CONSUMERS {
        let rows: Vec<(String, String, Vec<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT command_id, outcome, events FROM {consumer}.command_outcomes"
        )))
        .fetch_all(pool)
        .await?;
        for (id, outcome, events) in rows {
            all.insert(id, (consumer.to_owned(), outcome, events));
        }
    }
    Ok(all)
}

async fn ids(pool: &PgPool, sql: &str) -> anyhow::Result<HashSet<String>> {
    Ok(sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect())
}

pub async fn check(
    pool: &PgPool,
    bus: &BusSettings,
    prefix: &str,
    ledger: &[Entry],
    charges: &[Charge],
    delivered: &[Delivered],
    notifications_killed: &[Instant],
) -> anyhow::Result<Verdict> {
    let mut verdict = Verdict {
        commands: ledger.len(),
        charges: charges.len(),
        deliveries: delivered.len(),
        ..Verdict::default()
    };
    let outcomes = outcomes(pool).await?;

    // No accepted command lost: each has an outcome, in the consumer it was meant for.
    for entry in ledger {
        match outcomes.get(&entry.command_id) {
            None => verdict
                .violate("command_lost", format!("{} {} ({})", entry.kind, entry.command_id, entry.expect)),
            Some((consumer, outcome, _)) => {
                if consumer != &entry.consumer {
                    verdict.violate(
                        "wrong_consumer",
                        format!("{} {} decided by {consumer}", entry.kind, entry.command_id),
                    );
                }
                if outcome == "dead_lettered" {
                    verdict.violate(
                        "dead_lettered",
                        format!("{} {} ({})", entry.kind, entry.command_id, entry.expect),
                    );
                }
                *verdict.outcomes.entry(format!("{}:{outcome}", entry.kind)).or_default() += 1;
            }
        }
    }
    let applied = |entry: &Entry| outcomes.get(&entry.command_id).is_some_and(|o| o.1 == "applied");

    // Each applied command left its effect.
    let sessions = ids(pool, "SELECT session_id FROM attendance.sessions").await?;
    let bookings = ids(pool, "SELECT booking_id FROM attendance.bookings").await?;
    let payments: HashMap<String, String> =
        sqlx::query_as::<_, (String, String)>("SELECT payment_id, status FROM billing.payments")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let subscriptions = ids(pool, "SELECT subscription_id FROM billing.subscriptions").await?;
    // Notification ids are unique only within an organization.
    let notifications: HashMap<(String, String), (String, String)> =
        sqlx::query_as::<_, (String, String, String, String)>(
            "SELECT n.organization_id, n.notification_id, n.status, coalesce(d.status, '') \
             FROM notifications.notifications n \
             LEFT JOIN notifications.deliveries d USING (organization_id, notification_id)",
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|(org, id, status, delivery)| ((org, id), (status, delivery)))
        .collect();
    let samples: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT labels->>'batch', count(*) FROM alerts.metric_samples WHERE metric = $1 GROUP BY 1",
    )
    .bind(METRIC)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    verdict.samples = samples.values().sum();
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    for entry in ledger.iter().filter(|e| applied(e)) {
        let e = &entry.expect;
        let missing = match entry.kind.as_str() {
            "check_in" => !sessions.contains(&text(e, "session_id")),
            "booking" => !bookings.contains(&text(e, "booking_id")),
            "create_payment" => !payments.contains_key(&text(e, "payment_id")),
            "process_payment" => payments.get(&text(e, "payment_id")).is_none_or(|s| s != "succeeded"),
            "create_subscription" => !subscriptions.contains(&text(e, "subscription_id")),
            "notification" => {
                !notifications.contains_key(&(entry.organization_id.clone(), text(e, "notification_id")))
            }
            "metric_samples" => {
                samples.get(&text(e, "batch")).copied().unwrap_or(0) != e["samples"].as_i64().unwrap_or(0)
            }
            _ => false,
        };
        if missing {
            verdict.violate(
                "effect_missing",
                format!("{} {} applied, but {e} is not there", entry.kind, entry.command_id),
            );
        }
    }

    // Payments charged once: one PaymentIntent per payment at the provider, and every succeeded
    // card payment has one.
    let mut per_payment: HashMap<&str, Vec<&Charge>> = HashMap::new();
    for charge in charges {
        per_payment.entry(charge.payment_id.as_str()).or_default().push(charge);
    }
    for (payment, list) in &per_payment {
        if list.len() > 1 {
            let keys: Vec<&str> = list.iter().map(|c| c.idempotency_key.as_str()).collect();
            verdict.violate(
                "payment_charged_twice",
                format!("{payment}: {} charges, keys {keys:?}", list.len()),
            );
        }
    }
    let succeeded_by_card = ids(
        pool,
        "SELECT payment_id FROM billing.payments WHERE status IN ('succeeded', 'refunded', 'partially_refunded') AND connector = 'stripe'",
    )
    .await?;
    for payment in &succeeded_by_card {
        if !per_payment.contains_key(payment.as_str()) {
            verdict.violate("payment_without_charge", payment.clone());
        }
    }

    // Notifications sent once per recipient and channel; each sent one reached its channel.
    // SMTP has no idempotency: a notifications process killed after the server's `250` but before
    // it recorded the send sends again after its lease, with the same `Message-ID`, which mail
    // clients collapse. Such a copy is counted apart, on evidence of its own (see
    // `resent_after_crash`); any other is a violation. A database gone mid-send is waited for by
    // the worker, so it explains no copy.
    let mut per_message = copies_per_message(delivered);
    for ((org, id, recipient, channel), copies) in &mut per_message {
        if copies.len() > 1 {
            copies.sort_by_key(|d| d.at);
            if resent_after_crash(copies, notifications_killed) {
                verdict.resent_after_crash += copies.len() - 1;
            } else {
                verdict.violate(
                    "notification_sent_twice",
                    format!(
                        "{org}/{id} to {recipient} by {channel}: {} times ({})",
                        copies.len(),
                        copies_timeline(copies, notifications_killed)
                    ),
                );
            }
        }
        if !notifications.contains_key(&((*org).to_owned(), (*id).to_owned())) {
            verdict.violate("unknown_notification_sent", format!("{org}/{id} to {recipient} by {channel}"));
        }
    }
    let sent: HashSet<(&str, &str)> =
        delivered.iter().map(|d| (d.organization_id.as_str(), d.notification_id.as_str())).collect();
    for ((org, id), (status, delivery)) in &notifications {
        if status == "sent" && delivery == "settled" && !sent.contains(&(org.as_str(), id.as_str())) {
            verdict
                .violate("notification_not_delivered", format!("{org}/{id} is sent, but no channel got it"));
        }
    }

    // Usage counted once: the counters are the sum of the usage records, and every completed
    // session of a subscriber is one record (use_<session id>).
    let drift = scalar(
        pool,
        "SELECT count(*) FROM billing.usage_counters c WHERE c.used <> (SELECT coalesce(sum(quantity), 0) FROM billing.usage_records r \
         WHERE r.organization_id = c.organization_id AND r.subscription_id = c.subscription_id \
           AND r.period_start = c.period_start AND r.metric = c.metric)",
    )
    .await;
    if drift != 0 {
        verdict.violate(
            "usage_counted_twice",
            format!("{drift} usage counters differ from the sum of their records"),
        );
    }
    let usage = ids(pool, "SELECT usage_id FROM billing.usage_records").await?;
    verdict.usage_records = usage.len() as i64;
    let completed =
        ids(pool, "SELECT session_id FROM attendance.sessions WHERE checked_out_at IS NOT NULL").await?;
    verdict.sessions = sessions.len() as i64;
    for session in &completed {
        if !usage.contains(&format!("use_{session}")) {
            verdict.violate("usage_missing", format!("completed session {session} has no usage record"));
        }
    }
    for record in &usage {
        if record.strip_prefix("use_").is_some_and(|s| s.starts_with("ses_") && !completed.contains(s)) {
            verdict.violate("usage_without_session", record.clone());
        }
    }

    // Occupancy consistent: counted from the open sessions, never above capacity.
    let occupancy: Vec<(String, String, i32, i64, i32)> = sqlx::query_as(
        "SELECT o.organization_id, o.venue_id, o.occupancy, \
                (SELECT count(*) FROM attendance.sessions s WHERE s.organization_id = o.organization_id \
                   AND s.venue_id = o.venue_id AND s.checked_out_at IS NULL), \
                coalesce((SELECT v.capacity FROM attendance.venues v WHERE v.organization_id = o.organization_id AND v.venue_id = o.venue_id), 0) \
         FROM attendance.venue_occupancy o",
    )
    .fetch_all(pool)
    .await?;
    for (org, venue, stored, open, capacity) in occupancy {
        if i64::from(stored) != open {
            verdict.violate(
                "occupancy_inconsistent",
                format!("{org}/{venue}: {stored} stored, {open} open sessions"),
            );
        }
        if capacity > 0 && stored > capacity {
            verdict.violate("occupancy_over_capacity", format!("{org}/{venue}: {stored} of {capacity}"));
        }
    }

    // Every follow-on event present by id (duplicates in the log are allowed).
    let present = event_ids(bus, prefix).await?;
    let mut expected = 0;
    for (command, (consumer, _, events)) in &outcomes {
        for event in events {
            expected += 1;
            if !present.contains(event) {
                verdict.violate("follow_on_event_missing", format!("{event} of {command} ({consumer})"));
            }
        }
    }
    verdict.follow_on_events = expected;
    Ok(verdict)
}

/// The copies of each message that reached a channel, by organization, notification, recipient
/// and channel: the same notification id in two organizations is two messages.
fn copies_per_message(delivered: &[Delivered]) -> HashMap<(&str, &str, &str, &str), Vec<&Delivered>> {
    let mut per_message: HashMap<(&str, &str, &str, &str), Vec<&Delivered>> = HashMap::new();
    for d in delivered {
        let key = (d.organization_id.as_str(), d.notification_id.as_str(), d.recipient.as_str(), d.channel);
        per_message.entry(key).or_default().push(d);
    }
    per_message
}

/// The event id of every record on every topic of `prefix`.
async fn event_ids(bus: &BusSettings, prefix: &str) -> anyhow::Result<HashSet<String>> {
    let topics: Vec<String> =
        studyspot_bus::admin::topic_names_with_dead_letters(studyspot_schemas::catalogue())
            .into_iter()
            .map(|n| format!("{prefix}{n}"))
            .collect();
    let bus = bus.clone();
    tokio::task::spawn_blocking(move || {
        let mut ids = HashSet::new();
        for topic in topics {
            for record in reader::read_to_end(&bus, &topic, Duration::from_secs(300))? {
                if let Some(id) = record.headers.get(headers::EVENT_ID) {
                    ids.insert(id.to_owned());
                }
            }
        }
        Ok(ids)
    })
    .await?
}

/// When each copy of a message arrived and its connection was accepted, relative to the first
/// copy, whether the ids match, and the notifications kills around them: the evidence a reader
/// needs to tell a resend after a crash from a bug.
fn copies_timeline(copies: &[&Delivered], killed: &[Instant]) -> String {
    let first = copies[0].at;
    let ms = |t: Instant| {
        if t >= first {
            format!("+{} ms", t.duration_since(first).as_millis())
        } else {
            format!("-{} ms", first.duration_since(t).as_millis())
        }
    };
    let mut parts: Vec<String> = copies
        .iter()
        .map(|c| {
            format!(
                "at {} (connection {}){}",
                ms(c.at),
                ms(c.connected_at),
                if c.message_id == copies[0].message_id { "" } else { ", another id" }
            )
        })
        .collect();
    let kills: Vec<String> = killed.iter().map(|k| ms(*k)).collect();
    parts.push(format!(
        "notifications killed {}",
        if kills.is_empty() { "never".to_owned() } else { kills.join(", ") }
    ));
    parts.join("; ")
}

/// Whether every copy after the first of one message (`copies` in the order received) carries the
/// first one's `Message-ID` (or `webhook-id`) and the notifications process was killed after the
/// copy before it was sent and before this one was. `killed` holds the instants each kill was
/// done (the process reaped), so a copy whose connection the sink accepted before one of them was
/// sent by the process that died there; the next copy's connection, accepted after it, came from
/// the process started again.
fn resent_after_crash(copies: &[&Delivered], killed: &[Instant]) -> bool {
    copies.windows(2).all(|pair| {
        pair[1].message_id == pair[0].message_id
            && !pair[0].message_id.is_empty()
            && killed.iter().any(|kill| pair[0].connected_at < *kill && *kill < pair[1].connected_at)
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{copies_per_message, resent_after_crash};
    use crate::fakes::Delivered;

    fn copy(message_id: &str, at: Instant) -> Delivered {
        Delivered {
            organization_id: "org_1".into(),
            notification_id: "ntf_1".into(),
            recipient: "ada@example.org".into(),
            channel: "email",
            message_id: message_id.into(),
            at,
            connected_at: at,
        }
    }

    #[test]
    fn the_same_notification_id_of_two_organizations_is_two_messages_and_a_second_copy_is_a_copy() {
        let t = Instant::now();
        let other = Delivered { organization_id: "org_2".into(), ..copy("<b@x>", t) };
        let again = copy("<a@x>", t + Duration::from_secs(1));
        let all = [copy("<a@x>", t), other, again];
        let per_message = copies_per_message(&all);
        assert_eq!(per_message.len(), 2, "{per_message:?}");
        assert_eq!(per_message[&("org_1", "ntf_1", "ada@example.org", "email")].len(), 2);
        assert_eq!(per_message[&("org_2", "ntf_1", "ada@example.org", "email")].len(), 1);
    }

    #[test]
    fn a_copy_after_a_kill_with_the_same_message_id_is_a_resend() {
        let t = Instant::now();
        let (first, second) = (copy("<a@x>", t), copy("<a@x>", t + Duration::from_secs(30)));
        assert!(resent_after_crash(&[&first, &second], &[t + Duration::from_secs(1)]));
    }

    #[test]
    fn a_first_copy_on_a_connection_accepted_before_the_kill_is_evidence_however_late_it_arrived() {
        // The sink read the message after the kill, from a connection the killed process opened.
        let t = Instant::now();
        let mut first = copy("<a@x>", t + Duration::from_secs(2));
        first.connected_at = t;
        let second = copy("<a@x>", t + Duration::from_secs(30));
        assert!(resent_after_crash(&[&first, &second], &[t + Duration::from_secs(1)]));
    }

    #[test]
    fn a_copy_without_a_kill_between_is_sent_twice() {
        let t = Instant::now();
        let (first, second) = (copy("<a@x>", t), copy("<a@x>", t + Duration::from_secs(30)));
        // The kill came before both copies, or after both: it explains neither.
        assert!(!resent_after_crash(&[&first, &second], &[t - Duration::from_secs(1)]));
        assert!(!resent_after_crash(&[&first, &second], &[t + Duration::from_secs(31)]));
        assert!(!resent_after_crash(&[&first, &second], &[]));
    }

    #[test]
    fn a_copy_whose_connection_came_before_the_kill_is_not_from_the_restarted_process() {
        let t = Instant::now();
        let first = copy("<a@x>", t);
        let mut second = copy("<a@x>", t + Duration::from_secs(30));
        second.connected_at = t + Duration::from_millis(500);
        assert!(!resent_after_crash(&[&first, &second], &[t + Duration::from_secs(1)]));
    }

    #[test]
    fn a_copy_with_another_message_id_is_sent_twice() {
        let t = Instant::now();
        let (first, second) = (copy("<a@x>", t), copy("<b@x>", t + Duration::from_secs(30)));
        assert!(!resent_after_crash(&[&first, &second], &[t + Duration::from_secs(1)]));
    }

    #[test]
    fn each_further_copy_needs_a_kill_of_its_own() {
        let t = Instant::now();
        let copies = [
            copy("<a@x>", t),
            copy("<a@x>", t + Duration::from_secs(30)),
            copy("<a@x>", t + Duration::from_secs(31)),
        ];
        let refs: Vec<&Delivered> = copies.iter().collect();
        assert!(!resent_after_crash(&refs, &[t + Duration::from_secs(1)]));
        assert!(resent_after_crash(&refs, &[t + Duration::from_secs(1), t + Duration::from_millis(30_500)]));
    }
}
