//! `studyspot-bench system`: the whole system in one run, each figure beside the limit it is
//! bounded by. The limits (raw broker produce and consume of 200-byte records with our producer
//! settings, a PostgreSQL batched upsert, an empty axum handler) are measured first, on this
//! machine, in this run. Then the real processes (gateway and the four consumers, release
//! binaries) run on the same PostgreSQL and broker under the load generator's mix: commands/s the
//! gateway accepts over keep-alive HTTP and gRPC, events/s each consumer applies, the end-to-end
//! latency from the request to the first follow-on event readable on the topics at a fixed
//! offered load and at saturation, hop by hop (request → command record readable → outcome
//! committed → follow-on event readable), the CPU seconds every process (and each of the broker's
//! threads) spent in each phase, librdkafka's round trips to the broker as the consumers see
//! them, how fast each consumer drains a backlog on its own, and the peak RSS of every process.
//! The renewal storm is `studyspot-bench renewals`.
//!
//! How to profile what a phase shows as the binding limit: run the benchmark, and while a phase
//! runs attach `perf` (Debian's `linux-perf`) to the busiest process, e.g.
//! `perf record -F 499 -g -p $(pgrep -f 'tansu broker') -- sleep 10` then
//! `perf report --no-children`, or a flame graph with `perf script | inferno-collapse-perf |
//! inferno-flamegraph > broker.svg` (`cargo install inferno`). `perf stat -e instructions true`
//! tells whether this machine exposes hardware counters; without them `perf record` still samples
//! on the CPU clock (`-e cpu-clock`). The release profile keeps line tables for readable stacks.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{Json, http::StatusCode, routing::post};
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sqlx::PgPool;
use studyspot_bus::{BusSettings, OutboundMessage, Producer, admin, reader};
use studyspot_loadgen::{
    api::{Gateway, Transport},
    cpu::{Meter, Usage},
    ledger::Ledger,
    load::{self, Load, Report},
    mix::Tenant,
    observe::{FollowOns, Hops},
    stack::{CONSUMERS, Infrastructure, Stack, StackOptions},
};

use crate::{Env, gateway::drive, start_registry};

pub struct Options {
    pub records: usize,
    pub rate: f64,
    pub seconds: u64,
    pub backlog_seconds: u64,
    pub concurrency: usize,
    pub organizations: usize,
    pub partitions: i32,
    pub members: usize,
    pub json: bool,
}

struct Limits {
    produce: f64,
    consume: f64,
    upsert: f64,
    empty_handler: f64,
}

