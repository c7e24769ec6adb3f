//! Dashboards: saved layouts of widgets, validated and kept in alerts' projection. Their data is
//! computed at read time by the gateway from alerts' own projection (samples, derived samples of
//! other domains, alert history), never from other domains' schemas.

use sqlx::PgConnection;
use studyspot_alerts_projection::insights;
use studyspot_consumer_runtime::{HandleError, Out, malformed};
use studyspot_schemas::alerts::{DashboardWidget, DefineDashboard};

use crate::{
    decide::{
        Malformed, Refusal,
        matchers::from_records,
        samples::{valid_label_name, valid_metric_name},
    },
    shell::{AlertsOut, to_json},
};

/// Widget kinds: a metric series, or one of the projection's figures.
pub const WIDGET_KINDS: [&str; 5] = ["series", "revenue", "occupancy", "deliveries", "active_alerts"];
pub const AGGREGATIONS: [&str; 6] = ["avg", "sum", "min", "max", "count", "last"];
pub const MAX_WIDGETS: usize = 50;

/// What the contract forbids (`Err`), or a refusal (`Ok(Some)`), for one dashboard.
pub fn validate(c: &DefineDashboard) -> Result<Option<Refusal>, Malformed> {
    if c.dashboard_id.trim().is_empty() || c.name.trim().is_empty() {
        return Err(Malformed("dashboard_id and name are required".into()));
    }
    if c.widgets.is_empty() || c.widgets.len() > MAX_WIDGETS {
        return Err(Malformed(format!("a dashboard has 1 to {MAX_WIDGETS} widgets")));
    }
    for (i, w) in c.widgets.iter().enumerate() {
        if let Some(r) = validate_widget(w).map_err(|m| Malformed(format!("widgets[{i}]: {}", m.0)))? {
            return Ok(Some(r));
        }
    }
    let mut ids: Vec<&str> = c.widgets.iter().map(|w| w.widget_id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(Malformed("widget ids must be unique".into()));
    }
    Ok(None)
}

fn validate_widget(w: &DashboardWidget) -> Result<Option<Refusal>, Malformed> {
    if w.widget_id.trim().is_empty() {
        return Err(Malformed("widget_id is required".into()));
    }
    if !WIDGET_KINDS.contains(&w.kind.as_str()) {
        return Err(Malformed(format!("kind {:?} is not one of {}", w.kind, WIDGET_KINDS.join(", "))));
    }
    if w.kind != "series" {
        return Ok(None);
    }
    match w.metric.as_deref() {
        Some(m) if valid_metric_name(m) => {}
        _ => return Err(Malformed("a series widget needs a valid metric".into())),
    }
    if !AGGREGATIONS.contains(&w.aggregation.as_str()) {
        return Err(Malformed(format!(
            "aggregation {:?} is not one of {}",
            w.aggregation,
            AGGREGATIONS.join(", ")
        )));
    }
    if w.step_seconds <= 0 {
        return Err(Malformed("step_seconds must be positive".into()));
    }
    if let Some(bad) = w.group_by.iter().find(|l| !valid_label_name(l)) {
        return Err(Malformed(format!("group_by label {bad:?} is not a valid label name")));
    }
    Ok(from_records(&w.matchers)?.err())
}

pub(crate) async fn define(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: DefineDashboard = out.message.record()?;
    if let Some(refusal) = validate(&c).map_err(malformed::<DefineDashboard>)? {
        out.refuse::<DefineDashboard>(refusal);
        return Ok(());
    }
    let org = out.org().to_owned();
    let definition = to_json(&serde_json::json!({ "widgets": c.widgets }))?;
    insights::upsert_dashboard(tx, &org, &c.dashboard_id, &c.name, &definition, out.message.occurred_at()?)
        .await?;
    out.changed("dashboard", &c.dashboard_id, "defined");
    Ok(())
}
