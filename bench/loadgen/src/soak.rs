//! The chaos soak: the whole system on infrastructure of its own, the mixed load, and SIGKILLs of
//! every consumer, the gateway, the broker and PostgreSQL at moments a seeded RNG picks; then the
//! invariant checker. The seed is printed, so a failing run can be repeated.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

use crate::{
    api::{Gateway, Transport},
    checker,
    ledger::Ledger,
    load::{self, Load},
    mix::Tenant,
    stack::{CONSUMERS, Infrastructure, Stack, StackOptions},
};

pub struct SoakOptions {
    pub duration: Duration,
    pub seed: u64,
    pub faults: usize,
    pub organizations: usize,
    pub members: usize,
    pub rate: f64,
    pub bin_dir: PathBuf,
    pub home: PathBuf,
    pub tansu: PathBuf,
    pub spare_broker: bool,
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct Fault {
    pub at_secs: f64,
    pub target: String,
    pub down_ms: u128,
    pub back_ms: u128,
}

/// Runs the soak; true when no invariant was broken.
pub async fn run(options: SoakOptions) -> anyhow::Result<bool> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    println!(
        "soak: seed {} · {:.1} min · {} faults · {} organizations × {} members · {} commands/s offered · home {}",
        options.seed,
        options.duration.as_secs_f64() / 60.0,
        options.faults,
        options.organizations,
        options.members,
        options.rate,
        options.home.display()
    );
    let started = Instant::now();
    let mut stack = Stack::start(StackOptions {
        bin_dir: options.bin_dir.clone(),
        home: options.home.clone(),
        infrastructure: Infrastructure::Owned { tansu: options.tansu.clone() },
        env: vec![
            // Renewals fall due while the load runs; billing asks for them this often.
            ("STUDYSPOT_BILLING__SUBSCRIPTIONS__SCHEDULER_INTERVAL_SECS".into(), "5".into()),
            ("STUDYSPOT_CONSUMER__MAX_BATCH".into(), "200".into()),
        ],
        partitions: 3,
    })
    .await?;
    println!(
        "stack up in {:.1} s (broker {}, PostgreSQL port {})",
        started.elapsed().as_secs_f64(),
        stack.kafka,
        stack.postgres.as_ref().map_or(0, |p| p.port)
    );
    let gateway = Gateway::new(&stack.gateway_url, Duration::from_secs(120))?;
    let ledger = Ledger::create(&options.home.join("ledger.ndjson"))?;
    let tenants: Vec<Tenant> = (0..options.organizations)
        .map(|n| Tenant::new(&stack.settings, n, options.members))
        .collect::<anyhow::Result<_>>()?;
    let set_up = load::set_up(&gateway, &ledger, &tenants, &stack.mailroom.webhook_base, 5).await?;
    println!("set up: {set_up} commands applied in {:.1} s", started.elapsed().as_secs_f64());

    let load = Load {
        rate: Some(options.rate),
        duration: options.duration,
        concurrency: 256,
        transports: vec![Transport::Http, Transport::Grpc],
        seed: rng.random(),
        follow_ups: true,
    };
    let running = tokio::spawn(load::run(gateway.clone(), Arc::new(tenants), ledger.clone(), load));