async fn limits(env: &Env, records: usize, concurrency: usize) -> anyhow::Result<Limits> {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let database_url = studyspot_fresh_database::create(&env.admin_url, &format!("bench_{run}")).await?;
    let bus = BusSettings {
        bootstrap_servers: env.kafka.clone(),
        registry_url: start_registry(&database_url).await?,
        extra: Default::default(),
        client_id: "studyspot-bench".into(),
        rejoin_when_unassigned: Some(Duration::from_secs(15)),
        session_timeout: Duration::from_secs(45),
    };
    let topic = format!("bench{run}.raw");
    admin::ensure_topics(&bus, &[topic.as_str()], 6, 1).await?;
    let producer = Producer::new(&bus)?;
    let payload = vec![b'x'; 200];
    let started = Instant::now();
    let sends = (0..records).map(|i| {
        let message = OutboundMessage {
            topic: topic.clone(),
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
    let produce = records as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let read = tokio::task::spawn_blocking({
        let (bus, topic) = (bus.clone(), topic.clone());
        move || reader::read_to_end(&bus, &topic, Duration::from_secs(300))
    })
    .await??;
    anyhow::ensure!(read.len() == records, "read {} of {records}", read.len());
    let consume = records as f64 / started.elapsed().as_secs_f64();

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
    let upsert = records as f64 / started.elapsed().as_secs_f64();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let empty = format!("http://{}/empty", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/empty",
        post(|| async { (StatusCode::ACCEPTED, Json(json!({ "command_id": "x", "status_url": "/x" }))) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let body = json!({ "member_id": "mem_bench", "venue_id": "ven_bench" });
    drive(&empty, None, body.clone(), 500, concurrency).await?;
    let empty_handler = drive(&empty, None, body, records.min(30_000), concurrency).await?.per_second;
    Ok(Limits { produce, consume, upsert, empty_handler })
}

/// Records each consumer has applied so far (`applied_events`: commands and events alike).
async fn applied(pool: &PgPool) -> BTreeMap<&'static str, i64> {
    let mut counts = BTreeMap::new();
    for consumer in CONSUMERS {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {consumer}.applied_events"
        )))
        .fetch_one(pool)
        .await
        .unwrap_or(0);
        counts.insert(consumer, n);
    }
    counts
}

/// Samples every consumer's applied count until none has grown for `quiet` (and at least
/// `at_least` passed): each one's rate runs from its first to its last increase in that time.
async fn follow_consumers(
    pool: &PgPool,
    at_least: Duration,
    quiet: Duration,
    limit: Duration,
) -> BTreeMap<&'static str, (i64, f64)> {
    let start = applied(pool).await;
    let mut first: BTreeMap<&str, Instant> = BTreeMap::new();
    let mut last: BTreeMap<&str, (Instant, i64)> = BTreeMap::new();
    let began = Instant::now();
    let mut previous = start.clone();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = applied(pool).await;
        for (consumer, n) in &now {
            if *n > previous[consumer] {
                first.entry(consumer).or_insert_with(Instant::now);
                last.insert(consumer, (Instant::now(), *n));
            }
        }
        previous = now;
        let latest = last.values().map(|(at, _)| *at).max().unwrap_or(began);
        if (began.elapsed() > at_least && latest.elapsed() > quiet) || began.elapsed() > limit {
            break;
        }
    }
    CONSUMERS
        .iter()
        .map(|c| {
            let applied = last.get(c).map_or(0, |(_, n)| n - start[c]);
            let span = match (first.get(c), last.get(c)) {
                (Some(a), Some((b, _))) => b.duration_since(*a).as_secs_f64(),
                _ => 0.0,
            };
            (*c, (applied, if span > 0.5 { applied as f64 / span } else { 0.0 }))
        })
        .collect()
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// A phase's figures: what the load did, its hops, each consumer's rate, the CPU everything
/// spent, and the consumers' round trips to the broker at its end.
struct Phase {
    report: Report,
    hops: Hops,
    rates: BTreeMap<&'static str, (i64, f64)>,
    cpu: Usage,
    round_trips: BTreeMap<String, RoundTrips>,
}

/// librdkafka's view of the broker from one consumer (seconds): request round trip and the
/// client's own queueing, p50 and p99 over its last statistics interval.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct RoundTrips {
    rtt_p50: f64,
    rtt_p99: f64,
    int_latency_p50: f64,
    int_latency_p99: f64,
}

fn meter(stack: &Stack) -> Meter {
    let (groups, broker) = stack.processes();
    Meter::start(groups, broker.map(|pid| ("broker".to_owned(), pid)))
}

/// The broker round trips each consumer exports on `/metrics` (the largest over its brokers).
async fn round_trips(stack: &Stack) -> BTreeMap<String, RoundTrips> {
    let client = reqwest::Client::new();
    let mut all = BTreeMap::new();
    for consumer in CONSUMERS {
        let Some(ops) = stack.ops_address(consumer) else { continue };
        let Ok(text) = client.get(format!("http://{ops}/metrics")).send().await else { continue };
        let Ok(text) = text.text().await else { continue };
        let mut trips = RoundTrips::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name_labels, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let p99 = name_labels.contains("quantile=\"0.99\"");
            let slot = if name_labels.starts_with("studyspot_kafka_broker_rtt_seconds") {
                if p99 { &mut trips.rtt_p99 } else { &mut trips.rtt_p50 }
            } else if name_labels.starts_with("studyspot_kafka_broker_int_latency_seconds") {
                if p99 { &mut trips.int_latency_p99 } else { &mut trips.int_latency_p50 }
            } else {
                continue;
            };
            *slot = slot.max(value);
        }
        all.insert(consumer.to_owned(), trips);
    }
    all
}

/// A load with every hop observed.
async fn measured(
    stack: &Stack,
    gateway: &Gateway,
    tenants: &Arc<Vec<Tenant>>,
    ledger: &Ledger,
    load: Load,
) -> anyhow::Result<Phase> {
    let pool = PgPool::connect(&stack.database_url).await?;
    let duration = load.duration;
    let follow = FollowOns::start(&stack.bus, &stack.prefix, &stack.database_url).await?;
    let cpu = meter(stack);
    let consumers = tokio::spawn({
        let pool = pool.clone();
        async move { follow_consumers(&pool, duration, Duration::from_secs(5), Duration::from_secs(900)).await }
    });
    let report = load::run(gateway.clone(), tenants.clone(), ledger.clone(), load).await?;
    let rates = consumers.await?;
    let cpu = cpu.stop();
    let hops = follow.hops(&report.sent)?;
    Ok(Phase { report, hops, rates, cpu, round_trips: round_trips(stack).await })
}

