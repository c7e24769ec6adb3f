use studyspot_bus::{BrokerCheck, Producer};
use studyspot_telemetry::{CheckFuture, PostgresCheck, Readiness, ReadinessCheck};

/// Ready when the broker, the registry, the ledger and the projections all answer.
pub fn readiness(
    producer: Producer,
    registry_url: &str,
    ledger: sqlx::PgPool,
    readonly: sqlx::PgPool,
) -> Readiness {
    Readiness::default()
        .with(BrokerCheck(producer))
        .with(Registry(format!("{}/subjects", registry_url.trim_end_matches('/'))))
        .with(PostgresCheck::named("postgres_ledger", ledger))
        .with(PostgresCheck::named("postgres_readonly", readonly))
}

struct Registry(String);

impl ReadinessCheck for Registry {
    fn name(&self) -> &'static str {
        "schema_registry"
    }
    fn check(&self) -> CheckFuture {
        let url = self.0.clone();
        Box::pin(async move {
            let response = reqwest::get(&url).await.map_err(|e| e.to_string())?;
            if response.status().is_success() { Ok(()) } else { Err(format!("{url}: {}", response.status())) }
        })
    }
}
