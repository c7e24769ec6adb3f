//! Rebuilding a consumer's projection from history into a schema beside the live one, then
//! swapping it in while the live consumer keeps serving.
//!
//! The rebuild reads no consumer group: it follows the live consumer's own positions (its
//! `consumer_offsets`), reading every partition from offset zero up to where the live one stands,
//! merged across partitions in timestamp order (the order the live process met them in), through
//! one lane and the live process's handler, into `<consumer>_rebuild_<n>`. Follow-on
//! events and dead letters are not written (the live consumer published them already), nor are
//! sidecars or schedulers started. Once the rebuild is within `swap_gap` records of the live
//! consumer, one transaction pauses the live consumer (its batches share an advisory lock the swap
//! takes exclusively), applies the last records up to the live positions exactly, carries the
//! sidecars' state across (what the handler names: [`Handler::carried_across_swap`]), moves the
//! live outbox's unpublished rows across, copies the read grants and renames the schemas:
//! `<consumer>` becomes `<consumer>_old_<n>` (kept until `drop_old`) and the rebuild becomes
//! `<consumer>`. The live process carries on in the renamed schema from the same positions, with
//! the same consumer group: its connections resolve names through `search_path`.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use secrecy::ExposeSecret;
use sqlx::{PgPool, postgres::PgPoolOptions};
use studyspot_bus::{
    BusSettings, Codec, InboundMessage, PartitionId,
    history::{self, HistoryReader},
    tail::Positions,
};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    Handler, Migrator, RuntimeConfig, RuntimeError, connect_schema,
    keeper::{LaneInput, lane_of},
    lane::{LaneContext, run_lane},
    runtime::{Backoff, Topics},
};

/// How a rebuild ends.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Swap the rebuild in when caught up; otherwise leave it beside the live schema.
    pub swap: bool,
    /// The swap is tried once the rebuild is at most this many records behind the live consumer.
    pub swap_gap: u64,
    /// The longest the live consumer is paused for the swap (the last records and the renames).
    pub swap_timeout: Duration,
    /// Swap attempts before giving up (each failed one is followed by another catching-up round).
    pub swap_attempts: u32,
    /// How long a read of history may wait for the broker's next record.
    pub idle_timeout: Duration,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            swap: true,
            swap_gap: 1000,
            swap_timeout: Duration::from_secs(30),
            swap_attempts: 5,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    /// Where the rebuilt projection is now: the consumer's own schema after a swap.
    pub schema: String,
    /// The previous live projection, kept after a swap.
    pub old_schema: Option<String>,
    /// Records read from history and applied (skipped duplicates and dead letters included).
    pub records: u64,
    pub elapsed: Duration,
}

/// The advisory lock a rebuild holds on its schema while it runs.
fn running_lock(schema: &str) -> String {
    format!("studyspot.rebuild.running.{schema}")
}

/// The advisory lock every live batch holds shared and a swap holds exclusively.
pub(crate) fn swap_lock(consumer: &str) -> String {
    format!("studyspot.rebuild.swap.{consumer}")
}

fn valid_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn fatal(message: impl Into<String>) -> RuntimeError {
    RuntimeError::Fatal(message.into())
}

async fn admin_pool(config: &RuntimeConfig) -> Result<PgPool, RuntimeError> {
    Ok(PgPoolOptions::new().max_connections(3).connect(config.database_url.expose_secret()).await?)
}

async fn schema_exists(pool: &PgPool, schema: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(pool)
        .await
}

/// The next free `<n>` of `<consumer>_rebuild_<n>` / `<consumer>_old_<n>`.
async fn next_number(pool: &PgPool, consumer: &str) -> Result<i64, sqlx::Error> {
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT max(substring(nspname FROM '_([0-9]+)$')::bigint) FROM pg_namespace \
         WHERE nspname ~ ('^' || $1 || '_(rebuild|old)_[0-9]+$')",
    )
    .bind(consumer)
    .fetch_one(pool)
    .await?;
    Ok(last.unwrap_or(0) + 1)
}

/// The positions stored in `schema`, for `topics` only.
async fn positions<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    schema: &str,
    topics: &HashSet<String>,
) -> Result<Positions, sqlx::Error> {
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT topic, partition, next_offset FROM {schema}.consumer_offsets"
    )))
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(topic, _, _)| topics.contains(topic))
        .map(|(topic, partition, next)| (PartitionId { topic, partition }, next))
        .collect())
}

/// Records between `from` and `until`, summed over partitions.
fn distance(from: &Positions, until: &Positions) -> u64 {
    until.iter().map(|(p, end)| (end - from.get(p).copied().unwrap_or(0)).max(0) as u64).sum()
}

