//! `studyspot-bench replay`: a history of attendance commands (check-ins and check-outs of members
//! with passes) read back by `studyspot replay` to NDJSON and to Parquet, and rebuilt by
//! `studyspot-attendance rebuild` into a fresh schema — records/s and each process's peak RSS.
//!
//! The history is produced the way an outbox publishes it, many records per broker batch (what
//! the embedded broker needs to be read back quickly: it answers a fetch with about one batch per
//! partition). The rebuild follows a live schema whose positions stand at the end of the history,
//! as a live consumer that applied all of it would; it is not swapped in, so what is measured is
//! reading and applying.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::StreamExt as _;
use studyspot_bus::{OutboundMessage, Producer, TraceContext, admin, history};
use studyspot_schemas::{EventMetadata, attendance, billing};
use studyspot_test_world::World;

const VENUES: usize = 12;
const MEMBERS: usize = 1000;
const BASE_MS: i64 = 1_767_225_600_000;

fn binary(variable: &str) -> anyhow::Result<&'static str> {
    let path = std::env::var(variable).with_context(|| format!("{variable}: the binary to run"))?;
    Ok(Box::leak(path.into_boxed_str()))
}

fn metadata(world: &World, at: i64, correlation: String) -> EventMetadata {
    EventMetadata {
        event_id: uuid::Uuid::now_v7().to_string(),
        occurred_at: at,
        correlation_id: correlation,
        causation_id: None,
        organization_id: world.organization_id(),
        actor: "service:bench".into(),
    }
}

fn venue_of(member: usize) -> String {
    format!("ven_{}", member % VENUES)
}

fn define_venue(world: &World, v: usize) -> attendance::DefineVenue {
    attendance::DefineVenue {
        metadata: metadata(world, BASE_MS - 86_400_000, format!("venue-{v}")),
        venue_id: format!("ven_{v}"),
        name: format!("Venue {v}"),
        time_zone: "Europe/Berlin".into(),
        capacity: MEMBERS as i32,
        zones: Vec::new(),
        seats: Vec::new(),
        opening_hours: (1..=7)
            .map(|weekday| attendance::OpeningHours {
                weekday,
                opens: "00:00".into(),
                closes: "24:00".into(),
            })
            .collect(),
        limits: attendance::VenueLimits {
            max_bookings_per_member: 5,
            max_concurrent_bookings: 1,
            max_days_ahead: 30,
            min_booking_minutes: 30,
            max_booking_minutes: 480,
            no_show_grace_minutes: 15,
            max_stay_minutes: 720,
        },
        qr_required: false,
    }
}

fn grant_pass(world: &World, m: usize) -> attendance::GrantPass {
    attendance::GrantPass {
        metadata: metadata(world, BASE_MS - 86_400_000, format!("pass-{m}")),
        pass_id: format!("pas_{m}"),
        member_id: format!("mem_{m}"),
        venue_id: venue_of(m),
        valid_from: BASE_MS - 86_400_000,
        valid_until: 2_082_758_400_000,
    }
}

/// The `i`-th visit's check-in (`out == false`) or check-out: every member visits once per round,
/// a round every two hours, each stay an hour.
fn visit(world: &World, i: usize, out: bool) -> OutboundRecord {
    let member = i % MEMBERS;
    let round = (i / MEMBERS) as i64;
    let at = BASE_MS + round * 7_200_000 + member as i64 * 1000 + if out { 3_600_000 } else { 0 };
    if out {
        OutboundRecord::CheckOut(attendance::CheckOut {
            metadata: metadata(world, at, format!("visit-{i}")),
            member_id: format!("mem_{member}"),
            venue_id: venue_of(member),
            session_id: Some(format!("ses_{i}")),
            reason: "manual".into(),
            effective_at: None,
        })
    } else {
        OutboundRecord::CheckIn(attendance::CheckIn {
            metadata: metadata(world, at, format!("visit-{i}")),
            session_id: format!("ses_{i}"),
            member_id: format!("mem_{member}"),
            venue_id: venue_of(member),
            seat_id: None,
            zone_id: None,
            qr_token: None,
            staff_assisted: true,
        })
    }
}

enum OutboundRecord {
    CheckIn(attendance::CheckIn),
    CheckOut(attendance::CheckOut),
}

