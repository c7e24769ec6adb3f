use sqlx::{PgConnection, PgPool};

use crate::RegistryError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub subject: String,
    pub version: i32,
    pub schema_id: i32,
    pub deleted: bool,
    pub schema_text: String,
}

const SELECT_VERSION: &str = "SELECT v.subject, v.version, v.schema_id, v.deleted, s.schema_text FROM versions v JOIN schemas s ON s.id = v.schema_id";

pub async fn versions(
    db: &mut PgConnection,
    subject: &str,
    include_deleted: bool,
) -> Result<Vec<VersionRow>, RegistryError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_VERSION} WHERE v.subject = $1 AND (NOT v.deleted OR $2) ORDER BY v.version"
    )))
    .bind(subject)
    .bind(include_deleted)
    .fetch_all(db)
    .await?)
}

pub async fn subject_exists(db: &mut PgConnection, subject: &str) -> Result<(bool, bool), RegistryError> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE NOT deleted) FROM versions WHERE subject = $1 HAVING count(*) > 0",
    )
    .bind(subject)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(_, live)| (true, live > 0)).unwrap_or((false, false)))
}

pub async fn subjects(pool: &PgPool, include_deleted: bool) -> Result<Vec<String>, RegistryError> {
    Ok(sqlx::query_scalar("SELECT DISTINCT subject FROM versions WHERE (NOT deleted OR $1) ORDER BY subject")
        .bind(include_deleted)
        .fetch_all(pool)
        .await?)
}

pub async fn schema_by_id(pool: &PgPool, id: i32) -> Result<String, RegistryError> {
    sqlx::query_scalar("SELECT schema_text FROM schemas WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(RegistryError::SchemaNotFound)
}

pub async fn usages_of(pool: &PgPool, id: i32) -> Result<Vec<(String, i32)>, RegistryError> {
    Ok(sqlx::query_as("SELECT subject, version FROM versions WHERE schema_id = $1 AND NOT deleted ORDER BY subject, version")
        .bind(id)
        .fetch_all(pool)
        .await?)
}

/// The subject's own level, if it has one.
pub async fn subject_level(db: &mut PgConnection, subject: &str) -> Result<Option<String>, RegistryError> {
    Ok(sqlx::query_scalar("SELECT compatibility FROM config WHERE subject = $1")
        .bind(subject)
        .fetch_optional(db)
        .await?)
}

pub async fn effective_level(db: &mut PgConnection, subject: &str) -> Result<String, RegistryError> {
    if let Some(level) = subject_level(db, subject).await? {
        return Ok(level);
    }
    Ok(subject_level(db, "").await?.unwrap_or_else(|| "BACKWARD".into()))
}

pub async fn set_level(pool: &PgPool, subject: &str, level: &str) -> Result<(), RegistryError> {
    sqlx::query(
        "INSERT INTO config (subject, compatibility) VALUES ($1, $2) ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
    )
    .bind(subject)
    .bind(level)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn delete_level(pool: &PgPool, subject: &str) -> Result<Option<String>, RegistryError> {
    Ok(sqlx::query_scalar("DELETE FROM config WHERE subject = $1 RETURNING compatibility")
        .bind(subject)
        .fetch_optional(pool)
        .await?)
}

/// The id of `normal` (inserting it when new).
pub async fn schema_id(db: &mut PgConnection, normal: &str) -> Result<i32, RegistryError> {
    Ok(sqlx::query_scalar(
        "WITH ins AS (INSERT INTO schemas (schema_text) VALUES ($1) ON CONFLICT (schema_text) DO NOTHING RETURNING id) \
         SELECT id FROM ins UNION ALL SELECT id FROM schemas WHERE schema_text = $1 LIMIT 1",
    )
    .bind(normal)
    .fetch_one(db)
    .await?)
}

pub async fn add_version(db: &mut PgConnection, subject: &str, schema_id: i32) -> Result<i32, RegistryError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO versions (subject, version, schema_id) \
         SELECT $1, COALESCE(max(version), 0) + 1, $2 FROM versions WHERE subject = $1 RETURNING version",
    )
    .bind(subject)
    .bind(schema_id)
    .fetch_one(db)
    .await?)
}

/// Serializes writers of one subject so concurrent registrations agree on ids and versions.
pub async fn lock_subject(db: &mut PgConnection, subject: &str) -> Result<(), RegistryError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('registry:' || $1))")
        .bind(subject)
        .execute(db)
        .await?;
    Ok(())
}
