//! History for rebuild tests: records written with an older schema version, a consumer caught up
//! with its topics, a rebuild run of the consumer binary, and a projection's checksum.

use std::{collections::HashMap, time::Duration};

use apache_avro::{Schema, types::Value};
use studyspot_bus::{Headers, OutboundMessage, admin::RegistryAdmin, headers, history};
use studyspot_consumer_runtime::checksum::Checksum;
use studyspot_schemas::Record;

use crate::World;

impl World {
    /// Produces `record` written with an earlier version of its schema: today's without `dropped`
    /// fields (which must have defaults today). That version is registered first, and the subject
    /// made BACKWARD_TRANSITIVE, so today's reader resolves the record with the defaults.
    pub async fn send_older<R: Record>(&self, record: &R, dropped: &[&str]) {
        let registry = RegistryAdmin::new(&self.registry_url).expect("registry");
        let subject = R::topic().subject(R::FULL_NAME);
        registry.set_compatibility(&subject, "BACKWARD_TRANSITIVE").await.expect("compatibility");
        let mut older = serde_json::to_value(R::get_schema()).expect("schema json");
        older["fields"]
            .as_array_mut()
            .expect("a record schema")
            .retain(|f| !dropped.iter().any(|d| f["name"] == *d));
        let id = registry.register(&subject, &older.to_string()).await.expect("register the older version");
        let older = Schema::parse(&older).expect("the older version parses");
        let Value::Record(mut fields) = apache_avro::to_value(record).expect("to value") else {
            panic!("{} is not a record", R::FULL_NAME)
        };
        fields.retain(|(name, _)| !dropped.contains(&name.as_str()));
        let body = apache_avro::writer::datum::GenericDatumWriter::builder(&older)
            .build()
            .expect("writer")
            .write_value_to_vec(Value::Record(fields))
            .expect("datum");
        // The Confluent wire format: magic byte, schema id, body.
        let mut payload = vec![0u8];
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&body);
        let mut headers = Headers::default();
        headers.insert(headers::EVENT_ID, record.metadata().event_id.clone());
        headers.insert(headers::CORRELATION_ID, record.metadata().correlation_id.clone());
        headers.insert(headers::RECORD_TYPE, R::FULL_NAME);
        let message = OutboundMessage {
            topic: self.topic(R::topic().name),
            key: record.key().to_owned(),
            payload,
            headers,
        };
        self.producer.send(&message).await.expect("produce the older record");
    }

    /// Waits (at most two minutes) until `schema`'s stored positions reached the end of every
    /// non-empty partition of `topics` (catalogue names): the consumer applied everything written
    /// so far.
    pub async fn caught_up(&self, schema: &str, topics: &[&str]) {
        crate::eventually(
            &format!("{schema} caught up with {topics:?}"),
            Duration::from_secs(120),
            || async { self.has_caught_up(schema, topics).await.then_some(()) },
        )
        .await;
    }

    async fn has_caught_up(&self, schema: &str, topics: &[&str]) -> bool {
        let names: Vec<String> = topics.iter().map(|t| self.topic(t)).collect();
        let marks = history::watermarks(&self.bus, &names, Duration::from_secs(10)).expect("watermarks");
        let pool = self.pool().await;
        let stored: Vec<(String, i32, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT topic, partition, next_offset FROM {schema}.consumer_offsets"
        )))
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
        pool.close().await;
        let stored: HashMap<(String, i32), i64> = stored.into_iter().map(|(t, p, n)| ((t, p), n)).collect();
        marks
            .iter()
            .filter(|(_, m)| m.high > 0)
            .all(|(p, m)| stored.get(&(p.topic.clone(), p.partition)).is_some_and(|next| *next >= m.high))
    }

    /// Runs `<binary> rebuild <args>` against this world and waits for it (at most `timeout`);
    /// returns its standard output, failing the test when it fails.
    pub async fn rebuild(&self, args: &[&str], timeout: Duration) -> String {
        let log =
            std::env::temp_dir().join(format!("rebuild-{}-{}.log", self.id, uuid::Uuid::now_v7().simple()));
        let out =
            std::env::temp_dir().join(format!("rebuild-{}-{}.out", self.id, uuid::Uuid::now_v7().simple()));
        let mut command = tokio::process::Command::from(self.consumer_command(&self.database_url));
        let mut child = command
            .arg("rebuild")
            .args(args)
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&log).expect("log file"))
            .env("NO_COLOR", "1")
            .spawn()
            .expect("start the rebuild");
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                let _ = child.kill().await;
                panic!(
                    "rebuild still running after {timeout:?}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let stdout = std::fs::read_to_string(&out).unwrap_or_default();
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "rebuild failed ({status}):\n{stdout}\n{stderr}");
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&log);
        stdout
    }

    /// `schema`'s checksum, leaving out `exclude_columns` (`table.column`).
    pub async fn checksum(&self, schema: &str, exclude_columns: &[&str]) -> Checksum {
        let pool = self.pool().await;
        let columns: Vec<String> = exclude_columns.iter().map(|c| (*c).to_owned()).collect();
        let sum = studyspot_consumer_runtime::checksum::checksum(&pool, schema, &[], &columns)
            .await
            .expect("checksum");
        pool.close().await;
        sum
    }

    /// A digest of `schema.table`'s rows in the order of `order_by`, without `exclude_columns`.
    /// A checksum that leaves a surrogate key out (a sequence's number) no longer sees the order
    /// the key gave the rows; this compares that order.
    pub async fn ordered_digest(
        &self,
        schema: &str,
        table: &str,
        order_by: &str,
        exclude_columns: &[&str],
    ) -> String {
        let pool = self.pool().await;
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        )
        .bind(schema)
        .bind(table)
        .fetch_all(&pool)
        .await
        .expect("columns");
        let kept: Vec<String> = columns
            .into_iter()
            .filter(|c| !exclude_columns.contains(&c.as_str()))
            .map(|c| format!("t.\"{c}\""))
            .collect();
        assert!(!kept.is_empty(), "{schema}.{table} has no columns left to compare");
        let digest: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT md5(coalesce(string_agg(ROW({})::text, E'\\n' ORDER BY {order_by}), '')) FROM \"{schema}\".\"{table}\" t",
            kept.join(", ")
        )))
        .fetch_one(&pool)
        .await
        .expect("ordered digest");
        pool.close().await;
        digest
    }

    /// The schemas of this world's database whose names start with `prefix`.
    pub async fn schemas(&self, prefix: &str) -> Vec<String> {
        let pool = self.pool().await;
        let names = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1) ORDER BY nspname",
        )
        .bind(prefix)
        .fetch_all(&pool)
        .await
        .expect("schemas");
        pool.close().await;
        names
    }
}
