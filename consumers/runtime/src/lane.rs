use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use studyspot_bus::{Codec, InboundMessage, OutboundMessage, PartitionId, Source, TraceContext, headers};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    Database, Disposition, Effects, Handler, Inbound,
    crash::{self, Point},
    keeper::LaneInput,
    outbox::{self, OutboxRow},
    outcomes::{self, CommandOutcome},
    runtime::{Backoff, RuntimeError, Topics},
};

/// What every lane shares.
pub(crate) struct LaneContext<H> {
    pub(crate) name: String,
    pub(crate) db: Database,
    pub(crate) codec: Codec,
    pub(crate) handler: Arc<H>,
    pub(crate) topics: Topics,
    pub(crate) published: Arc<Notify>,
    pub(crate) source: std::sync::OnceLock<Arc<Source>>,
    pub(crate) max_batch: usize,
    pub(crate) max_wait: Duration,
    pub(crate) backoff: Backoff,
    /// Cancelled on SIGTERM or a fatal error: a failing batch stops retrying (it stays uncommitted
    /// and is read again by the next owner).
    pub(crate) stopping: CancellationToken,
    /// Cancelled by a lane that cannot go on.
    pub(crate) fatal: CancellationToken,
    /// Rebuilding a projection from history into a schema of its own: its follow-on events and
    /// dead letters are in the log already, so none go to the outbox, no command outcome is
    /// announced, and the live consumer's swap lock is not taken.
    pub(crate) rebuilding: bool,
}

/// One record of a batch, decoded before the transaction opens (decoding may call the registry).
struct Item {
    message: InboundMessage,
    decoded: Result<Inbound, String>,
}

enum Failure {
    Retry(String),
    DeadLetter(usize, String),
    Fatal(String),
}

#[derive(Default)]
struct Outcome {
    applied: u64,
    rejected: u64,
    dead_lettered: u64,
    duplicates: u64,
    already_applied: u64,
    next_offsets: HashMap<PartitionId, i64>,
}

/// A lane takes batches of the partitions routed to it and commits each in one transaction.
pub(crate) async fn run_lane<H: Handler>(ctx: Arc<LaneContext<H>>, mut input: mpsc::Receiver<LaneInput>) {
    loop {
        let mut batch = Vec::new();
        let mut revoke = None;
        match input.recv().await {
            None => return,
            Some(LaneInput::Revoke(ack)) => {
                let _ = ack.send(());
                continue;
            }
            Some(LaneInput::Message(message)) => batch.push(message),
        }
        // What arrived while the last batch committed joins this one: under load batches grow by
        // themselves, and a lone record does not wait for company unless `max_wait` says so.
        let deadline = tokio::time::Instant::now() + ctx.max_wait;
        while batch.len() < ctx.max_batch {
            let next = match input.try_recv() {
                Ok(next) => Some(next),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) if ctx.max_wait.is_zero() => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, input.recv()).await {
                        Ok(next) => next,
                        Err(_) => break,
                    }
                }
            };
            match next {
                Some(LaneInput::Message(message)) => batch.push(message),
                Some(LaneInput::Revoke(ack)) => {
                    revoke = Some(ack);
                    break;
                }
                None => break,
            }
        }
        let span = tracing::info_span!("batch", consumer = %ctx.name, size = batch.len());
        match ctx.process(batch).instrument(span).await {
            Ok(()) => {}
            Err(RuntimeError::Interrupted) => {
                tracing::info!(lane = %ctx.name, "batch left uncommitted at shutdown; it will be read again");
            }
            Err(e) => {
                tracing::error!(error = %e, "consumer cannot go on");
                ctx.fatal.cancel();
                return;
            }
        }
        if let Some(ack) = revoke {
            let _ = ack.send(());
        }
    }
}

