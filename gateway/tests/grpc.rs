//! The gRPC API: the same operations and rules as HTTP, errors with the same codes in
//! google.rpc.ErrorInfo and the failing field in google.rpc.BadRequest.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use studyspot_grpc_api::{
    CheckInRequest, GetCommandRequest, StreamEventsRequest, gateway_client::GatewayClient,
};
use studyspot_schemas::attendance;
use studyspot_tokens::Role;
use support::{Publisher, TestGateway};
use tonic::{Code, Request, transport::Channel};
use tonic_types::StatusExt;

fn check_in(member: &str) -> CheckInRequest {
    CheckInRequest { member_id: member.into(), venue_id: "ven_1".into(), ..Default::default() }
}

fn authorized<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("metadata"));
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_and_status_over_grpc_follow_the_http_rules() {
    let gw = TestGateway::start(|_| {}).await;
    let mut client = GatewayClient::new(
        Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect"),
    );
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);

    let mut keyed = authorized(check_in("mem_1"), &staff);
    keyed.metadata_mut().insert("idempotency-key", "grpc-1".parse().expect("metadata"));
    let first = client.check_in(keyed).await.expect("accepted").into_inner();
    assert_eq!(first.aggregate_field, "session_id");
    assert!(first.aggregate_id.starts_with("ses_") && !first.replayed, "{first:?}");
    let mut again = authorized(check_in("mem_1"), &staff);
    again.metadata_mut().insert("idempotency-key", "grpc-1".parse().expect("metadata"));
    let again = client.check_in(again).await.expect("replayed").into_inner();
    assert_eq!((again.command_id.as_str(), again.replayed), (first.command_id.as_str(), true));
    assert_eq!(gw.read_all(attendance::COMMANDS.name).len(), 1, "a retry produces nothing new");

    let status = client
        .get_command(authorized(
            GetCommandRequest { command_id: first.command_id.clone(), wait_ms: Some(200) },
            &staff,
        ))
        .await
        .expect("status")
        .into_inner();
    assert_eq!(
        (status.status.as_str(), status.command_type.as_str()),
        ("accepted", "studyspot.attendance.CheckIn")
    );

    let invalid = client.check_in(authorized(check_in(""), &staff)).await.expect_err("refused");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let details = invalid.get_error_details();
    assert_eq!(details.error_info().map(|i| i.reason.as_str()), Some("validation_failed"));
    let violations = &details.bad_request().expect("bad request").field_violations;
    assert_eq!(violations[0].field, "member_id", "{violations:?}");

    let anonymous = client.check_in(Request::new(check_in("mem_1"))).await.expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mut elsewhere = authorized(check_in("mem_1"), &gw.token(Some("org_2"), &[Role::Owner], None));
    elsewhere.metadata_mut().insert("x-organization-id", "org_1".parse().expect("metadata"));
    let crossing = client.check_in(elsewhere).await.expect_err("another organization");
    assert_eq!(crossing.code(), Code::PermissionDenied);
    assert_eq!(
        crossing.get_error_details().error_info().map(|i| i.reason.clone()).as_deref(),
        Some("organization_mismatch")
    );
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_9"));
    let unknown = client
        .get_command(authorized(GetCommandRequest { command_id: first.command_id, wait_ms: None }, &member))
        .await
        .expect_err("not the member's command");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_stream_over_grpc_and_resume_after_the_last_id() {
    let gw = TestGateway::start(|_| {}).await;
    let publisher = Publisher::new(&gw);
    let mut client = GatewayClient::new(
        Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect"),
    );
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let mut stream = client
        .stream_events(authorized(StreamEventsRequest::default(), &staff))
        .await
        .expect("stream")
        .into_inner();
    publisher.checked_in("org_2", "mem_1", "ses_elsewhere").await;
    publisher.checked_in("org_1", "mem_1", "ses_1").await;
    let first = stream.message().await.expect("message").expect("an event");
    assert_eq!(first.name, "CheckedIn");
    let json: serde_json::Value = serde_json::from_str(&first.json).expect("json");
    assert_eq!(json["session_id"], "ses_1", "only the caller's organization");
    drop(stream);
    publisher.checked_in("org_1", "mem_2", "ses_2").await;
    let resume = StreamEventsRequest { last_event_id: Some(first.id) };
    let mut resumed = client.stream_events(authorized(resume, &staff)).await.expect("stream").into_inner();
    let next = resumed.message().await.expect("message").expect("an event");
    let json: serde_json::Value = serde_json::from_str(&next.json).expect("json");
    assert_eq!(json["session_id"], "ses_2", "what was missed, and nothing twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_reflection_is_off_unless_switched_on_and_then_lists_the_gateway_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let ask = |base: String| async move {
        let channel = Channel::from_shared(base).expect("uri").connect().await.expect("connect");
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        ServerReflectionClient::new(channel).server_reflection_info(futures::stream::iter([request])).await
    };
    // By default nobody may list the API's insides without a token.
    let closed = TestGateway::start(|_| {}).await;
    assert_eq!(ask(closed.base.clone()).await.expect_err("reflection is off").code(), Code::Unimplemented);

    let gw = TestGateway::start(|s| s.gateway.grpc_reflection = true).await;
    let mut responses = ask(gw.base.clone()).await.expect("reflection").into_inner();
    let response = responses.message().await.expect("message").expect("a response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list, got {response:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"studyspot.gateway.v1.Gateway"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_over_grpc_are_paginated_filtered_and_scoped_like_http() {
    use studyspot_billing_projection as billing;
    use studyspot_grpc_api::{GetPaymentRequest, ListRequest};

    let gw = TestGateway::start(|_| {}).await;
    let mut db = gw.projection("billing", &billing::MIGRATIONS).await;
    let start = chrono::DateTime::from_timestamp(1_767_225_600, 0).expect("time");
    for n in 0..5_i64 {
        let at = start + chrono::Duration::minutes(n);
        let payment = billing::Payment {
            payment_id: format!("pay_{n}"),
            organization_id: if n < 4 { "org_a".into() } else { "org_b".into() },
            member_id: if n % 2 == 0 { "mem_1".into() } else { "mem_2".into() },
            amount_minor: 100 * (n + 1),
            currency: "EUR".into(),
            method: "card".into(),
            description: None,
            status: "created".into(),
            created_at: at,
            updated_at: at,
            ..Default::default()
        };
        billing::insert_payment(&mut db, &payment).await.expect("insert");
    }
    let mut client = GatewayClient::new(
        Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect"),
    );
    let owner_a = gw.token(Some("org_a"), &[Role::Owner], None);
    let member_1 = gw.token(Some("org_a"), &[Role::Member], Some("mem_1"));

    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let request = ListRequest { limit: Some(3), cursor: cursor.take(), ..Default::default() };
        let page = client.list_payments(authorized(request, &owner_a)).await.expect("page").into_inner();
        ids.extend(page.items.into_iter().map(|p| p.payment_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(ids, ["pay_3", "pay_2", "pay_1", "pay_0"], "newest first, every page, one organization");

    let filtered =
        ListRequest { filters: [("member_id".into(), "mem_2".into())].into(), ..Default::default() };
    let page = client.list_payments(authorized(filtered, &owner_a)).await.expect("filtered").into_inner();
    assert_eq!(page.items.iter().map(|p| p.payment_id.as_str()).collect::<Vec<_>>(), ["pay_3", "pay_1"]);

    let own =
        client.list_payments(authorized(ListRequest::default(), &member_1)).await.expect("own").into_inner();
    assert_eq!(own.items.iter().map(|p| p.payment_id.as_str()).collect::<Vec<_>>(), ["pay_2", "pay_0"]);

    let one = client
        .get_payment(authorized(GetPaymentRequest { payment_id: "pay_2".into() }, &member_1))
        .await
        .expect("own payment")
        .into_inner();
    assert_eq!((one.amount_minor, one.created_at.as_str()), (300, "2026-01-01T00:02:00.000000Z"));
    let hidden = client
        .get_payment(authorized(GetPaymentRequest { payment_id: "pay_1".into() }, &member_1))
        .await
        .expect_err("another member's");
    assert_eq!(hidden.code(), Code::NotFound);

    let bad = ListRequest { filters: [("memberid".into(), "mem_1".into())].into(), ..Default::default() };
    let refused = client.list_payments(authorized(bad, &owner_a)).await.expect_err("unknown filter");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let details = refused.get_error_details();
    let violations = &details.bad_request().expect("bad request").field_violations;
    assert_eq!(violations[0].field, "memberid", "{violations:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn billing_operations_over_grpc_check_shape_and_role_and_find_the_payment() {
    use studyspot_grpc_api::{
        CreateInvoiceRequest, InvoiceLine, ListRequest, ProcessPaymentRequest, RefundPaymentRequest,
    };

    let gw = TestGateway::start(|_| {}).await;
    gw.payment("pay_1", "mem_1", |_| {}).await;
    let mut client = GatewayClient::new(
        Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect"),
    );
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));

    let process = |id: &str| ProcessPaymentRequest { payment_id: id.into(), ..Default::default() };
    let accepted = client.process_payment(authorized(process("pay_1"), &member)).await.expect("own payment");
    assert_eq!(accepted.get_ref().aggregate_id, "pay_1");
    let commands = gw.read_all(studyspot_schemas::billing::COMMANDS.name);
    assert_eq!(commands.len(), 1, "one ProcessPayment, keyed by the payment's member");
    assert_eq!(commands[0].key.as_deref(), Some(&b"mem_1"[..]));
    let missing = client.process_payment(authorized(process("pay_9"), &staff)).await.expect_err("no such");
    assert_eq!(missing.code(), Code::NotFound);

    let refund =
        RefundPaymentRequest { payment_id: "pay_1".into(), amount_minor: Some(500), ..Default::default() };
    let by_member =
        client.refund_payment(authorized(refund.clone(), &member)).await.expect_err("members do not refund");
    assert_eq!(by_member.code(), Code::PermissionDenied);
    // A service token moves money only with the scope for it.
    let integration = gw.token(Some("org_1"), &[Role::Service], None);
    let unscoped =
        client.refund_payment(authorized(refund.clone(), &integration)).await.expect_err("no refund scope");
    assert_eq!(unscoped.code(), Code::PermissionDenied);
    let confirming = gw.service_token("org_1", "billing:confirm");
    let wrong =
        client.refund_payment(authorized(refund.clone(), &confirming)).await.expect_err("wrong scope");
    assert_eq!(wrong.code(), Code::PermissionDenied);
    let refunder = gw.service_token("org_1", "billing:confirm billing:refund");
    client.refund_payment(authorized(refund.clone(), &refunder)).await.expect("a scoped refund");
    let zero = RefundPaymentRequest { amount_minor: Some(0), ..refund };
    let invalid = client.refund_payment(authorized(zero, &staff)).await.expect_err("zero");
    assert_eq!(invalid.code(), Code::InvalidArgument);

    let line =
        InvoiceLine { description: "Desk".into(), quantity: 0, unit_amount_minor: 100, ..Default::default() };
    let invoice = CreateInvoiceRequest {
        member_id: "mem_1".into(),
        currency: "EUR".into(),
        lines: vec![line],
        due_at: "2027-01-01T00:00:00Z".into(),
        ..Default::default()
    };
    let refused = client.create_invoice(authorized(invoice, &staff)).await.expect_err("quantity 0");
    let details = refused.get_error_details();
    let violations = &details.bad_request().expect("bad request").field_violations;
    assert_eq!(violations[0].field, "lines[0].quantity", "{violations:?}");

    let invoices =
        client.list_invoices(authorized(ListRequest::default(), &staff)).await.expect("empty list");
    assert!(invoices.get_ref().items.is_empty());
    let methods =
        client.list_payment_methods(authorized(ListRequest::default(), &member)).await.expect("own");
    assert!(methods.get_ref().items.is_empty());

    let range = |from: &str| ListRequest {
        filters: [("from".into(), from.into()), ("to".into(), "2100-01-01T00:00:00Z".into())].into(),
        ..Default::default()
    };
    let dashboard = client
        .get_payments_dashboard(authorized(range("2000-01-01T00:00:00Z"), &staff))
        .await
        .expect("dashboard");
    assert_eq!(dashboard.get_ref().from, "2000-01-01T00:00:00.000000Z");
    let hidden = client.get_payments_dashboard(authorized(range("2000-01-01T00:00:00Z"), &member)).await;
    assert_eq!(hidden.expect_err("members see no analytics").code(), Code::PermissionDenied);
    let bad =
        client.get_payments_dashboard(authorized(range("yesterday"), &staff)).await.expect_err("bad from");
    assert_eq!(bad.code(), Code::InvalidArgument);
}
