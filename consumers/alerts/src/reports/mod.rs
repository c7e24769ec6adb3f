//! Scheduled reports: daily or weekly summaries (revenue, occupancy, deliveries, alerts) of a
//! local period in the report's zone. A time-carrying `GenerateReports { up_to }` renders every
//! period that has ended by then, as CSV and HTML kept in alerts' projection; `ReportGenerated`
//! tells who asked. Figures come from alerts' own projection only.

pub mod period;
pub mod render;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use studyspot_alerts_projection::insights::{self, ReportRow, RunRow, Tables};
use studyspot_consumer_runtime::{HandleError, Out, malformed};
use studyspot_ids::{ParseError, ReportId};
use studyspot_schemas::alerts::{DefineReport, GenerateReports, ReportGenerated};

use crate::{
    decide::{
        Malformed,
        config::{CHANNELS, Receiver},
    },
    shell::{AlertsOut, from_json, time, to_json},
};
use period::{Period, Schedule};
use render::Figures;

pub const SECTIONS: [&str; 4] = ["revenue", "occupancy", "deliveries", "alerts"];
/// At most this many periods are rendered per report and tick (a report defined long ago and
/// never ticked catches up over several ticks).
pub const MAX_RUNS_PER_TICK: usize = 31;

const ACTOR: &str = "service:alerts-scheduler";

/// A report as alerts holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub report_id: ReportId,
    pub name: String,
    pub schedule: String,
    pub time_zone: String,
    pub sections: Vec<String>,
    pub recipients: Vec<Receiver>,
}

impl Report {
    pub fn from_command(c: &DefineReport) -> Result<Self, Malformed> {
        if c.report_id.trim().is_empty() || c.name.trim().is_empty() {
            return Err(Malformed("report_id and name are required".into()));
        }
        if Schedule::parse(&c.schedule).is_none() {
            return Err(Malformed(format!("schedule {:?} is not daily or weekly", c.schedule)));
        }
        if c.time_zone.parse::<Tz>().is_err() {
            return Err(Malformed(format!("time_zone {:?} is not an IANA zone", c.time_zone)));
        }
        if c.sections.is_empty() {
            return Err(Malformed("a report needs at least one section".into()));
        }
        if let Some(bad) = c.sections.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
            return Err(Malformed(format!("section {bad:?} is not one of {}", SECTIONS.join(", "))));
        }
        let mut recipients = Vec::with_capacity(c.recipients.len());
        for r in &c.recipients {
            if r.recipient_id.trim().is_empty() || !CHANNELS.contains(&r.channel.as_str()) {
                return Err(Malformed(format!(
                    "recipient ({:?}, {:?}) is not valid",
                    r.recipient_id, r.channel
                )));
            }
            recipients.push(Receiver {
                recipient_id: r
                    .recipient_id
                    .parse()
                    .map_err(|e: ParseError| Malformed(e.for_field("recipient_id")))?,
                channel: r.channel.clone(),
            });
        }
        Ok(Self {
            report_id: c.report_id.parse().map_err(|e: ParseError| Malformed(e.for_field("report_id")))?,
            name: c.name.clone(),
            schedule: c.schedule.clone(),
            time_zone: c.time_zone.clone(),
            sections: c.sections.clone(),
            recipients,
        })
    }
}

/// The report tick for `organization_id` at `up_to`; its id derives from both.
pub fn tick_for(organization_id: &str, up_to: DateTime<Utc>) -> GenerateReports {
    let name = format!("generate-reports/{organization_id}/{}", up_to.timestamp_millis());
    GenerateReports {
        metadata: studyspot_consumer_runtime::ticker::metadata(name, organization_id, up_to, ACTOR),
        up_to: up_to.timestamp_millis(),
    }
}

pub(crate) async fn define(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: DefineReport = out.message.record()?;
    let report = Report::from_command(&c).map_err(malformed::<DefineReport>)?;
    let org = out.org().to_owned();
    insights::upsert_report(
        tx,
        &ReportRow {
            organization_id: &org,
            report_id: report.report_id.as_str(),
            name: &report.name,
            schedule: &report.schedule,
            time_zone: &report.time_zone,
            definition: to_json(&report)?,
            at: out.message.occurred_at()?,
        },
    )
    .await?;
    out.changed("report", report.report_id.as_str(), "defined");
    Ok(())
}

async fn figures(
    tx: &mut PgConnection,
    org: &str,
    sections: &[String],
    p: &Period,
) -> Result<Figures, HandleError> {
    let mut f = Figures::default();
    for s in sections {
        match s.as_str() {
            "revenue" => f.revenue = Some(insights::revenue_in(Tables::Own, tx, org, p.start, p.end).await?),
            "occupancy" => {
                f.occupancy = Some(insights::occupancy_in(Tables::Own, tx, org, p.start, p.end).await?)
            }
            "deliveries" => {
                f.deliveries = Some(insights::deliveries_in(Tables::Own, tx, org, p.start, p.end).await?)
            }
            "alerts" => {
                f.alerts = Some(insights::alert_activity_in(Tables::Own, tx, org, p.start, p.end).await?)
            }
            _ => {}
        }
    }
    Ok(f)
}

pub(crate) async fn generate(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: GenerateReports = out.message.record()?;
    let up_to = time::<GenerateReports>("up_to", c.up_to)?;
    let org = out.org().to_owned();
    for scheduled in insights::reports_to_schedule(tx, &org).await? {
        let report: Report = from_json(scheduled.definition)?;
        let (Some(schedule), Ok(tz)) = (Schedule::parse(&report.schedule), report.time_zone.parse::<Tz>())
        else {
            return Err(HandleError::Fatal(format!(
                "alerts projection: report {} is not valid",
                report.report_id
            )));
        };
        let due = period::due(
            schedule,
            tz,
            scheduled.defined_at,
            scheduled.last_period_end,
            up_to,
            MAX_RUNS_PER_TICK,
        );
        for p in due {
            let f = figures(tx, &org, &report.sections, &p).await?;
            let csv = render::csv(&report.sections, &p, &f)
                .map_err(|e| HandleError::Fatal(format!("rendering report CSV: {e}")))?;
            let html = render::html(&report.name, &report.time_zone, &report.sections, &p, &f);
            let run_id = p.run_id();
            insights::insert_run(
                tx,
                &RunRow {
                    organization_id: &org,
                    report_id: report.report_id.as_str(),
                    run_id: &run_id,
                    period_start: p.start,
                    period_end: p.end,
                    figures: to_json(&f)?,
                    csv: &csv,
                    html: &html,
                    generated_at: up_to,
                },
            )
            .await?;
            out.emit(|metadata| ReportGenerated {
                metadata,
                report_id: report.report_id.to_string(),
                name: report.name.clone(),
                run_id,
                period_start: p.start.timestamp_millis(),
                period_end: p.end.timestamp_millis(),
                recipients: report.recipients.iter().map(Receiver::to_record).collect(),
            });
        }
    }
    Ok(())
}
