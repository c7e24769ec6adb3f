//! Campaigns, digests, "send now" and read receipts end to end: the real broker and PostgreSQL, a
//! notifications consumer process with its delivery worker, the gateway, and an SMTP sink.

use std::time::Duration;

use chrono::{DateTime, Timelike as _, Utc};
use mail_parser::MessageParser;
use serde_json::{Value, json};
use studyspot_schemas::{
    attendance::CheckedIn,
    billing::{self, SubscriptionCreated},
    notifications::SetPreferences,
};
use studyspot_test_world::{Consumer, World, eventually, smtp::SmtpSink, stop};
use studyspot_tokens::Role;

async fn world() -> World {
    let world = World::new("notifications", env!("CARGO_BIN_EXE_studyspot-notifications")).await;
    world.create_topics(&[&billing::EVENTS, &studyspot_schemas::attendance::EVENTS]).await;
    world
}

fn consumer(world: &World, sink: &SmtpSink) -> Consumer {
    world.spawn_mailing_consumer(sink.port(), &[])
}

fn preferences(world: &World, member: &str, time_zone: &str) -> SetPreferences {
    SetPreferences {
        metadata: world.named_metadata(&format!("prefs/{member}")),
        recipient_id: member.into(),
        email: Some(format!("{member}@example.org")),
        phone: None,
        whatsapp: None,
        push_token: None,
        webhook_url: None,
        webhook_secret: None,
        time_zone: time_zone.into(),
        quiet_start: None,
        quiet_end: None,
        opted_out_channels: Vec::new(),
        opted_out_categories: Vec::new(),
        category_caps: Default::default(),
        daily_cap: None,
    }
}

fn subscribed(world: &World, member: &str, plan: &str) -> SubscriptionCreated {
    let now = Utc::now().timestamp_millis();
    SubscriptionCreated {
        metadata: world.named_metadata(&format!("sub/{member}")),
        subscription_id: format!("sub_{member}"),
        member_id: member.into(),
        plan_id: plan.into(),
        plan_version: 1,
        status: "active".into(),
        current_period_start: now,
        current_period_end: now + 30 * 86_400_000,
        trial_end: None,
        coupon_id: None,
    }
}

async fn post(base: &str, token: &str, path: &str, body: Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    assert_eq!(status, 202, "{path}: {}", response.text().await.unwrap_or_default());
}

async fn get(base: &str, token: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .unwrap_or(Value::Null)
}

async fn count(world: &World, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&world.pool().await).await.unwrap_or(-1)
}