/// History in the order it was written across partitions: of the partitions not read to their end,
/// the record with the earliest timestamp goes first, once each has one at hand. The live process
/// applied records about as they arrived, so this is the order a projection whose state spans
/// partitions (a plan defined on one topic, subscribed to on another) needs to come out the same;
/// records of different partitions written at the same millisecond go by topic and partition.
struct TimeOrdered {
    reader: HistoryReader,
    ends: BTreeMap<PartitionId, i64>,
    /// Partitions whose last record has not arrived yet: each must have one at hand to go on.
    arriving: HashSet<PartitionId>,
    at_hand: BTreeMap<PartitionId, VecDeque<InboundMessage>>,
    /// Partitions not fetched while they have [`AT_HAND_HIGH`] records at hand.
    paused: HashSet<PartitionId>,
}

/// Records at hand of one partition above which it stops being fetched, and below which it is
/// fetched again. Waiting for a slower partition, the reader would otherwise pull everything
/// librdkafka prefetched of the others into memory: about 540 MiB of a 1M-record rebuild's
/// resident memory before this bound.
const AT_HAND_HIGH: usize = 4096;
const AT_HAND_LOW: usize = AT_HAND_HIGH / 2;

impl TimeOrdered {
    fn open(bus: &BusSettings, from: &Positions, until: &Positions) -> Result<Self, RuntimeError> {
        let ends: BTreeMap<PartitionId, i64> = until
            .iter()
            .filter(|(p, end)| from.get(p).copied().unwrap_or(0) < **end)
            .map(|(p, end)| (p.clone(), *end))
            .collect();
        Ok(Self {
            reader: HistoryReader::open(bus, from, until)?,
            arriving: ends.keys().cloned().collect(),
            at_hand: ends.keys().map(|p| (p.clone(), VecDeque::new())).collect(),
            ends,
            paused: HashSet::new(),
        })
    }

    fn next(&mut self, idle_timeout: Duration) -> Result<Option<InboundMessage>, RuntimeError> {
        loop {
            let blocked = self.arriving.iter().any(|p| self.at_hand.get(p).is_none_or(VecDeque::is_empty));
            if !blocked {
                let earliest = self
                    .at_hand
                    .iter()
                    .filter_map(|(p, q)| q.front().map(|m| (m.timestamp_ms.unwrap_or(i64::MAX), p.clone())))
                    .min();
                let Some((_, p)) = earliest else { return Ok(None) };
                let queue = self.at_hand.get_mut(&p).expect("a partition at hand");
                let message = queue.pop_front();
                if queue.len() < AT_HAND_LOW && self.paused.remove(&p) {
                    self.reader.resume(&p)?;
                }
                return Ok(message);
            }
            let Some(message) = self.reader.next(idle_timeout)? else {
                // The reader says every partition ended: nothing more will arrive.
                self.arriving.clear();
                continue;
            };
            let p = message.partition_id();
            if self.ends.get(&p).is_some_and(|end| message.offset + 1 >= *end) {
                self.arriving.remove(&p);
            }
            let queue = self.at_hand.entry(p.clone()).or_default();
            queue.push_back(message);
            if queue.len() >= AT_HAND_HIGH && self.arriving.contains(&p) && self.paused.insert(p.clone()) {
                self.reader.pause(&p)?;
            }
        }
    }
}

/// Feeds slices of history to the lanes and waits until they committed them.
struct Applier {
    bus: BusSettings,
    lanes: Vec<mpsc::Sender<LaneInput>>,
    idle_timeout: Duration,
    applied: Arc<AtomicU64>,
    fatal: CancellationToken,
}

