//! Drives the mix: at a fixed offered rate (open loop: a command starts on schedule whether or not
//! earlier ones finished, up to a bound in flight) or at saturation (closed loop: N clients, each
//! sending its next command as soon as the last was accepted). Every accepted command goes to the
//! ledger; payments are processed once their creation applied, as an app would.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use tokio::sync::Semaphore;

use crate::{
    api::{Gateway, Refused, Transport},
    ledger::{Entry, Ledger},
    mix::{Command, Tenant},
};

#[derive(Clone, Debug)]
pub struct Load {
    /// Commands started per second; None: as fast as `concurrency` clients go.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub concurrency: usize,
    pub transports: Vec<Transport>,
    pub seed: u64,
    /// Process each payment once its creation applied (an app's second step). Off, a client never
    /// waits for a consumer: what is measured is the gateway alone.
    pub follow_ups: bool,
}

/// What a run of the load did.
#[derive(Debug)]
pub struct Report {
    pub elapsed: Duration,
    pub accepted: u64,
    pub refused: u64,
    pub gave_up: u64,
    /// Rate mode: commands not started because `concurrency` were already in flight.
    pub shed: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub by_transport: BTreeMap<String, u64>,
    /// From the first try to the 202, microseconds.
    pub accept_latency: Histogram<u64>,
    /// Each accepted command and when its first request went out.
    pub sent: Vec<(String, Instant)>,
    pub refusals: Vec<String>,
}

