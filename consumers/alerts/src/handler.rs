//! Alerts' handler: load what a command needs, let `decide` rule, write the projection, emit the
//! follow-on events. Billing's payment outcomes become samples of `studyspot_payments` (a
//! `RecordMetricSample` on alerts' own organization-keyed command topic, id derived from the
//! event's), so samples and evaluation ticks of one organization are applied in one order and a
//! replay rebuilds the same alert history.

use std::collections::HashMap;

use chrono::DateTime;
use sqlx::PgConnection;
use studyspot_alerts_projection::{
    self as projection, Sample,
    alerting::{self, AlertRow, ConfigKind, HistoryRow, NotificationRow, RuleRow, SilenceRow},
};
use studyspot_consumer_runtime::{Effects, HandleError, Handler, Inbound, Out, malformed};
use studyspot_schemas::{
    Record,
    alerts::{
        AlertFired, AlertResolved, AlertStateChanged, CreateSilence, DefineAlertRule, DefineInhibitRule,
        DefineRoute, EvaluateRules, ExpireSilence, MetricSample, MetricSampleRecorded, RecordMetricSample,
        RecordMetricSamples,
    },
    alerts::{DefineDashboard, DefineReport, GenerateReports, PruneMetricSamples},
    alerts::{DefineHealthCheck, EnforceLogRetention, RecordLogs, RecordProbeResult},
    attendance::{self, CheckedIn, SessionCompleted},
    billing::{self, PaymentFailed, PaymentSucceeded},
    notifications,
};

use crate::{
    derived,
    shell::{ACTOR, AlertsOut, from_json, time, to_json},
};

use crate::decide::{
    Labels, Malformed,
    config::{InhibitRule, Receiver, Route, Rule, Silence},
    evaluate::{self, Alert, Notification, Tick},
    samples::{validate_one, validate_sample},
    series,
    tick::{self, decide_tick},
};

/// The metric attendance's check-ins and completed sessions become: the venue's occupancy (people
/// checked in) after the change, labelled `venue_id`.
pub const OCCUPANCY_METRIC: &str = "studyspot_venue_occupancy";

/// The metric billing's payment outcomes become: one sample of 1 per payment, labelled
/// `outcome` (`succeeded` / `failed`), `connector` and `method`.
pub const PAYMENTS_METRIC: &str = "studyspot_payments";

#[derive(Debug, Default, Clone)]
pub struct AlertsHandler;

impl Handler for AlertsHandler {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        message: &Inbound,
        effects: &mut Effects,
    ) -> Result<(), HandleError> {
        let mut out = Out::new(message, effects, ACTOR);
        match message.record_type.as_str() {
            RecordMetricSample::FULL_NAME => record_sample(tx, &mut out).await,
            RecordMetricSamples::FULL_NAME => record_samples(tx, &mut out).await,
            DefineAlertRule::FULL_NAME => define_rule(tx, &mut out).await,
            DefineRoute::FULL_NAME => define_route(tx, &mut out).await,
            DefineInhibitRule::FULL_NAME => define_inhibit_rule(tx, &mut out).await,
            CreateSilence::FULL_NAME => create_silence(tx, &mut out).await,
            ExpireSilence::FULL_NAME => expire_silence(tx, &mut out).await,
            EvaluateRules::FULL_NAME => evaluate_rules(tx, &mut out).await,
            DefineHealthCheck::FULL_NAME => crate::health::define_health_check(tx, &mut out).await,
            RecordProbeResult::FULL_NAME => crate::health::record_probe_result(tx, &mut out).await,
            RecordLogs::FULL_NAME => crate::logs::record(tx, message).await,
            EnforceLogRetention::FULL_NAME => crate::logs::enforce_retention(tx, message).await,
            PruneMetricSamples::FULL_NAME => crate::retention::prune(tx, &mut out).await,
            DefineDashboard::FULL_NAME => crate::dashboards::define(tx, &mut out).await,
            DefineReport::FULL_NAME => crate::reports::define(tx, &mut out).await,
            GenerateReports::FULL_NAME => crate::reports::generate(tx, &mut out).await,
            PaymentSucceeded::FULL_NAME => {
                let e: PaymentSucceeded = message.record()?;
                payment_sample(&mut out, "succeeded", &e.connector, &e.method);
                derived::payment_amount(
                    &mut out,
                    "succeeded",
                    e.amount_minor,
                    &e.currency,
                    &e.connector,
                    &e.method,
                );
                Ok(())
            }
            PaymentFailed::FULL_NAME => {
                let e: PaymentFailed = message.record()?;
                payment_sample(&mut out, "failed", &e.connector, &e.method);
                derived::payment_amount(
                    &mut out,
                    "failed",
                    e.amount_minor,
                    &e.currency,
                    &e.connector,
                    &e.method,
                );
                Ok(())
            }
            CheckedIn::FULL_NAME => {
                let e: CheckedIn = message.record()?;
                occupancy_sample(&mut out, &e.venue_id, e.occupancy);
                derived::occupancy_ratio(tx, &mut out, &e.venue_id, e.occupancy).await
            }
            SessionCompleted::FULL_NAME => {
                let e: SessionCompleted = message.record()?;
                occupancy_sample(&mut out, &e.venue_id, e.occupancy);
                derived::occupancy_ratio(tx, &mut out, &e.venue_id, e.occupancy).await
            }
            name if derived::handles(name) => derived::apply(tx, &mut out).await,
            // Billing's, attendance's and notifications' other events are not (yet) metrics.
            _ if message.topic.ends_with(billing::EVENTS.name)
                || message.topic.ends_with(attendance::EVENTS.name)
                || message.topic.ends_with(notifications::EVENTS.name) =>
            {
                Ok(())
            }
            other => Err(HandleError::UnknownRecord(other.to_owned())),
        }
    }
}