/// Opens the caller's live event stream and returns, once it comes, the data of the first
/// `NotificationSent` event that `wanted` accepts.
async fn live_event(
    base: &str,
    token: &str,
    wanted: impl Fn(&str) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<String> {
    let mut response = reqwest::Client::new()
        .get(format!("{base}/api/events/stream"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the event stream");
    assert_eq!(response.status().as_u16(), 200);
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data =
                    event.lines().find_map(|l| l.strip_prefix("data:")).map(str::trim).unwrap_or_default();
                let name = event.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim);
                if name == Some("NotificationSent") && wanted(data) {
                    return data.to_owned();
                }
            }
        }
        String::new()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_reaches_its_segment_at_nine_local_time_and_cancelling_stops_what_has_not_gone_out() {
    let world = world().await;
    let sink = SmtpSink::accepting().await;
    let mut consumer = consumer(&world, &sink);
    let (base, token) = world.gateway().await;
    for (member, zone, plan) in [
        ("mem_berlin", "Europe/Berlin", "plan_gold"),
        ("mem_newyork", "America/New_York", "plan_gold"),
        ("mem_tokyo", "Asia/Tokyo", "plan_basic"),
    ] {
        world.send(&preferences(&world, member, zone)).await;
        world.send(&subscribed(&world, member, plan)).await;
    }
    eventually("the audience", Duration::from_secs(60), || async {
        let n = count(
            &world,
            "SELECT (SELECT count(*) FROM notifications.preferences) + (SELECT count(*) FROM notifications.audience)",
        )
        .await;
        (n == 6).then_some(())
    })
    .await;

    // Gold members, at 09:00 the day after tomorrow in their own zones.
    let day = (Utc::now() + chrono::Duration::days(2)).date_naive();
    let local = format!("{day}T09:00");
    post(
        &base,
        &token,
        "/api/notifications/campaigns",
        json!({ "campaign_id": "cmp_gold", "name": "Gold members' open day", "kind": "targeted",
                "category": "operational", "channel": "email", "subject": "Open day",
                "body": "Hello {{ recipient_id }}, join us on {{ day }}.", "variables": { "day": day.to_string() },
                "segment": { "plan_ids": ["plan_gold"] }, "send_at_local": local }),
    )
    .await;
    post(&base, &token, "/api/notifications/campaigns/cmp_gold/launch", json!({})).await;
    let gold = eventually("the gold campaign's messages", Duration::from_secs(60), || async {
        let c = get(&base, &token, "/api/notifications/campaigns/cmp_gold").await;
        (c["status"] == "launched" && c["waiting"] == 2).then_some(c)
    })
    .await;
    assert_eq!(gold["recipients"], 2, "{gold}");
    let due: Vec<(String, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT recipient_id, not_before, body FROM notifications.notifications WHERE campaign_id = 'cmp_gold' \
         ORDER BY recipient_id",
    )
    .fetch_all(&world.pool().await)
    .await
    .expect("rows");
    let zones = [chrono_tz::Europe::Berlin, chrono_tz::America::New_York];
    for ((member, at, body), zone) in due.iter().zip(zones) {
        let local = at.with_timezone(&zone);
        assert_eq!((local.date_naive(), local.hour(), local.minute()), (day, 9, 0), "{member}");
        assert_eq!(body, &format!("Hello {member}, join us on {day}."));
    }

    // Everyone, in-app, at most one a minute: one goes out now, the others wait their turn.
    post(
        &base,
        &token,
        "/api/notifications/campaigns",
        json!({ "campaign_id": "cmp_all", "name": "Welcome", "kind": "broadcast", "category": "operational",
                "channel": "in_app", "body": "Welcome to StudySpot", "throttle_per_minute": 1 }),
    )
    .await;
    post(&base, &token, "/api/notifications/campaigns/cmp_all/launch", json!({})).await;
    eventually("the first welcome sent", Duration::from_secs(60), || async {
        let c = get(&base, &token, "/api/notifications/campaigns/cmp_all").await;
        (c["sent"] == 1 && c["waiting"] == 2).then_some(())
    })
    .await;
    let spread: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT not_before FROM notifications.notifications WHERE campaign_id = 'cmp_all' ORDER BY not_before",
    )
    .fetch_all(&world.pool().await)
    .await
    .expect("times");
    assert_eq!(spread[1] - spread[0], chrono::Duration::seconds(60));
    assert_eq!(spread[2] - spread[1], chrono::Duration::seconds(60));

    post(&base, &token, "/api/notifications/campaigns/cmp_all/cancel", json!({})).await;
    post(&base, &token, "/api/notifications/campaigns/cmp_gold/cancel", json!({})).await;
    for (id, sent, cancelled) in [("cmp_all", 1, 2), ("cmp_gold", 0, 2)] {
        let c = eventually(&format!("{id} cancelled"), Duration::from_secs(60), || async {
            let c = get(&base, &token, &format!("/api/notifications/campaigns/{id}")).await;
            (c["status"] == "cancelled" && c["cancelled"] == cancelled).then_some(c)
        })
        .await;
        assert_eq!(
            (c["sent"].as_i64(), c["waiting"].as_i64()),
            (Some(sent), Some(0)),
            "{c}\n{}",
            consumer.log()
        );
    }
    let listed = get(&base, &token, "/api/notifications/campaigns?status=cancelled").await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2), "{listed}");
    // A launch of a cancelled campaign is refused, not repeated.
    post(&base, &token, "/api/notifications/campaigns/cmp_all/launch", json!({})).await;
    let bad = reqwest::Client::new()
        .post(format!("{base}/api/notifications/campaigns"))
        .bearer_auth(&token)
        .json(&json!({ "name": "x", "kind": "automated", "category": "operational", "body": "x" }))
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status().as_u16(), 422);
    let error: Value = bad.json().await.expect("error body");
    assert_eq!(error["error"]["field"], "trigger", "{error}");
    assert!(sink.captured().is_empty(), "nothing by email yet");
    stop(&mut consumer);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_sends_its_messages_as_one_email_without_the_cancelled_one_and_a_member_marks_in_app_read() {
    let world = world().await;
    let sink = SmtpSink::accepting().await;
    let mut consumer = consumer(&world, &sink);
    let (base, settings) = world.gateway_with_settings().await;
    let token = world.token(&settings, Role::Staff, None);
    world.send(&preferences(&world, "mem_ada", "UTC")).await;
    eventually("preferences applied", Duration::from_secs(60), || async {
        (count(&world, "SELECT count(*) FROM notifications.preferences").await == 1).then_some(())
    })
    .await;
    for (id, subject, transaction) in [
        ("ntf_d1", "Seat 12 booked", None),
        ("ntf_d2", "Seat 4 booked", Some("tx_2")),
        ("ntf_d3", "Room 3 closed", None),
    ] {
        post(
            &base,
            &token,
            "/api/notifications",
            json!({ "notification_id": id, "recipient_id": "mem_ada", "channel": "email", "category": "attendance",
                    "subject": subject, "body": format!("About {subject}."), "transaction_id": transaction,
                    "digest_key": "bookings", "digest_window_secs": 3600 }),
        )
        .await;
        // In order: each joins the digest the first one opened.
        eventually(&format!("{id} digested"), Duration::from_secs(60), || async {
            let n = count(
                &world,
                &format!("SELECT count(*) FROM notifications.notifications WHERE notification_id = '{id}' AND status = 'digested'"),
            )
            .await;
            (n == 1).then_some(())
        })
        .await;
    }
    post(
        &base,
        &token,
        "/api/notifications/cancel",
        json!({ "recipient_id": "mem_ada", "transaction_id": "tx_2" }),
    )
    .await;
    eventually("the cancelled one left the digest", Duration::from_secs(60), || async {
        let n = count(&world, "SELECT count(*) FROM notifications.notifications WHERE notification_id = 'ntf_d2' AND status = 'cancelled'").await;
        (n == 1).then_some(())
    })
    .await;
    assert!(sink.captured().is_empty(), "the digest waits for its window");
    // Sending a digested message now sends its digest now.
    post(&base, &token, "/api/notifications/ntf_d1/send", json!({})).await;
    let mail = eventually("the digest at the SMTP sink", Duration::from_secs(60), || async {
        sink.captured().into_iter().next()
    })
    .await;
    let parsed = MessageParser::default().parse(&mail.data).expect("MIME");
    assert_eq!(parsed.subject(), Some("2 updates"), "{}", consumer.log());
    assert_eq!(
        parsed.body_text(0).map(|b| b.trim().replace("\r\n", "\n")).as_deref(),
        Some("• Seat 12 booked\n  About Seat 12 booked.\n\n• Room 3 closed\n  About Room 3 closed.")
    );
    assert_eq!(
        count(&world, "SELECT count(*) FROM notifications.sent_counts WHERE recipient_id = 'mem_ada'").await,
        1,
        "one message against the caps"
    );

    // In-app: streamed live to the member, then in their inbox, which they mark read.
    let member = world.token(&settings, Role::Member, Some("mem_ada"));
    let live = live_event(&base, &member, |data| data.contains("Wi-Fi is back")).await;
    post(
        &base,
        &token,
        "/api/notifications",
        json!({ "notification_id": "ntf_inbox", "recipient_id": "mem_ada", "channel": "in_app",
                "category": "operational", "body": "Wi-Fi is back" }),
    )
    .await;
    let streamed = tokio::time::timeout(Duration::from_secs(60), live)
        .await
        .expect("the live event within a minute")
        .expect("the stream reader");
    let streamed: Value = serde_json::from_str(&streamed).expect("event data is JSON");
    assert_eq!(
        (streamed["notification_id"].as_str(), streamed["channel"].as_str(), streamed["category"].as_str()),
        (Some("ntf_inbox"), Some("in_app"), Some("operational")),
        "{streamed}"
    );
    eventually("the message in the inbox", Duration::from_secs(60), || async {
        let inbox = get(&base, &member, "/api/notifications/inbox").await;
        inbox["items"].as_array().filter(|i| i.iter().any(|m| m["notification_id"] == "ntf_inbox")).map(drop)
    })
    .await;
    post(
        &base,
        &member,
        "/api/notifications/inbox/read",
        json!({ "notification_ids": ["ntf_inbox", "ntf_d1"] }),
    )
    .await;
    eventually("read", Duration::from_secs(60), || async {
        let read = count(
            &world,
            "SELECT count(*) FROM notifications.notifications WHERE read_at IS NOT NULL AND notification_id = 'ntf_inbox'",
        )
        .await;
        (read == 1).then_some(())
    })
    .await;
    assert_eq!(
        count(&world, "SELECT count(*) FROM notifications.notifications WHERE read_at IS NOT NULL").await,
        1,
        "only in-app messages are read receipts"
    );
    stop(&mut consumer);
}

