//! An order-independent digest of a projection's contents (`studyspot projection checksum`), to
//! compare a rebuilt projection with the live one (or two environments).
//!
//! Per table: the row count and the sum (as an exact numeric) of the first 64 bits of each row's
//! md5, taken over the row's text form (`ROW(col, …)::text`, columns in their declared order).
//! A sum does not depend on the order rows are read or were written in, and a changed, added or
//! removed row changes it. The digest is the SHA-256 of every table's name, count and sum, tables
//! by name. The runtime's bookkeeping (offsets, applied ids, outbox, command outcomes, migrations)
//! differs between a live projection and its rebuild by design, so it is left out.

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::RuntimeError;

fn bail(message: String) -> RuntimeError {
    RuntimeError::Fatal(message)
}

/// The consumer runtime's own tables (consumers/runtime/migrations) and sqlx's ledger.
pub const BOOKKEEPING: [&str; 5] =
    ["_sqlx_migrations", "consumer_offsets", "applied_events", "outbox", "command_outcomes"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSum {
    pub table: String,
    pub rows: i64,
    /// The sum of the rows' 64-bit hashes, in decimal.
    pub sum: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub tables: Vec<TableSum>,
    pub digest: String,
}

fn valid_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The checksum of `schema`, leaving out the bookkeeping tables, the tables in `exclude_tables`
/// and the columns in `exclude_columns` (`column` anywhere, or `table.column`).
pub async fn checksum(
    pool: &PgPool,
    schema: &str,
    exclude_tables: &[String],
    exclude_columns: &[String],
) -> Result<Checksum, RuntimeError> {
    if !valid_identifier(schema) {
        return Err(bail(format!("schema name {schema:?} must be [a-z0-9_]+")));
    }
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
    )
    .bind(schema)
    .fetch_one(pool)
    .await?;
    if !exists {
        return Err(bail(format!("there is no schema {schema}")));
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .bind(schema)
    .fetch_all(pool)
    .await?;
    let mut sums = Vec::new();
    let mut hasher = Sha256::new();
    for table in tables {
        if BOOKKEEPING.contains(&table.as_str()) || exclude_tables.contains(&table) {
            continue;
        }
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        )
        .bind(schema)
        .bind(&table)
        .fetch_all(pool)
        .await?;
        let kept: Vec<String> = columns
            .into_iter()
            .filter(|c| !exclude_columns.iter().any(|x| x == c || *x == format!("{table}.{c}")))
            .map(|c| format!("t.{}", quote(&c)))
            .collect();
        // ROW() of one column is still a row, so its text form keeps the parentheses.
        let row = if kept.is_empty() { "ROW()".to_owned() } else { format!("ROW({})", kept.join(", ")) };
        let sql = format!(
            "SELECT count(*)::bigint,
                    coalesce(sum(('x' || substr(md5({row}::text), 1, 16))::bit(64)::bigint::numeric), 0)::text
             FROM {}.{} t",
            quote(schema),
            quote(&table)
        );
        let (rows, sum): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await?;
        hasher.update(format!("{table}\t{rows}\t{sum}\n").as_bytes());
        sums.push(TableSum { table, rows, sum });
    }
    Ok(Checksum { tables: sums, digest: hex::encode(hasher.finalize()) })
}