impl<H: Handler> LaneContext<H> {
    async fn process(&self, batch: Vec<InboundMessage>) -> Result<(), RuntimeError> {
        let started = Instant::now();
        let size = batch.len();
        let mut items = Vec::with_capacity(size);
        for message in batch {
            let decoded = self.decode(&message).await?;
            items.push(Item { message, decoded });
        }
        // A record holding a NUL character cannot be stored: dead-lettered, naming the field.
        let mut poisoned: HashMap<usize, String> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let field = item.decoded.as_ref().ok()?.nul_field()?;
                Some((i, format!("{field} holds a NUL character (U+0000), which PostgreSQL cannot store")))
            })
            .collect();
        let mut backoff = self.backoff.start();
        let outcome = loop {
            match self.apply(&items, &poisoned).await {
                Ok(outcome) => break outcome,
                Err(Failure::DeadLetter(index, reason)) => {
                    poisoned.insert(index, reason);
                }
                Err(Failure::Retry(reason)) => {
                    if self.stopping.is_cancelled() {
                        return Err(RuntimeError::Interrupted);
                    }
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %reason, retry_in_ms = wait.as_millis() as u64, "batch failed; retrying the same batch");
                    metrics::counter!("studyspot_consumer_batch_retries_total", "consumer" => self.name.clone()).increment(1);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.stopping.cancelled() => {}
                    }
                }
                Err(Failure::Fatal(reason)) => return Err(RuntimeError::Fatal(reason)),
            }
        };
        self.published.notify_one();
        if let Some(source) = self.source.get() {
            source.commit_for_lag_tooling(&outcome.next_offsets);
        }
        let labels = [("consumer", self.name.clone())];
        metrics::histogram!("studyspot_consumer_batch_size", &labels).record(size as f64);
        metrics::histogram!("studyspot_consumer_batch_seconds", &labels)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("studyspot_consumer_events_applied_total", &labels).increment(outcome.applied);
        metrics::counter!("studyspot_consumer_events_rejected_total", &labels).increment(outcome.rejected);
        metrics::counter!("studyspot_consumer_dead_lettered_total", &labels).increment(outcome.dead_lettered);
        metrics::counter!("studyspot_consumer_duplicates_dropped_total", &labels)
            .increment(outcome.duplicates);
        metrics::counter!("studyspot_consumer_redelivered_skipped_total", &labels)
            .increment(outcome.already_applied);
        Ok(())
    }

    /// Decodes a record; registry outages are waited out, anything else makes it poison.
    async fn decode(&self, message: &InboundMessage) -> Result<Result<Inbound, String>, RuntimeError> {
        let Some(payload) = message.payload.as_deref() else {
            return Ok(Err("record has no value".into()));
        };
        let mut backoff = self.backoff.start();
        loop {
            match self.codec.decode(payload).await {
                Ok(decoded) => {
                    return Ok(Inbound::new(
                        message.topic.clone(),
                        message.partition,
                        message.offset,
                        message.headers.clone(),
                        message.timestamp_ms,
                        decoded,
                    ));
                }
                Err(e) if e.is_transient() => {
                    if self.stopping.is_cancelled() {
                        return Err(RuntimeError::Interrupted);
                    }
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "schema registry unavailable; waiting");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
    }

    async fn apply(&self, items: &[Item], poisoned: &HashMap<usize, String>) -> Result<Outcome, Failure> {
        // The runtime's own statements: a schema or syntax error is a bug that retrying cannot fix.
        let retry = |e: sqlx::Error| match crate::handler::database_disposition(&e) {
            Disposition::Fatal => Failure::Fatal(e.to_string()),
            _ => Failure::Retry(e.to_string()),
        };
        let mut tx = self.db.pool.begin().await.map_err(retry)?;
        if !self.rebuilding {
            // Shared with every other batch; a rebuild's swap takes it exclusively, so it waits
            // for batches in flight and batches wait for it — then resolve names in the new schema.
            sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtext($1))")
                .bind(crate::rebuild::swap_lock(&self.name))
                .execute(&mut *tx)
                .await
                .map_err(retry)?;
        }

        // Lock each partition's position: a second owner (a rebalance in flight) waits here and
        // then skips what this transaction applied.
        let mut last: BTreeMap<PartitionId, i64> = BTreeMap::new();
        for item in items {
            let entry = last.entry(item.message.partition_id()).or_insert(item.message.offset);
            *entry = (*entry).max(item.message.offset);
        }
        let mut stored: HashMap<PartitionId, i64> = HashMap::new();
        for p in last.keys() {
            let next: Option<i64> = sqlx::query_scalar(
                "SELECT next_offset FROM consumer_offsets WHERE topic = $1 AND partition = $2 FOR UPDATE",
            )
            .bind(&p.topic)
            .bind(p.partition)
            .fetch_optional(&mut *tx)
            .await
            .map_err(retry)?;
            if let Some(next) = next {
                stored.insert(p.clone(), next);
            }
        }
        let is_new = |item: &Item| {
            stored.get(&item.message.partition_id()).is_none_or(|next| item.message.offset >= *next)
        };

        let candidate_ids: Vec<String> = items
            .iter()
            .enumerate()
            .filter(|(i, item)| is_new(item) && !poisoned.contains_key(i))
            .filter_map(|(_, item)| item.decoded.as_ref().ok().map(|d| d.metadata.event_id.clone()))
            .collect();
        let mut fresh: HashSet<String> = sqlx::query_scalar(
            "INSERT INTO applied_events (event_id) SELECT * FROM UNNEST($1::text[]) ON CONFLICT DO NOTHING RETURNING event_id",
        )
        .bind(&candidate_ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(retry)?
        .into_iter()
        .collect();

        let mut outcome = Outcome::default();
        let mut rows = Vec::new();
        let mut decided = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if !is_new(item) {
                outcome.already_applied += 1;
                continue;
            }
            let is_command = self.topics.is_commands(&item.message.topic);
            let inbound = match (&item.decoded, poisoned.get(&index)) {
                (Ok(command), Some(reason)) if is_command => {
                    rows.push(self.dead_letter(&item.message, reason));
                    outcome.dead_lettered += 1;
                    decided.push(CommandOutcome {
                        reason: Some(reason.clone()),
                        ..CommandOutcome::of(command, "dead_lettered")
                    });
                    continue;
                }
                (Err(reason), _) | (Ok(_), Some(reason)) => {
                    rows.push(self.dead_letter(&item.message, reason));
                    outcome.dead_lettered += 1;
                    continue;
                }
                (Ok(inbound), None) => inbound,
            };
            if !fresh.remove(&inbound.metadata.event_id) {
                outcome.duplicates += 1;
                continue;
            }
            let mut effects = Effects::default();
            let (span, trace) = apply_span(inbound);
            if let Err(e) = self.handler.handle(&mut tx, inbound, &mut effects).instrument(span).await {
                return Err(match e.disposition() {
                    Disposition::Retry => Failure::Retry(e.to_string()),
                    Disposition::DeadLetter => Failure::DeadLetter(index, e.to_string()),
                    Disposition::Fatal => Failure::Fatal(e.to_string()),
                });
            }
            outcome.applied += 1;
            outcome.rejected += effects.rejected;
            let mut command = is_command.then(|| match effects.rejection.take() {
                Some((code, reason)) => CommandOutcome {
                    code: Some(code),
                    reason: Some(reason),
                    ..CommandOutcome::of(inbound, "rejected")
                },
                None => CommandOutcome::of(inbound, "applied"),
            });
            for encode in effects.pending {
                match encode(self.codec.clone()).await {
                    Ok(encoded) => {
                        let mut message = OutboundMessage::from_encoded(encoded, &trace);
                        message.topic = self.topics.kafka_name(&message.topic);
                        let row = OutboxRow::from(message);
                        if let Some(command) = command.as_mut() {
                            command.events.push(row.event_id.clone());
                        }
                        rows.push(row);
                    }
                    Err(e) if e.is_transient() => return Err(Failure::Retry(e.to_string())),
                    Err(e) => return Err(Failure::DeadLetter(index, format!("follow-on event: {e}"))),
                }
            }
            decided.extend(command);
        }
        if !self.rebuilding {
            outbox::insert(&mut tx, &rows).await.map_err(retry)?;
        }
        outcomes::record(&mut tx, &decided, !self.rebuilding).await.map_err(retry)?;

        for (p, last_offset) in &last {
            let next = (last_offset + 1).max(stored.get(p).copied().unwrap_or(0));
            sqlx::query(
                "INSERT INTO consumer_offsets (topic, partition, next_offset) VALUES ($1, $2, $3) \
                 ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
            )
            .bind(&p.topic)
            .bind(p.partition)
            .bind(next)
            .execute(&mut *tx)
            .await
            .map_err(retry)?;
            outcome.next_offsets.insert(p.clone(), next);
        }
        crash::reached(Point::BeforeCommit);
        tx.commit().await.map_err(retry)?;
        crash::reached(Point::AfterCommit);
        Ok(outcome)
    }

    fn dead_letter(&self, message: &InboundMessage, reason: &str) -> OutboxRow {
        tracing::warn!(topic = %message.topic, partition = message.partition, offset = message.offset, %reason, "dead-lettering a record");
        // The record's own headers and id may hold what PostgreSQL cannot store (a NUL): the
        // dead letter must be written whatever the record holds, or the batch retries for ever.
        let mut headers = studyspot_bus::Headers(
            message.headers.0.iter().map(|(k, v)| (outcomes::pg_text(k), outcomes::pg_text(v))).collect(),
        );
        headers.insert(headers::DLQ_REASON, outcomes::pg_text(reason));
        headers.insert(headers::DLQ_TOPIC, message.topic.clone());
        headers.insert(headers::DLQ_PARTITION, message.partition.to_string());
        headers.insert(headers::DLQ_OFFSET, message.offset.to_string());
        headers.insert(headers::DLQ_CONSUMER, self.name.clone());
        let event_id = headers
            .get(headers::EVENT_ID)
            .map(outcomes::pg_text)
            .unwrap_or_else(|| format!("dlq-{}-{}-{}", message.topic, message.partition, message.offset));
        OutboxRow {
            event_id,
            topic: self.topics.dead_letter(&message.topic),
            key: message.key.clone(),
            payload: message.payload.clone(),
            headers,
        }
    }
}

/// The span a record is applied in, continuing the trace its headers carry (so one trace spans
/// gateway → consumer → follow-on consumer), and the trace context its follow-on events carry:
/// children of this span when it is exported, of the incoming context otherwise.
fn apply_span(inbound: &Inbound) -> (tracing::Span, TraceContext) {
    let span = tracing::info_span!(
        "apply",
        otel.name = %format!("apply {}", inbound.record_type),
        otel.kind = "consumer",
        record = %inbound.record_type,
        event_id = %inbound.metadata.event_id,
        trace_id = tracing::field::Empty,
        partition = inbound.partition,
        offset = inbound.offset,
    );
    let incoming = inbound.headers.trace();
    if let Some(trace) = &incoming {
        studyspot_telemetry::continue_trace(&span, &trace.traceparent(), trace.tracestate.as_deref());
    }
    let handed_on = TraceContext::hand_on(studyspot_telemetry::trace_headers_of(&span), incoming);
    // Logs of one request line up across processes by this id, exported or not.
    span.record("trace_id", handed_on.trace_id_hex());
    (span, handed_on)
}