/// Each consumer alone draining a backlog: every consumer is stopped, the load runs through the
/// gateway for `duration`, then the consumers start one at a time and each is followed until it
/// has applied what waits for it. Returns (applied, records/s, CPU) per consumer.
async fn backlog(
    stack: &mut Stack,
    gateway: &Gateway,
    tenants: &Arc<Vec<Tenant>>,
    ledger: &Ledger,
    load: Load,
) -> anyhow::Result<BTreeMap<&'static str, (i64, f64, Usage)>> {
    for consumer in CONSUMERS {
        if let Some(process) = stack.services.get_mut(consumer) {
            process.stop(Duration::from_secs(20));
        }
    }
    let report = load::run(gateway.clone(), tenants.clone(), ledger.clone(), load).await?;
    eprintln!("  backlog: {} commands accepted with every consumer stopped", report.accepted);
    let pool = PgPool::connect(&stack.database_url).await?;
    let mut drained = BTreeMap::new();
    // Billing first: its follow-on events join the backlog of notifications and alerts.
    for consumer in ["billing", "attendance", "notifications", "alerts"] {
        stack.start_service(consumer).await?;
        let cpu = meter(stack);
        let rates =
            follow_consumers(&pool, Duration::ZERO, Duration::from_secs(3), Duration::from_secs(900)).await;
        let cpu = cpu.stop();
        let (applied, rate) = rates.get(consumer).copied().unwrap_or_default();
        eprintln!("  {consumer}: {applied} records at {rate:.0}/s");
        drained.insert(consumer, (applied, rate, cpu));
    }
    Ok(drained)
}

/// The processes that spent CPU (at least 10 ms), busiest first.
fn busiest(usage: &Usage) -> Vec<(&String, &f64)> {
    let mut by_use: Vec<(&String, &f64)> = usage.cpu_seconds.iter().filter(|(_, s)| **s >= 0.01).collect();
    by_use.sort_by(|a, b| b.1.total_cmp(a.1));
    by_use
}