fn checked_in(world: &World, member: &str, venue: &str) -> CheckedIn {
    CheckedIn {
        metadata: world.named_metadata(&format!("in/{member}/{venue}")),
        session_id: format!("ses_{member}"),
        member_id: member.into(),
        venue_id: venue.into(),
        seat_id: Some("A1".into()),
        occupancy: 1,
        zone_id: None,
        zone_occupancy: None,
        booking_id: None,
        subscription_id: None,
        pass_id: None,
        venue_name: None,
        seat_label: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_automated_campaign_answers_check_ins_and_a_venue_segment_finds_who_came() {
    let world = world().await;
    let sink = SmtpSink::accepting().await;
    let mut consumer = consumer(&world, &sink);
    let (base, token) = world.gateway().await;
    post(
        &base,
        &token,
        "/api/notifications/campaigns",
        json!({ "campaign_id": "cmp_welcome", "name": "Check-in welcome", "kind": "automated",
                "category": "attendance", "channel": "in_app", "trigger": "studyspot.attendance.CheckedIn",
                "body": "Welcome to {{ venue_id }}{{ seat }}! Quiet floor is upstairs." }),
    )
    .await;
    post(&base, &token, "/api/notifications/campaigns/cmp_welcome/launch", json!({})).await;
    eventually("the automated campaign launched", Duration::from_secs(60), || async {
        let c = get(&base, &token, "/api/notifications/campaigns/cmp_welcome").await;
        (c["status"] == "launched").then_some(())
    })
    .await;
    world.send(&checked_in(&world, "mem_lin", "ven_library")).await;
    world.send(&checked_in(&world, "mem_kai", "ven_hall")).await;
    let welcomed: Vec<(String, String)> = eventually("both welcomed", Duration::from_secs(60), || async {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT recipient_id, body FROM notifications.notifications WHERE campaign_id = 'cmp_welcome' \
             AND status = 'sent' ORDER BY recipient_id",
        )
        .fetch_all(&world.pool().await)
        .await
        .unwrap_or_default();
        (rows.len() == 2).then_some(rows)
    })
    .await;
    assert_eq!(
        welcomed,
        [
            ("mem_kai".to_owned(), "Welcome to ven_hall, seat A1! Quiet floor is upstairs.".to_owned()),
            ("mem_lin".to_owned(), "Welcome to ven_library, seat A1! Quiet floor is upstairs.".to_owned()),
        ],
        "{}",
        consumer.log()
    );

    // Who came to the library in the last week.
    post(
        &base,
        &token,
        "/api/notifications/campaigns",
        json!({ "campaign_id": "cmp_library", "name": "Library regulars", "kind": "targeted",
                "category": "operational", "channel": "in_app", "body": "The library closes early on Friday.",
                "segment": { "venue_ids": ["ven_library"], "attended_within_days": 7 } }),
    )
    .await;
    post(&base, &token, "/api/notifications/campaigns/cmp_library/launch", json!({})).await;
    let c = eventually("the library campaign sent", Duration::from_secs(60), || async {
        let c = get(&base, &token, "/api/notifications/campaigns/cmp_library").await;
        (c["sent"] == 1).then_some(c)
    })
    .await;
    assert_eq!(c["recipients"], 1, "{c}");
    let to: String = sqlx::query_scalar(
        "SELECT recipient_id FROM notifications.notifications WHERE campaign_id = 'cmp_library'",
    )
    .fetch_one(&world.pool().await)
    .await
    .expect("row");
    assert_eq!(to, "mem_lin");
    stop(&mut consumer);
}

/// A campaign nobody would receive is not launched: the launch is rejected with a code and the
/// campaign stays a draft. A local time already past in every zone and an empty channel are
/// refused at the door, naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_without_recipients_or_with_a_past_local_time_is_refused_with_a_code() {
    let world = world().await;
    let sink = SmtpSink::accepting().await;
    let mut consumer = consumer(&world, &sink);
    let (base, token) = world.gateway().await;
    let campaign = json!({ "campaign_id": "cmp_nobody", "name": "Nobody", "kind": "targeted",
                           "category": "operational", "channel": "in_app", "body": "Hello",
                           "segment": { "plan_ids": ["plan_nobody"] } });
    post(&base, &token, "/api/notifications/campaigns", campaign.clone()).await;
    eventually("the draft", Duration::from_secs(60), || async {
        (get(&base, &token, "/api/notifications/campaigns/cmp_nobody").await["status"] == "draft")
            .then_some(())
    })
    .await;
    let client = reqwest::Client::new();
    let accepted: Value = client
        .post(format!("{base}/api/notifications/campaigns/cmp_nobody/launch"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .expect("launch")
        .json()
        .await
        .expect("accepted");
    let status_url = accepted["status_url"].as_str().expect("status url");
    let decided: Value = client
        .get(format!("{base}{status_url}?wait=30s"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("decided");
    assert_eq!(
        (decided["status"].as_str(), decided["rejection"]["code"].as_str()),
        (Some("rejected"), Some("campaign_has_no_recipients")),
        "{decided}\n{}",
        consumer.log()
    );
    let c = get(&base, &token, "/api/notifications/campaigns/cmp_nobody").await;
    assert_eq!((c["status"].as_str(), c["recipients"].as_i64()), (Some("draft"), Some(0)), "{c}");

    let mut cases = Vec::new();
    let mut past = campaign.clone();
    past["campaign_id"] = json!("cmp_past");
    past["send_at_local"] = json!("2020-01-01T09:00");
    cases.push((past, "send_at_local"));
    let mut no_channel = campaign.clone();
    no_channel["campaign_id"] = json!("cmp_blank");
    no_channel["channel"] = json!("");
    cases.push((no_channel, "channel"));
    for (body, field) in cases {
        let refused = client
            .post(format!("{base}/api/notifications/campaigns"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(refused.status().as_u16(), 422, "{body}");
        let error: Value = refused.json().await.expect("error body");
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    stop(&mut consumer);
}
