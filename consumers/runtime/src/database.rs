use std::str::FromStr;

use sqlx::{
    Executor, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

static RUNTIME_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// A consumer's own schema: its projection and the runtime's tables, one writer.
#[derive(Clone, Debug)]
pub struct Database {
    pub pool: PgPool,
    pub schema: String,
}

/// Connects with `search_path` set to `schema`, creates the schema when missing, and brings the
/// runtime's tables and then the domain's projection (`migrator`) up to date.
///
/// The runtime's migrations are numbered below 1000 and a domain's from 1000 on, so both can share
/// the schema's one `_sqlx_migrations` table.
pub async fn connect_schema(
    url: &str,
    schema: &str,
    max_connections: u32,
    migrator: Option<&'static Migrator>,
) -> Result<Database, sqlx::Error> {
    if !schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') || schema.is_empty()
    {
        return Err(sqlx::Error::Configuration(format!("schema name {schema:?} must be [a-z0-9_]+").into()));
    }
    let options = PgConnectOptions::from_str(url)?.options([("search_path", schema)]);
    {
        // Two instances starting together both run CREATE SCHEMA IF NOT EXISTS; PostgreSQL lets
        // one of them fail on pg_namespace's unique index unless they take turns.
        let admin = PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        let mut tx = admin.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('studyspot.create_schema.' || $1))")
            .bind(schema)
            .execute(&mut *tx)
            .await?;
        tx.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {schema}"))).await?;
        tx.commit().await?;
        admin.close().await;
    }
    let pool = PgPoolOptions::new().max_connections(max_connections).connect_with(options).await?;
    let mut runtime = Migrator::with_migrations(RUNTIME_MIGRATIONS.migrations.to_vec());
    runtime.set_ignore_missing(true);
    runtime.run(&pool).await?;
    if let Some(domain) = migrator {
        let mut domain = Migrator::with_migrations(domain.migrations.to_vec());
        domain.set_ignore_missing(true);
        domain.run(&pool).await?;
    }
    Ok(Database { pool, schema: schema.to_owned() })
}
