//! Organization A's records, one or more in every domain, made through the gateway by A's owner
//! and applied by the real consumers; and the picture of them the suite compares before and after
//! the attacks.
//!
//! Every id of A holds `alpha`, every record of A's member `mem_1` holds `alpha1`, and their free
//! texts hold a secret (`alpha-secret`, `alpha1-secret`): a list that names one of them to an
//! outsider, or any answer that holds a secret, leaked.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use studyspot_tenancy_suite::stack::Stack;
use studyspot_test_world::eventually;

pub const A_MARK: &str = "alpha";
pub const MEMBER_1_MARK: &str = "alpha1";
pub const ORG_SECRET: &str = "alpha-secret";
pub const MEMBER_1_SECRET: &str = "alpha1-secret";

// Organization A's shared records.
pub const PLAN: &str = "plan_alpha";
pub const COUPON: &str = "coupon_alpha";
pub const VENUE: &str = "ven_alpha";
pub const ZONE: &str = "zone_alpha";
pub const SEAT: &str = "seat_alpha";
pub const TEMPLATE: &str = "tpl_alpha";
pub const CAMPAIGN: &str = "cmp_alpha";
pub const METRIC: &str = "alpha_metric";
pub const RULE: &str = "rul_alpha";
pub const ROUTE: &str = "rte_alpha";
pub const INHIBITION: &str = "inh_alpha";
pub const SILENCE: &str = "sil_alpha";
pub const DASHBOARD: &str = "dsh_alpha";
pub const REPORT: &str = "rpt_alpha";
pub const HEALTH_CHECK: &str = "hck_alpha";
pub const LOG_SERVICE: &str = "alpha-service";

// Member mem_1's records in A.
pub const PAID: &str = "pay_alpha1";
pub const AWAITING_STAFF: &str = "pay_alpha1_cash";
pub const UNPROCESSED: &str = "pay_alpha1_new";
pub const REFUND: &str = "re_alpha1";
pub const METHOD: &str = "pm_alpha1";
pub const INVOICE: &str = "inv_alpha1";
pub const SUBSCRIPTION: &str = "sub_alpha1";
pub const USAGE: &str = "use_alpha1";
pub const CREDIT_NOTE: &str = "cn_alpha1";
pub const PASS: &str = "pas_alpha1";
pub const SESSION: &str = "ses_alpha1";
pub const BOOKING: &str = "bkg_alpha1";
pub const DELIVERED: &str = "ntf_alpha1";
pub const SCHEDULED: &str = "ntf_alpha1_later";
pub const TRANSACTION: &str = "txn_alpha1";

// Organization B's own records, made after the read-only cases (which see B empty): what B's
// commands need to reach the reference they test (a subscription of B's own on A's coupon).
pub const B_PLAN: &str = "plan_beta";
pub const B_SUBSCRIPTION: &str = "sub_beta";

/// An instant `days` from now, RFC 3339, at `hour`:00 UTC.
pub fn day(days: i64, hour: u32) -> String {
    let date = (Utc::now() + chrono::Duration::days(days)).date_naive();
    let at: DateTime<Utc> = date.and_hms_opt(hour, 0, 0).expect("an hour of the day").and_utc();
    at.to_rfc3339()
}

/// What seeding leaves to refer to: one of A's command ids.
pub struct Seeded {
    pub a_command: String,
}

/// Sends a command and waits until its consumer applied it.
pub async fn applied(stack: &Stack, token: &str, path: &str, body: Value) -> String {
    let reply = stack.http(Method::POST, path, Some(token), Some(&body)).await;
    assert_eq!(reply.status, 202, "{path}: {}", reply.text);
    let id = reply.command_id().expect("a command id").to_owned();
    let decision = stack.decision(&id, token).await;
    assert_eq!(decision["status"], "applied", "{path} {body}: {decision}");
    id
}

async fn all_applied(stack: &Stack, token: &str, commands: Vec<(&str, Value)>) -> Vec<String> {
    futures::future::join_all(commands.into_iter().map(|(path, body)| applied(stack, token, path, body)))
        .await
}

/// Polls a read of A's until `done` holds for it.
async fn until(stack: &Stack, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(path, Duration::from_secs(60), || async {
        let reply = stack.http(Method::GET, path, Some(token), None).await;
        (reply.status == 200 && done(&reply.body)).then_some(reply.body)
    })
    .await
}

pub fn venue_body(id: &str, name: &str) -> Value {
    json!({ "venue_id": id, "name": name, "time_zone": "Europe/Berlin", "capacity": 10,
            "zones": [{ "zone_id": ZONE, "name": "Quiet", "capacity": 5 }],
            "seats": [{ "seat_id": SEAT, "zone_id": ZONE, "label": "A1" }],
            "opening_hours": (1..=7).map(|d| json!({ "weekday": d, "opens": "00:00", "closes": "24:00" })).collect::<Vec<_>>() })
}