async fn store_sample(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    index: usize,
    s: MetricSample,
) -> Result<(), HandleError> {
    let labels = to_json(&s.labels)?;
    projection::insert_sample(
        tx,
        &Sample {
            event_id: format!("{}/{index}", out.message.metadata.event_id),
            organization_id: out.org().to_owned(),
            metric: s.metric.clone(),
            labels,
            value: s.value,
            sampled_at: time::<RecordMetricSamples>("sampled_at", s.sampled_at)?,
        },
    )
    .await?;
    out.emit(|metadata| MetricSampleRecorded {
        metadata,
        metric: s.metric,
        labels: s.labels,
        value: s.value,
        sampled_at: s.sampled_at,
    });
    Ok(())
}

async fn record_sample(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: RecordMetricSample = out.message.record()?;
    validate_sample(&c).map_err(malformed::<RecordMetricSample>)?;
    let sample =
        MetricSample { metric: c.metric, labels: c.labels, value: c.value, sampled_at: c.sampled_at };
    store_sample(tx, out, 0, sample).await
}

async fn record_samples(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: RecordMetricSamples = out.message.record()?;
    if c.samples.is_empty() {
        return Err(HandleError::malformed(RecordMetricSamples::FULL_NAME, "samples is empty"));
    }
    for (i, s) in c.samples.iter().enumerate() {
        validate_one(s)
            .map_err(|m| malformed::<RecordMetricSamples>(Malformed(format!("samples[{i}]: {}", m.0))))?;
    }
    for (i, s) in c.samples.into_iter().enumerate() {
        store_sample(tx, out, i, s).await?;
    }
    Ok(())
}

fn payment_sample(out: &mut Out<'_>, outcome: &str, connector: &str, method: &str) {
    let sampled_at = out.message.metadata.occurred_at;
    out.emit(|metadata| RecordMetricSample {
        metadata,
        metric: PAYMENTS_METRIC.into(),
        labels: HashMap::from([
            ("outcome".to_owned(), outcome.to_owned()),
            ("connector".to_owned(), connector.to_owned()),
            ("method".to_owned(), method.to_owned()),
        ]),
        value: 1.0,
        sampled_at,
    });
}

fn occupancy_sample(out: &mut Out<'_>, venue_id: &str, occupancy: i32) {
    let sampled_at = out.message.metadata.occurred_at;
    out.emit(|metadata| RecordMetricSample {
        metadata,
        metric: OCCUPANCY_METRIC.into(),
        labels: HashMap::from([("venue_id".to_owned(), venue_id.to_owned())]),
        value: f64::from(occupancy),
        sampled_at,
    });
}

async fn define_rule(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: DefineAlertRule = out.message.record()?;
    let rule = match Rule::from_command(&c).map_err(malformed::<DefineAlertRule>)? {
        Ok(r) => r,
        Err(refusal) => {
            out.refuse::<DefineAlertRule>(refusal);
            return Ok(());
        }
    };
    let row = RuleRow {
        organization_id: out.org(),
        rule_id: rule.rule_id.as_str(),
        name: &rule.name,
        severity: &rule.severity,
        enabled: rule.enabled,
        definition: to_json(&rule)?,
        at: out.message.occurred_at()?,
    };
    alerting::upsert_rule(tx, &row).await?;
    out.changed("rule", rule.rule_id.as_str(), "defined");
    Ok(())
}

async fn define_route(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: DefineRoute = out.message.record()?;
    let route = match Route::from_command(&c).map_err(malformed::<DefineRoute>)? {
        Ok(r) => r,
        Err(refusal) => {
            out.refuse::<DefineRoute>(refusal);
            return Ok(());
        }
    };
    let at = out.message.occurred_at()?;
    alerting::upsert_config(tx, ConfigKind::Route, out.org(), route.route_id.as_str(), &to_json(&route)?, at)
        .await?;
    out.changed("route", route.route_id.as_str(), "defined");
    Ok(())
}

