use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use studyspot_bus::{BrokerCheck, BusSettings, Codec, Producer, Source};
use studyspot_telemetry::{PostgresCheck, Readiness};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    Database, Handler, Migrator, connect_schema,
    keeper::Keeper,
    lane::{LaneContext, run_lane},
    outbox::Publisher,
};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("bus: {0}")]
    Bus(#[from] studyspot_bus::BusError),
    #[error("stopped by a fatal error: {0}")]
    Fatal(String),
    #[error("interrupted by shutdown")]
    Interrupted,
}

/// Batches' worth of records a lane may have waiting.
const LANE_QUEUE_BATCHES: usize = 8;

/// Everything a consumer process needs to run.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The consumer's name: its PostgreSQL schema and its consumer group (`studyspot.<name>`).
    pub name: String,
    /// Catalogue topic names this consumer reads.
    pub topics: Vec<String>,
    /// Prepended to every Kafka topic name read or written (isolates environments and tests on one
    /// cluster); subjects in the registry keep the catalogue names.
    pub topic_prefix: String,
    pub bus: BusSettings,
    pub database_url: SecretString,
    pub max_connections: u32,
    pub max_batch: usize,
    pub max_wait: Duration,
    pub lanes: usize,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl RuntimeConfig {
    pub fn from_settings(settings: &studyspot_config::Settings, name: &str, topics: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            topic_prefix: settings.kafka.topic_prefix.clone(),
            bus: BusSettings::from_settings(settings, format!("studyspot-{name}")),
            database_url: settings.postgres.url.clone(),
            max_connections: settings.postgres.max_connections,
            max_batch: settings.consumer.max_batch.max(1),
            max_wait: Duration::from_millis(settings.consumer.max_wait_ms),
            lanes: settings.consumer.lanes.max(1),
            retry_min: Duration::from_millis(settings.consumer.retry_min_ms.max(1)),
            retry_max: Duration::from_millis(settings.consumer.retry_max_ms.max(1)),
        }
    }

    pub fn group_id(&self) -> String {
        format!("{}studyspot.{}", self.topic_prefix, self.name)
    }
}

/// Maps catalogue topic names to Kafka topic names (the prefix) and to their dead-letter topics.
#[derive(Debug, Clone)]
pub(crate) struct Topics {
    pub(crate) prefix: String,
}

impl Topics {
    pub(crate) fn kafka_name(&self, catalogue_name: &str) -> String {
        format!("{}{catalogue_name}", self.prefix)
    }

    /// Whether a Kafka topic carries commands (whose outcomes are recorded) rather than events.
    pub(crate) fn is_commands(&self, kafka_name: &str) -> bool {
        let catalogue_name = kafka_name.strip_prefix(&self.prefix).unwrap_or(kafka_name);
        studyspot_schemas::topic_by_name(catalogue_name)
            .is_some_and(|t| t.kind == studyspot_schemas::TopicKind::Commands)
    }

    pub(crate) fn dead_letter(&self, kafka_name: &str) -> String {
        let catalogue_name = kafka_name.strip_prefix(&self.prefix).unwrap_or(kafka_name);
        match studyspot_schemas::topic_by_name(catalogue_name) {
            Some(topic) => self.kafka_name(topic.dead_letter),
            None => format!("{kafka_name}.dlq"),
        }
    }
}

/// Exponential backoff with jitter, from `min` doubling to `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

pub(crate) struct BackoffState {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn start(&self) -> BackoffState {
        BackoffState { next: self.min, max: self.max }
    }
}

impl BackoffState {
    pub(crate) fn next_delay(&mut self) -> Duration {
        let current = self.next;
        self.next = (self.next * 2).min(self.max);
        // ±25 % jitter so a fleet does not retry in lockstep.
        let jitter = rand::random_range(0.75..1.25);
        current.mul_f64(jitter)
    }
}

/// A consumer ready to run: its schema is migrated and its dependencies are known.
pub struct Runtime<H> {
    config: RuntimeConfig,
    db: Database,
    handler: Arc<H>,
    producer: Producer,
    codec: Codec,
    /// Woken when outbox rows are committed (by a lane or a sidecar).
    published: Arc<Notify>,
}