impl Report {
    pub fn accepted_per_second(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

struct Shared {
    follow_ups: bool,
    gateway: Gateway,
    ledger: Ledger,
    report: Mutex<Report>,
}

pub async fn run(
    gateway: Gateway,
    tenants: Arc<Vec<Tenant>>,
    ledger: Ledger,
    load: Load,
) -> anyhow::Result<Report> {
    anyhow::ensure!(!tenants.is_empty() && !load.transports.is_empty(), "no tenants or no transport");
    let shared = Arc::new(Shared {
        follow_ups: load.follow_ups,
        gateway,
        ledger,
        report: Mutex::new(Report {
            elapsed: Duration::ZERO,
            accepted: 0,
            refused: 0,
            gave_up: 0,
            shed: 0,
            by_kind: BTreeMap::new(),
            by_transport: BTreeMap::new(),
            accept_latency: Histogram::new_with_bounds(1, 600_000_000, 3)?,
            sent: Vec::new(),
            refusals: Vec::new(),
        }),
    });
    let started = Instant::now();
    let deadline = started + load.duration;
    match load.rate {
        Some(rate) => {
            let mut rng = StdRng::seed_from_u64(load.seed);
            let slots = Arc::new(Semaphore::new(load.concurrency));
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = tokio::task::JoinSet::new();
            while Instant::now() < deadline {
                ticks.tick().await;
                let (tenant, command, transport) = pick(&tenants, &load.transports, &mut rng);
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let shared = shared.clone();
                        tasks.spawn(async move {
                            flow(&shared, &tenant, command, transport).await;
                            drop(permit);
                        });
                    }
                    Err(_) => lock(&shared.report).shed += 1,
                }
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
        None => {
            let mut clients = tokio::task::JoinSet::new();
            for client in 0..load.concurrency {
                let (shared, tenants, transports) =
                    (shared.clone(), tenants.clone(), load.transports.clone());
                let mut rng = StdRng::seed_from_u64(load.seed.wrapping_add(client as u64));
                clients.spawn(async move {
                    while Instant::now() < deadline {
                        let (tenant, command, transport) = pick(&tenants, &transports, &mut rng);
                        flow(&shared, &tenant, command, transport).await;
                    }
                });
            }
            while clients.join_next().await.is_some() {}
        }
    }
    shared.ledger.flush()?;
    let shared = Arc::into_inner(shared).ok_or_else(|| anyhow::anyhow!("a load task outlived the run"))?;
    let mut report = shared.report.into_inner().map_err(|_| anyhow::anyhow!("report lock"))?;
    report.elapsed = started.elapsed();
    Ok(report)
}

fn pick(tenants: &[Tenant], transports: &[Transport], rng: &mut StdRng) -> (Tenant, Command, Transport) {
    let tenant = tenants[rng.random_range(0..tenants.len())].clone();
    let command = tenant.next(rng);
    let transport = *transports.choose(rng).unwrap_or(&Transport::Http);
    (tenant, command, transport)
}

fn lock(report: &Mutex<Report>) -> std::sync::MutexGuard<'_, Report> {
    report.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One step an app takes: a command, and for a payment, processing it once it exists.
async fn flow(shared: &Shared, tenant: &Tenant, command: Command, transport: Transport) {
    let created = send(shared, tenant, &command, transport).await;
    if let (Command::CreatePayment { payment_id, .. }, Some(id), true) =
        (&command, created, shared.follow_ups)
    {
        let decided = shared.gateway.decided(&tenant.staff, &id, shared.gateway.patience).await;
        if decided.is_some_and(|d| d["status"] == "applied") {
            let process = Command::ProcessPayment { payment_id: payment_id.clone() };
            send(shared, tenant, &process, transport).await;
        }
    }
}

async fn send(shared: &Shared, tenant: &Tenant, command: &Command, transport: Transport) -> Option<String> {
    submit(&shared.gateway, &shared.ledger, &shared.report, tenant, command, transport).await
}

/// Submits one command as the tenant's front desk (operators for set-up and billing runs).
async fn submit(
    gateway: &Gateway,
    ledger: &Ledger,
    report: &Mutex<Report>,
    tenant: &Tenant,
    command: &Command,
    transport: Transport,
) -> Option<String> {
    let token = match command {
        Command::Setup { .. } | Command::RunBilling => &tenant.owner,
        _ => &tenant.staff,
    };
    let transport = if command.has_grpc() { transport } else { Transport::Http };
    let started = Instant::now();
    match gateway.submit(token, command, transport).await {
        Ok(command_id) => {
            let entry = Entry {
                command_id: command_id.clone(),
                kind: command.kind().into(),
                organization_id: tenant.organization_id.clone(),
                consumer: command.consumer().into(),
                transport,
                accepted_at_ms: chrono::Utc::now().timestamp_millis(),
                expect: command.expect(),
            };
            if let Err(e) = ledger.record(entry) {
                tracing::error!(error = %e, "the ledger could not be written");
            }
            let mut r = lock(report);
            r.accepted += 1;
            *r.by_kind.entry(command.kind().into()).or_default() += 1;
            *r.by_transport.entry(format!("{transport:?}").to_lowercase()).or_default() += 1;
            let _ = r.accept_latency.record(started.elapsed().as_micros().max(1) as u64);
            r.sent.push((command_id.clone(), started));
            Some(command_id)
        }
        Err(refused) => {
            let mut r = lock(report);
            match &refused {
                Refused::Invalid(_) => r.refused += 1,
                Refused::GaveUp(_) => r.gave_up += 1,
            }
            if r.refusals.len() < 20 {
                r.refusals.push(refused.to_string());
            }
            None
        }
    }
}

/// Sets the tenants up through the gateway (operators' commands, over HTTP), waiting for each
/// stage to apply before the next; every command goes to the ledger too.
pub async fn set_up(
    gateway: &Gateway,
    ledger: &Ledger,
    tenants: &[Tenant],
    webhook_base: &str,
    renewing_every: usize,
) -> anyhow::Result<usize> {
    use futures::StreamExt as _;
    let report = Mutex::new(Report {
        elapsed: Duration::ZERO,
        accepted: 0,
        refused: 0,
        gave_up: 0,
        shed: 0,
        by_kind: BTreeMap::new(),
        by_transport: BTreeMap::new(),
        accept_latency: Histogram::new(3)?,
        sent: Vec::new(),
        refusals: Vec::new(),
    });
    let stages: Vec<Vec<Vec<Command>>> =
        tenants.iter().map(|t| t.setup(webhook_base, renewing_every)).collect();
    let mut total = 0;
    for stage in 0..stages.first().map_or(0, Vec::len) {
        let work: Vec<(&Tenant, &Command)> =
            tenants.iter().zip(&stages).flat_map(|(t, s)| s[stage].iter().map(move |c| (t, c))).collect();
        let ids: Vec<(String, &Tenant, &Command)> = futures::stream::iter(work)
            .map(|(tenant, command)| {
                let report = &report;
                async move {
                    submit(gateway, ledger, report, tenant, command, Transport::Http)
                        .await
                        .map(|id| (id, tenant, command))
                }
            })
            .buffer_unordered(32)
            .filter_map(|x| async move { x })
            .collect()
            .await;
        {
            let r = lock(&report);
            anyhow::ensure!(r.refused + r.gave_up == 0, "set-up refused: {:?}", r.refusals);
        }
        let decided: Vec<Option<serde_json::Value>> = futures::stream::iter(&ids)
            .map(|(id, tenant, _)| gateway.decided(&tenant.owner, id, Duration::from_secs(180)))
            .buffer_unordered(32)
            .collect()
            .await;
        for ((_, _, command), status) in ids.iter().zip(decided) {
            let status = status.ok_or_else(|| anyhow::anyhow!("{} undecided after 180 s", command.kind()))?;
            anyhow::ensure!(status["status"] == "applied", "set-up {} not applied: {status}", command.kind());
        }
        total += ids.len();
    }
    ledger.flush()?;
    Ok(total)
}