async fn define_inhibit_rule(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: DefineInhibitRule = out.message.record()?;
    let rule = match InhibitRule::from_command(&c).map_err(malformed::<DefineInhibitRule>)? {
        Ok(r) => r,
        Err(refusal) => {
            out.refuse::<DefineInhibitRule>(refusal);
            return Ok(());
        }
    };
    let at = out.message.occurred_at()?;
    let id = rule.inhibit_rule_id.clone();
    alerting::upsert_config(tx, ConfigKind::InhibitRule, out.org(), id.as_str(), &to_json(&rule)?, at)
        .await?;
    out.changed("inhibit_rule", id.as_str(), "defined");
    Ok(())
}

async fn write_silence(tx: &mut PgConnection, message: &Inbound, s: &Silence) -> Result<(), HandleError> {
    let row = SilenceRow {
        organization_id: &message.metadata.organization_id,
        silence_id: s.silence_id.as_str(),
        starts_at: time::<CreateSilence>("starts_at", s.starts_at)?,
        ends_at: time::<CreateSilence>("ends_at", s.ends_at)?,
        created_by: &s.created_by,
        comment: &s.comment,
        definition: to_json(s)?,
        at: message.occurred_at()?,
    };
    alerting::upsert_silence(tx, &row).await?;
    Ok(())
}

async fn create_silence(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: CreateSilence = out.message.record()?;
    let silence = match Silence::from_command(&c).map_err(malformed::<CreateSilence>)? {
        Ok(s) => s,
        Err(refusal) => {
            out.refuse::<CreateSilence>(refusal);
            return Ok(());
        }
    };
    write_silence(tx, out.message, &silence).await?;
    out.changed("silence", silence.silence_id.as_str(), "defined");
    Ok(())
}

async fn expire_silence(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: ExpireSilence = out.message.record()?;
    let stored: Option<Silence> =
        alerting::load_silence(tx, out.org(), &c.silence_id).await?.map(from_json).transpose()?;
    match Silence::decide_expire(stored.as_ref(), &c.silence_id, c.metadata.occurred_at) {
        Ok(expired) => {
            write_silence(tx, out.message, &expired).await?;
            out.changed("silence", expired.silence_id.as_str(), "expired");
        }
        Err(refusal) => out.refuse::<ExpireSilence>(refusal),
    }
    Ok(())
}

fn labels_json(labels: &Labels) -> Result<serde_json::Value, HandleError> {
    to_json(labels)
}

fn hash_map(labels: &Labels) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

async fn evaluate_rules(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: EvaluateRules = out.message.record()?;
    let up_to = time::<EvaluateRules>("up_to", c.up_to)?;
    let org = out.org().to_owned();
    let last_applied = alerting::evaluation_clock(tx, &org).await?;
    let decided = match decide_tick(last_applied, up_to) {
        // The clock is locked since the load: it moves unless a first tick raced this one in.
        Ok(()) if alerting::advance_clock(tx, &org, up_to).await? => Ok(()),
        Ok(()) => Err(tick::before_applied(up_to)),
        Err(refusal) => Err(refusal),
    };
    if let Err(refusal) = decided {
        out.refuse::<EvaluateRules>(refusal);
        return Ok(());
    }
    let config = alerting::load_config(tx, &org, up_to).await?;
    let rules: Vec<Rule> = config.rules.into_iter().map(from_json).collect::<Result<_, _>>()?;
    let routes: Vec<Route> = config.routes.into_iter().map(from_json).collect::<Result<_, _>>()?;
    let inhibit_rules: Vec<InhibitRule> =
        config.inhibit_rules.into_iter().map(from_json).collect::<Result<_, _>>()?;
    let silences: Vec<Silence> = config.silences.into_iter().map(from_json).collect::<Result<_, _>>()?;
    let enabled = rules.iter().filter(|r| r.enabled);
    let mut metrics: Vec<String> = enabled
        .clone()
        .flat_map(|r| std::iter::once(r.metric.clone()).chain(r.denominator_metric.clone()))
        .collect();
    metrics.sort();
    metrics.dedup();
    let window = enabled.map(|r| r.window_ms).max().unwrap_or(0);
    let from = time::<EvaluateRules>("up_to", c.up_to.saturating_sub(window))?;
    let mut samples = Vec::new();
    for (metric, labels, value, at) in alerting::samples_between(tx, &org, &metrics, from, up_to).await? {
        samples.push(series::Sample {
            metric,
            labels: from_json(labels)?,
            value,
            at_ms: at.timestamp_millis(),
        });
    }
    let alerts: Vec<Alert> =
        alerting::live_alerts(tx, &org).await?.into_iter().map(from_json).collect::<Result<_, _>>()?;

    let outcome = evaluate::evaluate(&Tick {
        now: c.up_to,
        rules: &rules,
        samples: &samples,
        alerts: &alerts,
        silences: &silences,
        inhibit_rules: &inhibit_rules,
        routes: &routes,
    });

    for a in &outcome.alerts {
        let row = AlertRow {
            organization_id: &org,
            fingerprint: &a.fingerprint,
            rule_id: a.rule_id.as_str(),
            state: a.state.as_str(),
            severity: &a.severity,
            labels: labels_json(&a.labels)?,
            active_at: time::<EvaluateRules>("active_at", a.active_at)?,
            fired_at: a.fired_at.and_then(DateTime::from_timestamp_millis),
            resolved_at: a.resolved_at.and_then(DateTime::from_timestamp_millis),
            value: a.value,
            suppressed: a.suppressed.as_deref(),
            body: to_json(a)?,
            at: up_to,
        };
        alerting::upsert_alert(tx, &row).await?;
    }
    for t in &outcome.transitions {
        let metadata = out.metadata();
        alerting::insert_history(
            tx,
            &HistoryRow {
                organization_id: &org,
                fingerprint: &t.fingerprint,
                rule_id: t.rule_id.as_str(),
                labels: labels_json(&t.labels)?,
                from_state: t.from.as_str(),
                to_state: t.to.as_str(),
                value: t.value,
                at: up_to,
                event_id: &metadata.event_id,
            },
        )
        .await?;
        out.emit_record(AlertStateChanged {
            metadata,
            fingerprint: t.fingerprint.clone(),
            rule_id: t.rule_id.to_string(),
            labels: hash_map(&t.labels),
            from_state: t.from.as_str().into(),
            to_state: t.to.as_str().into(),
            value: t.value,
            at: c.up_to,
        });
    }
    let notifications = crate::groups::apply(tx, out, &org, c.up_to, &routes, &outcome).await?;
    for n in &notifications {
        let Some(alert) = outcome.alert(n.fingerprint()) else { continue };
        notify(tx, out, &org, alert, n, c.up_to).await?;
    }
    Ok(())
}

