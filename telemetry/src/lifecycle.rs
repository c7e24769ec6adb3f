use std::time::Duration;

use crate::{CheckFuture, ReadinessCheck};

/// Resolves on SIGTERM or SIGINT: every process's cue to finish what it holds and exit.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot listen for SIGTERM / SIGINT");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}

/// PostgreSQL answers a query through this pool.
pub struct PostgresCheck(pub sqlx::PgPool);

impl ReadinessCheck for PostgresCheck {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn check(&self) -> CheckFuture {
        let pool = self.0.clone();
        Box::pin(async move {
            tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&pool))
                .await
                .map_err(|_| "timed out".to_string())?
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}
