//! Structured logs through the gateway against the real broker and PostgreSQL, with a real alerts
//! process: batches posted over HTTP are found by time range, minimum level, service and
//! full-text search, page by page; a retention tick drops exactly the records older than the
//! retention period. Everything is awaited with a deadline.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::json;
use studyspot_schemas::{EventMetadata, attendance, billing, notifications};
use studyspot_test_world::{Api, World, eventually};

/// The messages a search finds, newest first.
async fn messages(api: &Api, query: &[(&str, &str)]) -> Vec<String> {
    let (status, body) = api.get_query("/api/monitoring/logs", query).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|l| l["message"].as_str().expect("message").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_found_by_level_service_text_and_time_and_expire_after_retention() {
    let world = World::new("alerts", env!("CARGO_BIN_EXE_studyspot-alerts")).await;
    // Alerts reads these domains' events: the topics exist in every real deployment.
    world.create_topics(&[&billing::EVENTS, &attendance::EVENTS, &notifications::EVENTS]).await;
    let api = Api::staff(&world).await;
    let consumer = world.spawn_consumer_with(
        None,
        &world.database_url,
        // Retention ticks come from this test, at instants it chooses.
        &[
            ("STUDYSPOT_ALERTS__LOGS__RETENTION_INTERVAL_SECS", "0"),
            ("STUDYSPOT_ALERTS__HEALTH__ENABLED", "false"),
        ],
    );

    // Bad records are refused at the door, naming the field.
    let (status, refused) = api
        .post(
            "/api/monitoring/logs",
            json!({ "records": [{ "level": "info", "service": "billing", "message": "ok" },
                                { "level": "loud", "service": "billing", "message": "?" }] }),
        )
        .await;
    assert_eq!((status, refused["error"]["field"].as_str()), (422, Some("records[1].level")), "{refused}");

    let now = Utc::now();
    let at = |days: i64, minutes: i64| {
        (now - chrono::Duration::days(days) - chrono::Duration::minutes(minutes))
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    let batch = json!({ "records": [
        { "time": at(20, 0), "level": "error", "service": "billing", "message": "charge failed: card declined",
          "fields": { "payment_id": "pay_old" } },
        { "time": at(0, 30), "level": "info", "service": "billing", "message": "charge succeeded",
          "fields": { "payment_id": "pay_1" } },
        { "time": at(0, 20), "level": "warn", "service": "billing", "message": "provider slow: stripe answered in 4 s",
          "fields": { "payment_id": "pay_2", "latency_ms": 4000 } },
        { "time": at(0, 10), "level": "error", "service": "billing", "message": "charge failed: connection refused",
          "fields": { "payment_id": "pay_3", "connector": "stripe" } },
        { "time": at(0, 5), "level": "error", "service": "notifications", "message": "webhook answered 500",
          "fields": { "endpoint": "https://example.org/hook" } },
        { "time": at(0, 1), "level": "debug", "service": "attendance", "message": "check-in verified" },
    ] });
    let stored = api.command("/api/monitoring/logs", batch).await;
    assert_eq!(stored["status"], "applied", "{stored}");

    let all = messages(&api, &[]).await;
    assert_eq!(all.len(), 6, "{all:?}");
    assert_eq!(all[0], "check-in verified", "newest first");

    // At least warn: warnings, errors (and fatal), nothing below.
    let warn_up = messages(&api, &[("level", "warn")]).await;
    assert_eq!(
        warn_up,
        [
            "webhook answered 500",
            "charge failed: connection refused",
            "provider slow: stripe answered in 4 s",
            "charge failed: card declined"
        ]
    );
    assert_eq!(
        messages(&api, &[("level", "error"), ("service", "billing")]).await,
        ["charge failed: connection refused", "charge failed: card declined"]
    );
    // Text: words, phrases, exclusions, and field values.
    assert_eq!(
        messages(&api, &[("q", "charge failed -declined")]).await,
        ["charge failed: connection refused"]
    );
    assert_eq!(
        messages(&api, &[("q", "\"connection refused\"")]).await,
        ["charge failed: connection refused"]
    );
    assert_eq!(messages(&api, &[("q", "pay_2")]).await, ["provider slow: stripe answered in 4 s"]);
    assert_eq!(
        messages(&api, &[("q", "stripe"), ("level", "error")]).await,
        ["charge failed: connection refused"]
    );
    // Time range: from inclusive, to exclusive.
    let (from, to) = (at(0, 25), at(0, 5));
    assert_eq!(
        messages(&api, &[("from", from.as_str()), ("to", to.as_str())]).await,
        ["charge failed: connection refused", "provider slow: stripe answered in 4 s"]
    );
    // Pages: two, then the rest, following next_cursor.
    let (_, first) = api.get_query("/api/monitoring/logs", &[("limit", "4")]).await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(4), "{first}");
    let cursor = first["next_cursor"].as_str().expect("a next page").to_owned();
    let (_, second) =
        api.get_query("/api/monitoring/logs", &[("limit", "4"), ("cursor", cursor.as_str())]).await;
    let rest: Vec<&str> =
        second["items"].as_array().expect("items").iter().filter_map(|l| l["message"].as_str()).collect();
    assert_eq!(rest, ["charge succeeded", "charge failed: card declined"]);
    assert!(second["next_cursor"].is_null(), "{second}");
    let (status, bad) = api.get_query("/api/monitoring/logs", &[("level", "loud")]).await;
    assert_eq!((status, bad["error"]["field"].as_str()), (422, Some("level")), "{bad}");

    // A retention tick at now keeping 14 days drops the 20-day-old record, and only it.
    let tick = studyspot_schemas::alerts::EnforceLogRetention {
        metadata: EventMetadata {
            event_id: uuid::Uuid::now_v7().to_string(),
            occurred_at: now.timestamp_millis(),
            correlation_id: "log-retention-test".into(),
            causation_id: None,
            organization_id: world.organization_id(),
            actor: "service:alerts-scheduler".into(),
        },
        up_to: now.timestamp_millis(),
        retention_days: 14,
    };
    world.send(&tick).await;
    let left = eventually("the old record to expire", Duration::from_secs(30), || async {
        let left = messages(&api, &[]).await;
        (left.len() == 5).then_some(left)
    })
    .await;
    assert!(!left.iter().any(|m| m.contains("declined")), "{left:?}");
    assert!(messages(&api, &[("q", "pay_old")]).await.is_empty());

    // The same search over gRPC, typed.
    let channel =
        tonic::transport::Channel::from_shared(api.base.clone()).expect("uri").connect().await.expect("grpc");
    let mut client = studyspot_grpc_api::gateway_client::GatewayClient::new(channel);
    let mut request = tonic::Request::new(studyspot_grpc_api::ListRequest {
        filters: [("q", "stripe"), ("level", "warn")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        limit: Some(1),
        cursor: None,
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {}", api.token).parse().expect("metadata"));
    let page = client.search_logs(request).await.expect("search").into_inner();
    assert_eq!(page.items.len(), 1, "{page:?}");
    assert_eq!(page.items[0].message, "charge failed: connection refused");
    assert_eq!(page.items[0].fields["connector"], "stripe");
    assert!(page.next_cursor.is_some(), "the warning about stripe follows");

    // The alerts process's own retention ticks: restarted with one a second, a record older than
    // the retention period goes without anyone asking.
    let stale = api
        .command(
            "/api/monitoring/logs",
            json!({ "records": [{ "time": at(30, 0), "level": "info", "service": "gateway", "message": "stale request" }] }),
        )
        .await;
    assert_eq!(stale["status"], "applied", "{stale}");
    assert_eq!(messages(&api, &[("q", "stale")]).await, ["stale request"]);
    drop(consumer);
    let _ticking = world.spawn_consumer_with(
        None,
        &world.database_url,
        &[
            ("STUDYSPOT_ALERTS__LOGS__RETENTION_INTERVAL_SECS", "1"),
            ("STUDYSPOT_ALERTS__HEALTH__ENABLED", "false"),
        ],
    );
    eventually("the scheduled retention tick", Duration::from_secs(60), || async {
        messages(&api, &[("q", "stale")]).await.is_empty().then_some(())
    })
    .await;
    assert_eq!(messages(&api, &[]).await.len(), 5, "the records within 14 days stay");
}
