//! The shell of alert grouping ([`crate::decide::grouping`]): loads the organization's groups,
//! lets grouping decide, writes the groups back and emits one `AlertGroupNotified` per group
//! told, with its decision kept in the projection's history.

use std::collections::HashMap;

use sqlx::PgConnection;
use studyspot_alerts_projection::insights::{self, GroupNotificationRow};
use studyspot_consumer_runtime::{HandleError, Out};
use studyspot_schemas::alerts::{AlertGroupNotified, EvaluateRules, GroupedAlert};

use crate::{
    decide::{
        config::{Receiver, Route},
        evaluate::{Notification, Outcome},
        grouping::{self, Group, GroupNotification, Member},
    },
    shell::{from_json, time, to_json},
};

fn grouped_alert(m: &Member, status: &str) -> GroupedAlert {
    GroupedAlert {
        fingerprint: m.fingerprint.clone(),
        rule_id: m.rule_id.to_string(),
        alert_name: m.labels.get("alertname").cloned().unwrap_or_default(),
        severity: m.severity.clone(),
        labels: m.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        annotations: m.annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        status: status.into(),
        value: m.value,
        started_at: m.started_at,
        resolved_at: m.resolved_at,
    }
}

/// Applies grouping to a tick's outcome; returns the per-alert notifications left to emit.
pub(crate) async fn apply(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    org: &str,
    now: i64,
    routes: &[Route],
    outcome: &Outcome,
) -> Result<Vec<Notification>, HandleError> {
    let at = time::<EvaluateRules>("up_to", now)?;
    let groups: Vec<Group> =
        insights::load_groups(tx, org).await?.into_iter().map(from_json).collect::<Result<_, _>>()?;
    let decided = grouping::apply(now, routes, outcome.notifications.clone(), |fp| outcome.alert(fp), groups);
    for g in &decided.groups {
        insights::upsert_group(tx, org, &g.group_key, g.route_id.as_str(), &to_json(g)?, at).await?;
    }
    for key in &decided.ended {
        insights::delete_group(tx, org, key).await?;
    }
    for told in &decided.told {
        tell(tx, out, org, now, told).await?;
    }
    Ok(decided.notifications)
}

async fn tell(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    org: &str,
    now: i64,
    told: &GroupNotification,
) -> Result<(), HandleError> {
    let alerts: Vec<GroupedAlert> = told
        .firing
        .iter()
        .map(|m| grouped_alert(m, "firing"))
        .chain(told.resolved.iter().map(|m| grouped_alert(m, "resolved")))
        .collect();
    let metadata = out.metadata();
    insights::insert_group_notification(
        tx,
        &GroupNotificationRow {
            organization_id: org,
            group_key: &told.group_key,
            route_id: told.route_id.as_str(),
            status: told.status(),
            receivers: to_json(&told.receivers)?,
            alerts: to_json(&alerts)?,
            repeat: told.repeat,
            at: time::<EvaluateRules>("up_to", now)?,
            event_id: &metadata.event_id,
        },
    )
    .await?;
    out.emit_record(AlertGroupNotified {
        metadata,
        route_id: told.route_id.to_string(),
        group_key: told.group_key.clone(),
        group_labels: told.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>(),
        status: told.status().into(),
        severity: told.severity(),
        receivers: told.receivers.iter().map(Receiver::to_record).collect(),
        alerts,
        repeat: told.repeat,
        notified_at: now,
    });
    Ok(())
}
