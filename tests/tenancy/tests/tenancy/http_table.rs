//! Every HTTP operation of the OpenAPI document, with what B's staff, B's member and A's other
//! member get when they aim it at A's records (and what the outsider gets from the public ones).

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    cases::{
        Control::{self, Member1Sees, OwnerDiffers, OwnerSees, Unseeded},
        Expect::{self, AnsweredOwn, AppliedOwn, NothingOfA, Public, ReadsOwn, Refused, Rejected},
        HttpCase, HttpProbe,
        Who::{self, AMember2, Anonymous, BMember, BStaff},
    },
    seed::*,
};

pub const NF: Expect = Refused(404, "not_found");
pub const FB: Expect = Refused(403, "forbidden");

fn probe(method: Method, path: impl Into<String>, body: Option<Value>) -> HttpProbe {
    HttpProbe { method, path: path.into(), headers: Vec::new(), body, checks: Vec::new(), control: None }
}

fn get(path: impl Into<String>) -> HttpProbe {
    probe(Method::GET, path, None)
}

fn post(path: impl Into<String>, body: Value) -> HttpProbe {
    probe(Method::POST, path, Some(body))
}

impl HttpProbe {
    fn by(mut self, who: Who, expect: Expect) -> Self {
        self.checks.push((who, expect));
        self
    }

    /// The three attackers, each with its outcome.
    fn by3(self, b_staff: Expect, b_member: Expect, a_member_2: Expect) -> Self {
        self.by(BStaff, b_staff).by(BMember, b_member).by(AMember2, a_member_2)
    }

