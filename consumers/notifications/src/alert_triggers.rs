//! Alerts' `AlertFired` / `AlertResolved`, and `AlertGroupNotified` (a group of alerts told at
//! once): one message per receiver the event names (alerts' routing rules chose them), through
//! the organization's `alert_fired` / `alert_resolved` / `alert_group` template when it has one,
//! else a default text. A critical alert's messages are critical (quiet hours, caps and opt-outs
//! do not hold them back). Ids derive from the event and the receiver, so a redelivered event
//! tells each receiver once. A rendered report run (`ReportGenerated`) tells its recipients where
//! to download it.

use std::collections::HashMap;

use studyspot_consumer_runtime::{HandleError, Inbound};
use studyspot_schemas::{
    EventMetadata, Record,
    alerts::{AlertFired, AlertGroupNotified, AlertResolved, Receiver, ReportGenerated},
    notifications::SendNotification,
};

pub const FIRED: (&str, &str, &str) = (
    "alert_fired",
    "[{{ severity | upper }}] {{ alert_name }} is firing",
    "{{ summary }}\nValue: {{ value }}. Since {{ started_at }}.\nLabels: {{ labels }}{{ runbook }}",
);
pub const GROUP: (&str, &str, &str) = (
    "alert_group",
    "[{{ status | upper }}:{{ firing_count }}] {{ group }}",
    "{{ firing_count }} firing, {{ resolved_count }} resolved ({{ group_labels }}).\n{{ alerts }}",
);
pub const REPORT: (&str, &str, &str) = (
    "report_ready",
    "{{ name }}: {{ period_start }} to {{ period_end }}",
    "The report {{ name }} for {{ period_start }} to {{ period_end }} is ready:\n\
     HTML (printable): {{ html_path }}\nCSV: {{ csv_path }}",
);
pub const RESOLVED: (&str, &str, &str) = (
    "alert_resolved",
    "[RESOLVED] {{ alert_name }}",
    "{{ summary }}\nResolved at {{ resolved_at }} (since {{ started_at }}).\nLabels: {{ labels }}",
);

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn labels(labels: &HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(", ")
}

