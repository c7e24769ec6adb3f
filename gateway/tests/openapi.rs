//! The OpenAPI document: generated from the handlers the router is built from, committed as
//! `gateway/openapi.json` so a change to the API shows in review. `STUDYSPOT_BLESS=1` rewrites it.

use serde_json::Value;

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = studyspot_gateway::openapi_document().to_pretty_json().expect("json") + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("STUDYSPOT_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "gateway/openapi.json is stale: run `STUDYSPOT_BLESS=1 cargo test -p studyspot-gateway --test openapi` and commit it"
    );
}

#[test]
fn every_operation_is_documented_with_its_errors_and_auth() {
    let document: Value = serde_json::to_value(studyspot_gateway::openapi_document()).expect("json");
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", document["openapi"]);
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            operations.push(format!("{} {path}", method.to_uppercase()));
            let responses = operation["responses"].as_object().expect("responses");
            // Public operations (no bearer token: tracking links) have nothing to refuse with 401.
            let public = operation["security"] == serde_json::json!([{}]);
            assert!(public || responses.contains_key("401"), "{method} {path} documents 401");
            assert!(
                responses.keys().any(|s| s.starts_with('2') || s.starts_with('3')),
                "{method} {path} documents success"
            );
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "GET /api/attendance/analytics/dashboard",
            "GET /api/attendance/occupancy",
            "GET /api/attendance/sessions",
            "GET /api/attendance/venues/{venue_id}/seats/{seat_id}/qr.svg",
            "GET /api/commands/{id}",
            "GET /api/events/stream",
            "GET /api/monitoring/alerts",
            "GET /api/monitoring/alerts/active",
            "GET /api/monitoring/alerts/history",
            "GET /api/monitoring/dashboards",
            "GET /api/monitoring/dashboards/{dashboard_id}",
            "GET /api/monitoring/dashboards/{dashboard_id}/data",
            "GET /api/monitoring/health-checks",
            "GET /api/monitoring/health-checks/{id}",
            "GET /api/monitoring/logs",
            "GET /api/monitoring/metrics",
            "GET /api/monitoring/reports",
            "GET /api/monitoring/reports/{report_id}",
            "GET /api/monitoring/reports/{report_id}/runs/{file}",
            "GET /api/monitoring/silences",
            "GET /api/notifications",
            "GET /api/notifications/analytics/dashboard",
            "GET /api/notifications/campaigns",
            "GET /api/notifications/campaigns/{id}",
            "GET /api/notifications/inbox",
            "GET /api/notifications/subscriptions/{recipient_id}",
            "GET /api/notifications/templates",
            "GET /api/notifications/tracking/click/{token}",
            "GET /api/notifications/tracking/open/{token}",
            "GET /api/notifications/{id}",
            "GET /api/payments",
            "GET /api/payments/analytics/dashboard",
            "GET /api/payments/invoices",
            "GET /api/payments/invoices/{id}",
            "GET /api/payments/methods",
            "GET /api/payments/methods/{id}",
            "GET /api/payments/refunds",
            "GET /api/payments/refunds/{id}",
            "GET /api/payments/{id}",
            "GET /api/subscriptions",
            "GET /api/subscriptions/analytics/dashboard",
            "GET /api/subscriptions/coupons",
            "GET /api/subscriptions/plans",
            "GET /api/subscriptions/plans/{id}",
            "GET /api/subscriptions/{id}",
            "GET /api/subscriptions/{id}/credit-notes",
            "GET /api/subscriptions/{id}/invoices",
            "GET /api/subscriptions/{id}/usage",
            "POST /api/attendance/bookings",
            "POST /api/attendance/bookings/cancel",
            "POST /api/attendance/bookings/{booking_id}/cancel",
            "POST /api/attendance/check-ins",
            "POST /api/attendance/check-outs",
            "POST /api/attendance/passes",
            "POST /api/attendance/qr-tokens",
            "POST /api/attendance/venues",
            "POST /api/monitoring/alerts",
            "POST /api/monitoring/dashboards",
            "POST /api/monitoring/health-checks",
            "POST /api/monitoring/inhibit-rules",
            "POST /api/monitoring/logs",
            "POST /api/monitoring/metrics",
            "POST /api/monitoring/reports",
            "POST /api/monitoring/routes",
            "POST /api/monitoring/silences",
            "POST /api/notifications",
            "POST /api/notifications/campaigns",
            "POST /api/notifications/campaigns/{id}/cancel",
            "POST /api/notifications/campaigns/{id}/launch",
            "POST /api/notifications/cancel",
            "POST /api/notifications/inbox/read",
            "POST /api/notifications/subscriptions",
            "POST /api/notifications/templates",
            "POST /api/notifications/templates/preview",
            "POST /api/notifications/tracking/twilio",
            "POST /api/notifications/tracking/twilio/{token}",
            "POST /api/notifications/{id}/send",
            "POST /api/payments",
            "POST /api/payments/invoices",
            "POST /api/payments/invoices/{id}/payments",
            "POST /api/payments/invoices/{id}/status",
            "POST /api/payments/methods",
            "POST /api/payments/{id}/confirm",
            "POST /api/payments/{id}/process",
            "POST /api/payments/{id}/refunds",
            "POST /api/subscriptions",
            "POST /api/subscriptions/billing",
            "POST /api/subscriptions/coupons",
            "POST /api/subscriptions/plans",
            "POST /api/subscriptions/usage",
            "POST /api/subscriptions/{id}/cancel",
            "POST /api/subscriptions/{id}/change-plan",
            "POST /api/subscriptions/{id}/credit-notes",
            "POST /api/subscriptions/{id}/pause",
            "POST /api/subscriptions/{id}/resume",
            "POST /api/webhooks/{provider}",
        ]
    );
    let schema = &document["components"]["schemas"]["CreatePaymentRequest"];
    let required: Vec<&str> =
        schema["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert!(required.contains(&"amount_minor") && required.contains(&"currency"), "{schema}");
}
