//! A report run's figures as files an operator opens: CSV (one row per figure, for
//! spreadsheets) and a printable, self-contained HTML page. Pure.

use serde::{Deserialize, Serialize};
use studyspot_alerts_projection::insights::{AlertActivity, Deliveries, Occupancy, Revenue};

use super::period::Period;

/// The figures of one run, by section (absent: not asked for).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub revenue: Option<Vec<Revenue>>,
    pub occupancy: Option<Vec<Occupancy>>,
    pub deliveries: Option<Vec<Deliveries>>,
    pub alerts: Option<Vec<AlertActivity>>,
}

/// One figure: section, subject (currency, venue, channel, rule), name, value.
type Row = (&'static str, String, &'static str, String);

fn num(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.4}") })
}

fn rows(sections: &[String], f: &Figures) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for section in sections {
        match section.as_str() {
            "revenue" => {
                for r in f.revenue.iter().flatten() {
                    let c = || r.currency.clone();
                    out.push(("revenue", c(), "payments_succeeded", r.payments_succeeded.to_string()));
                    out.push(("revenue", c(), "payments_failed", r.payments_failed.to_string()));
                    out.push(("revenue", c(), "revenue_minor", r.revenue_minor.to_string()));
                    out.push(("revenue", c(), "refunds", r.refunds.to_string()));
                    out.push(("revenue", c(), "refunded_minor", r.refunded_minor.to_string()));
                    out.push(("revenue", c(), "net_minor", r.net_minor.to_string()));
                }
            }
            "occupancy" => {
                for o in f.occupancy.iter().flatten() {
                    let v = || o.venue_id.clone();
                    out.push(("occupancy", v(), "latest", num(o.latest)));
                    out.push(("occupancy", v(), "peak", num(o.peak)));
                    out.push(("occupancy", v(), "changes", o.changes.to_string()));
                    out.push((
                        "occupancy",
                        v(),
                        "capacity",
                        o.capacity.map(|c| c.to_string()).unwrap_or_default(),
                    ));
                    out.push(("occupancy", v(), "peak_ratio", num(o.peak_ratio)));
                }
            }
            "deliveries" => {
                for d in f.deliveries.iter().flatten() {
                    let c = || d.channel.clone();
                    for (name, value) in [
                        ("sent", d.sent),
                        ("failed", d.failed),
                        ("delivered", d.delivered),
                        ("undelivered", d.undelivered),
                        ("bounced", d.bounced),
                        ("opened", d.opened),
                        ("clicked", d.clicked),
                    ] {
                        out.push(("deliveries", c(), name, value.to_string()));
                    }
                    out.push(("deliveries", c(), "bounce_rate", num(d.bounce_rate)));
                }
            }
            "alerts" => {
                for a in f.alerts.iter().flatten() {
                    let r = || a.rule_id.clone();
                    out.push(("alerts", r(), "fired", a.fired.to_string()));
                    out.push(("alerts", r(), "resolved", a.resolved.to_string()));
                    out.push(("alerts", r(), "firing_at_end", a.firing_at_end.to_string()));
                }
            }
            _ => {}
        }
    }
    out
}

pub fn csv(sections: &[String], period: &Period, f: &Figures) -> Result<String, String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let (start, end) = (period.start.to_rfc3339(), period.end.to_rfc3339());
    w.write_record(["period_start", "period_end", "section", "subject", "figure", "value"])
        .map_err(|e| e.to_string())?;
    for (section, subject, figure, value) in rows(sections, f) {
        w.write_record([start.as_str(), end.as_str(), section, &inert(&subject), figure, &value])
            .map_err(|e| e.to_string())?;
    }
    String::from_utf8(w.into_inner().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

/// A tenant's text (a venue or rule id) as a spreadsheet shows it rather than runs it: a cell
/// starting with `=`, `+`, `-`, `@`, tab or carriage return is a formula to Excel and LibreOffice
/// (`=HYPERLINK(...)`, `=cmd|...`), so such text gets a leading apostrophe (OWASP's advice). The
/// value column holds our own numbers and is left alone (a negative figure stays a number).
fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}").into() } else { text.into() }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#111}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em;text-transform:capitalize}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}@media print{body{margin:0}h2{break-after:avoid}}";