impl Applier {
    /// Applies the records from `from` up to `until`; `Ok(false)` when `deadline` came first.
    /// Returns only once the lanes committed everything they were given.
    async fn apply(
        &self,
        from: Positions,
        until: Positions,
        deadline: Option<Instant>,
    ) -> Result<bool, RuntimeError> {
        let bus = self.bus.clone();
        let lanes = self.lanes.clone();
        let idle_timeout = self.idle_timeout;
        let applied = self.applied.clone();
        let lane_failed = self.fatal.clone();
        let outcome = tokio::task::spawn_blocking(move || -> Result<bool, RuntimeError> {
            if until.iter().all(|(p, end)| from.get(p).copied().unwrap_or(0) >= *end) {
                return Ok(true);
            }
            let topics: Vec<String> =
                until.keys().map(|p| p.topic.clone()).collect::<HashSet<_>>().into_iter().collect();
            let marks = history::watermarks(&bus, &topics, Duration::from_secs(30))?;
            for (p, end) in &until {
                let start = from.get(p).copied().unwrap_or(0);
                if let Some(m) = marks.get(p)
                    && start < *end
                    && m.low > start
                {
                    return Err(fatal(format!(
                        "{}/{} begins at offset {} now: the records before it were deleted, so the \
                         projection cannot be rebuilt from history",
                        p.topic, p.partition, m.low
                    )));
                }
            }
            let mut reader = TimeOrdered::open(&bus, &from, &until)?;
            let mut complete = true;
            let mut failure = None;
            loop {
                if lane_failed.is_cancelled() {
                    failure = Some(fatal_lane());
                    break;
                }
                let wait = match deadline {
                    Some(d) if Instant::now() >= d => {
                        complete = false;
                        break;
                    }
                    Some(d) => idle_timeout.min(d - Instant::now()),
                    None => idle_timeout,
                };
                match reader.next(wait) {
                    Ok(Some(message)) => {
                        let lane = lane_of(&message, lanes.len());
                        if lanes[lane].blocking_send(LaneInput::Message(message)).is_err() {
                            failure = Some(fatal_lane());
                            break;
                        }
                        applied.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => break,
                    Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                        complete = false;
                        break;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            // Whatever was handed to the lanes is committed before the positions are read again.
            let (ack, done) = std::sync::mpsc::channel();
            let mut waiting = 0;
            for lane in &lanes {
                if lane.blocking_send(LaneInput::Revoke(ack.clone())).is_ok() {
                    waiting += 1;
                }
            }
            drop(ack);
            for _ in 0..waiting {
                if done.recv().is_err() {
                    return Err(fatal_lane());
                }
            }
            if waiting < lanes.len() {
                return Err(fatal_lane());
            }
            match failure {
                Some(e) => Err(e),
                None => Ok(complete),
            }
        })
        .await
        .map_err(|e| fatal(format!("the history reader panicked: {e}")))?;
        if self.fatal.is_cancelled() {
            return Err(fatal_lane());
        }
        outcome
    }
}

fn fatal_lane() -> RuntimeError {
    fatal("a lane of the rebuild failed; see the log above")
}

/// Rebuilds `config.name`'s projection from history with `handler` and `migrator` (the same ones
/// the live process runs) and, with `options.swap`, swaps it in.
pub async fn rebuild<H: Handler>(
    config: RuntimeConfig,
    handler: H,
    migrator: Option<&'static Migrator>,
    options: RebuildOptions,
) -> Result<RebuildReport, RuntimeError> {
    let started = Instant::now();
    let live = config.name.clone();
    if !valid_identifier(&live) {
        return Err(fatal(format!("consumer name {live:?} must be [a-z0-9_]+")));
    }
    let admin = admin_pool(&config).await?;
    if !schema_exists(&admin, &live).await? {
        return Err(fatal(format!("there is no live schema {live} to rebuild beside")));
    }
    let n = next_number(&admin, &live).await?;
    let schema = format!("{live}_rebuild_{n}");
    // Held while this rebuild runs, so `drop_old` leaves its schema alone.
    let mut running = admin.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(running_lock(&schema))
        .execute(&mut *running)
        .await?;
    tracing::info!(consumer = %live, %schema, "rebuilding from history");
    let carried = handler.carried_across_swap(&live, &schema);
    let db = connect_schema(config.database_url.expose_secret(), &schema, config.max_connections, migrator)
        .await?;
    let topics = Topics { prefix: config.topic_prefix.clone() };
    let kafka_topics: HashSet<String> = config.topics.iter().map(|t| topics.kafka_name(t)).collect();
    let backoff = Backoff { min: config.retry_min, max: config.retry_max };
    let lane_failed = CancellationToken::new();
    let ctx = Arc::new(LaneContext {
        // The live consumer's name: dead-letter headers and metrics read as the live ones would.
        name: live.clone(),
        db: db.clone(),
        codec: Codec::new(&config.bus.registry_url)?,
        handler: Arc::new(handler),
        topics,
        published: Arc::new(Notify::new()),
        source: OnceLock::new(),
        max_batch: config.max_batch,
        max_wait: config.max_wait,
        backoff,
        stopping: CancellationToken::new(),
        fatal: lane_failed.clone(),
        rebuilding: true,
    });
    // One lane: records are applied in the order `TimeOrdered` puts them in, across partitions.
    let (tx, rx) = mpsc::channel(config.max_batch * 2);
    let senders = vec![tx];
    let lanes = vec![tokio::spawn(run_lane(ctx.clone(), rx))];
    let applied = Arc::new(AtomicU64::new(0));
    let applier = Applier {
        bus: config.bus.clone(),
        lanes: senders,
        idle_timeout: options.idle_timeout,
        applied: applied.clone(),
        fatal: lane_failed,
    };

    let swap = Swap { live: &live, schema: &schema, n, topics: &kafka_topics, carried: &carried };
    let result = run(&admin, &swap, &applier, &options).await;
    drop(applier);
    drop(ctx);
    for lane in lanes {
        let _ = lane.await;
    }
    db.pool.close().await;
    drop(running);
    admin.close().await;
    let old_schema = result?;
    let records = applied.load(Ordering::Relaxed);
    Ok(RebuildReport {
        schema: if old_schema.is_some() { live } else { schema },
        old_schema,
        records,
        elapsed: started.elapsed(),
    })
}

/// What a swap puts where: the live schema, the rebuild's, its number, the topics, and the
/// statements carrying the sidecars' state across ([`Handler::carried_across_swap`]).
struct Swap<'a> {
    live: &'a str,
    schema: &'a str,
    n: i64,
    topics: &'a HashSet<String>,
    carried: &'a [String],
}

/// Catches up with the live consumer and, with `options.swap`, swaps; the old schema's name.
async fn run(
    admin: &PgPool,
    target: &Swap<'_>,
    applier: &Applier,
    options: &RebuildOptions,
) -> Result<Option<String>, RuntimeError> {
    let Swap { live, schema, topics, .. } = *target;
    let mut attempts = 0;
    loop {
        catch_up(admin, live, schema, topics, applier, options).await?;
        if !options.swap {
            return Ok(None);
        }
        attempts += 1;
        match swap(admin, target, applier, options).await? {
            Some(old) => return Ok(Some(old)),
            None if attempts >= options.swap_attempts => {
                return Err(fatal(format!(
                    "the live consumer {live} kept moving; {attempts} swap attempts did not catch it \
                     (the rebuild stays in {schema}; try again when it is quieter)"
                )));
            }
            None => tracing::warn!(attempt = attempts, "swap not possible yet; catching up again"),
        }
    }
}

/// Rounds of applying history up to where the live consumer stood at the start of the round, until
/// the live consumer is at most `swap_gap` records ahead.
async fn catch_up(
    admin: &PgPool,
    live: &str,
    schema: &str,
    topics: &HashSet<String>,
    applier: &Applier,
    options: &RebuildOptions,
) -> Result<(), RuntimeError> {
    loop {
        let round = Instant::now();
        let before = applier.applied.load(Ordering::Relaxed);
        let target = positions(admin, live, topics).await?;
        let from = positions(admin, schema, topics).await?;
        applier.apply(from, target.clone(), None).await?;
        let now = positions(admin, live, topics).await?;
        let gap = distance(&target, &now);
        let applied = applier.applied.load(Ordering::Relaxed) - before;
        tracing::info!(
            applied,
            per_second = (applied as f64 / round.elapsed().as_secs_f64().max(1e-3)) as u64,
            behind_live = gap,
            "rebuild round done"
        );
        if gap <= options.swap_gap {
            return Ok(());
        }
    }
}

/// One attempt at the swap; `None` when the live consumer could not be caught within the timeout
/// (nothing changed then but more of the rebuild applied).
async fn swap(
    admin: &PgPool,
    target: &Swap<'_>,
    applier: &Applier,
    options: &RebuildOptions,
) -> Result<Option<String>, RuntimeError> {
    let Swap { live, schema, n, topics, carried } = *target;
    let old = format!("{live}_old_{n}");
    let deadline = Instant::now() + options.swap_timeout;
    let mut tx = admin.begin().await?;
    // Waiting for a lock longer than the pause we allow fails the attempt instead of hanging.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = {}",
        options.swap_timeout.as_millis().max(1)
    )))
    .execute(&mut *tx)
    .await?;
    // Live batches in flight finish; later ones wait for this transaction. The publisher's own
    // lock keeps it from publishing rows while they are moved.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))").bind(swap_lock(live)).execute(&mut *tx).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || '.outbox'))")
        .bind(live)
        .execute(&mut *tx)
        .await?;
    let target = positions(&mut *tx, live, topics).await?;
    let from = positions(&mut *tx, schema, topics).await?;
    if let Some((p, ahead)) = from.iter().find(|(p, next)| target.get(*p).is_none_or(|t| *next > t)) {
        // Cannot happen while the rebuild only ever reads up to live positions, which only grow.
        return Err(fatal(format!(
            "the rebuild is ahead of the live consumer on {}/{} ({ahead}); refusing to swap",
            p.topic, p.partition
        )));
    }
    let pending = distance(&from, &target);
    if !applier.apply(from, target.clone(), Some(deadline)).await? {
        tracing::warn!(pending, "the last records did not apply within the swap timeout");
        tx.rollback().await?;
        return Ok(None);
    }
    let rebuilt = positions(&mut *tx, schema, topics).await?;
    if rebuilt != target {
        return Err(fatal(format!(
            "after applying up to the live positions the rebuild stands elsewhere: {rebuilt:?} vs {target:?}"
        )));
    }
    // Sidecars write the live schema beside the lanes: their transactions in flight finish first,
    // and their later statements resolve to the new schema.
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY tablename")
            .bind(live)
            .fetch_all(&mut *tx)
            .await?;
    if !tables.is_empty() {
        let list: Vec<String> = tables.iter().map(|t| format!("{live}.{}", quote(t))).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", list.join(", "))))
            .execute(&mut *tx)
            .await?;
    }
    // What the sidecars were in the middle of goes on in the new schema as it stood in the old.
    for statement in carried {
        sqlx::query(sqlx::AssertSqlSafe(statement.clone())).execute(&mut *tx).await?;
    }
    let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH moved AS (DELETE FROM {live}.outbox WHERE published_at IS NULL RETURNING *) \
         INSERT INTO {schema}.outbox (event_id, topic, key, payload, headers, created_at) \
         SELECT event_id, topic, key, payload, headers, created_at FROM moved ORDER BY id"
    )))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    copy_grants(&mut tx, live, schema).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER SCHEMA {live} RENAME TO {old}")))
        .execute(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER SCHEMA {schema} RENAME TO {live}")))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(%live, %old, unpublished_moved = moved, records_at_swap = pending, "swapped the rebuild in");
    Ok(Some(old))
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn grantee(role: &str) -> String {
    if role == "PUBLIC" { role.to_owned() } else { quote(role) }
}

/// The live schema's grants to other roles (the gateway's read-only role), on the rebuild.
async fn copy_grants(tx: &mut sqlx::PgConnection, live: &str, schema: &str) -> Result<(), sqlx::Error> {
    let on_schema: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.privilege_type, coalesce(r.rolname::text, 'PUBLIC') \
         FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee \
         WHERE n.nspname = $1 AND a.grantee <> n.nspowner",
    )
    .bind(live)
    .fetch_all(&mut *tx)
    .await?;
    for (privilege, role) in on_schema {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "GRANT {privilege} ON SCHEMA {schema} TO {}",
            grantee(&role)
        )))
        .execute(&mut *tx)
        .await?;
    }
    let on_tables: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.privilege_type, coalesce(r.rolname::text, 'PUBLIC') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm') AND a.grantee <> c.relowner \
           AND EXISTS (SELECT 1 FROM pg_class c2 JOIN pg_namespace n2 ON n2.oid = c2.relnamespace \
                       WHERE n2.nspname = $2 AND c2.relname = c.relname)",
    )
    .bind(live)
    .bind(schema)
    .fetch_all(&mut *tx)
    .await?;
    for (table, privilege, role) in on_tables {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "GRANT {privilege} ON {schema}.{} TO {}",
            quote(&table),
            grantee(&role)
        )))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Drops what rebuilds left behind: swapped-out projections (`<consumer>_old_<n>`) and rebuilds
