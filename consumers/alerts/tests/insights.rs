//! Through the gateway against the real broker and PostgreSQL, with a real alerts consumer
//! process: other domains' events become derived samples that fire rules, two alerts of one
//! group are told in one notification, sample retention drops old samples, and a dashboard and
//! a daily report show the figures of a known history (the report downloadable as CSV and HTML).
//! Everything is awaited with a deadline.

use std::time::Duration;

use chrono::{DateTime, Days, TimeZone, Utc};
use serde_json::{Value, json};
use studyspot_grpc_api::{
    DashboardDataRequest, DashboardWidget, DefineDashboardRequest, ReportRunFileRequest,
    gateway_client::GatewayClient,
};
use studyspot_schemas::{
    EventMetadata, Record,
    alerts::{
        self, AlertFired, AlertGroupNotified, GenerateReports, MetricSamplesPruned, PruneMetricSamples,
    },
    attendance::{self, CheckedIn, SessionCompleted, VenueDefined},
    billing::{self, PaymentFailed, PaymentSucceeded, RefundIssued},
    notifications::{self, NotificationSent, NotificationTracked},
};
use studyspot_test_world::{Api, World, eventually};

/// Sends a command and waits for alerts' decision; it must be applied.
async fn applied(api: &Api, path: &str, body: Value) {
    let decided = api.command(path, body).await;
    assert_eq!(decided["status"], "applied", "{path}: {decided}");
}

/// The samples of `metric` so far.
async fn samples(api: &Api, metric: &str) -> Vec<Value> {
    let (_, body) = api.get(&format!("/api/monitoring/metrics?metric={metric}")).await;
    body["items"].as_array().cloned().unwrap_or_default()
}

fn metadata(world: &World, at: DateTime<Utc>, actor: &str) -> EventMetadata {
    let id = uuid::Uuid::now_v7().to_string();
    EventMetadata {
        event_id: id.clone(),
        occurred_at: at.timestamp_millis(),
        correlation_id: id,
        causation_id: None,
        organization_id: world.organization_id(),
        actor: actor.into(),
    }
}

/// The alerts world: the topics alerts reads exist (as in every real deployment), a gateway, and
/// an alerts process with `env`.
async fn start(env: &[(&str, &str)]) -> (World, Api, studyspot_test_world::Consumer) {
    let world = World::new("alerts", env!("CARGO_BIN_EXE_studyspot-alerts")).await;
    world.create_topics(&[&billing::EVENTS, &attendance::EVENTS, &notifications::EVENTS]).await;
    let api = Api::staff(&world).await;
    let consumer = world.spawn_consumer_with(None, &world.database_url, env);
    (world, api, consumer)
}

