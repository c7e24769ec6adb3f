//! `studyspot-bench bus`: the bus's figures from one run, each beside the limit it is bound by.
//! `studyspot-bench gateway`: accepted commands per second beside an empty axum handler.
//! `studyspot-bench renewals`: a renewal storm — time until every invoice is issued and paid.
//! `studyspot-bench hop`: one record's trip producer → broker → idle consumer, and the broker's CPU
//! while consumers wait, per `fetch.wait.max.ms` (see hop.rs).
//!
//! - raw broker consume rate (msgs/s) of 200-byte records with our producer settings;
//! - raw PostgreSQL batched upsert rate (rows/s);
//! - the consumer runtime's applied events/s on a simple projection with batches of 1, 100, 1000.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use sqlx::{PgConnection, PgPool};
use studyspot_bus::{BusSettings, Codec, OutboundMessage, Producer, TraceContext, admin, reader};
use studyspot_consumer_runtime::{Effects, HandleError, Handler, Inbound, Runtime, RuntimeConfig};
use studyspot_schemas::{EventMetadata, attendance};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    what: What,
    /// Records per measurement (requests, for the gateway).
    #[arg(long, global = true, default_value_t = 50_000)]
    records: usize,
    /// Runtime batch sizes to measure.
    #[arg(long, global = true, value_delimiter = ',', default_values_t = [1usize, 100, 1000])]
    batches: Vec<usize>,
    /// librdkafka debug contexts for the runtime's consumer (e.g. cgrp,fetch); shown with
    /// RUST_LOG=rdkafka=debug.
    #[arg(long, global = true)]
    kafka_debug: Option<String>,
}