pub fn plan_body(id: &str, name: &str) -> Value {
    json!({ "plan_id": id, "name": name, "tier": "basic", "cycle": "monthly", "price_minor": 1500,
            "currency": "EUR", "trial_days": 30,
            "allowances": [{ "metric": "seat_hours", "included": 100, "overage_unit_minor": 0 }] })
}

pub fn rule_body(id: &str, name: &str) -> Value {
    json!({ "rule_id": id, "name": name, "metric": METRIC, "window_seconds": 60, "op": ">",
            "threshold": 100, "severity": "warning" })
}

pub fn route_body(id: &str) -> Value {
    json!({ "route_id": id, "matchers": [{ "name": "team", "op": "=", "value": "alpha" }],
            "receivers": [{ "recipient_id": "mem_1", "channel": "email" }] })
}

pub fn inhibition_body(id: &str) -> Value {
    json!({ "inhibit_rule_id": id, "source_matchers": [{ "name": "severity", "op": "=", "value": "critical" }],
            "target_matchers": [{ "name": "severity", "op": "=", "value": "warning" }] })
}

pub fn silence_body(id: &str, comment: &str) -> Value {
    json!({ "silence_id": id, "matchers": [{ "name": "alertname", "op": "=", "value": "AlphaDown" }],
            "ends_at": day(30, 0), "comment": comment })
}

pub fn dashboard_body(id: &str, name: &str) -> Value {
    json!({ "dashboard_id": id, "name": name, "widgets": [
        { "widget_id": "metric", "title": "Metric", "kind": "series", "metric": METRIC, "aggregation": "sum",
          "step_seconds": 3600 },
        { "widget_id": "revenue", "title": "Revenue", "kind": "revenue" } ] })
}

pub fn report_body(id: &str, name: &str) -> Value {
    json!({ "report_id": id, "name": name, "schedule": "daily", "time_zone": "UTC",
            "sections": ["revenue", "occupancy"], "recipients": [{ "recipient_id": "mem_1", "channel": "email" }] })
}

pub fn health_check_body(id: &str, name: &str) -> Value {
    // Never probed: the suite runs no prober (and loopback's discard port answers nothing).
    json!({ "health_check_id": id, "name": name, "kind": "tcp", "target": "127.0.0.1:9" })
}

