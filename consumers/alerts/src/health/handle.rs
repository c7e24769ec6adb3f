//! The shell of health checks: a definition is stored with its rule; a probe result moves the
//! check's status, joins its history and becomes `studyspot_health_check_up` and latency samples
//! that the rule evaluates at the next tick.

use chrono::DateTime;
use sqlx::PgConnection;
use studyspot_alerts_projection::{
    self as projection, Sample,
    alerting::{self, RuleRow},
    ops::{self, HealthCheckRow, ProbeRow},
};
use studyspot_consumer_runtime::{HandleError, Out};
use studyspot_schemas::{
    Record,
    alerts::{
        AlertConfigChanged, DefineAlertRule, DefineHealthCheck, HealthCheckStatusChanged,
        MetricSampleRecorded, RecordProbeResult,
    },
};

use super::definition::{self, LATENCY_METRIC, UP_METRIC};
use crate::{
    decide::{
        config::Rule,
        health::{Check, Health, Probed, Status, decide_probe},
    },
    shell::AlertsOut,
};

fn fatal(e: impl std::fmt::Display) -> HandleError {
    HandleError::Fatal(format!("alerts projection: {e}"))
}

pub async fn define_health_check(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let message = out.message;
    let c: DefineHealthCheck = message.record()?;
    definition::validate(&c).map_err(|m| HandleError::malformed(DefineHealthCheck::FULL_NAME, m.0))?;
    let at = message.occurred_at()?;
    let org = out.org().to_owned();
    // The rule first, named by the check: a check the rule could not express is not stored.
    let rule_command = definition::rule(&c, message.metadata.clone());
    let rule = match Rule::from_command(&rule_command)
        .map_err(|m| HandleError::malformed(DefineAlertRule::FULL_NAME, m.0))?
    {
        Ok(rule) => rule,
        Err(refusal) => {
            out.refuse::<DefineHealthCheck>(refusal);
            return Ok(());
        }
    };
    ops::upsert_health_check(
        tx,
        &HealthCheckRow {
            organization_id: &org,
            health_check_id: &c.health_check_id,
            name: &c.name,
            kind: &c.kind,
            target: &c.target,
            expected_status: c.expected_status,
            interval_seconds: c.interval_seconds,
            timeout_ms: c.timeout_ms,
            failure_threshold: c.failure_threshold,
            labels: serde_json::to_value(&c.labels).map_err(fatal)?,
            severity: &c.severity,
            enabled: c.enabled,
            at,
        },
    )
    .await?;
    alerting::upsert_rule(
        tx,
        &RuleRow {
            organization_id: &org,
            rule_id: rule.rule_id.as_str(),
            name: &rule.name,
            severity: &rule.severity,
            enabled: rule.enabled,
            definition: serde_json::to_value(&rule).map_err(fatal)?,
            at,
        },
    )
    .await?;
    for (kind, id) in [("health_check", c.health_check_id.as_str()), ("rule", rule.rule_id.as_str())] {
        out.emit(|metadata| AlertConfigChanged {
            metadata,
            kind: kind.into(),
            id: id.into(),
            change: "defined".into(),
        });
    }
    Ok(())
}

pub async fn record_probe_result(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let message = out.message;
    let c: RecordProbeResult = message.record()?;
    let malformed = |reason: &str| HandleError::malformed(RecordProbeResult::FULL_NAME, reason);
    if c.latency_ms < 0 {
        return Err(malformed("latency_ms is negative"));
    }
    let probed_at = DateTime::from_timestamp_millis(c.probed_at)
        .ok_or_else(|| malformed("probed_at is not a valid time"))?;
    let org = out.org().to_owned();
    let loaded = ops::load_health_check_for_update(tx, &org, &c.health_check_id).await?;
    let state = loaded.as_ref().map(|check| Check {
        health: Health {
            status: Status::parse(&check.status),
            consecutive_failures: check.consecutive_failures,
        },
        failure_threshold: check.failure_threshold,
        last_probed_at: check.last_probed_at,
    });
    let Probed { before, after } =
        match decide_probe(state.as_ref(), &c.health_check_id, c.success, probed_at) {
            Ok(probed) => probed,
            Err(refusal) => {
                out.refuse::<RecordProbeResult>(refusal);
                return Ok(());
            }
        };
    // Decided above: a probe of no check is refused.
    let Some(check) = loaded else { return Ok(()) };
    let event_id = &message.metadata.event_id;
    ops::record_probe(
        tx,
        &ProbeRow {
            event_id,
            organization_id: &org,
            health_check_id: &c.health_check_id,
            success: c.success,
            latency_ms: c.latency_ms,
            status_code: c.status_code,
            error: c.error.as_deref(),
            status: after.status.as_str(),
            consecutive_failures: after.consecutive_failures,
            status_changed: after.status != before.status,
            probed_at,
        },
    )
    .await?;
    let labels = definition::sample_labels(&check.health_check_id, &check.name, &check.target);
    let samples = [
        ("up", UP_METRIC, after.status.up_value()),
        ("latency", LATENCY_METRIC, c.latency_ms as f64 / 1000.0),
    ];
    for (suffix, metric, value) in samples {
        projection::insert_sample(
            tx,
            &Sample {
                event_id: format!("{event_id}/{suffix}"),
                organization_id: org.clone(),
                metric: metric.to_owned(),
                labels: serde_json::to_value(&labels).map_err(fatal)?,
                value,
                sampled_at: probed_at,
            },
        )
        .await?;
        out.emit(|metadata| MetricSampleRecorded {
            metadata,
            metric: metric.to_owned(),
            labels: labels.clone(),
            value,
            sampled_at: c.probed_at,
        });
    }
    if after.status != before.status {
        out.emit(|metadata| HealthCheckStatusChanged {
            metadata,
            health_check_id: check.health_check_id.clone(),
            name: check.name.clone(),
            target: check.target.clone(),
            from_status: before.status.as_str().into(),
            to_status: after.status.as_str().into(),
            consecutive_failures: after.consecutive_failures,
            error: c.error.clone(),
            at: c.probed_at,
        });
    }
    Ok(())
}
