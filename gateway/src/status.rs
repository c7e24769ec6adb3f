//! `GET /api/commands/{id}`: accepted → applied, or rejected with the domain's reason (or failed,
//! when the command could not be handled at all). `?wait=5s` holds the request until the outcome
//! is known: consumers NOTIFY the ids of the commands they decide, and one listener here wakes the
//! requests waiting for them.

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
};
use serde_json::{Value, json};
use sqlx::{PgPool, postgres::PgListener};
use studyspot_schemas::COMMAND_OUTCOMES_CHANNEL;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{AppState, GatewayError, auth::Caller, ledger::Accepted};

/// The consumers whose schemas hold command outcomes.
const DOMAINS: [&str; 4] = ["billing", "notifications", "attendance", "alerts"];

/// Sent to every waiter when notifications may have been missed (the listener reconnected).
const EVERYONE: &str = "*";

#[derive(Debug, sqlx::FromRow)]
struct Decided {
    outcome: String,
    code: Option<String>,
    reason: Option<String>,
    events: Vec<String>,
    decided_at: chrono::DateTime<chrono::Utc>,
}

/// Reads outcomes through the read-only role and hears about new ones.
#[derive(Clone)]
pub struct Outcomes {
    readonly: PgPool,
    wake: broadcast::Sender<Arc<str>>,
}

impl Outcomes {
    /// Starts the listener; it reconnects by itself and stops once `shutdown` is cancelled.
    pub fn start(readonly: PgPool, shutdown: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let (wake, _) = broadcast::channel(4096);
        let listening = tokio::spawn({
            let (pool, wake) = (readonly.clone(), wake.clone());
            async move {
                tokio::select! {
                    () = listen(pool, wake) => {}
                    () = shutdown.cancelled() => {}
                }
            }
        });
        (Self { readonly, wake }, listening)
    }

    async fn lookup(&self, domain: &str, command_id: Uuid) -> Result<Option<Decided>, GatewayError> {
        let domain = DOMAINS
            .iter()
            .find(|d| **d == domain)
            .ok_or_else(|| GatewayError::Internal(format!("unknown domain {domain} in the ledger")))?;
        let result = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT outcome, code, reason, events, decided_at FROM {domain}.command_outcomes WHERE command_id = $1"
        )))
        .bind(command_id.to_string())
        .fetch_optional(&self.readonly)
        .await;
        match result {
            Ok(decided) => Ok(decided),
            // The consumer has not created its tables yet: nothing is decided.
            Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P01" | "3F000")) => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

async fn listen(pool: PgPool, wake: broadcast::Sender<Arc<str>>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for command outcomes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(COMMAND_OUTCOMES_CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for command outcomes; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let _ = wake.send(EVERYONE.into());
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    for id in notification.payload().split(',') {
                        let _ = wake.send(id.into());
                    }
                }
                // The connection dropped; the next call reconnects. Outcomes decided meanwhile were
                // not announced, so everyone looks again.
                Ok(None) => {
                    let _ = wake.send(EVERYONE.into());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the command outcome listener; reconnecting");
                    break;
                }
            }
        }
    }
}

/// `5s`, `1500ms` or a bare number of seconds.
fn parse_wait(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit_ms) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1.0)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1000.0)
    } else {
        (text, 1000.0)
    };
    let value: f64 = number.trim().parse().ok()?;
    // A wait too long for a Duration (1e300s) is as bad as a negative one, not a panic.
    Duration::try_from_secs_f64(value * unit_ms / 1000.0).ok()
}

#[utoipa::path(get, path = "/api/commands/{id}", tag = "commands",
    params(
        ("id" = String, Path, description = "The command_id of a 202 answer"),
        ("wait" = Option<String>, Query, description = "Hold the request until the command is decided, e.g. 5s or 500ms (at most gateway.max_status_wait_ms)"),
    ),
    responses(
        (status = 200, description = "accepted, applied, rejected or failed", body = crate::openapi::CommandStatus),
        (status = 404, description = "No such command in this organization (or not this member's)", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 422, description = "Not a UUID, or a bad wait", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub async fn command_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, GatewayError> {
    let Query(query) = query.map_err(|e| GatewayError::invalid("query", e.body_text()))?;
    let wait = match query.get("wait") {
        None => Duration::ZERO,
        Some(text) => parse_wait(text)
            .ok_or_else(|| GatewayError::invalid("wait", "wait must be a duration such as 5s or 500ms"))?,
    };
    Ok(Json(status_with(&state, &caller, &id, wait).await?))
}

/// A command's status, waiting up to `wait` (capped) for its outcome, whichever protocol asks.
pub(crate) async fn status_with(
    state: &AppState,
    caller: &Caller,
    id: &str,
    wait: Duration,
) -> Result<Value, GatewayError> {
    let command_id =
        Uuid::parse_str(id).map_err(|_| GatewayError::invalid("command_id", "command_id must be a UUID"))?;
    let wait = wait.min(state.max_status_wait);
    let not_found = || GatewayError::NotFound(format!("command {command_id}"));
    let accepted =
        state.ledger.find(caller.organization_id.as_str(), command_id).await?.ok_or_else(not_found)?;
    // A member sees only commands about themselves; others' are as good as absent.
    if !caller.may_see_member(accepted.member_id.as_deref()) {
        return Err(not_found());
    }

    let mut woken = state.outcomes.wake.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    let mut decided = state.outcomes.lookup(&accepted.domain, command_id).await?;
    let wanted = command_id.to_string();
    while decided.is_none() && tokio::time::Instant::now() < deadline {
        // A notification lost to a reconnect is caught by looking again every second regardless.
        let next_look = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
        tokio::select! {
            message = woken.recv() => match message {
                Ok(id) if *id != *wanted && *id != *EVERYONE => continue,
                Err(broadcast::error::RecvError::Closed) => break,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            },
            () = tokio::time::sleep_until(next_look) => {}
        }
        decided = state.outcomes.lookup(&accepted.domain, command_id).await?;
    }
    Ok(status_body(&accepted, decided.as_ref()))
}

fn status_body(accepted: &Accepted, decided: Option<&Decided>) -> Value {
    let mut body = accepted.response.0.clone();
    body["command_type"] = json!(accepted.command_type);
    body["accepted_at"] = json!(accepted.accepted_at);
    let Some(decided) = decided else {
        body["status"] = json!("accepted");
        return body;
    };
    body["decided_at"] = json!(decided.decided_at);
    body["events"] = json!(decided.events);
    match decided.outcome.as_str() {
        "rejected" => {
            body["status"] = json!("rejected");
            body["rejection"] = json!({ "code": decided.code, "reason": decided.reason });
        }
        "dead_lettered" => {
            body["status"] = json!("failed");
            body["error"] = json!({ "code": "unprocessable_command", "reason": decided.reason });
        }
        _ => body["status"] = json!("applied"),
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_seconds_or_milliseconds() {
        assert_eq!(parse_wait("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_wait("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_wait("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_wait("0.5s"), Some(Duration::from_millis(500)));
        for bad in ["", "soon", "-1s", "NaN", "infs", "1e300", "1e300s", "1e308ms"] {
            assert_eq!(parse_wait(bad), None, "{bad}");
        }
    }
}
