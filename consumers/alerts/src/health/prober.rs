//! The prober: a sidecar of the alerts process. It defines StudySpot's own processes as health
//! checks (from `alerts.health.processes`), then probes every enabled check of every organization
//! on the check's interval and reports each result as a `RecordProbeResult` through the outbox.
//! The wall clock is read here, and only here: the probe's instant travels in the command, so a
//! replay rebuilds the same statuses and alerts.
//!
//! Each alerts instance probes; with several, each result is recorded in the organization's
//! order and a probe older than the check's last is refused (`probe_out_of_order`).
//!
//! Tenants' targets connect only where `[outbound]` allows (see `probe`); the process checks, whose
//! URLs are the operator's configuration, are probed wherever they point.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use sqlx::PgPool;
use studyspot_alerts_projection::ops::{self, HealthCheckView};
use studyspot_bus::TraceContext;
use studyspot_config::AlertsHealth;
use studyspot_consumer_runtime::{OutboxWriter, Sidecar, SidecarContext};
use studyspot_schemas::{
    EventMetadata, Record,
    alerts::{DefineHealthCheck, RecordProbeResult},
};
use tokio_util::sync::CancellationToken;

use super::probe::{self, Outcome, Reach, Target};

const ACTOR: &str = "service:alerts-prober";

type Key = (String, String);

pub fn sidecar() -> Sidecar {
    Box::new(|ctx: SidecarContext| {
        Box::pin(async move {
            let settings = ctx.settings.alerts.health.clone();
            if !settings.enabled {
                return;
            }
            metrics::describe_gauge!(
                "studyspot_health_check_probe_success",
                "1 when the last probe of a health check succeeded, 0 when it failed"
            );
            metrics::describe_histogram!(
                "studyspot_health_check_probe_seconds",
                metrics::Unit::Seconds,
                "How long each health check probe took (up to its timeout)"
            );
            let outbound = match studyspot_outbound::Policy::from_config(&ctx.settings.outbound.allow) {
                Ok(policy) => policy,
                Err(e) => {
                    tracing::error!(error = %e, "outbound.allow is invalid; nothing is probed");
                    return;
                }
            };
            let prober = Prober {
                pool: ctx.pool,
                outbox: ctx.outbox,
                tenants: Reach::new(outbound),
                operator: Reach::anywhere(),
                operator_targets: Arc::new(operator_targets(&settings)),
                in_flight: Arc::new(Mutex::new(HashSet::new())),
            };
            prober.run(&settings, ctx.shutdown).await;
        })
    })
}

#[derive(Clone)]
struct Prober {
    pool: PgPool,
    outbox: OutboxWriter,
    /// Where tenants' targets may connect (`[outbound]`).
    tenants: Reach,
    /// Anywhere: the process checks of `alerts.health.processes`.
    operator: Reach,
    /// The process checks as configured: (organization, target).
    operator_targets: Arc<HashSet<Key>>,
    /// Checks being probed now: a slow target is not probed twice at once.
    in_flight: Arc<Mutex<HashSet<Key>>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Prober {
    async fn run(&self, settings: &AlertsHealth, shutdown: CancellationToken) {
        let mut processes_defined = false;
        let mut last_started: HashMap<Key, Instant> = HashMap::new();
        let mut ticks = tokio::time::interval(Duration::from_millis(settings.tick_ms.max(50)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if !processes_defined {
                match self.define_processes(settings).await {
                    Ok(()) => processes_defined = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not define the process health checks; retrying")
                    }
                }
            }
            let checks = match ops::enabled_health_checks(&self.pool).await {
                Ok(checks) => checks,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the health checks; retrying");
                    continue;
                }
            };
            let now = Instant::now();
            let live: HashSet<Key> = checks.iter().map(key).collect();
            last_started.retain(|k, _| live.contains(k));
            for check in checks {
                let k = key(&check);
                let every = Duration::from_secs(u64::try_from(check.interval_seconds).unwrap_or(1).max(1));
                if last_started.get(&k).is_some_and(|last| now.duration_since(*last) < every) {
                    continue;
                }
                if !self.in_flight.lock().expect("not poisoned").insert(k.clone()) {
                    continue;
                }
                last_started.insert(k.clone(), now);
                let prober = self.clone();
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = prober.probe_and_report(&check) => {}
                    }
                    prober.in_flight.lock().expect("not poisoned").remove(&k);
                });
            }
        }
    }

    async fn probe_and_report(&self, check: &HealthCheckView) {
        let Some(target) = target(check) else {
            tracing::warn!(health_check_id = %check.health_check_id, kind = %check.kind, "unknown health check kind");
            return;
        };
        let probed_at = Utc::now().timestamp_millis();
        let timeout = Duration::from_millis(u64::try_from(check.timeout_ms).unwrap_or(1000).max(1));
        let operators =
            self.operator_targets.contains(&(check.organization_id.clone(), check.target.clone()));
        let reach = if operators { &self.operator } else { &self.tenants };
        let outcome = probe::probe(reach, &target, timeout).await;
        // Prometheus sees each probe as it happens (deploy/prometheus/rules/processes.yml); the
        // alert that counts is the organization's HealthCheckDown, decided on the recorded result.
        let labels = [
            ("organization_id", check.organization_id.clone()),
            ("health_check_id", check.health_check_id.clone()),
            ("target", check.target.clone()),
        ];
        metrics::gauge!("studyspot_health_check_probe_success", &labels).set(if outcome.success {
            1.0
        } else {
            0.0
        });
        metrics::histogram!("studyspot_health_check_probe_seconds", &labels)
            .record(outcome.latency_ms as f64 / 1000.0);
        let command = result(check, probed_at, outcome);
        if let Err(e) = self.enqueue(&command).await {
            tracing::warn!(error = %e, health_check_id = %check.health_check_id, "could not record a probe result");
        }
    }

    async fn enqueue<R: Record>(&self, record: &R) -> Result<(), BoxError> {
        let mut tx = self.pool.begin().await?;
        self.outbox.enqueue(&mut tx, record, &TraceContext::root()).await?;
        tx.commit().await?;
        self.outbox.wake();
        Ok(())
    }

    /// Defines (or redefines) each configured process whose check differs from its definition.
    async fn define_processes(&self, settings: &AlertsHealth) -> Result<(), BoxError> {
        let existing: HashMap<Key, HealthCheckView> =
            ops::enabled_health_checks(&self.pool).await?.into_iter().map(|c| (key(&c), c)).collect();
        for command in process_checks(settings, Utc::now().timestamp_millis()) {
            let k = (command.metadata.organization_id.clone(), command.health_check_id.clone());
            if existing.get(&k).is_some_and(|c| same_definition(c, &command)) {
                continue;
            }
            self.enqueue(&command).await?;
            tracing::info!(health_check_id = %command.health_check_id, target = %command.target, "process health check defined");
        }
        Ok(())
    }
}

