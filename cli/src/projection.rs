//! `studyspot projection checksum|drop-old` and `studyspot rebuild`: a consumer's projection (its
//! PostgreSQL schema) compared, rebuilt from history and swapped, and the swapped-out one dropped.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use studyspot_consumer_runtime::checksum::checksum;

/// The consumers whose binaries know `rebuild`.
pub const CONSUMERS: [&str; 4] = ["billing", "notifications", "attendance", "alerts"];

async fn connect(database_url: &str) -> anyhow::Result<PgPool> {
    PgPool::connect(database_url).await.context("cannot connect to PostgreSQL (postgres.url)")
}

pub async fn print_checksum(
    database_url: &str,
    consumer: &str,
    schema: Option<&str>,
    exclude_tables: &[String],
    exclude_columns: &[String],
) -> anyhow::Result<()> {
    let schema = schema.unwrap_or(consumer);
    let pool = connect(database_url).await?;
    let sum = checksum(&pool, schema, exclude_tables, exclude_columns).await?;
    pool.close().await;
    let width = sum.tables.iter().map(|t| t.table.len()).max().unwrap_or(5).max(5);
    for t in &sum.tables {
        let table_digest = hex::encode(Sha256::digest(format!("{}\t{}\t{}", t.table, t.rows, t.sum)));
        println!("{:<width$}  {:>10} rows  {}", t.table, t.rows, &table_digest[..16]);
    }
    println!("{schema}  {} tables  digest {}", sum.tables.len(), sum.digest);
    Ok(())
}

pub async fn drop_old(database_url: &str, consumer: &str, only: Option<&str>) -> anyhow::Result<()> {
    let pool = connect(database_url).await?;
    let dropped = studyspot_consumer_runtime::drop_old(&pool, consumer, only).await?;
    pool.close().await;
    if dropped.is_empty() {
        println!("{consumer} has no projection left by a rebuild to drop");
    }
    for schema in dropped {
        println!("dropped {schema}");
    }
    Ok(())
}

/// The consumer's binary: `--bin`, else `STUDYSPOT_<CONSUMER>_BIN`, else `studyspot-<consumer>`
/// beside this executable, else on `PATH`.
fn consumer_binary(consumer: &str, bin: Option<PathBuf>) -> PathBuf {
    if let Some(bin) = bin {
        return bin;
    }
    if let Ok(bin) = std::env::var(format!("STUDYSPOT_{}_BIN", consumer.to_uppercase())) {
        return bin.into();
    }
    let name = format!("studyspot-{consumer}");
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| name.into())
}

/// Runs `studyspot-<consumer> rebuild`: the consumer's own binary, so the rebuild applies history
/// with exactly the handler, settings and migrations the live process has.
pub fn rebuild(
    consumer: &str,
    config: Option<&std::path::Path>,
    bin: Option<PathBuf>,
    forwarded: &[String],
) -> anyhow::Result<()> {
    if !CONSUMERS.contains(&consumer) {
        bail!("unknown consumer {consumer:?}; one of {CONSUMERS:?}");
    }
    let binary = consumer_binary(consumer, bin);
    let mut command = Command::new(&binary);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command.arg("rebuild").args(forwarded);
    // The consumer checks the secrets it verifies with (attendance's QR keys) before it starts;
    // beside the local stack they are in its secrets file.
    if std::env::var_os("STUDYSPOT_SECRETS_FILE").is_none()
        && let Some(file) = studyspot_config::local_secrets_file().filter(|f| f.is_file())
    {
        command.env("STUDYSPOT_SECRETS_FILE", file);
    }
    let status = command.status().with_context(|| format!("cannot run {}", binary.display()))?;
    if !status.success() {
        bail!("{} rebuild failed ({status})", binary.display());
    }
    Ok(())
}
