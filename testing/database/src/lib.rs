//! A database of one's own on a shared PostgreSQL server: every test, benchmark and load run that
//! needs PostgreSQL makes one, so runs go side by side and in any order without seeing each
//! other's rows. The test harness (`studyspot-test-world`), the gateway's, the registry's and the
//! consumer runtime's own tests, the benchmarks and the load generator's stack all make theirs here.

use sqlx::{Connection, PgConnection};

/// The PostgreSQL server tests and benchmarks make their databases on:
/// `STUDYSPOT_TEST_DATABASE_URL`, or the local stack's.
pub fn admin_url() -> String {
    std::env::var("STUDYSPOT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://studyspot:studyspot@127.0.0.1:5432/studyspot".into())
}

/// Creates the database `name` (lowercase letters, digits and `_`) on the server `admin_url`
/// points at, and returns its URL: `admin_url` with `name` in place of its database.
pub async fn create(admin_url: &str, name: &str) -> Result<String, sqlx::Error> {
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    if name.is_empty() || !name.chars().all(plain) {
        return Err(sqlx::Error::Configuration(
            format!("database name {name:?}: only lowercase letters, digits and _").into(),
        ));
    }
    let (server, _) = admin_url.rsplit_once('/').ok_or_else(|| {
        sqlx::Error::Configuration(format!("{admin_url} names no database to connect to").into())
    })?;
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
    let _ = admin.close().await;
    Ok(format!("{server}/{name}"))
}
