use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use rdkafka::{
    ClientContext, Offset, Statistics, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance},
    error::KafkaError,
};

use crate::{BusError, BusSettings, Headers};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId {
    pub topic: String,
    pub partition: i32,
}

/// One record as read from a partition, owned so it can cross threads and outlive the poll.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Headers,
    /// Broker or producer timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

impl InboundMessage {
    pub fn partition_id(&self) -> PartitionId {
        PartitionId { topic: self.topic.clone(), partition: self.partition }
    }
}

/// The owner of partition positions and of the work in flight: the consumer runtime.
///
/// Every method is called on the source's poll thread and may block; while it blocks, the
/// source does not poll (this is the backpressure and the rebalance barrier).
pub trait PositionKeeper: Send + 'static {
    /// Where each newly assigned partition starts: the next offset to read, or `None` for the
    /// beginning. An error keeps the assignment from being taken; it is retried.
    fn positions(&mut self, partitions: &[PartitionId]) -> Result<HashMap<PartitionId, Option<i64>>, String>;
    /// Partitions are about to go to another member: finish and commit work for them, drop the rest.
    fn revoked(&mut self, partitions: &[PartitionId]);
    /// A record to process, in partition order.
    fn deliver(&mut self, message: InboundMessage);
}

struct SourceContext {
    keeper: Arc<Mutex<dyn PositionKeeper>>,
    group: String,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        // Round trips to each broker as librdkafka sees them over the last interval: `rtt` from
        // request sent to response received, `int_latency` from a message queued to it being
        // sent (the client's own queueing).
        for broker in statistics.brokers.values().filter(|b| b.nodeid >= 0) {
            for (metric, window) in [
                ("studyspot_kafka_broker_rtt_seconds", broker.rtt.as_ref()),
                ("studyspot_kafka_broker_int_latency_seconds", broker.int_latency.as_ref()),
            ] {
                let Some(window) = window.filter(|w| w.cnt > 0) else { continue };
                for (quantile, micros) in [("0.5", window.p50), ("0.99", window.p99)] {
                    metrics::gauge!(metric, "group" => self.group.clone(), "broker" => broker.nodeid.to_string(), "quantile" => quantile)
                        .set(micros as f64 / 1e6);
                }
            }
        }
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!("studyspot_consumer_lag", "group" => self.group.clone(), "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions = partition_ids(list);
            tracing::info!(count = partitions.len(), "partitions revoked");
            if let Ok(mut keeper) = self.keeper.lock() {
                keeper.revoked(&partitions);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = partition_ids(list);
            tracing::info!(count = partitions.len(), "partitions assigned");
            // Kafka starts us at its committed offsets; PostgreSQL holds the truth, so move there
            // before any record is handed on. Records fetched before the seek are discarded by
            // librdkafka (the seek bumps the partition's fetch version).
            let positions = loop {
                let result = self
                    .keeper
                    .lock()
                    .map_err(|_| "keeper poisoned".to_string())
                    .and_then(|mut k| k.positions(&partitions));
                match result {
                    Ok(positions) => break positions,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot load partition positions; retrying");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            };
            let mut seek = TopicPartitionList::new();
            for p in &partitions {
                let offset = match positions.get(p).copied().flatten() {
                    Some(next) => Offset::Offset(next),
                    None => Offset::Beginning,
                };
                if let Err(e) = seek.add_partition_offset(&p.topic, p.partition, offset) {
                    tracing::error!(error = %e, "bad seek position");
                }
            }
            // Not yet fetching: assign() with explicit offsets is the seek.
            if let Err(e) = consumer.assign(&seek) {
                tracing::error!(error = %e, "cannot assign partitions at stored positions");
            }
        }
    }
}

fn partition_ids(list: &TopicPartitionList) -> Vec<PartitionId> {
    list.elements()
        .iter()
        .map(|e| PartitionId { topic: e.topic().to_owned(), partition: e.partition() })
        .collect()
}

/// A consumer-group member that reads from the positions its [`PositionKeeper`] owns.
pub struct Source {
    consumer: Arc<BaseConsumer<SourceContext>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Source {
    /// Joins `group`, subscribes to `topics` and starts polling on a dedicated thread.
    pub fn start(
        settings: &BusSettings,
        group: &str,
        topics: &[&str],
        keeper: Arc<Mutex<dyn PositionKeeper>>,
    ) -> Result<Self, BusError> {
        let session_timeout_ms = settings.session_timeout.as_millis().max(1000);
        let mut config = settings.client_config();
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", session_timeout_ms.to_string())
            // A third of the session, as Kafka's defaults have it.
            .set("heartbeat.interval.ms", (session_timeout_ms / 3).max(100).to_string())
            .set("statistics.interval.ms", "5000")
            // Bounds what librdkafka prefetches per partition (its default is 64 MiB).
            .set("queued.max.messages.kbytes", "8192");
        settings.apply_extra(&mut config);
        let context = SourceContext { keeper: keeper.clone(), group: group.to_owned() };
        let consumer: BaseConsumer<SourceContext> = config.create_with_context(context)?;
        consumer.subscribe(topics)?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name(format!("source-{group}"))
            .spawn({
                let (consumer, stop) = (consumer.clone(), stop.clone());
                let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
                let rejoin_after = settings.rejoin_when_unassigned;
                move || poll_loop(&consumer, &topics, rejoin_after, &stop, &keeper)
            })
            .map_err(|e| BusError::Config(format!("cannot start the poll thread: {e}")))?;
        Ok(Self { consumer, stop, thread: Mutex::new(Some(thread)) })
    }

    /// Records progress in Kafka too, so standard lag tooling sees it. Best effort: the
    /// positions that count live with the projection.
    pub fn commit_for_lag_tooling(&self, next_offsets: &HashMap<PartitionId, i64>) {
        let mut list = TopicPartitionList::new();
        for (p, next) in next_offsets {
            let _ = list.add_partition_offset(&p.topic, p.partition, Offset::Offset(*next));
        }
        if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::debug!(error = %e, "kafka offset commit (lag tooling only) failed");
        }
    }

    /// Stops polling and leaves the group; the keeper sees the final revocation first. Blocks
    /// until the poll thread has finished.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.stop();
    }
}

fn poll_loop(
    consumer: &BaseConsumer<SourceContext>,
    topics: &[String],
    rejoin_after: Option<Duration>,
    stop: &AtomicBool,
    keeper: &Arc<Mutex<dyn PositionKeeper>>,
) {
    let mut unassigned_since = Some(std::time::Instant::now());
    while !stop.load(Ordering::SeqCst) {
        if let Some(limit) = rejoin_after {
            let assigned = consumer.assignment().map(|a| a.count() > 0).unwrap_or(false);
            match (assigned, unassigned_since) {
                (true, _) => unassigned_since = None,
                (false, None) => unassigned_since = Some(std::time::Instant::now()),
                (false, Some(since)) if since.elapsed() > limit => {
                    tracing::warn!(
                        idle_s = since.elapsed().as_secs(),
                        "no partitions assigned; rejoining the group"
                    );
                    consumer.unsubscribe();
                    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
                    if let Err(e) = consumer.subscribe(&refs) {
                        tracing::error!(error = %e, "cannot resubscribe");
                    }
                    unassigned_since = Some(std::time::Instant::now());
                }
                (false, Some(_)) => {}
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                let inbound = crate::reader::owned(&message);
                drop(message);
                match keeper.lock() {
                    Ok(mut keeper) => keeper.deliver(inbound),
                    Err(_) => {
                        tracing::error!("position keeper poisoned; stopping the source");
                        return;
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "consumer poll error (librdkafka retries by itself)"),
        }
    }
    // Leave the group cleanly: this runs the final revocation through the keeper.
    consumer.unsubscribe();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if consumer.assignment().map(|a| a.count() == 0).unwrap_or(true) {
            break;
        }
        let _ = consumer.poll(Duration::from_millis(50));
    }
}
