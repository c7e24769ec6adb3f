//! The live event stream (Server-Sent Events): follow-on events as they are published, only those
//! the caller may see, and a reconnect with Last-Event-ID gets what it missed and nothing twice.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;
use studyspot_tokens::Role;
use support::{Publisher, TestGateway, eventually};

/// One SSE event: id, event name, data as JSON.
#[derive(Debug)]
struct SseEvent {
    id: String,
    name: String,
    data: Value,
}

/// Reads SSE frames off a response until `count` events arrived (comments and keep-alives skipped).
struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    async fn open(gw: &TestGateway, token: &str, last_event_id: Option<&str>) -> Self {
        let mut request = gw.request(Method::GET, "/api/events/stream", Some(token));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("stream");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Self { stream: response.bytes_stream().boxed(), buffer: String::new() }
    }

    async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let frame: String = self.buffer.drain(..end + 2).collect();
                    let mut event = SseEvent { id: String::new(), name: String::new(), data: Value::Null };
                    for line in frame.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            event.id = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("event:") {
                            event.name = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            event.data = serde_json::from_str(v.trim()).expect("data is JSON");
                        }
                    }
                    if !event.name.is_empty() {
                        return event;
                    }
                    continue;
                }
                let chunk = self.stream.next().await.expect("stream open").expect("chunk");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event within 30 s")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_stream_live_filtered_and_resume_where_they_left_off() {
    let gw = TestGateway::start(|_| {}).await;
    let publisher = Publisher::new(&gw);
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);
    let member = gw.token(Some("org_1"), &[Role::Member], Some("mem_2"));

    let mut as_staff = SseReader::open(&gw, &staff, None).await;
    let mut as_member = SseReader::open(&gw, &member, None).await;
    publisher.checked_in("org_2", "mem_1", "ses_other_org").await;
    publisher.checked_in("org_1", "mem_1", "ses_1").await;
    publisher.checked_in("org_1", "mem_2", "ses_2").await;

    let first = as_staff.next().await;
    assert_eq!(first.name, "CheckedIn");
    assert_eq!(first.data["session_id"], "ses_1", "another organization's event never shows: {first:?}");
    assert_eq!(first.data["metadata"]["organization_id"], "org_1");
    let second = as_staff.next().await;
    assert_eq!(second.data["session_id"], "ses_2");
    let own = as_member.next().await;
    assert_eq!(own.data["session_id"], "ses_2", "a member sees only events about themselves: {own:?}");

    // Gone after the first event; two more happen meanwhile; back with the first event's id.
    drop(as_staff);
    publisher.checked_in("org_1", "mem_3", "ses_3").await;
    publisher.checked_in("org_1", "mem_4", "ses_4").await;
    let mut resumed = SseReader::open(&gw, &staff, Some(&first.id)).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(resumed.next().await.data["session_id"].as_str().expect("session").to_owned());
    }
    assert_eq!(sessions, ["ses_2", "ses_3", "ses_4"], "what was missed, in order, nothing twice");
    publisher.checked_in("org_1", "mem_5", "ses_5").await;
    assert_eq!(resumed.next().await.data["session_id"], "ses_5", "and then live again");

    let (status, _, body) = TestGateway::send(
        gw.request(Method::GET, "/api/events/stream", Some(&staff)).header("last-event-id", "garbage"),
    )
    .await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("Last-Event-ID")), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_too_far_back_is_gone_and_an_organization_holds_a_bounded_number_of_streams() {
    let gw = TestGateway::start(|s| {
        s.gateway.event_stream_resume_window = 3;
        s.gateway.event_streams_per_organization = 2;
    })
    .await;
    let publisher = Publisher::new(&gw);
    let staff = gw.token(Some("org_1"), &[Role::Staff], None);

    let mut first_stream = SseReader::open(&gw, &staff, None).await;
    publisher.checked_in("org_1", "mem_1", "ses_1").await;
    let first = first_stream.next().await;
    // A second stream fits; a third does not, for this organization only.
    let second_stream = SseReader::open(&gw, &staff, None).await;
    let (status, _, body) =
        TestGateway::send(gw.request(Method::GET, "/api/events/stream", Some(&staff))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_streams")), "{body}");
    let other = gw.token(Some("org_2"), &[Role::Staff], None);
    let other_stream = SseReader::open(&gw, &other, None).await;

    // Closing one frees its place.
    drop(second_stream);
    let reopened = eventually("the closed stream's place to be freed", Duration::from_secs(30), || async {
        let response =
            gw.request(Method::GET, "/api/events/stream", Some(&staff)).send().await.expect("stream");
        (response.status() == 200).then_some(response)
    })
    .await;
    drop(reopened);
    drop(other_stream);

    // Four events after `first`: more than the window of three to replay.
    for n in 2..=5 {
        publisher.checked_in("org_1", &format!("mem_{n}"), &format!("ses_{n}")).await;
    }
    for _ in 2..=5 {
        first_stream.next().await;
    }
    drop(first_stream);
    let (status, body) =
        eventually("the closed streams to free their places", Duration::from_secs(30), || async {
            let (status, _, body) = TestGateway::send(
                gw.request(Method::GET, "/api/events/stream", Some(&staff))
                    .header("last-event-id", &first.id),
            )
            .await;
            (status != 429).then_some((status, body))
        })
        .await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "resume_too_old", "{body}");
}
