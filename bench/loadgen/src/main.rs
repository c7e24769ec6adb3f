//! `studyspot-loadgen run`: the mixed load against a running gateway (e.g. `just up`), with a ledger.
//! `studyspot-loadgen soak`: the chaos soak on a stack of its own (`just soak --minutes N`).

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use studyspot_loadgen::{
    api::{Gateway, Transport},
    ledger::Ledger,
    load::{self, Load},
    mix::Tenant,
    soak::{self, SoakOptions},
};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Drives the mix through a running gateway and writes the ledger of accepted commands.
    Run {
        /// The gateway (HTTP and gRPC on one address).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// Commands per second; 0 for saturation.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Requests in flight at most (clients, at saturation).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, value_delimiter = ',', default_values = ["http", "grpc"])]
        transport: Vec<String>,
        #[arg(long, default_value_t = 4)]
        organizations: usize,
        #[arg(long, default_value_t = 30)]
        members: usize,
        /// Set the organizations up first (plans, venues, members).
        #[arg(long)]
        setup: bool,
        /// Where members' webhook notifications go (`{base}/hooks/{member}`).
        #[arg(long, default_value = "http://127.0.0.1:9")]
        webhook_base: String,
        #[arg(long, default_value = "loadgen-ledger.ndjson")]
        ledger: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The chaos soak: its own stack, mixed load, SIGKILLs, then the invariant checker.
    Soak {
        #[arg(long, default_value_t = 5.0)]
        minutes: f64,
        /// Seed of every random choice (printed; random when absent).
        #[arg(long)]
        seed: Option<u64>,
        /// Faults to inject (each target in turn: four consumers, gateway, broker, PostgreSQL);
        /// default four per minute, at least seven.
        #[arg(long)]
        faults: Option<usize>,
        #[arg(long, default_value_t = 3)]
        organizations: usize,
        #[arg(long, default_value_t = 24)]
        members: usize,
        /// Commands offered per second.
        #[arg(long, default_value_t = 40.0)]
        rate: f64,
        /// Where the soak keeps its databases, broker store, logs, ledger and report.
        #[arg(long, env = "STUDYSPOT_SOAK_HOME")]
        home: Option<PathBuf>,
        /// The workspace's binaries (default: next to this one).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        #[arg(long, env = "STUDYSPOT_TANSU_BIN")]
        tansu: PathBuf,
        /// Leave the broker out of the faults (e.g. to tell a broker's failure from ours; unpatched
        /// Tansu 0.6.0 broke under them, see deploy/local/tansu).
        #[arg(long)]
        spare_broker: bool,
        /// Keep the home directory after a passing run.
        #[arg(long)]
        keep: bool,
        #[arg(long)]
        json: bool,
    },
}

fn transports(names: &[String]) -> anyhow::Result<Vec<Transport>> {
    names
        .iter()
        .map(|n| match n.as_str() {
            "http" => Ok(Transport::Http),
            "grpc" => Ok(Transport::Grpc),
            other => anyhow::bail!("unknown transport {other} (http, grpc)"),
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _logs = studyspot_telemetry::init_logs("loadgen", "text");
    match args.what {
        What::Run {
            gateway,
            rate,
            seconds,
            concurrency,
            transport,
            organizations,
            members,
            setup,
            webhook_base,
            ledger,
            seed,
        } => {
            let settings = studyspot_config::Settings::load_for_tools(None).context("settings")?;
            let api = Gateway::new(&gateway, Duration::from_secs(30))?;
            let ledger = Ledger::create(&ledger)?;
            let tenants: Vec<Tenant> = (0..organizations)
                .map(|n| Tenant::new(&settings, n, members))
                .collect::<anyhow::Result<_>>()?;
            if setup {
                let n = load::set_up(&api, &ledger, &tenants, &webhook_base, 5).await?;
                println!("set up: {n} commands applied");
            }
            let report = load::run(
                api,
                Arc::new(tenants),
                ledger,
                Load {
                    rate: (rate > 0.0).then_some(rate),
                    duration: Duration::from_secs(seconds),
                    concurrency,
                    transports: transports(&transport)?,
                    seed,
                    follow_ups: true,
                },
            )
            .await?;
            println!(
                "{} accepted in {:.1} s ({:.0}/s), {} refused, {} gave up, {} shed; accept p50 {:.2} ms p99 {:.2} ms",
                report.accepted,
                report.elapsed.as_secs_f64(),
                report.accepted_per_second(),
                report.refused,
                report.gave_up,
                report.shed,
                report.accept_latency.value_at_quantile(0.5) as f64 / 1000.0,
                report.accept_latency.value_at_quantile(0.99) as f64 / 1000.0,
            );
            for (kind, n) in &report.by_kind {
                println!("  {kind:<20} {n:>8}");
            }
            Ok(())
        }
        What::Soak {
            minutes,
            seed,
            faults,
            organizations,
            members,
            rate,
            home,
            bin_dir,
            tansu,
            spare_broker,
            keep,
            json,
        } => {
            let seed = seed.unwrap_or_else(rand::random);
            let home = home.unwrap_or_else(|| std::env::temp_dir().join(format!("studyspot-soak-{seed}")));
            anyhow::ensure!(!home.exists(), "{} exists: pick another --home or remove it", home.display());
            std::fs::create_dir_all(&home)?;
            let bin_dir = match bin_dir {
                Some(dir) => dir,
                None => std::env::current_exe()?.parent().context("binary directory")?.to_owned(),
            };
            // Ctrl-C or SIGTERM drops the soak, and with it every process it started.
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let soak = soak::run(SoakOptions {
                duration: Duration::from_secs_f64(minutes * 60.0),
                seed,
                faults: faults.unwrap_or(((minutes * 4.0).round() as usize).max(7)),
                organizations,
                members,
                rate,
                bin_dir,
                home: home.clone(),
                tansu,
                spare_broker,
                json,
            });
            let passed = tokio::select! {
                passed = soak => passed?,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the soak's processes are stopped"),
                _ = term.recv() => anyhow::bail!("terminated; the soak's processes are stopped"),
            };
            if passed && !keep {
                let _ = std::fs::remove_dir_all(&home);
            }
            anyhow::ensure!(passed, "the soak found violations (seed {seed}; logs in {})", home.display());
            println!("soak passed");
            Ok(())
        }
    }
}