    // Faults: every target in turn (a shuffled cycle), at random moments spread over the run.
    let mut targets: Vec<String> = CONSUMERS.iter().map(|c| (*c).to_owned()).collect();
    targets.extend(["gateway".into(), "postgres".into()]);
    if options.spare_broker {
        println!("the broker is spared (--spare-broker)");
    } else {
        targets.push("broker".into());
    }
    let mut cycle = Vec::new();
    let mut faults = Vec::new();
    // When the notifications process was killed (once reaped): what may make an e-mail go twice.
    let mut notifications_killed = Vec::new();
    // What went wrong besides the faults we injected: restarts a supervisor did.
    let mut incidents: Vec<String> = Vec::new();
    let mut stuck: Vec<String> = Vec::new();
    let load_started = Instant::now();
    let slot = options.duration.as_secs_f64() / (options.faults as f64 + 1.0);
    for n in 0..options.faults {
        let at = slot * (n as f64 + 0.5 + rng.random_range(0.0..1.0));
        while load_started.elapsed() < Duration::from_secs_f64(at) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            supervise(&mut stack, &mut incidents).await?;
        }
        supervise(&mut stack, &mut incidents).await?;
        if cycle.is_empty() {
            cycle = targets.clone();
            cycle.shuffle(&mut rng);
        }
        let target = cycle.pop().unwrap_or_default();
        let down = Duration::from_millis(rng.random_range(200..3_000));
        let at_secs = load_started.elapsed().as_secs_f64();
        let back = match inject(&mut stack, &target, down, &mut notifications_killed).await {
            Ok(back) => back,
            Err(e) => {
                // Not fatal to the run: the supervisor restarts it, the checker shows what it cost.
                incidents.push(format!("{target} did not come back after its fault: {e:#}"));
                Duration::ZERO
            }
        };
        println!(
            "fault {:>2} at {at_secs:>6.1} s: SIGKILL {target:<13} down {:>5} ms, ready again after {:>6} ms",
            n + 1,
            down.as_millis(),
            back.as_millis()
        );
        faults.push(Fault { at_secs, target, down_ms: down.as_millis(), back_ms: back.as_millis() });
    }
    while !running.is_finished() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        supervise(&mut stack, &mut incidents).await?;
    }
    let report = running.await??;
    println!(
        "load: {} commands accepted in {:.1} s ({:.0}/s; http {}, grpc {}), {} gave up, {} refused, {} shed",
        report.accepted,
        report.elapsed.as_secs_f64(),
        report.accepted_per_second(),
        report.by_transport.get("http").unwrap_or(&0),
        report.by_transport.get("grpc").unwrap_or(&0),
        report.gave_up,
        report.refused,
        report.shed
    );
    for refusal in report.refusals.iter().take(5) {
        println!("  e.g. {refusal}");
    }
    let marks: Vec<(String, u64)> = stack.services.iter().map(|(n, p)| (n.clone(), p.log_mark())).collect();
    let pool = sqlx::PgPool::connect(&stack.database_url).await?;
    let entries = ledger.entries();
    let quiet_started = Instant::now();
    let mut quiet = false;
    while !quiet && quiet_started.elapsed() < Duration::from_secs(300) {
        supervise(&mut stack, &mut incidents).await?;
        let (stripe, mailroom) = (&stack.stripe, &stack.mailroom);
        quiet = checker::wait_quiet(
            &pool,
            &entries,
            || stripe.charges().len() + mailroom.delivered().len(),
            Duration::from_secs(15),
        )
        .await;
    }
    println!(
        "{} after {:.1} s",
        if quiet { "quiet" } else { "NOT quiet (checking anyway)" },
        quiet_started.elapsed().as_secs_f64()
    );
    for (name, mark) in &marks {
        if stack
            .services
            .get(name)
            .is_some_and(|p| p.logged_since(*mark, "no partitions assigned; rejoining"))
        {
            println!(
                "  {name} was left without partitions after the load (rejoining the group did not help)"
            );
            stuck.push(format!("{name} was left without partitions after the load"));
        }
    }
    let verdict = checker::check(
        &pool,
        &stack.bus,
        &stack.prefix,
        &entries,
        &stack.stripe.charges(),
        &stack.mailroom.delivered(),
        &notifications_killed,
    )
    .await?;
    let peaks = stack.peak_rss();
    stack.shutdown();

    let mut violations = verdict.violations.clone();
    for name in &stuck {
        violations
            .push(checker::Violation { invariant: "consumer_without_partitions", detail: name.clone() });
    }
    println!();
    println!("commands accepted      {:>8}  ({} set-up, {} load)", verdict.commands, set_up, report.accepted);
    for (kind, n) in &verdict.outcomes {
        println!("  {kind:<30} {n:>8}");
    }
    println!(
        "faults injected        {:>8}  (+ {} restarts by the supervisor)",
        faults.len(),
        incidents.len()
    );
    for incident in &incidents {
        println!("  ! {}", incident.lines().next().unwrap_or_default());
    }
    println!(
        "charges at the provider{:>8}  ({} repeated keys answered idempotently)",
        verdict.charges,
        stack.stripe.replays()
    );
    println!(
        "messages delivered     {:>8}  ({} sent again after a crash, same Message-ID)",
        verdict.deliveries, verdict.resent_after_crash
    );
    println!("sessions / usage       {:>8} / {}", verdict.sessions, verdict.usage_records);
    println!("metric samples         {:>8}", verdict.samples);
    println!("follow-on events       {:>8}  (each present by id)", verdict.follow_on_events);
    for (name, kib) in &peaks {
        println!("peak RSS {name:<22} {:>8.1} MiB", *kib as f64 / 1024.0);
    }
    println!("violations             {:>8}", violations.len());
    for (invariant, n) in verdict.summary() {
        println!("  {invariant:<30} {n:>8}");
    }
    for v in violations.iter().take(30) {
        println!("  ✗ {}: {}", v.invariant, v.detail);
    }
    let summary = serde_json::json!({
        "seed": options.seed,
        "minutes": options.duration.as_secs_f64() / 60.0,
        "quiet": quiet,
        "commands": verdict.commands,
        "outcomes": verdict.outcomes,
        "faults": faults,
        "incidents": incidents,
        "charges": verdict.charges,
        "deliveries": verdict.deliveries,
        "resent_after_crash": verdict.resent_after_crash,
        "follow_on_events": verdict.follow_on_events,
        "peak_rss_kib": peaks,
        "violations": violations,
    });
    std::fs::write(options.home.join("soak-report.json"), serde_json::to_vec_pretty(&summary)?)?;
    if options.json {
        println!("{summary}");
    }
    println!("seed {} · report {}", options.seed, options.home.join("soak-report.json").display());
    Ok(violations.is_empty() && quiet)
}