pub fn html(name: &str, time_zone: &str, sections: &[String], period: &Period, f: &Figures) -> String {
    let rows = rows(sections, f);
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n<p>{start} to {end} ({zone})</p>\n",
        title = escape(name),
        start = period.start.to_rfc3339(),
        end = period.end.to_rfc3339(),
        zone = escape(time_zone),
    );
    for section in sections {
        let section_rows: Vec<&Row> = rows.iter().filter(|r| r.0 == section.as_str()).collect();
        page.push_str(&format!("<h2>{}</h2>\n", escape(section)));
        if section_rows.is_empty() {
            page.push_str("<p>Nothing in this period.</p>\n");
            continue;
        }
        page.push_str("<table><tr><th>Subject</th><th>Figure</th><th>Value</th></tr>\n");
        for (_, subject, figure, value) in section_rows {
            page.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>\n",
                escape(subject),
                escape(figure),
                escape(value)
            ));
        }
        page.push_str("</table>\n");
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_revenue_figures_then_csv_and_html_show_them_escaped() {
        let period = Period {
            first_day: "2026-11-24".parse().expect("day"),
            start: "2026-11-23T23:00:00Z".parse().expect("t"),
            end: "2026-11-24T23:00:00Z".parse().expect("t"),
        };
        let f = Figures {
            revenue: Some(vec![Revenue {
                currency: "EUR".into(),
                payments_succeeded: 3,
                payments_failed: 1,
                revenue_minor: 9000,
                refunds: 1,
                refunded_minor: 1500,
                net_minor: 7500,
            }]),
            ..Figures::default()
        };
        let sections = vec!["revenue".to_owned(), "alerts".to_owned()];
        let csv = csv(&sections, &period, &f).expect("csv");
        assert!(csv.starts_with("period_start,period_end,section,subject,figure,value\n"), "{csv}");
        assert!(csv.contains(",revenue,EUR,net_minor,7500\n"), "{csv}");
        let html = html("Daily <ops>", "Europe/Berlin", &sections, &period, &f);
        assert!(html.contains("<title>Daily &lt;ops&gt;</title>"));
        assert!(html.contains("<td>EUR</td><td>net_minor</td><td class=\"n\">7500</td>"));
        assert!(html.contains("<h2>alerts</h2>\n<p>Nothing in this period.</p>"));
    }

    #[test]
    fn a_subject_a_spreadsheet_would_run_as_a_formula_is_written_as_text() {
        let period = Period {
            first_day: "2026-11-24".parse().expect("day"),
            start: "2026-11-23T23:00:00Z".parse().expect("t"),
            end: "2026-11-24T23:00:00Z".parse().expect("t"),
        };
        let rule = |id: &str| AlertActivity { rule_id: id.into(), fired: 1, resolved: 0, firing_at_end: 1 };
        let f = Figures {
            alerts: Some(vec![
                rule("=HYPERLINK(\"http://127.0.0.1/x\",\"y\")"),
                rule("@SUM(1)"),
                rule("-2+3"),
                rule("cpu_high"),
            ]),
            ..Figures::default()
        };
        let csv = csv(&["alerts".to_owned()], &period, &f).expect("csv");
        let subjects: Vec<String> = ::csv::Reader::from_reader(csv.as_bytes())
            .records()
            .map(|r| r.expect("row")[3].to_owned())
            .collect();
        assert!(subjects.contains(&"'=HYPERLINK(\"http://127.0.0.1/x\",\"y\")".to_owned()), "{subjects:?}");
        assert!(
            subjects.contains(&"'@SUM(1)".to_owned()) && subjects.contains(&"'-2+3".to_owned()),
            "{subjects:?}"
        );
        assert!(subjects.contains(&"cpu_high".to_owned()), "{subjects:?}");
    }
}
