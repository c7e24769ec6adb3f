//! A Confluent-compatible schema registry: the REST API that Confluent's clients (Java, Python,
//! Go, schema_registry_converter) call, stored in PostgreSQL's `registry` schema. Compatibility is
//! judged by apache-avro's checker. Production may point at Confluent, Karapace or Apicurio instead.

pub mod api;
mod compatibility;
mod error;
mod store;

use std::str::FromStr;

use sqlx::{
    Executor, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use studyspot_telemetry::{PostgresCheck, Readiness};

pub use error::RegistryError;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pool whose connections work in the `registry` schema, which is created when missing.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.options([("search_path", "registry")]);
    let pool = PgPoolOptions::new().max_connections(max_connections).connect_with(options).await?;
    pool.execute("CREATE SCHEMA IF NOT EXISTS registry").await?;
    Ok(pool)
}

/// Migrates the store, then returns the API with `/metrics`, `/health` and `/ready`.
pub async fn router(pool: PgPool) -> Result<axum::Router, RegistryError> {
    MIGRATIONS.run(&pool).await.map_err(|e| RegistryError::Store(e.into()))?;
    let readiness = Readiness::default().with(PostgresCheck::new(pool.clone()));
    Ok(api::routes(pool).merge(studyspot_telemetry::ops_router("schema-registry", readiness)))
}