fn receivers_json(receivers: &[Receiver]) -> Result<serde_json::Value, HandleError> {
    to_json(&receivers)
}

async fn notify(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    org: &str,
    alert: &Alert,
    n: &Notification,
    now: i64,
) -> Result<(), HandleError> {
    let at = time::<EvaluateRules>("up_to", now)?;
    let alert_name = alert.labels.get("alertname").cloned().unwrap_or_default();
    let mut row = NotificationRow {
        organization_id: org,
        fingerprint: &alert.fingerprint,
        rule_id: alert.rule_id.as_str(),
        decision: "suppressed",
        reason: None,
        receivers: serde_json::Value::Array(Vec::new()),
        repeat: false,
        at,
        event_id: None,
    };
    match n {
        Notification::Suppressed { reason, .. } => {
            row.reason = Some(reason);
            alerting::insert_notification(tx, &row).await?;
        }
        Notification::Fired { receivers, repeat, .. } => {
            let metadata = out.metadata();
            let event_id = metadata.event_id.clone();
            row = NotificationRow {
                decision: "fired",
                receivers: receivers_json(receivers)?,
                repeat: *repeat,
                event_id: Some(&event_id),
                ..row
            };
            alerting::insert_notification(tx, &row).await?;
            out.emit_record(AlertFired {
                metadata,
                fingerprint: alert.fingerprint.clone(),
                rule_id: alert.rule_id.to_string(),
                alert_name,
                severity: alert.severity.clone(),
                labels: hash_map(&alert.labels),
                annotations: hash_map(&alert.annotations),
                value: alert.value.unwrap_or_default(),
                started_at: alert.active_at,
                fired_at: now,
                group_key: alert.group_key.clone(),
                receivers: receivers.iter().map(Receiver::to_record).collect(),
                repeat: *repeat,
            });
        }
        Notification::Resolved { receivers, .. } => {
            let metadata = out.metadata();
            let event_id = metadata.event_id.clone();
            row = NotificationRow {
                decision: "resolved",
                receivers: receivers_json(receivers)?,
                event_id: Some(&event_id),
                ..row
            };
            alerting::insert_notification(tx, &row).await?;
            out.emit_record(AlertResolved {
                metadata,
                fingerprint: alert.fingerprint.clone(),
                rule_id: alert.rule_id.to_string(),
                alert_name,
                severity: alert.severity.clone(),
                labels: hash_map(&alert.labels),
                annotations: hash_map(&alert.annotations),
                started_at: alert.active_at,
                resolved_at: now,
                group_key: alert.group_key.clone(),
                receivers: receivers.iter().map(Receiver::to_record).collect(),
            });
        }
    }
    Ok(())
}
