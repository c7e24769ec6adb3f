//! The gateway through real HTTP requests against the real broker and PostgreSQL: tokens and
//! roles, organizations that never cross, clear 4xx errors naming the field, idempotency keys that
//! survive a restart, rate limits, and command status.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use studyspot_bus::{Codec, headers};
use studyspot_schemas::{alerts, attendance, billing, notifications};
use studyspot_tokens::Role;
use support::TestGateway;

fn payment(member: &str) -> Value {
    json!({ "member_id": member, "amount_minor": 1500, "currency": "EUR", "method": "card" })
}

fn check_in(member: &str) -> Value {
    json!({ "member_id": member, "venue_id": "ven_1" })
}

/// Every command route with a valid body for an operator of the organization.
fn command_routes() -> Vec<(&'static str, Value)> {
    vec![
        ("/api/payments", payment("mem_1")),
        (
            "/api/notifications",
            json!({ "recipient_id": "mem_1", "channel": "email", "category": "billing", "body": "Hi" }),
        ),
        ("/api/attendance/check-ins", check_in("mem_1")),
        ("/api/monitoring/metrics", json!({ "metric": "occupancy_ratio", "value": 0.5 })),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_error_naming_the_field() {
    let gw = TestGateway::start(|_| {}).await;
    let token = gw.token(Some("org_1"), &[Role::Owner], None);
    // path, body, expected status, code and field.
    let cases: Vec<(&str, String, u16, &str, Option<&str>)> = vec![
        ("/api/payments", "{not json".into(), 400, "invalid_json", None),
        (
            "/api/payments",
            json!({ "member_id": "mem_1" }).to_string(),
            400,
            "invalid_json",
            Some("amount_minor"),
        ),
        (
            "/api/payments",
            json!({ "member_id": "m", "amount_minor": "ten", "currency": "EUR", "method": "card" })
                .to_string(),
            400,
            "invalid_json",
            Some("amount_minor"),
        ),
        (
            "/api/payments",
            json!({ "member_id": "m", "amount_minor": 1, "currency": "EUR", "method": "card", "tip": 1 })
                .to_string(),
            400,
            "invalid_json",
            Some("tip"),
        ),
        (
            "/api/payments",
            json!({ "member_id": "m", "amount_minor": 1, "currency": "eur", "method": "card" }).to_string(),
            422,
            "validation_failed",
            Some("currency"),
        ),
        (
            "/api/payments",
            json!({ "member_id": "m", "amount_minor": 0, "currency": "EUR", "method": "card" }).to_string(),
            422,
            "validation_failed",
            Some("amount_minor"),
        ),
        (
            "/api/payments",
            json!({ "member_id": "m", "amount_minor": 1, "currency": "EUR", "method": "iou" }).to_string(),
            422,
            "validation_failed",
            Some("method"),
        ),
        (
            "/api/notifications",
            json!({ "recipient_id": "m", "channel": "fax", "category": "c", "body": "b" }).to_string(),
            422,
            "validation_failed",
            Some("channel"),
        ),
        (
            "/api/attendance/check-ins",
            json!({ "member_id": "", "venue_id": "v" }).to_string(),
            422,
            "validation_failed",
            Some("member_id"),
        ),
        (
            "/api/attendance/check-ins",
            format!("{{\"member_id\": \"{}\", \"venue_id\": \"v\"}}", "x".repeat(70_000)),
            413,
            "body_too_large",
            None,
        ),
    ];
    for (path, body, status, code, field) in cases {
        let request = gw
            .request(Method::POST, path, Some(&token))
            .header("content-type", "application/json")
            .body(body.clone());
        let (got_status, _, got) = TestGateway::send(request).await;
        assert_eq!(got_status, status, "{path} {body:.80}: {got}");
        assert_eq!(got["error"]["code"], code, "{path} {body:.80}: {got}");
        if let Some(field) = field {
            assert_eq!(got["error"]["field"], field, "{path} {body:.80}: {got}");
        }
    }
    let invalid_utf8 = gw
        .request(Method::POST, "/api/payments", Some(&token))
        .header("content-type", "application/json")
        .body(vec![0xff_u8, 0xfe, 0x00]);
    let (status, _, body) = TestGateway::send(invalid_utf8).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "invalid UTF-8: {body}"
    );
    let not_json = gw.request(Method::POST, "/api/payments", Some(&token)).body(payment("m").to_string());
    let (status, _, body) = TestGateway::send(not_json).await;
    assert_eq!((status, body["error"]["field"].as_str()), (415, Some("Content-Type")), "{body}");
    let bad_id = gw.request(Method::GET, "/api/commands/not-a-uuid", Some(&token));
    let (status, _, body) = TestGateway::send(bad_id).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("command_id")), "{body}");
    let bad_wait =
        gw.request(Method::GET, &format!("/api/commands/{}?wait=soon", uuid::Uuid::now_v7()), Some(&token));
    let (status, _, body) = TestGateway::send(bad_wait).await;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("wait")), "{body}");
}