    fn control(mut self, control: Control) -> Self {
        self.control = Some(control);
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

fn case(op: &'static str, probes: Vec<HttpProbe>) -> HttpCase {
    HttpCase { op, probes }
}

/// The analytics window the dashboards are asked for: fixed, so two callers get comparable answers.
fn window() -> String {
    format!("from={}&to={}", day(-3, 0), day(5, 0)).replace('+', "%2B")
}

pub fn table(a_command: &str, org_a: &str) -> Vec<HttpCase> {
    vec![
        // Attendance.
        case("GET /api/attendance/analytics/dashboard", vec![
            get(format!("/api/attendance/analytics/dashboard?venue_id={VENUE}&{}", window()))
                .by3(NothingOfA, FB, FB).control(OwnerDiffers),
        ]),
        case("POST /api/attendance/bookings", vec![
            post("/api/attendance/bookings", json!({ "booking_id": "bkg_beta_http", "member_id": "mem_1", "venue_id": VENUE,
                    "seat_id": SEAT, "starts_at": day(2, 14), "ends_at": day(2, 16) }))
                .by3(Rejected("venue_not_found"), Rejected("venue_not_found"), FB),
            // A's mem_2 booking A's seat for themselves is their organization's business.
        ]),
        case("POST /api/attendance/bookings/cancel", vec![
            post("/api/attendance/bookings/cancel", json!({ "member_id": "mem_1", "venue_id": VENUE,
                    "from": day(1, 0), "to": day(4, 0) }))
                // A range names no booking: it cancels B's bookings in it, none, and A's stays.
                .by3(AppliedOwn, AppliedOwn, FB),
        ]),
        case("POST /api/attendance/bookings/{booking_id}/cancel", vec![
            post(format!("/api/attendance/bookings/{BOOKING}/cancel"), json!({})).by3(NF, NF, NF),
        ]),
        case("POST /api/attendance/check-ins", vec![
            post("/api/attendance/check-ins", json!({ "session_id": "ses_beta_http", "member_id": "mem_1", "venue_id": VENUE, "seat_id": SEAT }))
                .by3(Rejected("venue_not_found"), Rejected("venue_not_found"), FB),
        ]),
        case("POST /api/attendance/check-outs", vec![
            // Without a venue the gateway looks for the member's open session in the caller's
            // organization; with one, attendance looks for the session there.
            post("/api/attendance/check-outs", json!({ "member_id": "mem_1" })).by3(NF, NF, FB),
            post("/api/attendance/check-outs", json!({ "member_id": "mem_1", "venue_id": VENUE, "session_id": SESSION }))
                .by3(Rejected("no_open_session"), Rejected("no_open_session"), FB),
        ]),
        case("GET /api/attendance/occupancy", vec![
            get(format!("/api/attendance/occupancy?venue_id={VENUE}")).by3(NothingOfA, NothingOfA, NothingOfA).control(OwnerSees)
                .by(BStaff, ReadsOwn),
        ]),
        case("POST /api/attendance/passes", vec![
            post("/api/attendance/passes", json!({ "pass_id": "pas_beta_http", "member_id": "mem_1", "venue_id": VENUE,
                    "valid_from": day(0, 0), "valid_until": day(9, 0) }))
                .by3(Rejected("venue_not_found"), FB, FB),
        ]),
        case("POST /api/attendance/qr-tokens", vec![
            post("/api/attendance/qr-tokens", json!({ "kind": "seat", "venue_id": VENUE, "seat_id": SEAT }))
                .by3(AnsweredOwn(201, "signed for the caller's own organization, where A's venue does not exist"), FB, FB),
            post("/api/attendance/qr-tokens", json!({ "kind": "member", "venue_id": VENUE, "member_id": "mem_1" })).by(AMember2, FB),
        ]),
        case("GET /api/attendance/sessions", vec![
            get("/api/attendance/sessions").by3(NothingOfA, NothingOfA, NothingOfA).control(OwnerSees),
            get(format!("/api/attendance/sessions?venue_id={VENUE}&member_id=mem_1")).by(BStaff, NothingOfA).by(AMember2, FB),
        ]),
        case("POST /api/attendance/venues", vec![
            post("/api/attendance/venues", venue_body(VENUE, "Beta's own venue")).by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/attendance/venues/{venue_id}/seats/{seat_id}/qr.svg", vec![
            get(format!("/api/attendance/venues/{VENUE}/seats/{SEAT}/qr.svg")).by3(NF, FB, FB),
        ]),
        // Commands and events.
        case("GET /api/commands/{id}", vec![get(format!("/api/commands/{a_command}")).by3(NF, NF, NF)]),
        // The event stream is checked live and from the start of the log by `stream.rs`.
        case("GET /api/events/stream", Vec::new()),
        // Monitoring.
        case("GET /api/monitoring/alerts", vec![get("/api/monitoring/alerts").by3(NothingOfA, FB, FB).control(OwnerSees)]),
        case("POST /api/monitoring/alerts", vec![
            post("/api/monitoring/alerts", rule_body(RULE, "Beta's own rule")).by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/monitoring/alerts/active", vec![
            get("/api/monitoring/alerts/active").by3(NothingOfA, FB, FB)
                .control(Unseeded("no rule of A fires: the suite runs no evaluation")),
        ]),
        case("GET /api/monitoring/alerts/history", vec![
            get(format!("/api/monitoring/alerts/history?rule_id={RULE}")).by3(NothingOfA, FB, FB)
                .control(Unseeded("no rule of A has changed state: the suite runs no evaluation")),
        ]),
        case("GET /api/monitoring/dashboards", vec![get("/api/monitoring/dashboards").by3(NothingOfA, FB, FB).control(OwnerSees)]),
        case("POST /api/monitoring/dashboards", vec![
            post("/api/monitoring/dashboards", dashboard_body(DASHBOARD, "Beta's own dashboard")).by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/monitoring/dashboards/{dashboard_id}", vec![
            get(format!("/api/monitoring/dashboards/{DASHBOARD}")).by3(NF, FB, FB).by(BStaff, ReadsOwn),
        ]),
        case("GET /api/monitoring/dashboards/{dashboard_id}/data", vec![
            get(format!("/api/monitoring/dashboards/{DASHBOARD}/data?{}", window())).by3(NF, FB, FB)
                // B's own dashboard of the same id charts B's samples of the metric A records too.
                .by(BStaff, ReadsOwn),
        ]),
        case("GET /api/monitoring/health-checks", vec![
            get("/api/monitoring/health-checks").by3(NothingOfA, FB, FB).control(OwnerSees),
        ]),
        case("POST /api/monitoring/health-checks", vec![
            post("/api/monitoring/health-checks", health_check_body(HEALTH_CHECK, "Beta's own check")).by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/monitoring/health-checks/{id}", vec![
            get(format!("/api/monitoring/health-checks/{HEALTH_CHECK}")).by3(NF, FB, FB).by(BStaff, ReadsOwn),
        ]),
        case("POST /api/monitoring/inhibit-rules", vec![
            post("/api/monitoring/inhibit-rules", inhibition_body(INHIBITION)).by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/monitoring/logs", vec![
            get(format!("/api/monitoring/logs?service={LOG_SERVICE}")).by3(NothingOfA, FB, FB).control(OwnerSees),
        ]),
        case("POST /api/monitoring/logs", vec![
            post("/api/monitoring/logs", json!({ "records": [{ "level": "warn", "service": LOG_SERVICE, "message": "Beta's own line" }] }))
                .by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/monitoring/metrics", vec![
            get(format!("/api/monitoring/metrics?metric={METRIC}")).by3(NothingOfA, FB, FB).control(OwnerSees),
        ]),
        case("POST /api/monitoring/metrics", vec![
            post("/api/monitoring/metrics", json!({ "metric": METRIC, "labels": { "team": "beta" }, "value": 7.0 })).by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/monitoring/reports", vec![get("/api/monitoring/reports").by3(NothingOfA, FB, FB).control(OwnerSees)]),
        case("POST /api/monitoring/reports", vec![
            post("/api/monitoring/reports", report_body(REPORT, "Beta's own report")).by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/monitoring/reports/{report_id}", vec![get(format!("/api/monitoring/reports/{REPORT}")).by3(NF, FB, FB).by(BStaff, ReadsOwn)]),
        case("GET /api/monitoring/reports/{report_id}/runs/{file}", vec![
            get(format!("/api/monitoring/reports/{REPORT}/runs/run_1.csv")).by3(NF, FB, FB),
        ]),
        case("POST /api/monitoring/routes", vec![post("/api/monitoring/routes", route_body(ROUTE)).by3(AppliedOwn, FB, FB)]),
        case("GET /api/monitoring/silences", vec![get("/api/monitoring/silences").by3(NothingOfA, FB, FB).control(OwnerSees)]),
        case("POST /api/monitoring/silences", vec![
            // Expiring A's silence by its id: there is no such silence in B.
            post("/api/monitoring/silences", json!({ "silence_id": SILENCE, "expire": true, "matchers": [], "ends_at": day(30, 0) }))
                .by3(Rejected("silence_not_found"), FB, FB),
        ]),
        // Notifications.
        case("GET /api/notifications", vec![
            get("/api/notifications?limit=200").by3(NothingOfA, NothingOfA, NothingOfA).control(OwnerSees),
            get(format!("/api/notifications?transaction_id={TRANSACTION}")).by(BStaff, NothingOfA).control(Member1Sees),
        ]),
        case("POST /api/notifications", vec![
            post("/api/notifications", json!({ "notification_id": "ntf_beta_http", "recipient_id": "mem_1", "channel": "in_app",
                    "category": "transactional", "template_id": TEMPLATE, "variables": { "name": "x" } }))
                .by3(Rejected("template_not_found"), FB, FB),
        ]),
        case("GET /api/notifications/analytics/dashboard", vec![
            get(format!("/api/notifications/analytics/dashboard?{}", window())).by3(NothingOfA, FB, FB).control(OwnerDiffers),
        ]),
        case("GET /api/notifications/campaigns", vec![
            get("/api/notifications/campaigns").by3(NothingOfA, FB, FB).control(OwnerSees),
        ]),
        case("POST /api/notifications/campaigns", vec![
            post("/api/notifications/campaigns", json!({ "campaign_id": "cmp_beta_http", "name": "Beta", "kind": "broadcast",
                    "category": "marketing", "channel": "in_app", "template_id": TEMPLATE, "body": "x",
                    "segment": { "recipient_ids": ["mem_1"] }, "send_at": day(20, 9) }))
                // Accepted as a draft: each message renders the template of B's of that id when it
                // is sent (templates are keyed by organization), never A's; A's list stays as it was.
                .by3(AppliedOwn, FB, FB),
            post("/api/notifications/campaigns", json!({ "campaign_id": CAMPAIGN, "name": "Beta's own", "kind": "broadcast",
                    "category": "marketing", "channel": "in_app", "body": "x", "segment": { "recipient_ids": ["mem_1"] },
                    "send_at": day(20, 9) }))
                .by(BStaff, AppliedOwn),
        ]),
        case("GET /api/notifications/campaigns/{id}", vec![get(format!("/api/notifications/campaigns/{CAMPAIGN}")).by3(NF, FB, FB).by(BStaff, ReadsOwn)]),
        case("POST /api/notifications/campaigns/{id}/cancel", vec![
            post(format!("/api/notifications/campaigns/{CAMPAIGN}/cancel"), json!({})).by3(Rejected("campaign_not_found"), FB, FB),
        ]),
        case("POST /api/notifications/campaigns/{id}/launch", vec![
            post(format!("/api/notifications/campaigns/{CAMPAIGN}/launch"), json!({})).by3(Rejected("campaign_not_found"), FB, FB),
        ]),
        case("POST /api/notifications/cancel", vec![
            // B's mem_1 has no such transaction: nothing to cancel in B, and A's message waits on.
            post("/api/notifications/cancel", json!({ "recipient_id": "mem_1", "transaction_id": TRANSACTION }))
                .by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/notifications/inbox", vec![
            get("/api/notifications/inbox").by3(NothingOfA, NothingOfA, NothingOfA).control(Member1Sees),
        ]),
        case("POST /api/notifications/inbox/read", vec![
            // Marks read only the caller's own messages of those ids: none; mem_1's stays unread.
            post("/api/notifications/inbox/read", json!({ "notification_ids": [DELIVERED] }))
                .by(BMember, AppliedOwn).by(AMember2, AppliedOwn),
        ]),
        case("POST /api/notifications/subscriptions", vec![
            post("/api/notifications/subscriptions", json!({ "recipient_id": "mem_1", "email": "beta@example.com" })).by3(AppliedOwn, AppliedOwn, FB),
        ]),
        case("GET /api/notifications/subscriptions/{recipient_id}", vec![
            get("/api/notifications/subscriptions/mem_1").by3(NF, NF, NF).by(BStaff, ReadsOwn),
        ]),
        case("GET /api/notifications/templates", vec![
            get("/api/notifications/templates?all_versions=true").by3(NothingOfA, FB, FB).control(OwnerSees),
        ]),
        case("POST /api/notifications/templates", vec![
            post("/api/notifications/templates", json!({ "template_id": TEMPLATE, "channel": "in_app", "body": "Beta's own {{ name }}",
                    "sample_variables": { "name": "x" } }))
                .by3(AppliedOwn, FB, FB),
        ]),
        case("POST /api/notifications/templates/preview", vec![
            post("/api/notifications/templates/preview", json!({ "body": "Hello {{ name }}", "variables": { "name": "B" } }))
                .by3(AnsweredOwn(200, "renders only the text it is sent; it names no record"), FB, FB),
        ]),
        case("GET /api/notifications/tracking/click/{token}", vec![
            get("/api/notifications/tracking/click/forged.link.token").by(Anonymous,
                Public(400, Some("invalid_link"), "a signed link is the only way in; a forged one records and redirects nothing")),
        ]),
        case("GET /api/notifications/tracking/open/{token}", vec![
            get("/api/notifications/tracking/open/forged.link.token").by(Anonymous,
                Public(200, None, "the pixel is served to anyone and records only for a link that verifies")),
        ]),
        case("POST /api/notifications/tracking/twilio", vec![
            post("/api/notifications/tracking/twilio", json!("MessageSid=SMforged&MessageStatus=delivered"))
                .header("X-Twilio-Signature", "Zm9yZ2Vk").by(Anonymous,
                Public(401, Some("invalid_signature"), "Twilio's callbacks are known by Twilio's signature")),
        ]),
        case("POST /api/notifications/tracking/twilio/{token}", vec![
            post("/api/notifications/tracking/twilio/forged.link.token", json!("MessageSid=SMforged&MessageStatus=delivered"))
                .header("X-Twilio-Signature", "Zm9yZ2Vk").by(Anonymous,
                Public(401, Some("invalid_signature"), "Twilio's callbacks are known by Twilio's signature and a signed link")),
        ]),
        case("GET /api/notifications/{id}", vec![get(format!("/api/notifications/{DELIVERED}")).by3(NF, NF, NF)]),
        case("POST /api/notifications/{id}/send", vec![
            post(format!("/api/notifications/{SCHEDULED}/send"), json!({})).by3(NF, FB, FB),
        ]),
        // Payments.
        case("GET /api/payments", vec![
            get("/api/payments?limit=200").by3(NothingOfA, NothingOfA, NothingOfA).control(OwnerSees),
            get("/api/payments?member_id=mem_1").by(BStaff, NothingOfA).by(AMember2, FB),
        ]),
        case("POST /api/payments", vec![
            post("/api/payments", json!({ "payment_id": "pay_beta_http_1", "member_id": "mem_1", "amount_minor": 11_900,
                    "currency": "EUR", "method": "cash", "invoice_id": INVOICE }))
                .by3(Rejected("invoice_not_found"), Rejected("invoice_not_found"), FB),
            post("/api/payments", json!({ "payment_id": "pay_beta_http_2", "member_id": "mem_1", "amount_minor": 100,
                    "currency": "EUR", "method": "cash", "payment_method_id": METHOD }))
                .by3(Rejected("payment_method_not_found"), Rejected("payment_method_not_found"), FB),
            // Within A: mem_2 paying with mem_1's stored method.
            post("/api/payments", json!({ "payment_id": "pay_alpha2_http", "member_id": "mem_2", "amount_minor": 100,
                    "currency": "EUR", "method": "cash", "payment_method_id": METHOD }))
                .by(AMember2, Rejected("payment_method_not_found")),
        ]),
        case("GET /api/payments/analytics/dashboard", vec![
            get(format!("/api/payments/analytics/dashboard?{}", window())).by3(NothingOfA, FB, FB).control(OwnerDiffers),
        ]),
        case("GET /api/payments/invoices", vec![
            get("/api/payments/invoices?limit=200").by3(NothingOfA, NothingOfA, NothingOfA).control(OwnerSees),
        ]),
        case("POST /api/payments/invoices", vec![
            post("/api/payments/invoices", json!({ "invoice_id": INVOICE, "member_id": "mem_1", "currency": "EUR", "due_at": day(30, 0),
                    "lines": [{ "description": "Beta's own", "quantity": 1, "unit_amount_minor": 100, "tax_rate_bps": 0 }] }))
                .by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/payments/invoices/{id}", vec![get(format!("/api/payments/invoices/{INVOICE}")).by3(NF, NF, NF).by(BStaff, ReadsOwn)]),
        case("POST /api/payments/invoices/{id}/status", vec![
            post(format!("/api/payments/invoices/{INVOICE}/status"), json!({ "status": "void" })).by3(NF, FB, FB),
        ]),
        case("POST /api/payments/invoices/{id}/payments", vec![
            post(format!("/api/payments/invoices/{INVOICE}/payments"), json!({ "payment_id": "pay_beta_http_cash", "method": "cash" }))
                .by3(NF, FB, FB),
        ]),
        case("GET /api/payments/methods", vec![
            get("/api/payments/methods?limit=200").by3(NothingOfA, NothingOfA, NothingOfA).control(OwnerSees),
        ]),
        case("POST /api/payments/methods", vec![
            post("/api/payments/methods", json!({ "payment_method_id": METHOD, "member_id": "mem_1", "method": "cash", "make_default": true }))
                .by(BStaff, AppliedOwn).by(AMember2, FB),
        ]),
        case("GET /api/payments/methods/{id}", vec![get(format!("/api/payments/methods/{METHOD}")).by3(NF, NF, NF).by(BStaff, ReadsOwn)]),
        case("GET /api/payments/refunds", vec![
            get("/api/payments/refunds?limit=200").by3(NothingOfA, NothingOfA, NothingOfA).control(OwnerSees),
        ]),
        case("GET /api/payments/refunds/{id}", vec![get(format!("/api/payments/refunds/{REFUND}")).by3(NF, NF, NF)]),
        case("GET /api/payments/{id}", vec![
            get(format!("/api/payments/{PAID}")).by3(NF, NF, NF),
            // Naming A as the organization is for platform admins only.
            get(format!("/api/payments/{PAID}")).header("X-Organization-Id", org_a).by(BStaff, Refused(403, "organization_mismatch")),
        ]),
        case("POST /api/payments/{id}/confirm", vec![
            post(format!("/api/payments/{AWAITING_STAFF}/confirm"), json!({})).by3(NF, FB, FB),
        ]),
        case("POST /api/payments/{id}/process", vec![
            post(format!("/api/payments/{UNPROCESSED}/process"), json!({})).by3(NF, NF, NF),
        ]),
        case("POST /api/payments/{id}/refunds", vec![
            post(format!("/api/payments/{PAID}/refunds"), json!({ "refund_id": "re_beta_http", "amount_minor": 100 })).by3(NF, FB, FB),
        ]),
        // Subscriptions.
        case("GET /api/subscriptions", vec![
            get("/api/subscriptions?limit=200").by3(NothingOfA, NothingOfA, NothingOfA).control(OwnerSees),
            get(format!("/api/subscriptions?plan_id={PLAN}")).by(BStaff, NothingOfA),
        ]),
        case("POST /api/subscriptions", vec![
            post("/api/subscriptions", json!({ "subscription_id": "sub_beta_http_1", "member_id": "mem_1", "plan_id": PLAN }))
                .by3(Rejected("plan_not_found"), Rejected("plan_not_found"), FB),
            post("/api/subscriptions", json!({ "subscription_id": "sub_beta_http_2", "member_id": "mem_1", "plan_id": B_PLAN,
                    "coupon_id": COUPON }))
                .by(BStaff, Rejected("coupon_not_found")),
            post("/api/subscriptions", json!({ "subscription_id": "sub_beta_http_3", "member_id": "mem_1", "plan_id": B_PLAN,
                    "payment_method_id": METHOD }))
                // Billing resolves a subscription's method within its organization at each charge:
                // A's method is, to B's subscription, no method (billing's documented choice);
                // nothing of A's is charged or changed.
                .by(BStaff, AppliedOwn),
        ]),
        case("GET /api/subscriptions/analytics/dashboard", vec![
            get(format!("/api/subscriptions/analytics/dashboard?{}", window())).by3(NothingOfA, FB, FB).control(OwnerDiffers),
        ]),
        case("POST /api/subscriptions/billing", vec![
            post("/api/subscriptions/billing", json!({})).by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/subscriptions/coupons", vec![get("/api/subscriptions/coupons").by3(NothingOfA, FB, FB).control(OwnerSees)]),
        case("POST /api/subscriptions/coupons", vec![
            post("/api/subscriptions/coupons", json!({ "coupon_id": COUPON, "name": "Beta's own", "percent_off_bps": 5000, "duration": "once" }))
                .by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/subscriptions/plans", vec![
            get("/api/subscriptions/plans?all_versions=true").by3(NothingOfA, NothingOfA, NothingOfA).control(OwnerSees),
        ]),
        case("POST /api/subscriptions/plans", vec![
            post("/api/subscriptions/plans", plan_body(PLAN, "Beta's own plan")).by3(AppliedOwn, FB, FB),
        ]),
        case("GET /api/subscriptions/plans/{id}", vec![get(format!("/api/subscriptions/plans/{PLAN}")).by(BStaff, NF).by(BMember, NF).by(BStaff, ReadsOwn)]),
        case("POST /api/subscriptions/usage", vec![
            post("/api/subscriptions/usage", json!({ "usage_id": "use_beta_http", "subscription_id": SUBSCRIPTION, "metric": "seat_hours", "quantity": 50 }))
                .by3(NF, NF, NF),
        ]),
        case("GET /api/subscriptions/{id}", vec![get(format!("/api/subscriptions/{SUBSCRIPTION}")).by3(NF, NF, NF)]),
        case("POST /api/subscriptions/{id}/cancel", vec![
            post(format!("/api/subscriptions/{SUBSCRIPTION}/cancel"), json!({})).by3(NF, NF, NF),
        ]),
        case("POST /api/subscriptions/{id}/change-plan", vec![
            post(format!("/api/subscriptions/{SUBSCRIPTION}/change-plan"), json!({ "plan_id": PLAN })).by3(NF, NF, NF),
            // B's own subscription moved onto A's plan.
            post(format!("/api/subscriptions/{B_SUBSCRIPTION}/change-plan"), json!({ "plan_id": PLAN }))
                .by(BStaff, Rejected("plan_not_found")),
        ]),
        case("GET /api/subscriptions/{id}/credit-notes", vec![
            get(format!("/api/subscriptions/{SUBSCRIPTION}/credit-notes")).by3(NF, NF, NF),
        ]),
        case("POST /api/subscriptions/{id}/credit-notes", vec![
            post(format!("/api/subscriptions/{SUBSCRIPTION}/credit-notes"), json!({ "amount_minor": 100 })).by3(NF, FB, FB),
        ]),
        case("GET /api/subscriptions/{id}/invoices", vec![
            get(format!("/api/subscriptions/{SUBSCRIPTION}/invoices")).by3(NF, NF, NF),
        ]),
        case("POST /api/subscriptions/{id}/pause", vec![
            post(format!("/api/subscriptions/{SUBSCRIPTION}/pause"), json!({})).by3(NF, NF, NF),
        ]),
        case("POST /api/subscriptions/{id}/resume", vec![
            post(format!("/api/subscriptions/{SUBSCRIPTION}/resume"), json!({})).by3(NF, NF, NF),
        ]),
        case("GET /api/subscriptions/{id}/usage", vec![get(format!("/api/subscriptions/{SUBSCRIPTION}/usage")).by3(NF, NF, NF)]),
        // Providers.
        case("POST /api/webhooks/{provider}", vec![
            post("/api/webhooks/stripe", json!({ "id": "evt_forged", "type": "payment_intent.succeeded" }))
                .header("Stripe-Signature", "t=1,v1=forged").by(Anonymous,
                Public(401, Some("invalid_signature"), "a provider's webhook is known by its signature and only nudges billing to ask the provider")),
        ]),
    ]
}