/// A's records in every domain, applied; and B's own plan and subscription.
pub async fn organization_a(stack: &Stack, owner: &str) -> Seeded {
    // What depends on nothing.
    all_applied(
        stack,
        owner,
        vec![
            ("/api/subscriptions/plans", plan_body(PLAN, &format!("{ORG_SECRET} plan"))),
            (
                "/api/subscriptions/coupons",
                json!({ "coupon_id": COUPON, "name": format!("{ORG_SECRET} coupon"), "percent_off_bps": 1000, "duration": "once" }),
            ),
            (
                "/api/payments/methods",
                json!({ "payment_method_id": METHOD, "member_id": "mem_1", "method": "cash", "label": format!("{MEMBER_1_SECRET} cash") }),
            ),
            (
                "/api/payments/invoices",
                json!({ "invoice_id": INVOICE, "member_id": "mem_1", "currency": "EUR", "due_at": day(30, 0),
                        "lines": [{ "description": format!("{MEMBER_1_SECRET} desk"), "quantity": 1, "unit_amount_minor": 10_000,
                                    "tax_rate_bps": 1900, "tax_name": "VAT" }] }),
            ),
            (
                "/api/payments",
                json!({ "payment_id": PAID, "member_id": "mem_1", "amount_minor": 2000, "currency": "EUR",
                        "method": "cash", "description": format!("{MEMBER_1_SECRET} paid") }),
            ),
            (
                "/api/payments",
                json!({ "payment_id": AWAITING_STAFF, "member_id": "mem_1", "amount_minor": 3000, "currency": "EUR",
                        "method": "cash", "description": format!("{MEMBER_1_SECRET} waiting") }),
            ),
            (
                "/api/payments",
                json!({ "payment_id": UNPROCESSED, "member_id": "mem_1", "amount_minor": 4000, "currency": "EUR",
                        "method": "cash", "description": format!("{MEMBER_1_SECRET} new") }),
            ),
            ("/api/attendance/venues", venue_body(VENUE, &format!("{ORG_SECRET} venue"))),
            (
                "/api/notifications/templates",
                json!({ "template_id": TEMPLATE, "channel": "in_app", "subject": "Hello",
                        "body": format!("{ORG_SECRET} {{{{ name }}}}"), "sample_variables": { "name": "Ada" } }),
            ),
            (
                "/api/notifications/subscriptions",
                json!({ "recipient_id": "mem_1", "email": "mem1.alpha1-secret@example.com", "time_zone": "Europe/Berlin" }),
            ),
            ("/api/monitoring/metrics", json!({ "metric": METRIC, "labels": { "team": ORG_SECRET }, "value": 1.0 })),
            ("/api/monitoring/alerts", rule_body(RULE, &format!("{ORG_SECRET} rule"))),
            ("/api/monitoring/routes", route_body(ROUTE)),
            ("/api/monitoring/inhibit-rules", inhibition_body(INHIBITION)),
            ("/api/monitoring/silences", silence_body(SILENCE, &format!("{ORG_SECRET} silence"))),
            ("/api/monitoring/dashboards", dashboard_body(DASHBOARD, &format!("{ORG_SECRET} dashboard"))),
            ("/api/monitoring/reports", report_body(REPORT, &format!("{ORG_SECRET} report"))),
            ("/api/monitoring/health-checks", health_check_body(HEALTH_CHECK, &format!("{ORG_SECRET} check"))),
            (
                "/api/monitoring/logs",
                json!({ "records": [{ "level": "warn", "service": LOG_SERVICE, "message": format!("{ORG_SECRET} log line") }] }),
            ),
        ],
    )
    .await;

    // What refers to the first.
    all_applied(
        stack,
        owner,
        vec![
            ("/api/subscriptions", json!({ "subscription_id": SUBSCRIPTION, "member_id": "mem_1", "plan_id": PLAN })),
            (
                "/api/attendance/passes",
                json!({ "pass_id": PASS, "member_id": "mem_1", "venue_id": VENUE, "valid_from": day(-1, 0), "valid_until": day(60, 0) }),
            ),
            (
                "/api/notifications",
                json!({ "notification_id": DELIVERED, "recipient_id": "mem_1", "channel": "in_app", "category": "transactional",
                        "subject": "Hi", "body": format!("{MEMBER_1_SECRET} now") }),
            ),
            (
                "/api/notifications",
                json!({ "notification_id": SCHEDULED, "recipient_id": "mem_1", "channel": "in_app", "category": "transactional",
                        "subject": "Later", "body": format!("{MEMBER_1_SECRET} later"), "transaction_id": TRANSACTION,
                        "send_at": day(20, 9) }),
            ),
            (
                "/api/notifications/campaigns",
                json!({ "campaign_id": CAMPAIGN, "name": format!("{ORG_SECRET} campaign"), "kind": "broadcast",
                        "category": "marketing", "channel": "in_app", "template_id": TEMPLATE, "body": "unused",
                        "variables": { "name": "all" }, "segment": { "recipient_ids": ["mem_1"] }, "send_at": day(20, 9) }),
            ),
            (&format!("/api/payments/{PAID}/process"), json!({})),
            (&format!("/api/payments/{AWAITING_STAFF}/process"), json!({})),
        ],
    )
    .await;

    // What refers to those: usage and a credit note of the subscription, a check-in and a booking
    // on the pass, and the cash payment confirmed then partly refunded.
    let waiting = |p: &Value| p["status"] == "requires_action";
    until(stack, owner, &format!("/api/payments/{PAID}"), waiting).await;
    until(stack, owner, &format!("/api/payments/{AWAITING_STAFF}"), waiting).await;
    let later = all_applied(
        stack,
        owner,
        vec![
            (
                "/api/subscriptions/usage",
                json!({ "usage_id": USAGE, "subscription_id": SUBSCRIPTION, "metric": "seat_hours", "quantity": 3 }),
            ),
            (
                &format!("/api/subscriptions/{SUBSCRIPTION}/credit-notes"),
                json!({ "credit_note_id": CREDIT_NOTE, "amount_minor": 100, "memo": format!("{MEMBER_1_SECRET} credit") }),
            ),
            ("/api/attendance/check-ins", json!({ "session_id": SESSION, "member_id": "mem_1", "venue_id": VENUE })),
            (
                "/api/attendance/bookings",
                json!({ "booking_id": BOOKING, "member_id": "mem_1", "venue_id": VENUE, "seat_id": SEAT,
                        "starts_at": day(2, 10), "ends_at": day(2, 12) }),
            ),
            (&format!("/api/payments/{PAID}/confirm"), json!({ "reference": format!("{MEMBER_1_SECRET} receipt") })),
        ],
    )
    .await;
    applied(
        stack,
        owner,
        &format!("/api/payments/{PAID}/refunds"),
        json!({ "refund_id": REFUND, "amount_minor": 500, "reason": format!("{MEMBER_1_SECRET} refund") }),
    )
    .await;
    // Settled: the refund paid out, the invoice numbered, the in-app message delivered.
    until(stack, owner, &format!("/api/payments/refunds/{REFUND}"), |r| r["status"] == "succeeded").await;
    until(stack, owner, &format!("/api/payments/invoices/{INVOICE}"), |i| i["number"].is_string()).await;
    until(stack, owner, &format!("/api/notifications/{DELIVERED}"), |n| n["status"] == "sent").await;
    Seeded { a_command: later[0].clone() }
}