/// Records of type `R` on alerts' events topic so far.
async fn events<R: Record + serde::de::DeserializeOwned>(world: &World) -> Vec<R> {
    let mut found = Vec::new();
    for record in world.read_all(alerts::EVENTS.name) {
        let decoded = world.codec.decode(record.payload.as_deref().expect("payload")).await.expect("decode");
        if decoded.full_name == R::FULL_NAME {
            found.push(decoded.into_record().expect("record"));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn derived_samples_fire_rules_and_two_alerts_of_one_group_are_told_once() {
    let (world, api, consumer) = start(&[
        ("STUDYSPOT_ALERTS__EVALUATION_INTERVAL_SECS", "1"),
        ("STUDYSPOT_ALERTS__BROKER_SAMPLE_INTERVAL_SECS", "1"),
        ("STUDYSPOT_ALERTS__INSIGHTS_INTERVAL_SECS", "0"),
    ])
    .await;
    let now = Utc::now();

    // Given two rules of team billing: refund volume over 1000 (minor units) in the hour, and any
    // record on alerts' own dead-letter topic.
    applied(
        &api,
        "/api/monitoring/alerts",
        json!({ "rule_id": "rul_refunds", "name": "RefundVolume", "kind": "threshold",
                "metric": "studyspot_refund_volume_minor", "aggregation": "sum",
                "window_seconds": 3600, "op": ">", "threshold": 1000, "severity": "warning",
                "labels": { "team": "billing" }, "repeat_interval_seconds": 0 }),
    )
    .await;
    applied(
        &api,
        "/api/monitoring/alerts",
        json!({ "rule_id": "rul_dead_letters", "name": "DeadLetters", "kind": "threshold",
                "metric": "studyspot_dead_letter_records",
                "matchers": [{ "name": "topic", "op": "=", "value": alerts::COMMANDS.dead_letter }],
                "aggregation": "max", "window_seconds": 3600, "op": ">", "threshold": 0,
                "severity": "warning", "labels": { "team": "billing" }, "repeat_interval_seconds": 0 }),
    )
    .await;

    // When billing refunds, attendance defines a venue and checks someone in, notifications sends
    // a message, and a poison record lands on alerts' dead-letter topic.
    world
        .send(&RefundIssued {
            metadata: metadata(&world, now, "service:billing"),
            refund_id: "ref_1".into(),
            payment_id: "pay_1".into(),
            member_id: "mem_1".into(),
            amount_minor: 2500,
            currency: "EUR".into(),
            provider_refund_id: None,
            payment_status: "partially_refunded".into(),
        })
        .await;
    world
        .send(&VenueDefined {
            metadata: metadata(&world, now, "service:attendance"),
            venue_id: "ven_1".into(),
            name: "Main hall".into(),
            time_zone: "UTC".into(),
            capacity: 20,
            zones: Vec::new(),
            seats: 20,
            version: 1,
        })
        .await;
    world.send(&checked_in(&world, now, 5)).await;
    world
        .send(&NotificationSent {
            metadata: metadata(&world, now, "service:notifications"),
            notification_id: "ntf_1".into(),
            recipient_id: "mem_1".into(),
            channel: "email".into(),
            attempts: 1,
            provider_message_id: None,
            subject: None,
            body: None,
            category: None,
        })
        .await;
    world.send_raw(alerts::COMMANDS.name, "org", b"not avro at all".to_vec()).await;

    // Then each shows up as a derived sample.
    let refunds = eventually("a refund volume sample", Duration::from_secs(60), || async {
        samples(&api, "studyspot_refund_volume_minor").await.first().cloned()
    })
    .await;
    assert_eq!((refunds["value"].as_f64(), &refunds["labels"]["currency"]), (Some(2500.0), &json!("EUR")));
    let ratio = eventually("an occupancy ratio sample", Duration::from_secs(60), || async {
        samples(&api, "studyspot_venue_occupancy_ratio").await.first().cloned()
    })
    .await;
    assert_eq!((ratio["value"].as_f64(), &ratio["labels"]["venue_id"]), (Some(0.25), &json!("ven_1")));
    let sent = eventually("a notification outcome sample", Duration::from_secs(60), || async {
        samples(&api, "studyspot_notification_outcomes").await.first().cloned()
    })
    .await;
    assert_eq!((&sent["labels"]["outcome"], &sent["labels"]["channel"]), (&json!("sent"), &json!("email")));
    let dead = eventually("a dead-letter count of alerts' commands", Duration::from_secs(60), || async {
        samples(&api, "studyspot_dead_letter_records").await.into_iter().find(|s| {
            s["labels"]["topic"] == alerts::COMMANDS.dead_letter && s["value"].as_f64() >= Some(1.0)
        })
    })
    .await;
    assert_eq!(dead["value"].as_f64(), Some(1.0), "{dead}");
    let lag = eventually("a consumer lag sample", Duration::from_secs(60), || async {
        samples(&api, "studyspot_consumer_lag_records")
            .await
            .into_iter()
            .find(|s| s["labels"]["consumer"] == "alerts" && s["labels"]["topic"] == billing::EVENTS.name)
    })
    .await;
    assert!(lag["value"].as_f64().is_some_and(|v| v >= 0.0), "{lag}");

    // And both rules fire (told to nobody yet: no route).
    eventually("both alerts firing", Duration::from_secs(60), || async {
        let (_, body) = api.get("/api/monitoring/alerts/active").await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        (items.iter().filter(|a| a["state"] == "firing").count() == 2).then_some(())
    })
    .await;

    // When a route grouping by team is defined, then one notification carries both alerts.
    applied(
        &api,
        "/api/monitoring/routes",
        json!({ "route_id": "rte_billing", "matchers": [{ "name": "team", "op": "=", "value": "billing" }],
                "receivers": [{ "recipient_id": "usr_ops", "channel": "email" }],
                "group_by": ["team"], "group_wait_seconds": 1, "group_interval_seconds": 600 }),
    )
    .await;
    let told = eventually("a group notification", Duration::from_secs(60), || async {
        let told = events::<AlertGroupNotified>(&world).await;
        (!told.is_empty()).then_some(told)
    })
    .await;
    let group = &told[0];
    assert_eq!((group.route_id.as_str(), group.status.as_str()), ("rte_billing", "firing"));
    assert_eq!(group.group_labels.get("team").map(String::as_str), Some("billing"));
    let mut names: Vec<&str> = group.alerts.iter().map(|a| a.alert_name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["DeadLetters", "RefundVolume"]);
    assert_eq!(group.receivers.len(), 1);
    assert_eq!(
        (group.receivers[0].recipient_id.as_str(), group.receivers[0].channel.as_str()),
        ("usr_ops", "email")
    );

    // A second refund moves the alert's value at later ticks, and still nobody is told again.
    world
        .send(&RefundIssued {
            metadata: metadata(&world, now, "service:billing"),
            refund_id: "ref_2".into(),
            payment_id: "pay_2".into(),
            member_id: "mem_2".into(),
            amount_minor: 500,
            currency: "EUR".into(),
            provider_refund_id: None,
            payment_status: "partially_refunded".into(),
        })
        .await;
    eventually("the refund alert's value to follow", Duration::from_secs(60), || async {
        let (_, body) = api.get("/api/monitoring/alerts/active").await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .any(|a| a["rule_id"] == "rul_refunds" && a["value"].as_f64() == Some(3000.0))
            .then_some(())
    })
    .await;
    assert_eq!(events::<AlertGroupNotified>(&world).await.len(), 1, "{}", consumer.log());
    assert!(
        events::<AlertFired>(&world).await.is_empty(),
        "the grouping route's receiver hears only from the group"
    );

    // Retention: a prune tick drops every sample before its cut-off.
    let cutoff = Utc::now() + chrono::Duration::minutes(5);
    world
        .send(&PruneMetricSamples {
            metadata: metadata(&world, cutoff, "service:alerts-scheduler"),
            older_than: cutoff.timestamp_millis(),
        })
        .await;
    let pruned = eventually("samples pruned", Duration::from_secs(60), || async {
        events::<MetricSamplesPruned>(&world).await.into_iter().next()
    })
    .await;
    assert!(pruned.removed >= 5, "{pruned:?}");
    assert!(samples(&api, "studyspot_refund_volume_minor").await.is_empty());
}

fn checked_in(world: &World, at: DateTime<Utc>, occupancy: i32) -> CheckedIn {
    CheckedIn {
        metadata: metadata(world, at, "service:attendance"),
        session_id: format!("ses_{occupancy}"),
        member_id: format!("mem_{occupancy}"),
        venue_id: "ven_1".into(),
        seat_id: None,
        occupancy,
        zone_id: None,
        zone_occupancy: None,
        booking_id: None,
        subscription_id: None,
        pass_id: None,
        venue_name: None,
        seat_label: None,
    }
}

fn payment_succeeded(world: &World, at: DateTime<Utc>, id: &str, amount_minor: i64) -> PaymentSucceeded {
    PaymentSucceeded {
        metadata: metadata(world, at, "service:billing"),
        payment_id: id.into(),
        member_id: "mem_1".into(),
        amount_minor,
        currency: "EUR".into(),
        method: "card".into(),
        connector: "stripe".into(),
        provider_payment_id: None,
        gateway_fee_minor: 0,
        processing_fee_minor: 0,
        invoice_id: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dashboard_and_a_daily_report_show_a_known_history() {
    let (world, api, _consumer) = start(&[
        ("STUDYSPOT_ALERTS__EVALUATION_INTERVAL_SECS", "0"),
        ("STUDYSPOT_ALERTS__BROKER_SAMPLE_INTERVAL_SECS", "0"),
        ("STUDYSPOT_ALERTS__INSIGHTS_INTERVAL_SECS", "0"),
    ])
    .await;
    applied(
        &api,
        "/api/monitoring/reports",
        json!({ "report_id": "rpt_daily", "name": "Daily operations", "schedule": "daily", "time_zone": "UTC",
                "sections": ["revenue", "occupancy", "deliveries", "alerts"],
                "recipients": [{ "recipient_id": "usr_ops", "channel": "email" }] }),
    )
    .await;
    // The report covers the UTC day it was defined in, which the gateway stamped (not the test's
    // clock: run across midnight, the two would name different days).
    let defined = eventually("the report defined", Duration::from_secs(60), || async {
        let (status, body) = api.get("/api/monitoring/reports/rpt_daily").await;
        if status != 200 {
            return None;
        }
        body["report"]["updated_at"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok())
    })
    .await;
    let today = defined.date_naive();
    let day = Utc.from_utc_datetime(&today.and_hms_opt(0, 0, 0).expect("midnight"));
    let at = |h: u32, m: u32| day + chrono::Duration::minutes(i64::from(h * 60 + m));
    let tomorrow = Utc.from_utc_datetime(&(today + Days::new(1)).and_hms_opt(0, 0, 0).expect("midnight"));
    applied(
        &api,
        "/api/monitoring/dashboards",
        json!({ "dashboard_id": "dsh_ops", "name": "Operations", "widgets": [
            { "widget_id": "payments", "title": "Payments by outcome", "kind": "series",
              "metric": "studyspot_payment_amount_minor", "aggregation": "sum", "step_seconds": 3600,
              "group_by": ["outcome"] },
            { "widget_id": "revenue", "title": "Revenue", "kind": "revenue" },
            { "widget_id": "occupancy", "title": "Occupancy", "kind": "occupancy" },
            { "widget_id": "alerts", "title": "Active alerts", "kind": "active_alerts" } ] }),
    )
    .await;
    let (status, bad) = api
        .post(
            "/api/monitoring/dashboards",
            json!({ "name": "x", "widgets": [{ "title": "t", "kind": "pie" }] }),
        )
        .await;
    assert_eq!((status, bad["error"]["field"].as_str()), (422, Some("widgets[0].kind")), "{bad}");

    // A known history of the day.
    world
        .send(&VenueDefined {
            metadata: metadata(&world, at(8, 0), "service:attendance"),
            venue_id: "ven_1".into(),
            name: "Main hall".into(),
            time_zone: "UTC".into(),
            capacity: 10,
            zones: Vec::new(),
            seats: 10,
            version: 1,
        })
        .await;
    world.send(&payment_succeeded(&world, at(9, 0), "pay_1", 3000)).await;
    world.send(&payment_succeeded(&world, at(9, 30), "pay_2", 4500)).await;
    world
        .send(&PaymentFailed {
            metadata: metadata(&world, at(10, 15), "service:billing"),
            payment_id: "pay_3".into(),
            member_id: "mem_3".into(),
            amount_minor: 2000,
            currency: "EUR".into(),
            method: "card".into(),
            connector: "stripe".into(),
            code: "card_declined".into(),
            message: "declined".into(),
        })
        .await;
    world
        .send(&RefundIssued {
            metadata: metadata(&world, at(10, 20), "service:billing"),
            refund_id: "ref_1".into(),
            payment_id: "pay_1".into(),
            member_id: "mem_1".into(),
            amount_minor: 1000,
            currency: "EUR".into(),
            provider_refund_id: None,
            payment_status: "partially_refunded".into(),
        })
        .await;
    world.send(&checked_in(&world, at(9, 5), 1)).await;
    world.send(&checked_in(&world, at(9, 10), 2)).await;
    world
        .send(&SessionCompleted {
            metadata: metadata(&world, at(11, 0), "service:attendance"),
            session_id: "ses_1".into(),
            member_id: "mem_1".into(),
            venue_id: "ven_1".into(),
            seat_id: None,
            zone_id: None,
            checked_in_at: at(9, 5).timestamp_millis(),
            checked_out_at: at(11, 0).timestamp_millis(),
            duration_seconds: 6900,
            reason: "checked_out".into(),
            occupancy: 1,
            zone_occupancy: None,
            subscription_id: None,
        })
        .await;
    for (i, hour) in [(1, 12), (2, 13)] {
        world
            .send(&NotificationSent {
                metadata: metadata(&world, at(hour, 0), "service:notifications"),
                notification_id: format!("ntf_{i}"),
                recipient_id: "mem_1".into(),
                channel: "email".into(),
                attempts: 1,
                provider_message_id: None,
                subject: None,
                body: None,
                category: None,
            })
            .await;
    }
    world
        .send(&NotificationTracked {
            metadata: metadata(&world, at(13, 5), "service:notifications"),
            notification_id: "ntf_2".into(),
            recipient_id: "mem_1".into(),
            channel: "email".into(),
            status: "bounced".into(),
            first: true,
            url: None,
            provider_status: None,
            source: "smtp".into(),
            template_id: None,
            campaign_id: None,
        })
        .await;
    eventually("every derived sample", Duration::from_secs(60), || async {
        let outcomes = samples(&api, "studyspot_notification_outcomes").await.len();
        let occupancy = samples(&api, "studyspot_venue_occupancy_ratio").await.len();
        let payments = samples(&api, "studyspot_payment_amount_minor").await.len();
        let refunds = samples(&api, "studyspot_refund_volume_minor").await.len();
        (outcomes == 3 && occupancy == 3 && payments == 3 && refunds == 1).then_some(())
    })
    .await;

    // The dashboard's data over the day.
    let (from, to) = (day.to_rfc3339(), tomorrow.to_rfc3339());
    let query = format!("from={}&to={}", urlencode(&from), urlencode(&to));
    let (status, data) = api.get(&format!("/api/monitoring/dashboards/dsh_ops/data?{query}")).await;
    assert_eq!(status, 200, "{data}");
    let widget =
        |id: &str| data["widgets"].as_array().and_then(|w| w.iter().find(|w| w["widget_id"] == id)).cloned();
    let series = widget("payments").expect("payments widget")["data"].clone();
    let points = |outcome: &str| -> Vec<(String, f64)> {
        series
            .as_array()
            .and_then(|s| s.iter().find(|s| s["labels"]["outcome"] == outcome))
            .and_then(|s| s["points"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let at: DateTime<Utc> = p["at"].as_str().and_then(|t| t.parse().ok()).expect("point time");
                (at.format("%H:%M").to_string(), p["value"].as_f64().expect("value"))
            })
            .collect()
    };
    assert_eq!(points("succeeded"), [("09:00".to_owned(), 7500.0)], "{series}");
    assert_eq!(points("failed"), [("10:00".to_owned(), 2000.0)], "{series}");
    let revenue = widget("revenue").expect("revenue widget")["data"][0].clone();
    assert_eq!(
        revenue,
        json!({ "currency": "EUR", "payments_succeeded": 2, "payments_failed": 1, "revenue_minor": 7500,
                "refunds": 1, "refunded_minor": 1000, "net_minor": 6500 })
    );
    let occupancy = widget("occupancy").expect("occupancy widget")["data"][0].clone();
    assert_eq!(
        occupancy,
        json!({ "venue_id": "ven_1", "latest": 1.0, "peak": 2.0, "changes": 3, "capacity": 10, "peak_ratio": 0.2 })
    );
    assert_eq!(widget("alerts").expect("alerts widget")["data"], json!([]));
    let (status, missing) = api.get(&format!("/api/monitoring/dashboards/dsh_none/data?{query}")).await;
    assert_eq!(status, 404, "{missing}");

    // The same figures over gRPC, typed.
    let mut grpc = grpc_client(&api).await;
    let data = grpc
        .get_dashboard_data(authorized(
            DashboardDataRequest { dashboard_id: "dsh_ops".into(), from: from.clone(), to: to.clone() },
            &api.token,
        ))
        .await
        .expect("dashboard data")
        .into_inner();
    let revenue = data.widgets.iter().find(|w| w.widget_id == "revenue").expect("revenue widget");
    assert_eq!(
        revenue.revenue.iter().map(|r| (r.currency.as_str(), r.net_minor)).collect::<Vec<_>>(),
        [("EUR", 6500)]
    );
    let refused = grpc
        .define_dashboard(authorized(
            DefineDashboardRequest {
                dashboard_id: None,
                name: "x".into(),
                widgets: vec![DashboardWidget {
                    title: "t".into(),
                    kind: "series".into(),
                    ..Default::default()
                }],
            },
            &api.token,
        ))
        .await
        .expect_err("a series without a metric");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");

    // When the day has ended (a report tick just after midnight), its run renders.
    let tick_at = tomorrow + chrono::Duration::minutes(1);
    world
        .send(&GenerateReports {
            metadata: metadata(&world, tick_at, "service:alerts-scheduler"),
            up_to: tick_at.timestamp_millis(),
        })
        .await;
    let run_id = format!("run_{}", today.format("%Y-%m-%d"));
    let report = eventually("the day's run", Duration::from_secs(60), || async {
        let (status, body) = api.get("/api/monitoring/reports/rpt_daily").await;
        (status == 200 && body["runs"].as_array().is_some_and(|r| !r.is_empty())).then_some(body)
    })
    .await;
    assert_eq!(report["runs"][0]["run_id"], run_id.as_str(), "{report}");
    assert_eq!(
        report["report"]["last_period_end"].as_str().map(|t| t.parse::<DateTime<Utc>>().ok()),
        Some(Some(tomorrow))
    );

    let (status, content_type, csv) =
        api.text(&format!("/api/monitoring/reports/rpt_daily/runs/{run_id}.csv")).await;
    assert_eq!((status, content_type.as_str()), (200, "text/csv; charset=utf-8"), "{csv}");
    for row in [
        "revenue,EUR,payments_succeeded,2",
        "revenue,EUR,payments_failed,1",
        "revenue,EUR,revenue_minor,7500",
        "revenue,EUR,refunded_minor,1000",
        "revenue,EUR,net_minor,6500",
        "occupancy,ven_1,peak,2",
        "occupancy,ven_1,changes,3",
        "occupancy,ven_1,capacity,10",
        "occupancy,ven_1,peak_ratio,0.2000",
        "deliveries,email,sent,2",
        "deliveries,email,bounced,1",
        "deliveries,email,bounce_rate,0.5000",
    ] {
        assert!(csv.contains(&format!(",{row}\n")), "{row} missing from\n{csv}");
    }
    let (status, content_type, html) =
        api.text(&format!("/api/monitoring/reports/rpt_daily/runs/{run_id}.html")).await;
    assert_eq!((status, content_type.as_str()), (200, "text/html; charset=utf-8"));
    assert!(html.contains("<title>Daily operations</title>"), "{html}");
    assert!(html.contains("<td>EUR</td><td>net_minor</td><td class=\"n\">6500</td>"), "{html}");
    let (status, _, _) = api.text(&format!("/api/monitoring/reports/rpt_daily/runs/{run_id}.pdf")).await;
    assert_eq!(status, 404);
    let file = grpc
        .get_report_run_file(authorized(
            ReportRunFileRequest {
                report_id: "rpt_daily".into(),
                run_id: run_id.clone(),
                format: "csv".into(),
            },
            &api.token,
        ))
        .await
        .expect("run file")
        .into_inner();
    assert_eq!(
        (file.content_type.as_str(), file.content.as_str()),
        ("text/csv; charset=utf-8", csv.as_str())
    );

    // And whoever asked is told, once, even when the tick comes again.
    let again = GenerateReports {
        metadata: metadata(&world, tick_at + chrono::Duration::seconds(1), "service:alerts-scheduler"),
        up_to: tick_at.timestamp_millis() + 1000,
    };
    world.send(&again).await;
    // A command after it on the organization's partition: once that is applied, so is the tick.
    let dashboards = dashboards_defined(&world).await;
    applied(
        &api,
        "/api/monitoring/dashboards",
        json!({ "name": "After the tick", "widgets": [{ "title": "Revenue", "kind": "revenue" }] }),
    )
    .await;
    // Applied is committed, not yet published: the outbox publishes after the commit, in commit
    // order. Wait for the first report's event, then for the later dashboard's, so that a second
    // report from the repeated tick would be in the log too.
    eventually("the report's ReportGenerated in the log", Duration::from_secs(60), || async {
        let found = events::<studyspot_schemas::alerts::ReportGenerated>(&world).await;
        (!found.is_empty()).then_some(())
    })
    .await;
    eventually("the dashboard's event in the log", Duration::from_secs(60), || async {
        (dashboards_defined(&world).await > dashboards).then_some(())
    })
    .await;
    let generated = events::<studyspot_schemas::alerts::ReportGenerated>(&world).await;
    assert_eq!(generated.len(), 1, "{generated:?}");
    assert_eq!((generated[0].run_id.as_str(), generated[0].recipients.len()), (run_id.as_str(), 1));
}

/// How many dashboards have been defined, as the log tells.
async fn dashboards_defined(world: &World) -> usize {
    events::<studyspot_schemas::alerts::AlertConfigChanged>(world)
        .await
        .iter()
        .filter(|e| e.kind == "dashboard" && e.change == "defined")
        .count()
}

async fn grpc_client(api: &Api) -> GatewayClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(api.base.clone()).expect("uri");
    GatewayClient::new(channel.connect().await.expect("connect"))
}

fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
    request
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