/// Produces the history: venues, passes, then rounds of check-ins and check-outs until `events`
/// records in all.
async fn produce(world: &World, producer: &Producer, events: usize) -> anyhow::Result<usize> {
    let mut setup: Vec<OutboundMessage> = Vec::new();
    for v in 0..VENUES {
        setup.push(OutboundMessage::from_encoded(
            world.codec.encode(&define_venue(world, v)).await?,
            &TraceContext::root(),
        ));
    }
    for m in 0..MEMBERS {
        setup.push(OutboundMessage::from_encoded(
            world.codec.encode(&grant_pass(world, m)).await?,
            &TraceContext::root(),
        ));
    }
    let topic = world.topic(attendance::COMMANDS.name);
    for message in &mut setup {
        message.topic = topic.clone();
    }
    let produced = setup.len();
    for result in futures::future::join_all(setup.iter().map(|m| producer.send(m))).await {
        result?;
    }
    // Visits in rounds: a round's check-ins, then its check-outs, so every check-in finds its
    // member out and every check-out finds them in.
    let visits = events.saturating_sub(produced);
    let per_round = 2 * MEMBERS;
    let mut sent = 0;
    let mut round = 0;
    while sent < visits {
        let mut batch = Vec::with_capacity(per_round);
        for out in [false, true] {
            for m in 0..MEMBERS {
                if sent + batch.len() >= visits {
                    break;
                }
                let encoded = match visit(world, round * MEMBERS + m, out) {
                    OutboundRecord::CheckIn(r) => world.codec.encode(&r).await?,
                    OutboundRecord::CheckOut(r) => world.codec.encode(&r).await?,
                };
                let mut message = OutboundMessage::from_encoded(encoded, &TraceContext::root());
                message.topic = topic.clone();
                batch.push(message);
            }
            // A round's check-outs go after all its check-ins are acknowledged: per venue (the
            // key) order holds anyway, this keeps memory to one round.
            let mut acks = futures::stream::iter(batch.drain(..).map(|m| {
                let producer = producer.clone();
                async move { producer.send(&m).await }
            }))
            .buffer_unordered(per_round);
            while let Some(ack) = acks.next().await {
                ack?;
                sent += 1;
            }
        }
        round += 1;
    }
    Ok(produced + sent)
}

/// What one measured process took: wall seconds, CPU seconds (user + system, its own: on a shared
/// machine the figure that does not depend on the neighbours), and its peak resident set.
struct Measured {
    seconds: f64,
    cpu_seconds: f64,
    peak_mib: f64,
}

/// Runs `command`, sampling its peak resident set (VmHWM) and CPU time until it exits.
fn run_measured(mut command: Command, what: &str) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("cannot start {what}"))?;
    let status_path = format!("/proc/{}/status", child.id());
    let stat_path = format!("/proc/{}/stat", child.id());
    let ticks_per_second = 100.0; // USER_HZ, 100 on every Linux this runs on
    let mut peak_kib = 0u64;
    let mut cpu_ticks = 0u64;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(&status_path)
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            peak_kib = peak_kib.max(kib);
        }
        // utime and stime: the 14th and 15th fields, counted after the parenthesised name.
        if let Ok(stat) = std::fs::read_to_string(&stat_path)
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            let fields: Vec<u64> =
                rest.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
            if fields.len() == 2 {
                cpu_ticks = cpu_ticks.max(fields[0] + fields[1]);
            }
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        // The sampling cadence: VmHWM and CPU time only grow, so a late sample misses little.
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        bail!("{what} failed: {status}");
    }
    Ok(Measured {
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_ticks as f64 / ticks_per_second,
        peak_mib: peak_kib as f64 / 1024.0,
    })
}

