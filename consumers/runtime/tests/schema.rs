//! A consumer's schema is created and migrated safely by several instances starting at once.

use sqlx::{Connection, PgConnection};
use studyspot_consumer_runtime::connect_schema;

fn admin_url() -> String {
    std::env::var("STUDYSPOT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://studyspot:studyspot@127.0.0.1:5432/studyspot".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_starting_together_all_get_the_migrated_schema() {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let mut admin = PgConnection::connect(&admin_url()).await.expect("PostgreSQL for tests");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE t_{id}")))
        .execute(&mut admin)
        .await
        .expect("create db");
    let base = admin_url();
    let url = format!("{}/t_{id}", base.rsplit_once('/').expect("url has a database").0);

    // Several rounds, each on a schema of its own, so the instances really race for its creation.
    for round in 0..10 {
        let schema = format!("racing_{round}");
        let starts = (0..12).map(|_| {
            let (url, schema) = (url.clone(), schema.clone());
            tokio::spawn(async move { connect_schema(&url, &schema, 2, None).await.map(|db| db.schema) })
        });
        for start in futures::future::join_all(starts).await {
            assert_eq!(start.expect("task").expect("every instance connects"), schema);
        }
        let db = connect_schema(&url, &schema, 1, None).await.expect("connect");
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = '_sqlx_migrations'",
        )
        .bind(&schema)
        .fetch_one(&db.pool)
        .await
        .expect("count");
        assert_eq!(tables, 1, "the migrations ran in the schema");
    }
}