/// B's own plan and a subscription of B's `mem_1` on it: the means for B's commands to name A's
/// coupon, method or plan on a record of B's own.
pub async fn organization_b(stack: &Stack, b_staff: &str) {
    applied(stack, b_staff, "/api/subscriptions/plans", plan_body(B_PLAN, "Beta plan")).await;
    applied(
        stack,
        b_staff,
        "/api/subscriptions",
        json!({ "subscription_id": B_SUBSCRIPTION, "member_id": "mem_1", "plan_id": B_PLAN }),
    )
    .await;
}

/// Every read of A's records there is, as A's owner and A's `mem_1` see them: after the attacks it
/// must be the same, byte for byte.
pub fn picture_paths() -> Vec<String> {
    let mut paths: Vec<String> = [
        format!("/api/payments/{PAID}"),
        format!("/api/payments/{AWAITING_STAFF}"),
        format!("/api/payments/{UNPROCESSED}"),
        format!("/api/payments/refunds/{REFUND}"),
        format!("/api/payments/methods/{METHOD}"),
        format!("/api/payments/invoices/{INVOICE}"),
        "/api/payments?limit=200".into(),
        "/api/payments/methods?limit=200".into(),
        "/api/payments/invoices?limit=200".into(),
        "/api/payments/refunds?limit=200".into(),
        format!("/api/subscriptions/{SUBSCRIPTION}"),
        format!("/api/subscriptions/{SUBSCRIPTION}/usage"),
        format!("/api/subscriptions/{SUBSCRIPTION}/credit-notes"),
        format!("/api/subscriptions/{SUBSCRIPTION}/invoices"),
        format!("/api/subscriptions/plans/{PLAN}"),
        "/api/subscriptions?limit=200".into(),
        "/api/subscriptions/coupons?limit=200".into(),
        "/api/subscriptions/plans?all_versions=true".into(),
        "/api/attendance/occupancy".into(),
        "/api/attendance/sessions?limit=200".into(),
        format!("/api/notifications/{DELIVERED}"),
        format!("/api/notifications/{SCHEDULED}"),
        "/api/notifications?limit=200".into(),
        "/api/notifications/inbox".into(),
        format!("/api/notifications/campaigns/{CAMPAIGN}"),
        "/api/notifications/templates?all_versions=true".into(),
        "/api/notifications/subscriptions/mem_1".into(),
        "/api/monitoring/alerts".into(),
        "/api/monitoring/silences".into(),
        format!("/api/monitoring/dashboards/{DASHBOARD}"),
        format!("/api/monitoring/reports/{REPORT}"),
        format!("/api/monitoring/health-checks/{HEALTH_CHECK}"),
        format!("/api/monitoring/logs?service={LOG_SERVICE}"),
        format!("/api/monitoring/metrics?metric={METRIC}"),
    ]
    .into();
    // The bookings have no read of their own: the attendance dashboard counts them.
    paths.push(
        format!("/api/attendance/analytics/dashboard?from={}&to={}", day(-3, 0), day(5, 0))
            .replace('+', "%2B"),
    );
    paths
}

/// A's records as A's owner and `mem_1` read them.
pub async fn picture(stack: &Stack, owner: &str, member_1: &str) -> Vec<(String, u16, String)> {
    // A's messages settle first: the delivery worker moves a queued one on by itself (sent, or
    // failed for a channel not configured), which is not a change another caller made.
    eventually("A's notifications to leave the queue", Duration::from_secs(60), || async {
        let reply = stack.http(Method::GET, "/api/notifications?limit=200", Some(owner), None).await;
        let items = reply.body["items"].as_array().cloned().unwrap_or_default();
        (reply.status == 200 && items.iter().all(|n| n["status"] != "queued")).then_some(())
    })
    .await;
    let mut seen = Vec::new();
    for path in picture_paths() {
        for token in [owner, member_1] {
            let reply = stack.http(Method::GET, &path, Some(token), None).await;
            seen.push((path.clone(), reply.status, reply.text));
        }
    }
    seen
}