/// "name 1.23 s (0.41 cores)" for every process that spent CPU, busiest first.
fn cpu_line(usage: &Usage) -> String {
    busiest(usage)
        .iter()
        .map(|(name, s)| format!("{name} {s:.1} s ({:.2})", *s / usage.wall_seconds.max(1e-3)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one unit of work (a command accepted, a record applied) cost in CPU, every process of
/// the system together, the rate this machine's cores allow at that cost, and whether CPU is what binds:
/// a phase that kept the cores busy ran into the ceiling; one that left them idle waited on
/// something else (round trips, commits, the broker's answers).
struct Cost {
    ms_per_unit: f64,
    ceiling_per_second: f64,
    cores_busy: f64,
    cores: f64,
}

impl Cost {
    /// The load generator's own CPU is left out of the cost (a client would run elsewhere) but
    /// counted among the busy cores (here it does take them).
    fn of(usage: &Usage, units: f64) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let system: f64 =
            usage.cpu_seconds.iter().filter(|(name, _)| !name.starts_with("loadgen")).map(|(_, s)| s).sum();
        let ms_per_unit = 1e3 * system / units.max(1.0);
        Self {
            ms_per_unit,
            ceiling_per_second: cores * 1e3 / ms_per_unit.max(1e-6),
            cores_busy: usage.total() / usage.wall_seconds.max(1e-3),
            cores,
        }
    }

    /// Busy above 85% of the cores: CPU binds.
    fn cpu_binds(&self) -> bool {
        self.cores_busy >= 0.85 * self.cores
    }

    fn value(&self) -> String {
        format!("{:.2} ms → ≤ {:.0}/s", self.ms_per_unit, self.ceiling_per_second)
    }

    fn verdict(&self, usage: &Usage, units: f64) -> String {
        let per_process = busiest(usage)
            .iter()
            .map(|(name, s)| format!("{name} {:.2}", 1e3 * **s / units.max(1.0)))
            .collect::<Vec<_>>()
            .join(", ");
        let binds = if self.cpu_binds() {
            format!("CPU binds ({:.1} of {} cores busy)", self.cores_busy, self.cores)
        } else {
            format!("CPU does not bind ({:.1} of {} cores busy): waiting binds", self.cores_busy, self.cores)
        };
        format!("{binds}; ms per process (the load generator not in the total): {per_process}")
    }

    fn json(&self) -> Value {
        json!({ "cpu_ms_per_unit": self.ms_per_unit, "ceiling_per_second": self.ceiling_per_second,
                "cores_busy": self.cores_busy, "cores": self.cores, "cpu_binds": self.cpu_binds() })
    }
}

/// The busiest threads of the broker in a phase.
fn thread_line(usage: &Usage) -> String {
    let mut by_use: Vec<(&String, &f64)> = usage.threads.iter().collect();
    by_use.sort_by(|a, b| b.1.total_cmp(a.1));
    by_use.iter().take(4).map(|(name, s)| format!("{name} {s:.1} s")).collect::<Vec<_>>().join(", ")
}

pub async fn run(env: &Env, options: Options) -> anyhow::Result<()> {
    let bin_dir = crate::bin_dir()?;
    eprintln!("system benchmark: limits ({} records) …", options.records);
    let limits = limits(env, options.records, options.concurrency).await?;

    let home = std::env::temp_dir().join(format!("studyspot-bench-system-{}", uuid::Uuid::now_v7().simple()));
    eprintln!("starting the system (binaries in {}, logs in {}) …", bin_dir.display(), home.display());
    let mut stack = Stack::start(StackOptions {
        bin_dir,
        home: home.clone(),
        infrastructure: Infrastructure::Shared { admin_url: env.admin_url.clone(), kafka: env.kafka.clone() },
        env: vec![("STUDYSPOT_BILLING__SUBSCRIPTIONS__SCHEDULER_INTERVAL_SECS".into(), "5".into())],
        partitions: options.partitions,
    })
    .await?;
    let gateway = Gateway::new(&stack.gateway_url, Duration::from_secs(30))?;
    let ledger = Ledger::create(&home.join("ledger.ndjson"))?;
    let tenants: Vec<Tenant> = (0..options.organizations)
        .map(|n| Tenant::new(&stack.settings, n, options.members))
        .collect::<anyhow::Result<_>>()?;
    let set_up = Instant::now();
    let n = load::set_up(&gateway, &ledger, &tenants, &stack.mailroom.webhook_base, 5).await?;
    eprintln!("set up: {n} commands applied in {:.1} s", set_up.elapsed().as_secs_f64());
    let tenants = Arc::new(tenants);
    let seconds = Duration::from_secs(options.seconds);
    let saturate = |transport, seed| Load {
        rate: None,
        duration: seconds,
        concurrency: options.concurrency,
        transports: vec![transport],
        seed,
        follow_ups: false,
    };

    eprintln!("gateway at saturation over HTTP, then gRPC …");
    let cpu = meter(&stack);
    let http =
        load::run(gateway.clone(), tenants.clone(), ledger.clone(), saturate(Transport::Http, 1)).await?;
    let http_cpu = cpu.stop();
    let pool = PgPool::connect(&stack.database_url).await?;
    follow_consumers(&pool, Duration::ZERO, Duration::from_secs(5), Duration::from_secs(900)).await;
    let cpu = meter(&stack);
    let grpc =
        load::run(gateway.clone(), tenants.clone(), ledger.clone(), saturate(Transport::Grpc, 2)).await?;
    let grpc_cpu = cpu.stop();
    follow_consumers(&pool, Duration::ZERO, Duration::from_secs(5), Duration::from_secs(900)).await;

    eprintln!("fixed offered load {} commands/s …", options.rate);
    let fixed_load = Load {
        rate: Some(options.rate),
        duration: seconds,
        concurrency: 512,
        transports: vec![Transport::Http, Transport::Grpc],
        seed: 3,
        follow_ups: true,
    };
    let fixed = measured(&stack, &gateway, &tenants, &ledger, fixed_load).await?;
    eprintln!("saturation with follow-on events …");
    let saturated = measured(
        &stack,
        &gateway,
        &tenants,
        &ledger,
        Load {
            transports: vec![Transport::Http, Transport::Grpc],
            follow_ups: true,
            ..saturate(Transport::Http, 4)
        },
    )
    .await?;
    eprintln!("each consumer draining a backlog on its own …");
    let drained = backlog(
        &mut stack,
        &gateway,
        &tenants,
        &ledger,
        Load {
            transports: vec![Transport::Http, Transport::Grpc],
            duration: Duration::from_secs(options.backlog_seconds),
            ..saturate(Transport::Http, 5)
        },
    )
    .await?;
    let peaks = stack.peak_rss();
    let crashed = stack.crashed();
    stack.shutdown();
    if let Some(crash) = crashed {
        anyhow::bail!("a process crashed during the benchmark: {crash}");
    }

    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut row = |name: &str, value: String, ratio: String| rows.push((name.to_owned(), value, ratio));
    row(
        "limit: broker produce (200 B, idempotent, lz4)",
        format!("{:.0} msgs/s", limits.produce),
        String::new(),
    );
    row("limit: broker consume (200 B, raw)", format!("{:.0} msgs/s", limits.consume), String::new());
    row("limit: PostgreSQL batched upsert", format!("{:.0} rows/s", limits.upsert), String::new());
    row("limit: empty axum handler", format!("{:.0} req/s", limits.empty_handler), String::new());
    let pct = |a: f64, b: f64| format!("{:.1}% of ", 100.0 * a / b.max(1e-9));
    for (name, report, cpu) in [
        ("gateway commands, HTTP keep-alive", &http, &http_cpu),
        ("gateway commands, gRPC", &grpc, &grpc_cpu),
    ] {
        row(
            name,
            format!("{:.0}/s", report.accepted_per_second()),
            format!(
                "{}empty handler, {}produce",
                pct(report.accepted_per_second(), limits.empty_handler),
                pct(report.accepted_per_second(), limits.produce)
            ),
        );
        row("  CPU (cores busy)", String::new(), cpu_line(cpu));
        row("  broker threads", String::new(), thread_line(cpu));
        let units = report.accepted as f64;
        let cost = Cost::of(cpu, units);
        row("  CPU per command, all processes", cost.value(), cost.verdict(cpu, units));
    }
    for (consumer, (n, rate, cpu)) in &drained {
        row(
            &format!("{consumer}: records applied from a backlog, alone"),
            format!("{rate:.0}/s ({n})"),
            format!("{}consume, {:.1}% of upsert", pct(*rate, limits.consume), 100.0 * rate / limits.upsert),
        );
        row("  CPU (cores busy)", String::new(), cpu_line(cpu));
        let cost = Cost::of(cpu, *n as f64);
        row("  CPU per record, all processes", cost.value(), cost.verdict(cpu, *n as f64));
    }
    for (name, phase) in
        [(format!("fixed {:.0}/s offered", options.rate), &fixed), ("saturation".to_owned(), &saturated)]
    {
        let (report, hops) = (&phase.report, &phase.hops);
        row(
            &format!("{name}: accepted"),
            format!("{:.0}/s", report.accepted_per_second()),
            format!("{} shed, {} gave up", report.shed, report.gave_up),
        );
        let quantiles = |h: &Histogram<u64>| {
            (
                format!("p50 {:.1} ms", ms(h, 0.5)),
                format!("p99 {:.1} ms  p99.9 {:.1} ms", ms(h, 0.99), ms(h, 0.999)),
            )
        };
        let (p50, rest) = quantiles(&report.accept_latency);
        row(&format!("{name}: request → 202"), p50, rest);
        for (hop, h, missing) in [
            ("request → command readable", &hops.request_to_command, hops.without_command),
            ("command → outcome committed", &hops.command_to_commit, hops.without_commit),
            ("request → outcome committed (no tail)", &hops.request_to_commit, hops.without_commit),
            ("committed → follow-on readable", &hops.commit_to_event, 0),
            ("request → follow-on readable", &hops.request_to_event, hops.without_event),
        ] {
            let (p50, rest) = quantiles(h);
            let without = if missing > 0 {
                format!("  ({missing} of {} without)", report.accepted)
            } else {
                String::new()
            };
            row(&format!("{name}: {hop}"), p50, format!("{rest}{without}"));
        }
        for (consumer, (n, rate)) in &phase.rates {
            row(&format!("{name}: {consumer} records applied"), format!("{rate:.0}/s ({n})"), String::new());
        }
        row("  CPU (cores busy)", String::new(), cpu_line(&phase.cpu));
        row("  broker threads", String::new(), thread_line(&phase.cpu));
        let units = report.accepted as f64;
        let cost = Cost::of(&phase.cpu, units);
        row("  CPU per command, all processes", cost.value(), cost.verdict(&phase.cpu, units));
        for (consumer, trips) in &phase.round_trips {
            row(
                &format!("  {consumer}: librdkafka → broker"),
                format!("rtt p50 {:.1} ms", trips.rtt_p50 * 1e3),
                format!(
                    "rtt p99 {:.1} ms, queueing (int_latency) p50 {:.1} ms p99 {:.1} ms",
                    trips.rtt_p99 * 1e3,
                    trips.int_latency_p50 * 1e3,
                    trips.int_latency_p99 * 1e3
                ),
            );
        }
    }
    for (name, kib) in &peaks {
        row(&format!("peak RSS {name}"), format!("{:.1} MiB", *kib as f64 / 1024.0), String::new());
    }
    let quantiles_json = |h: &Histogram<u64>| json!({ "p50": ms(h, 0.5), "p99": ms(h, 0.99), "p999": ms(h, 0.999), "count": h.len() });
    let rates_json = |r: &BTreeMap<&str, (i64, f64)>| -> Value {
        r.iter()
            .map(|(c, (n, rate))| ((*c).to_owned(), json!({ "applied": n, "per_second": rate })))
            .collect()
    };
    let phase_json = |p: &Phase| {
        let r = &p.report;
        json!({
            "accepted_per_second": r.accepted_per_second(), "accepted": r.accepted, "shed": r.shed, "gave_up": r.gave_up,
            "accept_ms": quantiles_json(&r.accept_latency),
            "request_to_command_ms": quantiles_json(&p.hops.request_to_command),
            "command_to_commit_ms": quantiles_json(&p.hops.command_to_commit),
            "request_to_commit_ms": quantiles_json(&p.hops.request_to_commit),
            "commit_to_event_ms": quantiles_json(&p.hops.commit_to_event),
            "follow_on_ms": quantiles_json(&p.hops.request_to_event),
            "without": { "command": p.hops.without_command, "commit": p.hops.without_commit, "event": p.hops.without_event },
            "consumers": rates_json(&p.rates),
            "cpu": p.cpu,
            "cost": Cost::of(&p.cpu, r.accepted as f64).json(),
            "round_trips": p.round_trips,
        })
    };
    let document = json!({
        "partitions": options.partitions,
        "limits": { "produce_per_second": limits.produce, "consume_per_second": limits.consume,
                    "upsert_rows_per_second": limits.upsert, "empty_handler_per_second": limits.empty_handler },
        "gateway": { "http_per_second": http.accepted_per_second(), "grpc_per_second": grpc.accepted_per_second(),
                     "http_ratio_to_empty_handler": http.accepted_per_second() / limits.empty_handler,
                     "grpc_ratio_to_empty_handler": grpc.accepted_per_second() / limits.empty_handler,
                     "http_cpu": http_cpu, "grpc_cpu": grpc_cpu,
                     "http_cost": Cost::of(&http_cpu, http.accepted as f64).json(),
                     "grpc_cost": Cost::of(&grpc_cpu, grpc.accepted as f64).json() },
        "consumers_from_backlog": drained.iter().map(|(c, (n, rate, cpu))| ((*c).to_owned(), json!({ "applied": n, "per_second": rate, "cpu": cpu, "cost": Cost::of(cpu, *n as f64).json() }))).collect::<serde_json::Map<String, Value>>(),
        "fixed": phase_json(&fixed),
        "fixed_offered_per_second": options.rate,
        "saturation": phase_json(&saturated),
        "peak_rss_kib": peaks,
        "renewal_storm": "studyspot-bench renewals",
    });
    if options.json {
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        println!(
            "system benchmark: {} organizations × {} members, {} s per phase, {} clients at saturation, {} partitions per topic, 2 cores, broker {}",
            options.organizations,
            options.members,
            options.seconds,
            options.concurrency,
            options.partitions,
            env.kafka
        );
        for (name, value, ratio) in rows {
            println!("{name:<48} {value:>18}   {ratio}");
        }
        println!(
            "renewal storm: `just bench renewals --subscriptions N` (time until every invoice is issued and paid)"
        );
    }
    let _ = std::fs::remove_dir_all(&home).context("remove the benchmark's home");
    Ok(())
}
