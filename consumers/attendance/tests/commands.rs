//! A command's life through the gateway: accepted, then applied or rejected with the domain's
//! reason, as a real attendance consumer decides it; `?wait=` answers as soon as it is decided.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{stop, world};

async fn check_in(client: &reqwest::Client, gateway: &str, token: &str, member: &str) -> String {
    let response = client
        .post(format!("{gateway}/api/attendance/check-ins"))
        .bearer_auth(token)
        .json(&json!({ "member_id": member, "venue_id": "ven_1" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("body");
    body["status_url"].as_str().expect("status url").to_owned()
}

async fn status(client: &reqwest::Client, gateway: &str, token: &str, url: &str) -> Value {
    let response =
        client.get(format!("{gateway}{url}?wait=30s")).bearer_auth(token).send().await.expect("status");
    assert_eq!(response.status(), 200);
    response.json().await.expect("body")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_of_a_command_follows_the_consumers_decision() {
    let world = world().await;
    world.send(&support::venue(&world, "ven_1", 10)).await;
    world.send(&support::pass(&world, 1, "ven_1")).await;
    let (gateway, token) = world.gateway().await;
    let mut consumer = world.spawn_consumer(None);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");

    let first = check_in(&client, &gateway, &token, "mem_1").await;
    let applied = status(&client, &gateway, &token, &first).await;
    assert_eq!(applied["status"], "applied", "{applied}");
    assert_eq!(applied["events"].as_array().map(Vec::len), Some(1), "the CheckedIn event: {applied}");
    assert!(applied["decided_at"].is_string());
    // The event names the venue as people know it, for the member's message.
    let first_id = first.trim_start_matches("/api/commands/").to_owned();
    let record = support::eventually("the CheckedIn event", Duration::from_secs(30), || async {
        world.read_all(studyspot_schemas::attendance::EVENTS.name).into_iter().find(|m| {
            m.headers.get(studyspot_bus::headers::CAUSATION_ID) == Some(first_id.as_str())
                && m.headers
                    .get(studyspot_bus::headers::RECORD_TYPE)
                    .is_some_and(|t| t.ends_with(".CheckedIn"))
        })
    })
    .await;
    let decoded = world.codec.decode(record.payload.as_deref().expect("payload")).await.expect("decode");
    let event: studyspot_schemas::attendance::CheckedIn = decoded.into_record().expect("a CheckedIn");
    assert_eq!(event.venue_name.as_deref(), Some("Venue ven_1"));

    let second = check_in(&client, &gateway, &token, "mem_1").await;
    let rejected = status(&client, &gateway, &token, &second).await;
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    assert_eq!(rejected["rejection"]["code"], "already_checked_in");
    assert!(rejected["rejection"]["reason"].as_str().is_some_and(|r| r.contains("mem_1")), "{rejected}");
    stop(&mut consumer);
}