impl<H: Handler> Runtime<H> {
    /// Connects to PostgreSQL, migrates the runtime's tables and the domain's projection.
    pub async fn connect(
        config: RuntimeConfig,
        handler: H,
        migrator: Option<&'static Migrator>,
    ) -> Result<Self, RuntimeError> {
        let db = connect_schema(
            config.database_url.expose_secret(),
            &config.name,
            config.max_connections,
            migrator,
        )
        .await?;
        let producer = Producer::new(&config.bus)?;
        let codec = Codec::new(&config.bus.registry_url)?;
        Ok(Self {
            config,
            db,
            handler: Arc::new(handler),
            producer,
            codec,
            published: Arc::new(Notify::new()),
        })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// A writer into this consumer's outbox, for work done beside consuming.
    pub fn outbox(&self) -> crate::OutboxWriter {
        crate::OutboxWriter {
            codec: self.codec.clone(),
            topics: Topics { prefix: self.config.topic_prefix.clone() },
            published: self.published.clone(),
        }
    }

    /// The checks behind this consumer's `/ready`: its database, the broker and the schema registry.
    pub fn readiness(&self) -> Readiness {
        Readiness::default()
            .with(PostgresCheck::new(self.db.pool.clone()))
            .with(BrokerCheck(self.producer.clone()))
            .with(studyspot_bus::RegistryCheck::new(&self.config.bus.registry_url))
    }

    /// Consumes until `shutdown` is cancelled (or a fatal error), then finishes the batch in hand,
    /// commits, publishes and leaves the group.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RuntimeError> {
        let backoff = Backoff { min: self.config.retry_min, max: self.config.retry_max };
        let topics = Topics { prefix: self.config.topic_prefix.clone() };
        let publisher = Publisher {
            name: self.config.name.clone(),
            pool: self.db.pool.clone(),
            producer: self.producer.clone(),
            backoff,
        };
        // Rows a crash left unpublished go out first: the publisher drains at once when it starts,
        // always in id order, so nothing committed later can overtake them. Consuming need not
        // wait for the broker to take them.
        let published = self.published.clone();
        let stop_publisher = CancellationToken::new();
        let publisher =
            tokio::spawn(publisher.run(published.clone(), shutdown.clone(), stop_publisher.clone()));

        let fatal = CancellationToken::new();
        // Lanes stop retrying when the process is asked to stop or a lane failed fatally.
        let stopping = shutdown.child_token();
        let ctx = Arc::new(LaneContext {
            name: self.config.name.clone(),
            db: self.db.clone(),
            codec: self.codec.clone(),
            handler: self.handler.clone(),
            topics: topics.clone(),
            published,
            source: std::sync::OnceLock::new(),
            max_batch: self.config.max_batch,
            max_wait: self.config.max_wait,
            backoff,
            stopping: stopping.clone(),
            fatal: fatal.clone(),
            rebuilding: false,
        });
        let mut senders = Vec::with_capacity(self.config.lanes);
        let mut lanes = Vec::with_capacity(self.config.lanes);
        for _ in 0..self.config.lanes {
            // Bounded: a slow database stops the poll thread instead of growing memory. Deep
            // enough for a whole fetch of one partition (librdkafka hands records over partition
            // by partition): with room for only two batches, the poll thread waited on one busy
            // lane while the others sat idle, and a backlog drained at one lane's pace.
            let (tx, rx) = mpsc::channel(self.config.max_batch * LANE_QUEUE_BATCHES);
            senders.push(tx);
            lanes.push(tokio::spawn(run_lane(ctx.clone(), rx)));
        }
        let keeper =
            Keeper { runtime: tokio::runtime::Handle::current(), pool: self.db.pool.clone(), lanes: senders };
        let kafka_topics: Vec<String> = self.config.topics.iter().map(|t| topics.kafka_name(t)).collect();
        let topic_refs: Vec<&str> = kafka_topics.iter().map(String::as_str).collect();
        let keeper = Arc::new(Mutex::new(keeper));
        let source =
            Arc::new(Source::start(&self.config.bus, &self.config.group_id(), &topic_refs, keeper.clone())?);
        let _ = ctx.source.set(source.clone());
        tracing::info!(consumer = %self.config.name, topics = ?kafka_topics, lanes = self.config.lanes, "consuming");

        tokio::select! {
            () = shutdown.cancelled() => tracing::info!("shutting down: finishing the batch in hand"),
            () = fatal.cancelled() => tracing::error!("a lane failed fatally; stopping"),
        }
        stopping.cancel();
        // Stopping the source runs the final revocation through the lanes (they commit what they
        // hold) and leaves the group; then the lanes see their inputs close and end.
        let stopping = source.clone();
        tokio::task::spawn_blocking(move || stopping.stop())
            .await
            .map_err(|e| RuntimeError::Fatal(e.to_string()))?;
        // The lanes end when their inputs close; the keeper holds the only senders.
        if let Ok(mut keeper) = keeper.lock() {
            keeper.lanes.clear();
        }
        drop(ctx);
        drop(source);
        for lane in lanes {
            let _ = lane.await;
        }
        stop_publisher.cancel();
        let _ = publisher.await;
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
        if fatal.is_cancelled() && !shutdown.is_cancelled() {
            return Err(RuntimeError::Fatal("a lane could not go on; see the log above".into()));
        }
        tracing::info!("stopped cleanly");
        Ok(())
    }
}