/// The targets of the process checks in their organization: configured by the operator, so not
/// held to the outbound policy (a tenant's check with the same URL in another organization is).
fn operator_targets(settings: &AlertsHealth) -> HashSet<Key> {
    settings
        .processes
        .values()
        .filter(|url| !url.trim().is_empty())
        .map(|url| (settings.organization_id.clone(), url.clone()))
        .collect()
}

fn key(c: &HealthCheckView) -> Key {
    (c.organization_id.clone(), c.health_check_id.clone())
}

fn target(c: &HealthCheckView) -> Option<Target> {
    match c.kind.as_str() {
        "http" => Some(Target::Http {
            url: c.target.clone(),
            expected_status: u16::try_from(c.expected_status).unwrap_or(200),
        }),
        "tcp" => Some(Target::Tcp { address: c.target.clone() }),
        _ => None,
    }
}

fn metadata(organization_id: &str, name: String, at_ms: i64) -> EventMetadata {
    EventMetadata {
        event_id: uuid::Uuid::now_v7().to_string(),
        occurred_at: at_ms,
        correlation_id: name,
        causation_id: None,
        organization_id: organization_id.to_owned(),
        actor: ACTOR.to_owned(),
    }
}

pub fn result(check: &HealthCheckView, probed_at: i64, o: Outcome) -> RecordProbeResult {
    RecordProbeResult {
        metadata: metadata(
            &check.organization_id,
            format!("probe/{}/{probed_at}", check.health_check_id),
            probed_at,
        ),
        health_check_id: check.health_check_id.clone(),
        success: o.success,
        latency_ms: o.latency_ms,
        status_code: o.status_code,
        error: o.error,
        probed_at,
    }
}

/// The configured processes as health checks of `alerts.health.organization_id`, named
/// `hck_process_<name>` and labelled `process`.
pub fn process_checks(settings: &AlertsHealth, now_ms: i64) -> Vec<DefineHealthCheck> {
    settings
        .processes
        .iter()
        .filter(|(_, url)| !url.trim().is_empty())
        .map(|(name, url)| DefineHealthCheck {
            metadata: metadata(&settings.organization_id, format!("process-check/{name}"), now_ms),
            health_check_id: format!("hck_process_{name}"),
            name: format!("{name} process"),
            kind: "http".into(),
            target: url.clone(),
            expected_status: 200,
            interval_seconds: settings.process_interval_seconds,
            timeout_ms: settings.process_timeout_ms,
            failure_threshold: settings.process_failure_threshold,
            labels: HashMap::from([("process".to_owned(), name.clone())]),
            severity: settings.process_severity.clone(),
            enabled: true,
        })
        .collect()
}

fn same_definition(c: &HealthCheckView, d: &DefineHealthCheck) -> bool {
    let labels = serde_json::to_value(&d.labels).unwrap_or_default();
    c.name == d.name
        && c.kind == d.kind
        && c.target == d.target
        && c.expected_status == d.expected_status
        && c.interval_seconds == d.interval_seconds
        && c.timeout_ms == d.timeout_ms
        && c.failure_threshold == d.failure_threshold
        && c.severity == d.severity
        && c.labels == labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AlertsHealth {
        let defaults = studyspot_config::Settings::load(None).expect("the documented defaults load");
        defaults.alerts.health
    }

    #[test]
    fn every_process_with_a_url_becomes_a_valid_check_of_the_operators_organization() {
        let mut s = settings();
        s.processes.insert("billing".into(), String::new());
        let checks = process_checks(&s, 1_700_000_000_000);
        let ids: Vec<&str> = checks.iter().map(|c| c.health_check_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "hck_process_alerts",
                "hck_process_attendance",
                "hck_process_gateway",
                "hck_process_notifications"
            ]
        );
        for c in &checks {
            super::super::definition::validate(c).expect("valid");
            assert_eq!(c.metadata.organization_id, s.organization_id);
            assert!(c.target.ends_with("/ready"), "{}", c.target);
        }
    }
}