/// The 1-minute load average: how busy the machine was around a figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn replay_command(world: &World, cli: &str, format: &str, output: &Path) -> Command {
    let mut command = Command::new(cli);
    command
        .args(["replay", "-t", attendance::COMMANDS.name, "--format", format, "-o"])
        .arg(output)
        .env("STUDYSPOT_KAFKA__BOOTSTRAP_SERVERS", &world.bus.bootstrap_servers)
        .env("STUDYSPOT_KAFKA__TOPIC_PREFIX", &world.prefix)
        .env("STUDYSPOT_REGISTRY__URL", &world.registry_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

/// One figure line: the rate by wall clock and by the process's own CPU time.
fn report(what: &str, unit: &str, count: usize, m: &Measured, detail: &str) {
    println!(
        "{what:<36} {:>10.0} {unit}/s  {:>10.0} {unit}/CPU-s   peak RSS {:.0} MiB   ({detail}; {:.0} s, load {})",
        count as f64 / m.seconds,
        count as f64 / m.cpu_seconds.max(0.01),
        m.peak_mib,
        m.seconds,
        load_average(),
    );
}

fn size_mib(path: &Path) -> f64 {
    let bytes: u64 = if path.is_dir() {
        std::fs::read_dir(path)
            .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    };
    bytes as f64 / (1024.0 * 1024.0)
}

pub async fn run(events: usize, linger_ms: u64) -> anyhow::Result<()> {
    let cli = binary("STUDYSPOT_CLI_BIN")?;
    let attendance_bin = binary("STUDYSPOT_ATTENDANCE_BIN")?;
    let world = World::new("attendance", attendance_bin).await;
    let billing_events = world.topic(billing::EVENTS.name);
    admin::ensure_topics(&world.bus, &[billing_events.as_str()], 3, 1).await?;
    println!(
        "replay benchmark: {events} attendance commands over {} partitions, broker {}, 2 cores",
        3, world.bus.bootstrap_servers
    );

    let mut bus = world.bus.clone();
    // Many records per broker batch, as an outbox page or a bulk load writes them.
    bus.extra.insert("linger.ms".into(), linger_ms.to_string());
    bus.extra.insert("batch.num.messages".into(), "10000".into());
    let producer = Producer::new(&bus)?;
    let started = Instant::now();
    let produced = produce(&world, &producer, events).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{:<36} {:>10.0} records/s   ({produced} records in {seconds:.0} s)",
        format!("produce (linger.ms={linger_ms})"),
        produced as f64 / seconds
    );

    let out = std::env::temp_dir().join(format!("studyspot-bench-replay-{}", world.id));
    std::fs::create_dir_all(&out)?;
    let ndjson = out.join("history.ndjson");
    let m = run_measured(replay_command(&world, cli, "ndjson", &ndjson), "studyspot replay")?;
    let lines = std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&ndjson)?)).count();
    anyhow::ensure!(lines == produced, "NDJSON has {lines} lines for {produced} records");
    report("replay → NDJSON", "records", produced, &m, &format!("{:.0} MiB written", size_mib(&ndjson)));
    std::fs::remove_file(&ndjson)?;
    let parquet = out.join("parquet");
    let m = run_measured(replay_command(&world, cli, "parquet", &parquet), "studyspot replay")?;
    report("replay → Parquet", "records", produced, &m, &format!("{:.0} MiB written", size_mib(&parquet)));
    std::fs::remove_dir_all(&out)?;

    // The live consumer's stand-in: the runtime's tables, positions at the end of the history.
    let live = studyspot_consumer_runtime::connect_schema(&world.database_url, "attendance", 2, None).await?;
    let topic = world.topic(attendance::COMMANDS.name);
    let marks = history::watermarks(&world.bus, std::slice::from_ref(&topic), Duration::from_secs(30))?;
    for (p, m) in &marks {
        sqlx::query("INSERT INTO consumer_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)")
            .bind(&p.topic)
            .bind(p.partition)
            .bind(m.high)
            .execute(&live.pool)
            .await?;
    }
    live.pool.close().await;
    let mut rebuild = world.consumer_command(&world.database_url);
    rebuild
        .args(["rebuild", "--no-swap"])
        // The production defaults (config/studyspot.toml), not the tests' small batches.
        .env("STUDYSPOT_CONSUMER__MAX_BATCH", "500")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let m = run_measured(rebuild, "studyspot-attendance rebuild")?;
    let pool = world.pool().await;
    let sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM attendance_rebuild_1.sessions").fetch_one(&pool).await?;
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM attendance_rebuild_1.sessions WHERE checked_out_at IS NULL")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    let visits = produced - VENUES - MEMBERS;
    let check_ins = visits / (2 * MEMBERS) * MEMBERS + (visits % (2 * MEMBERS)).min(MEMBERS);
    anyhow::ensure!(sessions as usize == check_ins, "{sessions} sessions rebuilt for {check_ins} check-ins");
    report(
        "rebuild attendance (full history)",
        "events",
        produced,
        &m,
        &format!("{sessions} sessions, {open} open"),
    );
    Ok(())
}
