//! A consumer's schema is created and migrated safely by several instances starting at once.

use studyspot_consumer_runtime::connect_schema;

#[tokio::test(flavor = "multi_thread")]
async fn instances_starting_together_all_get_the_migrated_schema() {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let url = studyspot_fresh_database::create(&studyspot_fresh_database::admin_url(), &format!("t_{id}"))
        .await
        .expect("a database of its own on PostgreSQL for tests");

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
