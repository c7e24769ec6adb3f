use std::time::Duration;

use crate::{CheckFuture, ReadinessCheck};

/// A token cancelled on SIGTERM or SIGINT. The handlers are registered before this returns, so a
/// stop that arrives during start-up is a clean stop, not the default action's abrupt death.
pub fn shutdown_token() -> std::io::Result<tokio_util::sync::CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
    let token = tokio_util::sync::CancellationToken::new();
    tokio::spawn({
        let token = token.clone();
        async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = int.recv() => tracing::info!("SIGINT"),
            }
            token.cancel();
        }
    });
    Ok(token)
}

/// PostgreSQL answers a query through this pool.
pub struct PostgresCheck {
    pool: sqlx::PgPool,
    name: &'static str,
}

impl PostgresCheck {
    /// Reported as `postgres`.
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self { pool, name: "postgres" }
    }

    /// For a process with more than one pool (e.g. a read-only one beside its own).
    pub fn named(name: &'static str, pool: sqlx::PgPool) -> Self {
        Self { pool, name }
    }
}

impl ReadinessCheck for PostgresCheck {
    fn name(&self) -> &'static str {
        self.name
    }

    fn check(&self) -> CheckFuture {
        let pool = self.pool.clone();
        Box::pin(async move {
            tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&pool))
                .await
                .map_err(|_| "timed out".to_string())?
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}
