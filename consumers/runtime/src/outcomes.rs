//! What became of each command: written with the projection, announced with NOTIFY so a waiting
//! gateway request learns it at once.

use sqlx::PgConnection;

use studyspot_schemas::COMMAND_OUTCOMES_CHANNEL;

use crate::Inbound;

/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;

pub(crate) struct CommandOutcome {
    pub(crate) command_id: String,
    pub(crate) command_type: String,
    pub(crate) organization_id: String,
    pub(crate) outcome: &'static str,
    pub(crate) code: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) events: Vec<String>,
}

impl CommandOutcome {
    pub(crate) fn of(command: &Inbound, outcome: &'static str) -> Self {
        Self {
            command_id: command.metadata.event_id.clone(),
            command_type: command.record_type.clone(),
            organization_id: command.metadata.organization_id.clone(),
            outcome,
            code: None,
            reason: None,
            events: Vec::new(),
        }
    }
}

/// `text` as PostgreSQL's text can hold it: a NUL character (which it cannot) becomes U+FFFD.
pub(crate) fn pg_text(text: &str) -> String {
    if text.contains('\0') { text.replace('\0', "\u{FFFD}") } else { text.to_owned() }
}

/// Records `outcomes`; `announce` says whether a waiting gateway is told (not for a rebuild's
/// outcomes, decided long ago).
pub(crate) async fn record(
    tx: &mut PgConnection,
    outcomes: &[CommandOutcome],
    announce: bool,
) -> Result<(), sqlx::Error> {
    if outcomes.is_empty() {
        return Ok(());
    }
    // A dead-lettered command's ids and reason may hold a NUL; the outcome is recorded all the same.
    let column = |f: fn(&CommandOutcome) -> Option<String>| {
        outcomes.iter().map(|o| f(o).map(|text| pg_text(&text))).collect::<Vec<_>>()
    };
    sqlx::query(
        "INSERT INTO command_outcomes (command_id, command_type, organization_id, outcome, code, reason, events) \
         SELECT id, ty, org, outcome, code, reason, string_to_array(events, ',') \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) \
              AS o(id, ty, org, outcome, code, reason, events) \
         ON CONFLICT (command_id) DO NOTHING",
    )
    .bind(column(|o| Some(o.command_id.clone())))
    .bind(column(|o| Some(o.command_type.clone())))
    .bind(column(|o| Some(o.organization_id.clone())))
    .bind(column(|o| Some(o.outcome.to_owned())))
    .bind(column(|o| o.code.clone()))
    .bind(column(|o| o.reason.clone()))
    .bind(column(|o| Some(o.events.join(","))))
    .execute(&mut *tx)
    .await?;
    if !announce {
        return Ok(());
    }
    // Delivered only if the transaction commits, which is exactly when the outcome is real.
    for payload in payloads(outcomes.iter().map(|o| o.command_id.as_str())) {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(COMMAND_OUTCOMES_CHANNEL)
            .bind(payload)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Command ids joined by commas, in as few payloads as NOTIFY's size limit allows.
fn payloads<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut payloads = vec![String::new()];
    for id in ids {
        let current = payloads.last_mut().expect("never empty");
        if !current.is_empty() && current.len() + 1 + id.len() > MAX_PAYLOAD {
            payloads.push(id.to_owned());
        } else {
            if !current.is_empty() {
                current.push(',');
            }
            current.push_str(id);
        }
    }
    payloads.retain(|p| !p.is_empty());
    payloads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_split_into_payloads_under_the_notify_limit() {
        let ids: Vec<String> = (0..1000).map(|i| format!("0190d5a8-0000-7000-8000-{i:012}")).collect();
        let payloads = payloads(ids.iter().map(String::as_str));
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let rejoined: Vec<&str> = payloads.iter().flat_map(|p| p.split(',')).collect();
        assert_eq!(rejoined, ids.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(super::payloads(std::iter::empty()).is_empty());
    }
}