/// Issue 21 item 9 (found by fuzzing): PostgreSQL stores no NUL character, so a string holding
/// one is refused at the door — a 400 naming the field, in a query, a path or a JSON body, and
/// an InvalidArgument naming it over gRPC — never a 503 from the database behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_nul_character_is_a_400_naming_the_field_never_a_5xx() {
    use studyspot_grpc_api::{
        GetPaymentRequest, ListRequest, MonitoringCommandRequest, gateway_client::GatewayClient,
    };
    use tonic::{Code, Request, transport::Channel};
    use tonic_types::StatusExt;

    let gw = TestGateway::start(|_| {}).await;
    let token = gw.token(Some("org_1"), &[Role::Owner], None);
    let expect = |what: &str, (status, _, body): (u16, reqwest::header::HeaderMap, Value), field: &str| {
        assert_eq!(
            (status, body["error"]["code"].as_str(), body["error"]["field"].as_str()),
            (400, Some("invalid_character"), Some(field)),
            "{what}: {body}"
        );
    };
    for (path, field) in [
        ("/api/attendance/occupancy?venue_id=%00'", "venue_id"),
        ("/api/payments?member_id=mem_1&status=%00", "status"),
        ("/api/payments/pay_%00", "id"),
        ("/api/notifications/templates?template_id=tpl%001", "template_id"),
    ] {
        expect(path, TestGateway::send(gw.request(Method::GET, path, Some(&token))).await, field);
    }
    let silence = json!({
        "matchers": [{ "name": "alertname", "op": "=", "value": "A" }, { "name": "job", "op": "=", "value": "x\u{0}" }],
        "starts_at": "2026-11-25T10:00:00Z", "ends_at": "2026-11-25T11:00:00Z",
    });
    let request = gw.request(Method::POST, "/api/monitoring/silences", Some(&token)).json(&silence);
    expect("a silence", TestGateway::send(request).await, "matchers[1].value");
    let payment = json!({ "member_id": "mem_1", "amount_minor": 1, "currency": "EUR", "method": "card",
                          "description": "tea \u{0}" });
    let request = gw.request(Method::POST, "/api/payments", Some(&token)).json(&payment);
    expect("a payment", TestGateway::send(request).await, "description");
    let preview = json!({ "body": "Hi {{ name }}", "variables": { "name": "Ada\u{0}" } });
    let request =
        gw.request(Method::POST, "/api/notifications/templates/preview", Some(&token)).json(&preview);
    expect("a preview", TestGateway::send(request).await, "variables.name");
    assert!(gw.read_all(alerts::COMMANDS.name).is_empty(), "nothing reached alerts");
    assert!(gw.read_all(billing::COMMANDS.name).is_empty(), "nothing reached billing");

    // gRPC: a string field of the message, a list's filter, and a JSON body carried in a string.
    let mut client = GatewayClient::new(
        Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect"),
    );
    fn authorized<T>(message: T, token: &str) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
        request
    }
    let field_of = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = status.get_error_details();
        assert_eq!(details.error_info().map(|i| i.reason.clone()), Some("invalid_character".into()));
        details.bad_request().expect("bad request").field_violations[0].field.clone()
    };
    let refused = client
        .get_payment(authorized(GetPaymentRequest { payment_id: "pay_\u{0}".into() }, &token))
        .await
        .expect_err("NUL");
    assert_eq!(field_of(refused), "payment_id");
    let filters = [("venue_id".to_owned(), "\u{0}'".to_owned())].into_iter().collect();
    let refused = client
        .get_occupancy(authorized(ListRequest { filters, ..Default::default() }, &token))
        .await
        .expect_err("NUL");
    assert_eq!(field_of(refused), "filters.venue_id");
    let refused = client
        .create_silence(authorized(MonitoringCommandRequest { body_json: silence.to_string() }, &token))
        .await
        .expect_err("NUL");
    assert_eq!(field_of(refused), "matchers[1].value");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_required_and_checked() {
    let gw = TestGateway::start(|_| {}).await;
    let send = |token: Option<String>| {
        let request = gw.request(Method::POST, "/api/payments", token.as_deref()).json(&payment("mem_1"));
        TestGateway::send(request)
    };
    let (status, headers, body) = send(None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    assert_eq!(headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));

    let (status, _, body) = send(Some("garbage".into())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_token")), "{body}");

    let expired = gw.token_with(Some("org_1"), &[Role::Owner], None, -3600);
    let (status, headers, body) = send(Some(expired)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("token_expired")), "{body}");
    assert!(
        headers.get("www-authenticate").is_some_and(|v| v.to_str().unwrap_or("").contains("invalid_token"))
    );

    let mut forger = gw.settings.auth.clone();
    forger.hs256_secret = "not the gateway's secret".to_owned().into();
    let forged = {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = studyspot_tokens::Claims {
            sub: "user:mallory".into(),
            org: Some("org_1".into()),
            roles: vec![Role::PlatformAdmin],
            member_id: None,
            iss: forger.issuer.clone(),
            aud: forger.audience.clone(),
            iat: now,
            exp: now + 600,
            nbf: None,
            scope: None,
        };
        studyspot_tokens::mint(&forger, &claims).expect("mint")
    };
    let (status, _, body) = send(Some(forged)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_token")), "{body}");

    let valid = gw.token(Some("org_1"), &[Role::Owner], None);
    let (status, _, body) = send(Some(valid)).await;
    assert_eq!(status, 202, "{body}");

    let (status, _, document) = TestGateway::send(gw.request(Method::GET, "/openapi.json", None)).await;
    assert_eq!(status, 200, "the API description needs no token");
    assert_eq!(document, serde_json::to_value(studyspot_gateway::openapi_document()).expect("json"));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_route_crosses_an_organization() {
    let gw = TestGateway::start(|_| {}).await;
    let owner_a = gw.token(Some("org_a"), &[Role::Owner], None);
    let owner_b = gw.token(Some("org_b"), &[Role::Owner], None);
    let admin = gw.token(None, &[Role::PlatformAdmin], None);
    let mut accepted_for_a = Vec::new();
    for (path, body) in command_routes() {
        let into_a =
            gw.request(Method::POST, path, Some(&owner_b)).header("x-organization-id", "org_a").json(&body);
        let (status, _, error) = TestGateway::send(into_a).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (403, Some("organization_mismatch")),
            "{path}: a token of org_b acting for org_a: {error}"
        );
        let own = gw.request(Method::POST, path, Some(&owner_a)).json(&body);
        let (status, _, answer) = TestGateway::send(own).await;
        assert_eq!(status, 202, "{path}: {answer}");
        accepted_for_a.push(answer["command_id"].as_str().expect("command id").to_owned());
    }
    for command_id in &accepted_for_a {
        let path = format!("/api/commands/{command_id}");
        let (status, _, _) = TestGateway::send(gw.request(Method::GET, &path, Some(&owner_b))).await;
        assert_eq!(status, 404, "org_b must not see org_a's command {command_id}");
        let (status, _, body) = TestGateway::send(gw.request(Method::GET, &path, Some(&owner_a))).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("accepted")), "{body}");
        let as_admin = gw.request(Method::GET, &path, Some(&admin)).header("x-organization-id", "org_b");
        assert_eq!(TestGateway::send(as_admin).await.0, 404, "an admin acting for org_b sees org_b only");
        let as_admin = gw.request(Method::GET, &path, Some(&admin)).header("x-organization-id", "org_a");
        assert_eq!(TestGateway::send(as_admin).await.0, 200);
    }
    let (status, _, body) = TestGateway::send(gw.request(Method::GET, "/api/commands/x", Some(&admin))).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("X-Organization-Id")), "{body}");

    let published = gw.read_all(attendance::COMMANDS.name);
    assert_eq!(published.len(), 1, "refused requests produce nothing");
    for topic in [billing::COMMANDS.name, notifications::COMMANDS.name, alerts::COMMANDS.name] {
        assert_eq!(gw.read_all(topic).len(), 1, "{topic}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn members_act_only_for_themselves() {
    let gw = TestGateway::start(|_| {}).await;
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let post = |token: &str, path: &str, body: Value| {
        TestGateway::send(gw.request(Method::POST, path, Some(token)).json(&body))
    };
    let (status, _, own) = post(&member, "/api/attendance/check-ins", check_in("mem_1")).await;
    assert_eq!(status, 202, "{own}");
    let (status, _, body) = post(&member, "/api/attendance/check-ins", check_in("mem_2")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, _, _) = post(&member, "/api/payments", payment("mem_2")).await;
    assert_eq!(status, 403);
    let (status, _, body) = post(&member, "/api/notifications", command_routes()[1].1.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, _, others) = post(&staff, "/api/attendance/check-ins", check_in("mem_2")).await;
    assert_eq!(status, 202);

    let status_of = |answer: &Value| format!("/api/commands/{}", answer["command_id"].as_str().expect("id"));
    let (status, _, _) = TestGateway::send(gw.request(Method::GET, &status_of(&own), Some(&member))).await;
    assert_eq!(status, 200, "a member sees their own command");
    let (status, _, _) = TestGateway::send(gw.request(Method::GET, &status_of(&others), Some(&member))).await;
    assert_eq!(status, 404, "and not another member's");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_returns_the_first_answer_even_after_a_restart() {
    let gw = TestGateway::start(|_| {}).await;
    let token = gw.token(Some("org_1"), &[Role::Staff], None);
    let pay = |base: &str, key: &str, body: Value| {
        let request = gw
            .client
            .post(format!("{base}/api/payments"))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&body);
        TestGateway::send(request)
    };
    let (status, headers, first) = pay(&gw.base, "key-1", payment("mem_1")).await;
    assert_eq!(status, 202, "{first}");
    assert!(headers.get("idempotent-replayed").is_none());
    let (status, headers, again) = pay(&gw.base, "key-1", payment("mem_1")).await;
    assert_eq!((status, &again), (202, &first), "a retry gets the first answer");
    assert_eq!(headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));

    let (status, _, body) = pay(&gw.base, "key-1", payment("mem_2")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("idempotency_key_reused")), "{body}");

    let restarted = TestGateway::serve(&gw.settings).await;
    let (status, _, after_restart) = pay(&restarted, "key-1", payment("mem_1")).await;
    assert_eq!((status, &after_restart), (202, &first), "the key outlives the gateway process");

    let (status, _, other) = pay(&gw.base, "key-2", payment("mem_1")).await;
    assert_eq!(status, 202);
    assert_ne!(other["command_id"], first["command_id"], "another key is another command");

    let records = gw.read_all(billing::COMMANDS.name);
    let ids: Vec<&str> = records.iter().filter_map(|r| r.headers.get(headers::EVENT_ID)).collect();
    assert_eq!(
        ids,
        vec![first["command_id"].as_str().expect("id"), other["command_id"].as_str().expect("id")],
        "retries produce nothing new"
    );
    let codec = Codec::new(&gw.settings.registry.url).expect("codec");
    let decoded = codec.decode(records[0].payload.as_deref().expect("payload")).await.expect("decode");
    let command: billing::CreatePayment = decoded.into_record().expect("a CreatePayment");
    assert_eq!(
        (command.metadata.organization_id.as_str(), command.metadata.actor.as_str()),
        ("org_1", "user:ada")
    );
    assert_eq!(command.amount_minor, 1500);

    let (status, _, body) = pay(&gw.base, "", payment("mem_1")).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("Idempotency-Key")), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_past_its_rate_is_told_when_to_retry() {
    let gw = TestGateway::start(|s| {
        s.gateway.rate_limit_per_second = 1;
        s.gateway.rate_limit_burst = 2;
    })
    .await;
    let busy = gw.token(Some("org_1"), &[Role::Service], None);
    let path = format!("/api/commands/{}", uuid::Uuid::now_v7());
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let (status, headers, _) = TestGateway::send(gw.request(Method::GET, &path, Some(&busy))).await;
        statuses.push(status);
        retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    }
    assert_eq!(statuses, vec![404, 404, 429]);
    assert_eq!(retry_after.as_deref(), Some("1"));
    let calm = gw.token(Some("org_2"), &[Role::Service], None);
    assert_eq!(
        TestGateway::send(gw.request(Method::GET, &path, Some(&calm))).await.0,
        404,
        "buckets are per token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_in_is_produced_to_its_topic_and_its_status_waits_for_an_outcome() {
    let gw = TestGateway::start(|_| {}).await;
    let token = gw.token(Some("org_1"), &[Role::Staff], None);
    let request = gw
        .request(Method::POST, "/api/attendance/check-ins", Some(&token))
        .header("x-correlation-id", "corr-42")
        .json(&json!({ "member_id": "mem_1", "venue_id": "ven_1", "seat_id": "s1" }));
    let (status, _, body) = TestGateway::send(request).await;
    assert_eq!(status, 202, "{body}");
    let command_id = body["command_id"].as_str().expect("command id").to_owned();
    assert_eq!(body["status_url"], format!("/api/commands/{command_id}"));

    let records = gw.read_all(attendance::COMMANDS.name);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].headers.get(headers::EVENT_ID), Some(command_id.as_str()));
    assert_eq!(records[0].key.as_deref(), Some(b"ven_1".as_slice()), "keyed by venue, as the catalogue says");
    let codec = Codec::new(&gw.settings.registry.url).expect("codec");
    let decoded = codec.decode(records[0].payload.as_deref().expect("payload")).await.expect("decode");
    let command: attendance::CheckIn = decoded.into_record().expect("a CheckIn");
    assert_eq!(command.metadata.organization_id, "org_1");
    assert_eq!(command.metadata.correlation_id, "corr-42");
    assert_eq!(command.seat_id.as_deref(), Some("s1"));

    // No attendance consumer runs here: the status stays "accepted", and a wait ends at its limit.
    let started = Instant::now();
    let waiting = gw.request(Method::GET, &format!("/api/commands/{command_id}?wait=700ms"), Some(&token));
    let (status, _, body) = TestGateway::send(waiting).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("accepted")), "{body}");
    assert_eq!(body["session_id"], command.session_id);
    assert_eq!(body["command_type"], "studyspot.attendance.CheckIn");
    assert!(started.elapsed() >= Duration::from_millis(700), "the request waited for an outcome");
    let unknown = format!("/api/commands/{}", uuid::Uuid::now_v7());
    assert_eq!(TestGateway::send(gw.request(Method::GET, &unknown, Some(&token))).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blank_id_in_a_path_is_refused_naming_its_segment() {
    let gw = TestGateway::start(|_| {}).await;
    let token = gw.token(Some("org_1"), &[Role::Owner], None);
    let cases = [
        (Method::POST, "/api/attendance/bookings/%20/cancel", "booking_id"),
        (Method::GET, "/api/payments/%20", "id"),
        (Method::GET, "/api/subscriptions/%20%20", "id"),
    ];
    for (method, path, field) in cases {
        let (status, _, body) = TestGateway::send(gw.request(method, path, Some(&token))).await;
        assert_eq!(
            (status, body["error"]["code"].as_str(), body["error"]["field"].as_str()),
            (422, Some("validation_failed"), Some(field)),
            "{path}: {body}"
        );
    }
}
