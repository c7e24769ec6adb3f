//! Queries read the projections: newest first, paginated by cursor, filtered, always within the
//! caller's organization, and a member sees only their own records.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::Value;
use studyspot_attendance_projection as attendance;
use studyspot_billing_projection as billing;
use studyspot_notifications_projection as notifications;
use studyspot_tokens::Role;
use support::TestGateway;

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("time") + Duration::minutes(minute)
}

async fn get(gw: &TestGateway, path: &str, token: &str) -> (u16, Value) {
    let (status, _, body) = TestGateway::send(gw.request(Method::GET, path, Some(token))).await;
    (status, body)
}

/// Follows next_cursor to the end; returns the ids in order.
async fn all_pages(gw: &TestGateway, path: &str, token: &str, id_field: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut url = path.to_owned();
    loop {
        let (status, body) = get(gw, &url, token).await;
        assert_eq!(status, 200, "{url}: {body}");
        ids.extend(
            body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| i[id_field].as_str().expect("id").to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(cursor) => {
                let separator = if path.contains('?') { '&' } else { '?' };
                url = format!("{path}{separator}cursor={cursor}");
            }
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_are_paginated_filtered_and_scoped() {
    let gw = TestGateway::start(|_| {}).await;
    let mut db = gw.projection("billing", &billing::MIGRATIONS).await;
    // 7 payments of org_a (mem_1 and mem_2, two methods), 2 of org_b, created a minute apart.
    for n in 0..9 {
        let payment = billing::Payment {
            payment_id: format!("pay_{n}"),
            organization_id: if n < 7 { "org_a".into() } else { "org_b".into() },
            member_id: if n % 2 == 0 { "mem_1".into() } else { "mem_2".into() },
            amount_minor: 100 * (n + 1),
            currency: "EUR".into(),
            method: if n < 4 { "card".into() } else { "cash".into() },
            description: None,
            status: "created".into(),
            created_at: at(n),
            updated_at: at(n),
            ..Default::default()
        };
        billing::insert_payment(&mut db, &payment).await.expect("insert");
    }
    let owner_a = gw.token(Some("org_a"), &[Role::Owner], None);
    let owner_b = gw.token(Some("org_b"), &[Role::Owner], None);
    let member_1 = gw.token(Some("org_a"), &[Role::Member], Some("mem_1"));

    let ids = all_pages(&gw, "/api/payments?limit=3", &owner_a, "payment_id").await;
    assert_eq!(
        ids,
        ["pay_6", "pay_5", "pay_4", "pay_3", "pay_2", "pay_1", "pay_0"],
        "newest first, every page"
    );
    let ids = all_pages(&gw, "/api/payments?limit=2&method=card", &owner_a, "payment_id").await;
    assert_eq!(ids, ["pay_3", "pay_2", "pay_1", "pay_0"]);
    let ids = all_pages(&gw, "/api/payments?member_id=mem_2&limit=1", &owner_a, "payment_id").await;
    assert_eq!(ids, ["pay_5", "pay_3", "pay_1"]);
    let ids = all_pages(&gw, "/api/payments", &owner_b, "payment_id").await;
    assert_eq!(ids, ["pay_8", "pay_7"], "another organization's payments never show");
    let ids = all_pages(&gw, "/api/payments", &member_1, "payment_id").await;
    assert_eq!(ids, ["pay_6", "pay_4", "pay_2", "pay_0"], "a member sees their own payments only");
    assert_eq!(get(&gw, "/api/payments?member_id=mem_2", &member_1).await.0, 403);

    let (status, body) = get(&gw, "/api/payments/pay_3", &owner_a).await;
    assert_eq!((status, body["amount_minor"].as_i64()), (200, Some(400)), "{body}");
    assert_eq!(get(&gw, "/api/payments/pay_3", &owner_b).await.0, 404, "not across organizations");
    assert_eq!(get(&gw, "/api/payments/pay_3", &member_1).await.0, 404, "not another member's");
    assert_eq!(get(&gw, "/api/payments/pay_2", &member_1).await.0, 200);

    for (path, field) in [
        ("/api/payments?limit=0", "limit"),
        ("/api/payments?limit=201", "limit"),
        ("/api/payments?cursor=garbage", "cursor"),
        // Instants a cursor may spell but PostgreSQL does not hold (before 4713 BC; beyond what
        // the driver can send): a 422, not the 503 of a failed query.
        ("/api/payments?cursor=-300000000000000000.pay_1", "cursor"),
        ("/api/payments?cursor=-8000000000000000000.pay_1", "cursor"),
        ("/api/payments?memberid=mem_1", "memberid"),
        ("/api/attendance/sessions?open=maybe", "open"),
    ] {
        let (status, body) = get(&gw, path, &owner_a).await;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some(field)), "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_list_stays_within_the_organization() {
    let gw = TestGateway::start(|_| {}).await;
    let mut db = gw.projection("attendance", &attendance::MIGRATIONS).await;
    for (n, org) in ["org_a", "org_a", "org_b"].iter().enumerate() {
        let session = attendance::Session {
            session_id: format!("ses_{n}"),
            organization_id: (*org).into(),
            member_id: format!("mem_{n}"),
            venue_id: "ven_1".into(),
            seat_id: None,
            checked_in_at: at(n as i64),
            checked_out_at: (n == 0).then(|| at(30)),
        };
        attendance::insert_session(&mut db, &session).await.expect("insert");
    }
    let mut db = gw.projection("notifications", &notifications::MIGRATIONS).await;
    for (n, org) in ["org_a", "org_b"].iter().enumerate() {
        let notification = notifications::Notification {
            notification_id: format!("ntf_{n}"),
            organization_id: (*org).into(),
            recipient_id: "mem_0".into(),
            channel: "email".into(),
            category: "billing".into(),
            subject: None,
            body: "Hi".into(),
            status: "queued".into(),
            created_at: at(n as i64),
            ..Default::default()
        };
        notifications::insert_notification(&mut db, &notification).await.expect("insert");
    }
    let mut db = gw.projection("alerts", &studyspot_alerts_projection::MIGRATIONS).await;
    for (n, org) in ["org_a", "org_b"].iter().enumerate() {
        let sample = studyspot_alerts_projection::Sample {
            event_id: format!("evt_{n}"),
            organization_id: (*org).into(),
            metric: "occupancy_ratio".into(),
            labels: serde_json::json!({ "venue": "ven_1" }),
            value: 0.5,
            sampled_at: at(n as i64),
        };
        studyspot_alerts_projection::insert_sample(&mut db, &sample).await.expect("insert");
    }

    let owner_b = gw.token(Some("org_b"), &[Role::Owner], None);
    let owner_a = gw.token(Some("org_a"), &[Role::Owner], None);
    let lists = [
        ("/api/payments", "payment_id"),
        ("/api/notifications", "notification_id"),
        ("/api/attendance/sessions", "session_id"),
        ("/api/monitoring/metrics", "event_id"),
    ];
    for (path, id) in lists {
        let seen_by_b: HashSet<String> = all_pages(&gw, path, &owner_b, id).await.into_iter().collect();
        let seen_by_a: HashSet<String> = all_pages(&gw, path, &owner_a, id).await.into_iter().collect();
        assert!(seen_by_a.is_disjoint(&seen_by_b), "{path}: {seen_by_a:?} and {seen_by_b:?}");
        // Payments are not projected in this test: an empty list, not an error.
        assert_eq!(seen_by_b.is_empty(), path == "/api/payments", "{path}: {seen_by_b:?}");
    }
    assert_eq!(all_pages(&gw, "/api/attendance/sessions", &owner_a, "session_id").await, ["ses_1", "ses_0"]);
    assert_eq!(all_pages(&gw, "/api/attendance/sessions?open=true", &owner_a, "session_id").await, ["ses_1"]);
    assert_eq!(all_pages(&gw, "/api/notifications", &owner_b, "notification_id").await, ["ntf_1"]);
    let member = gw.token(Some("org_a"), &[Role::Member], Some("mem_1"));
    assert_eq!(get(&gw, "/api/monitoring/metrics", &member).await.0, 403, "metrics are for operators");
    assert_eq!(all_pages(&gw, "/api/attendance/sessions", &member, "session_id").await, ["ses_1"]);
}