/// not swapped in (`<consumer>_rebuild_<n>`, unless running) — or only `only`. Returns the schemas
/// dropped.
pub async fn drop_old(
    pool: &PgPool,
    consumer: &str,
    only: Option<&str>,
) -> Result<Vec<String>, RuntimeError> {
    if !valid_identifier(consumer) {
        return Err(fatal(format!("consumer name {consumer:?} must be [a-z0-9_]+")));
    }
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname ~ ('^' || $1 || '_(old|rebuild)_[0-9]+$') \
         ORDER BY nspname",
    )
    .bind(consumer)
    .fetch_all(pool)
    .await?;
    let chosen: Vec<String> = match only {
        Some(name) if left.iter().any(|o| o == name) => vec![name.to_owned()],
        Some(name) => {
            return Err(fatal(format!(
                "{name} is not a projection {consumer}'s rebuilds left (those are {left:?})"
            )));
        }
        None => left,
    };
    let mut dropped = Vec::new();
    for schema in chosen {
        let mut tx = pool.begin().await?;
        let idle: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
            .bind(running_lock(&schema))
            .fetch_one(&mut *tx)
            .await?;
        if !idle {
            tracing::warn!(%schema, "a rebuild is running into it; left alone");
            continue;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&mut *tx).await?;
        tx.commit().await?;
        dropped.push(schema);
    }
    Ok(dropped)
}