#[derive(Subcommand)]
enum What {
    /// Broker and PostgreSQL limits, and the consumer runtime beside them.
    Bus,
    /// Commands accepted by the gateway's process over keep-alive HTTP, beside an empty axum
    /// handler (STUDYSPOT_BIN_DIR, default beside this binary).
    Gateway {
        /// Requests in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Subscriptions all renewing at one instant, through the billing consumer process.
    Renewals {
        #[arg(long, default_value_t = 5_000)]
        subscriptions: usize,
    },
    /// The whole system: limits, gateway commands/s, consumers' events/s, end-to-end latency and
    /// peak RSS, through the real processes (STUDYSPOT_BIN_DIR, default beside this binary).
    System {
        /// Commands per second offered in the fixed-load phase.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Seconds per phase.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Seconds of load queued up for the backlog phase (default: `--seconds`); a longer
        /// backlog steadies the consumers' rates while the other phases stay short.
        #[arg(long)]
        backlog_seconds: Option<u64>,
        /// Clients at saturation.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 6)]
        organizations: usize,
        /// Partitions of every topic (`kafka.partitions`): each fetch reads every partition it
        /// follows, so on one broker this sets what a record costs the broker.
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        #[arg(long, default_value_t = 30)]
        members: usize,
        /// JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// One record at a time from our producer to an idle consumer: latency p50/p99/max and the
    /// broker's CPU, per fetch.wait.max.ms; and the broker's CPU with idle consumers connected.
    Hop {
        /// Records per setting, each sent once the previous one arrived.
        #[arg(long, default_value_t = 100)]
        hops: usize,
        /// The consumers' fetch.wait.max.ms settings to measure.
        #[arg(long, value_delimiter = ',', default_values_t = [500u64, 100, 10])]
        waits: Vec<u64>,
        /// Consumers connected (each following six partitions) while the broker's idle CPU is read.
        #[arg(long, default_value_t = 6)]
        idle_consumers: usize,
        #[arg(long, default_value_t = 20)]
        idle_seconds: u64,
        /// Records produced at once and read back afterwards (0: none).
        #[arg(long, default_value_t = 5_000)]
        backlog: usize,
    },
    /// History read back by `studyspot replay` (NDJSON, Parquet) and a full projection rebuild:
    /// records/s and peak RSS (STUDYSPOT_CLI_BIN, STUDYSPOT_ATTENDANCE_BIN).
    Replay {
        /// Records in the history.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// The producer's linger while writing the history (records per broker batch).
        #[arg(long, default_value_t = 100)]
        linger_ms: u64,
    },
}

mod gateway;
mod hop;
mod renewals;
mod replay;
mod system;

pub(crate) struct Env {
    pub(crate) kafka: String,
    pub(crate) admin_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _traces = studyspot_telemetry::init_logs("bench", "text");
    let env = Env {
        kafka: std::env::var("STUDYSPOT_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        admin_url: studyspot_fresh_database::admin_url(),
    };
    match args.what {
        What::Bus => bus(&env, args.records, &args.batches, args.kafka_debug.as_deref()).await,
        What::Gateway { concurrency } => gateway::run(&env, args.records, concurrency).await,
        What::Renewals { subscriptions } => renewals::run(subscriptions).await,
        What::Replay { events, linger_ms } => replay::run(events, linger_ms).await,
        What::Hop { hops, waits, idle_consumers, idle_seconds, backlog } => {
            hop::run(&env, hop::Options { hops, waits, idle_consumers, idle_seconds, backlog }).await
        }
        What::System {
            rate,
            seconds,
            backlog_seconds,
            concurrency,
            organizations,
            partitions,
            members,
            json,
        } => {
            let records = args.records.min(30_000);
            let options = system::Options {
                records,
                rate,
                seconds,
                backlog_seconds: backlog_seconds.unwrap_or(seconds),
                concurrency,
                organizations,
                partitions,
                members,
                json,
            };
            system::run(&env, options).await
        }
    }
}

async fn bus(env: &Env, records: usize, batches: &[usize], kafka_debug: Option<&str>) -> anyhow::Result<()> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let database_url = studyspot_fresh_database::create(&env.admin_url, &format!("bench_{run}")).await?;
    let registry_url = start_registry(&database_url).await?;
    let bus = BusSettings {
        bootstrap_servers: env.kafka.clone(),
        registry_url: registry_url.clone(),
        extra: Default::default(),
        client_id: "studyspot-bench".into(),
        rejoin_when_unassigned: Some(Duration::from_secs(15)),
        // The production default (kafka.session_timeout_ms): a shorter one gets healthy members
        // evicted while the embedded broker is busy.
        session_timeout: Duration::from_secs(45),
    };
    println!("bus benchmark: {records} records per measurement, broker {}, 2 cores", env.kafka);

    let raw_topic = format!("bench{run}.raw");
    admin::ensure_topics(&bus, &[raw_topic.as_str()], 6, 1).await?;
    let producer = Producer::new(&bus)?;
    let payload = vec![b'x'; 200];
    let started = Instant::now();
    let sends = (0..records).map(|i| {
        let message = OutboundMessage {
            topic: raw_topic.clone(),
            key: format!("k{}", i % 1000),
            payload: payload.clone(),
            headers: Default::default(),
        };
        let producer = producer.clone();
        async move { producer.send(&message).await }
    });
    for result in futures::stream::iter(sends).buffer_unordered(10_000).collect::<Vec<_>>().await {
        result?;
    }
    let produce_rate = records as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let read = tokio::task::spawn_blocking({
        let (bus, topic) = (bus.clone(), raw_topic.clone());
        move || reader::read_to_end(&bus, &topic, Duration::from_secs(300))
    })
    .await??;
    anyhow::ensure!(read.len() == records, "read {} of {records}", read.len());
    let consume_rate = records as f64 / started.elapsed().as_secs_f64();
    println!("{:<44} {:>12.0} msgs/s", "broker produce (idempotent, acks=all, lz4)", produce_rate);
    println!("{:<44} {:>12.0} msgs/s", "broker consume (raw)", consume_rate);

    let pool = PgPool::connect(&database_url).await?;
    sqlx::query("CREATE TABLE upsert_bench (key text PRIMARY KEY, n bigint NOT NULL)").execute(&pool).await?;
    let started = Instant::now();
    for chunk in (0..records).collect::<Vec<_>>().chunks(1000) {
        let keys: Vec<String> = chunk.iter().map(|i| format!("k{i}")).collect();
        sqlx::query(
            "INSERT INTO upsert_bench (key, n) SELECT k, 1 FROM UNNEST($1::text[]) AS k \
             ON CONFLICT (key) DO UPDATE SET n = upsert_bench.n + 1",
        )
        .bind(&keys)
        .execute(&pool)
        .await?;
    }
    let upsert_rate = records as f64 / started.elapsed().as_secs_f64();
    println!("{:<44} {:>12.0} rows/s", "PostgreSQL batched upsert (1000 per statement)", upsert_rate);

    let codec = Codec::new(&registry_url)?;
    for &batch in batches {
        // Fewer records at batch 1: it is slow by design, and the rate is what we print.
        let count = if batch == 1 { (records / 10).max(1000) } else { records };
        let prefix = format!("bench{run}b{batch}.");
        let commands = format!("{prefix}{}", attendance::COMMANDS.name);
        let events = format!("{prefix}{}", attendance::EVENTS.name);
        let dlq = format!("{prefix}{}", attendance::COMMANDS.dead_letter);
        admin::ensure_topics(&bus, &[commands.as_str(), events.as_str(), dlq.as_str()], 6, 1).await?;
        let sends = (0..count).map(|i| {
            let (codec, producer, commands) = (codec.clone(), producer.clone(), commands.clone());
            async move {
                let record = tally_command(i);
                let mut message =
                    OutboundMessage::from_encoded(codec.encode(&record).await?, &TraceContext::root());
                message.topic = commands;
                producer.send(&message).await
            }
        });
        for result in futures::stream::iter(sends).buffer_unordered(5_000).collect::<Vec<_>>().await {
            result?;
        }
        let config = RuntimeConfig {
            name: format!("tally_{batch}"),
            topics: vec![attendance::COMMANDS.name.to_owned()],
            topic_prefix: prefix,
            bus: {
                let mut bus = bus.clone();
                if let Some(contexts) = kafka_debug {
                    bus.extra.insert("debug".into(), contexts.into());
                }
                bus
            },
            database_url: database_url.clone().into(),
            max_connections: 8,
            max_batch: batch,
            max_wait: Duration::from_millis(20),
            lanes: 4,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(2),
        };
        let runtime = Runtime::connect(config, Tally, None).await?;
        let db = runtime.database().pool.clone();
        let schema = runtime.database().schema.clone();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {schema}.tally (venue_id text PRIMARY KEY, n bigint NOT NULL)"
        )))
        .execute(&db)
        .await?;
        let shutdown = CancellationToken::new();
        let started = Instant::now();
        let task = tokio::spawn(runtime.run(shutdown.clone()));
        let total = count as i64;
        // Joining the group takes seconds on the embedded broker; the steady rate runs from the
        // first applied event to the last.
        let mut first_seen: Option<(Instant, i64)> = None;
        loop {
            let applied: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT sum(n)::bigint FROM {schema}.tally")))
                    .fetch_one(&db)
                    .await
                    .map(|n: Option<i64>| n.unwrap_or(0))?;
            if applied > 0 && first_seen.is_none() {
                first_seen = Some((Instant::now(), applied));
            }
            if applied == total {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "runtime did not finish: {applied} of {total}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rate = count as f64 / started.elapsed().as_secs_f64();
        let (steady_from, applied_then) = first_seen.unwrap_or((started, 0));
        let steady = (total - applied_then) as f64 / steady_from.elapsed().as_secs_f64().max(1e-3);
        shutdown.cancel();
        task.await?.context("runtime")?;
        println!(
            "{:<44} {:>12.0} events/s   ({:.1}% of the PostgreSQL upsert rate; {:.0}/s including the group join)",
            format!("runtime applied, batch {batch} ({count} events)"),
            steady,
            100.0 * steady / upsert_rate,
            rate,
        );
    }
    Ok(())
}

fn tally_command(i: usize) -> attendance::CheckIn {
    attendance::CheckIn {
        metadata: EventMetadata {
            event_id: uuid::Uuid::now_v7().to_string(),
            occurred_at: 1_767_225_600_000 + i as i64,
            correlation_id: format!("bench-{i}"),
            causation_id: None,
            organization_id: "org_bench".into(),
            actor: "service:bench".into(),
        },
        session_id: format!("ses_{i}"),
        member_id: format!("mem_{i}"),
        venue_id: format!("ven_{}", i % 100),
        seat_id: None,
        zone_id: None,
        qr_token: None,
        staff_assisted: false,
    }
}

/// The simplest projection: a counter per venue, one upsert per event, no follow-on events.
struct Tally;

impl Handler for Tally {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        message: &Inbound,
        _effects: &mut Effects,
    ) -> Result<(), HandleError> {
        let command: attendance::CheckIn = message.record()?;
        sqlx::query("INSERT INTO tally (venue_id, n) VALUES ($1, 1) ON CONFLICT (venue_id) DO UPDATE SET n = tally.n + 1")
            .bind(&command.venue_id)
            .execute(tx)
            .await?;
        Ok(())
    }
}

/// Where the workspace's binaries are: STUDYSPOT_BIN_DIR, or beside this one.
pub(crate) fn bin_dir() -> anyhow::Result<std::path::PathBuf> {
    Ok(std::env::var("STUDYSPOT_BIN_DIR").map(std::path::PathBuf::from).or_else(|_| {
        std::env::current_exe().map(|e| e.parent().map(ToOwned::to_owned).unwrap_or_default())
    })?)
}

pub(crate) async fn start_registry(database_url: &str) -> anyhow::Result<String> {
    let pool = studyspot_schema_registry::connect(database_url, 4).await?;
    let app = studyspot_schema_registry::router(pool).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

use futures::StreamExt as _;