/// The messages an alerts event asks for: none for other records.
pub fn notifications_for(message: &Inbound) -> Result<Vec<SendNotification>, HandleError> {
    let (template, severity, receivers, vars) = match message.record_type.as_str() {
        AlertFired::FULL_NAME => {
            let e: AlertFired = message.record()?;
            let summary = e.annotations.get("summary").cloned().unwrap_or_else(|| e.alert_name.clone());
            let runbook =
                e.annotations.get("runbook_url").map_or_else(String::new, |u| format!("\nRunbook: {u}"));
            let vars = vec![
                ("alert_name", e.alert_name.clone()),
                ("severity", e.severity.clone()),
                ("summary", summary),
                ("description", e.annotations.get("description").cloned().unwrap_or_default()),
                ("value", e.value.to_string()),
                ("started_at", time(e.started_at)),
                ("fired_at", time(e.fired_at)),
                ("labels", labels(&e.labels)),
                ("runbook", runbook),
                ("fingerprint", e.fingerprint.clone()),
            ];
            (FIRED, e.severity, e.receivers, vars)
        }
        AlertResolved::FULL_NAME => {
            let e: AlertResolved = message.record()?;
            let summary = e.annotations.get("summary").cloned().unwrap_or_else(|| e.alert_name.clone());
            let vars = vec![
                ("alert_name", e.alert_name.clone()),
                ("severity", e.severity.clone()),
                ("summary", summary),
                ("started_at", time(e.started_at)),
                ("resolved_at", time(e.resolved_at)),
                ("labels", labels(&e.labels)),
                ("fingerprint", e.fingerprint.clone()),
            ];
            (RESOLVED, e.severity, e.receivers, vars)
        }
        AlertGroupNotified::FULL_NAME => {
            let e: AlertGroupNotified = message.record()?;
            let firing = e.alerts.iter().filter(|a| a.status == "firing").count();
            let lines: Vec<String> = e
                .alerts
                .iter()
                .map(|a| {
                    let summary =
                        a.annotations.get("summary").cloned().unwrap_or_else(|| a.alert_name.clone());
                    let value = a.value.map_or_else(String::new, |v| format!(" (value {v})"));
                    format!(
                        "- [{}] {}: {summary}{value}; {}",
                        a.status.to_uppercase(),
                        a.alert_name,
                        labels(&a.labels)
                    )
                })
                .collect();
            let names: Vec<&str> = {
                let mut n: Vec<&str> = e.alerts.iter().map(|a| a.alert_name.as_str()).collect();
                n.dedup();
                n
            };
            let vars = vec![
                ("status", e.status.clone()),
                ("severity", e.severity.clone()),
                ("group", names.join(", ")),
                ("group_key", e.group_key.clone()),
                ("group_labels", labels(&e.group_labels)),
                ("firing_count", firing.to_string()),
                ("resolved_count", (e.alerts.len() - firing).to_string()),
                ("alerts", lines.join("\n")),
                ("notified_at", time(e.notified_at)),
            ];
            (GROUP, e.severity, e.receivers, vars)
        }
        ReportGenerated::FULL_NAME => {
            let e: ReportGenerated = message.record()?;
            let path = format!("/api/monitoring/reports/{}/runs/{}", e.report_id, e.run_id);
            let vars = vec![
                ("name", e.name.clone()),
                ("report_id", e.report_id.clone()),
                ("run_id", e.run_id.clone()),
                ("period_start", time(e.period_start)),
                ("period_end", time(e.period_end)),
                ("html_path", format!("{path}.html")),
                ("csv_path", format!("{path}.csv")),
            ];
            (REPORT, "info".to_owned(), e.recipients, vars)
        }
        _ => return Ok(Vec::new()),
    };
    let (name, subject, body) = template;
    let event = &message.metadata;
    let variables: HashMap<String, String> = vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Ok(receivers
        .into_iter()
        .map(|Receiver { recipient_id, channel }| {
            let id = format!("{}/{recipient_id}/{channel}", event.event_id);
            SendNotification {
                metadata: EventMetadata {
                    event_id: event.event_id.clone(),
                    occurred_at: event.occurred_at,
                    correlation_id: event.correlation_id.clone(),
                    causation_id: Some(event.event_id.clone()),
                    organization_id: event.organization_id.clone(),
                    actor: event.actor.clone(),
                },
                notification_id: format!(
                    "ntf_{}",
                    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, id.as_bytes()).simple()
                ),
                recipient_id,
                channel,
                category: "operational".into(),
                subject: Some(subject.into()),
                body: body.into(),
                template_id: Some(name.into()),
                variables: variables.clone(),
                locale: None,
                critical: severity == "critical",
                transaction_id: None,
                send_at: None,
                campaign_id: None,
                digest_key: None,
                digest_window_secs: None,
                digest_at_local: None,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::templates::{Parts, render};

    #[test]
    fn the_default_texts_render_with_what_the_events_give() {
        let fired: HashMap<String, String> = [
            "alert_name",
            "severity",
            "summary",
            "description",
            "value",
            "started_at",
            "fired_at",
            "labels",
            "runbook",
            "fingerprint",
        ]
        .iter()
        .map(|k| ((*k).to_owned(), "critical".to_owned()))
        .collect();
        let parts = Parts { subject: Some(FIRED.1), body: FIRED.2, html: None };
        let r = render(&parts, &fired).expect("fired renders");
        assert_eq!(r.subject.as_deref(), Some("[CRITICAL] critical is firing"));
        let resolved: HashMap<String, String> =
            ["alert_name", "severity", "summary", "started_at", "resolved_at", "labels", "fingerprint"]
                .iter()
                .map(|k| ((*k).to_owned(), "x".to_owned()))
                .collect();
        let parts = Parts { subject: Some(RESOLVED.1), body: RESOLVED.2, html: None };
        assert!(render(&parts, &resolved).is_ok());
        let group: HashMap<String, String> = [
            ("status", "firing"),
            ("severity", "warning"),
            ("group", "VenueFull"),
            ("group_key", "rte_ops:{team=\"ops\"}"),
            ("group_labels", "team=ops"),
            ("firing_count", "2"),
            ("resolved_count", "0"),
            ("alerts", "- a\n- b"),
            ("notified_at", "now"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let parts = Parts { subject: Some(GROUP.1), body: GROUP.2, html: None };
        let r = render(&parts, &group).expect("group renders");
        assert_eq!(r.subject.as_deref(), Some("[FIRING:2] VenueFull"));
        assert!(r.body.contains("2 firing, 0 resolved (team=ops).\n- a\n- b"), "{}", r.body);
        let report: HashMap<String, String> = [
            ("name", "Daily"),
            ("report_id", "rpt_1"),
            ("run_id", "run_2026-11-25"),
            ("period_start", "2026-11-25 00:00:00 UTC"),
            ("period_end", "2026-11-26 00:00:00 UTC"),
            ("html_path", "/api/monitoring/reports/rpt_1/runs/run_2026-11-25.html"),
            ("csv_path", "/api/monitoring/reports/rpt_1/runs/run_2026-11-25.csv"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let parts = Parts { subject: Some(REPORT.1), body: REPORT.2, html: None };
        let r = render(&parts, &report).expect("report renders");
        assert_eq!(r.subject.as_deref(), Some("Daily: 2026-11-25 00:00:00 UTC to 2026-11-26 00:00:00 UTC"));
        assert!(
            r.body.contains("HTML (printable): /api/monitoring/reports/rpt_1/runs/run_2026-11-25.html\n"),
            "{}",
            r.body
        );
        assert_eq!(labels(&[("b".into(), "2".into()), ("a".into(), "1".into())].into()), "a=1, b=2");
    }
}