/// What an operator's supervisor does (systemd, a liveness probe): a broker that is alive but
/// broken (Tansu's storage task has ended, and every request fails) and a
/// service that exited by itself (e.g. the gateway refuses to start while the broker is away) are
/// started again. Each is an incident, printed with the counts; the checker judges the effects.
async fn supervise(stack: &mut Stack, incidents: &mut Vec<String>) -> anyhow::Result<()> {
    if let Some(broker) = stack.broker.as_mut()
        && broker.broken()
    {
        // The clients that broke it could break it again, so they restart with it.
        incidents.push(
            "the broker's storage failed and it failed every request: restarted it and every client".into(),
        );
        println!(
            "  ! the broker's storage failed and it fails every request: restarting it and every client"
        );
        broker.process.kill();
        broker.start().await?;
        for process in stack.services.values_mut() {
            process.kill();
        }
        for name in CONSUMERS.iter().copied().chain(["gateway"]) {
            if let Err(e) = stack.start_service(name).await {
                incidents.push(format!("{name} did not start again: {e:#}"));
            }
        }
    }
    let exited: Vec<String> = stack
        .services
        .iter_mut()
        .filter_map(|(name, p)| p.exited().map(|status| format!("{name}|{status}")))
        .collect();
    for entry in exited {
        let (name, status) = entry.split_once('|').unwrap_or_default();
        let why = stack.services.get(name).map(|p| p.log_tail(3)).unwrap_or_default();
        println!("  ! {name} exited by itself ({status}): restarting it");
        incidents.push(format!("{name} exited by itself ({status}): restarted\n{why}"));
        if let Err(e) = stack.start_service(name).await {
            incidents.push(format!("{name} did not start again: {e:#}"));
        }
    }
    Ok(())
}

/// SIGKILLs `target`, keeps it down for `down`, starts it again and waits until it serves;
/// returns how long it took to be ready after the restart. The moment the notifications process
/// is dead goes to `notifications_killed`.
async fn inject(
    stack: &mut Stack,
    target: &str,
    down: Duration,
    notifications_killed: &mut Vec<Instant>,
) -> anyhow::Result<Duration> {
    match target {
        "broker" => {
            let broker = stack.broker.as_mut().ok_or_else(|| anyhow::anyhow!("no broker of our own"))?;
            broker.process.kill();
            tokio::time::sleep(down).await;
            let restarted = Instant::now();
            broker.start().await?;
            Ok(restarted.elapsed())
        }
        "postgres" => {
            let postgres =
                stack.postgres.as_mut().ok_or_else(|| anyhow::anyhow!("no PostgreSQL of our own"))?;
            postgres.process.kill();
            tokio::time::sleep(down).await;
            let restarted = Instant::now();
            postgres.start().await?;
            Ok(restarted.elapsed())
        }
        service => {
            let process =
                stack.services.get_mut(service).ok_or_else(|| anyhow::anyhow!("no service {service}"))?;
            process.kill();
            if service == "notifications" {
                notifications_killed.push(Instant::now());
            }
            let mark = process.log_mark();
            tokio::time::sleep(down).await;
            let restarted = Instant::now();
            stack.start_service(service).await?;
            // A consumer is back once it holds partitions again; the next fault waits for that
            // (Tansu keeps a killed member's partitions until its session ends, and a broker
            // restart in that window can leave the group without an owner — see docs/broker.md).
            if CONSUMERS.contains(&service) {
                stack.wait_assigned(service, mark, Duration::from_secs(120)).await?;
            }
            Ok(restarted.elapsed())
        }
    }
}
