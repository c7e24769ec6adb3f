//! The event stream (`GET /api/events/stream`, gRPC `StreamEvents`): each caller resumes from the
//! very start of every event partition — a replay of the whole log, A's seeding included — and
//! reads on, live, until an event made for them after the stream opened. Everything before it must
//! be theirs: their organization and, for a member, about themselves.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream::BoxStream};
use reqwest::Method;
use serde_json::{Value, json};
use studyspot_grpc_api::{StreamEventsRequest, gateway_client::GatewayClient};
use studyspot_tenancy_suite::stack::Stack;
use tonic::transport::Channel;

use crate::{
    cases::{Tokens, authorized},
    seed::applied,
};

/// A `Last-Event-ID` naming offset 0 of every partition of every event topic (in the gateway's
/// order: the catalogue's event topics), so the stream replays all of them.
fn from_the_start() -> String {
    let topics = studyspot_schemas::catalogue()
        .iter()
        .filter(|t| t.kind == studyspot_schemas::TopicKind::Events)
        .count();
    // The test world makes every topic with three partitions.
    (0..topics).flat_map(|t| (0..3).map(move |p| format!("{t}:{p}:0"))).collect::<Vec<_>>().join(",")
}

/// Whose events a caller may see: an organization and, for members, one member.
struct Viewer<'a> {
    name: &'static str,
    token: &'a str,
    organization: &'a str,
    member: Option<&'static str>,
}

impl Viewer<'_> {
    fn may_see(&self, event: &Value) -> bool {
        let about = event["member_id"].as_str().or_else(|| event["recipient_id"].as_str());
        event["metadata"]["organization_id"].as_str() == Some(self.organization)
            && self.member.is_none_or(|m| about == Some(m))
    }
}

/// Something new for `viewer` to see, by A's owner or B's staff: a venue for operators, an in-app
/// message for a member. Returns the id that marks it.
async fn mark(stack: &Stack, tokens: &Tokens, viewer: &Viewer<'_>, protocol: &str) -> String {
    let of_a = viewer.organization == stack.org_a;
    let token = if of_a { &tokens.a_owner } else { &tokens.b_staff };
    let side = if of_a { "alpha_mark" } else { "beta_mark" };
    match viewer.member {
        None => {
            let id = format!("ven_{side}_{protocol}_{}", viewer.name);
            applied(stack, token, "/api/attendance/venues", crate::seed::venue_body(&id, "Mark")).await;
            id
        }
        Some(member) => {
            let id = format!("ntf_{side}_{protocol}_{}", viewer.name);
            let body = json!({ "notification_id": id, "recipient_id": member, "channel": "in_app",
                               "category": "transactional", "subject": "Mark", "body": "Mark" });
            applied(stack, token, "/api/notifications", body).await;
            id
        }
    }
}

/// Reads `events` until one holds `marker`; every event before must be the viewer's. Returns how
/// many events of the viewer came first.
async fn read_until(
    viewer: &Viewer<'_>,
    marker: &str,
    mut events: BoxStream<'_, Value>,
) -> Result<usize, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(event)) = tokio::time::timeout(left, events.next()).await else {
            return Err(format!("{}: the stream ended or went quiet before {marker}", viewer.name));
        };
        if !viewer.may_see(&event) {
            return Err(format!("{}: LEAK: an event not theirs: {event}", viewer.name));
        }
        if event.to_string().contains(marker) {
            return Ok(seen);
        }
        seen += 1;
    }
}

/// The records of a Server-Sent Events body: each event's `data:` lines, as JSON.
fn sse_records(response: reqwest::Response) -> BoxStream<'static, Value> {
    futures::stream::unfold((response, String::new()), |(mut response, mut buffer)| async move {
        loop {
            // One event: lines up to a blank line.
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data: String =
                    event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((serde_json::from_str(&data).unwrap_or(Value::Null), (response, buffer)));
            }
            let chunk = response.chunk().await.ok()??;
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .boxed()
}

async fn over_http(stack: &Stack, tokens: &Tokens, viewer: &Viewer<'_>) -> Result<usize, String> {
    let response = stack
        .http
        .request(Method::GET, format!("{}/api/events/stream", stack.base))
        .bearer_auth(viewer.token)
        .header("last-event-id", from_the_start())
        .send()
        .await
        .map_err(|e| format!("{}: {e}", viewer.name))?;
    if response.status() != 200 {
        return Err(format!("{}: the stream answered {}", viewer.name, response.status()));
    }
    let marker = mark(stack, tokens, viewer, "http").await;
    read_until(viewer, &marker, sse_records(response)).await
}

async fn over_grpc(
    stack: &Stack,
    tokens: &Tokens,
    client: &GatewayClient<Channel>,
    viewer: &Viewer<'_>,
) -> Result<usize, String> {
    let request = StreamEventsRequest { last_event_id: Some(from_the_start()) };
    let stream = client
        .clone()
        .stream_events(authorized(request, Some(viewer.token)))
        .await
        .map_err(|e| format!("{}: the stream answered {e:?}", viewer.name))?
        .into_inner();
    let marker = mark(stack, tokens, viewer, "grpc").await;
    let records = stream
        .take_while(|event| futures::future::ready(event.is_ok()))
        .map(|event| event.ok().and_then(|e| serde_json::from_str(&e.json).ok()).unwrap_or(Value::Null))
        .boxed();
    read_until(viewer, &marker, records).await
}

/// Both protocols, for B's staff, B's member, A's `mem_2` and (the control) A's owner; returns the
/// failures.
pub async fn check(stack: &Stack, tokens: &Tokens, client: &GatewayClient<Channel>) -> Vec<String> {
    let viewers = [
        Viewer { name: "BStaff", token: &tokens.b_staff, organization: &stack.org_b, member: None },
        Viewer {
            name: "BMember",
            token: &tokens.b_member,
            organization: &stack.org_b,
            member: Some("mem_1"),
        },
        Viewer {
            name: "AMember2",
            token: &tokens.a_member_2,
            organization: &stack.org_a,
            member: Some("mem_2"),
        },
    ];
    let control = Viewer { name: "AOwner", token: &tokens.a_owner, organization: &stack.org_a, member: None };
    let mut failures = Vec::new();
    for viewer in viewers.iter().chain([&control]) {
        for (protocol, result) in [
            ("GET /api/events/stream", over_http(stack, tokens, viewer).await),
            ("Gateway/StreamEvents", over_grpc(stack, tokens, client, viewer).await),
        ] {
            match result {
                Err(failure) => failures.push(format!("{protocol}: {failure}")),
                // The control: A's owner's replay does hold A's history, so B's holding none of it
                // means something.
                Ok(0) if viewer.name == "AOwner" => {
                    failures.push(format!("{protocol}: control: A's owner replayed none of A's events"));
                }
                Ok(_) => {}
            }
        }
    }
    failures
}
