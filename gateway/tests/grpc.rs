//! The gRPC API: the same operations and rules as HTTP, errors with the same codes in
//! google.rpc.ErrorInfo and the failing field in google.rpc.BadRequest.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use studyspot_gateway::{
    auth::Role,
    grpc_api::{CheckInRequest, GetCommandRequest, StreamEventsRequest, gateway_client::GatewayClient},
};
use studyspot_schemas::attendance;
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
async fn server_reflection_lists_the_gateway_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let gw = TestGateway::start(|_| {}).await;
    let channel = Channel::from_shared(gw.base.clone()).expect("uri").connect().await.expect("connect");
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.message().await.expect("message").expect("a response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list, got {response:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"studyspot.gateway.v1.Gateway"), "{names:?}");
}
