//! The webhook channel against a receiver that checks the Standard Webhooks signature with
//! [`webhook_signature::verify`] and the exact body.

mod common;

use chrono::{DateTime, SecondsFormat, Utc};
use common::{IDEMPOTENCY_KEY, fast_retry, message};
use serde_json::{Value, json};
use studyspot_notification_channels::webhook_signature::verify;
use studyspot_notification_channels::{
    Channel, ChannelError, ChannelName, Delivery, DeliveryStatus, Message, OutboundPolicy, SecretString,
    WebhookChannel,
};
use studyspot_outbound::testing::{count_accepts, nothing_connected, quiet_listener};
use wiremock::matchers::{header, method, path};
use wiremock::{Match, Mock, MockBuilder, MockServer, Request, ResponseTemplate};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HOOK_PATH: &str = "/hooks/studyspot";

fn booking_confirmed(server: &MockServer) -> Message {
    let mut m = message(&format!("{}{HOOK_PATH}", server.uri()), "");
    m.webhook_secret = Some(SecretString::from(SECRET));
    m.event_type = Some("booking.confirmed".to_owned());
    m.data = [
        ("booking_id".to_owned(), "bk_0195f0e2".to_owned()),
        ("seat".to_owned(), "A-12".to_owned()),
        ("starts_at".to_owned(), "2026-03-01T09:30:00+05:30".to_owned()),
    ]
    .into();
    m
}

/// What a Standard Webhooks receiver checks, plus the exact body.
struct SignedDelivery {
    event_type: &'static str,
    data: Value,
}

fn header_str<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

impl Match for SignedDelivery {
    fn matches(&self, request: &Request) -> bool {
        let (Some(id), Some(timestamp), Some(signature)) = (
            header_str(request, "webhook-id"),
            header_str(request, "webhook-timestamp"),
            header_str(request, "webhook-signature"),
        ) else {
            eprintln!("missing Standard Webhooks headers: {:?}", request.headers);
            return false;
        };
        if let Err(err) = verify(SECRET, id, timestamp, signature, &request.body, Utc::now().timestamp()) {
            eprintln!("signature does not verify: {err}");
            return false;
        }
        let at = timestamp.parse().ok().and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0));
        let Some(at) = at else { return false };
        let expected = json!({
            "type": self.event_type,
            "timestamp": at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "data": self.data,
        });
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if body != expected || id != IDEMPOTENCY_KEY {
            eprintln!("unexpected delivery {id}: {body}\n  want {expected}");
            return false;
        }
        // The JSON is sent compact, keys in the order of the spec's examples.
        let raw = String::from_utf8_lossy(&request.body);
        raw.starts_with(r#"{"type":"#) && raw.contains(r#","timestamp":""#) && raw.contains(r#","data":{"#)
    }
}

fn receiver() -> MockBuilder {
    Mock::given(method("POST")).and(path(HOOK_PATH)).and(header("content-type", "application/json")).and(
        SignedDelivery {
            event_type: "booking.confirmed",
            data: json!({
                "booking_id": "bk_0195f0e2",
                "seat": "A-12",
                "starts_at": "2026-03-01T09:30:00+05:30"
            }),
        },
    )
}

/// The channel as the tests' receivers need it: loopback allowed, as `outbound.allow` does for
/// the local stack.
fn channel() -> WebhookChannel {
    WebhookChannel::with_outbound(fast_retry(), OutboundPolicy::loopback()).expect("a client")
}

#[tokio::test]
async fn a_signed_event_is_delivered() {
    let server = MockServer::start().await;
    receiver().respond_with(ResponseTemplate::new(204)).expect(1).mount(&server).await;

    let webhook = channel();
    assert_eq!(webhook.name(), ChannelName::Webhook);
    let delivery = webhook.send(&booking_confirmed(&server)).await.expect("delivered");

    assert_eq!(delivery, Delivery { provider_message_id: None, status: DeliveryStatus::Sent });
}

#[tokio::test]
async fn the_event_type_defaults() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HOOK_PATH))
        .and(SignedDelivery { event_type: WebhookChannel::DEFAULT_EVENT_TYPE, data: json!({}) })
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let mut m = booking_confirmed(&server);
    m.event_type = None;
    m.data.clear();

    channel().send(&m).await.expect("delivered");
}

#[tokio::test]
async fn a_500_is_retried_then_transient() {
    let server = MockServer::start().await;
    receiver()
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .expect(3)
        .mount(&server)
        .await;

    let err = channel().send(&booking_confirmed(&server)).await.expect_err("down");

    // The status, never the receiver's body: what a tenant's endpoint answers is not echoed back.
    assert!(
        matches!(err, ChannelError::Transient(ref m) if m.contains("500") && !m.contains("boom")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_408_is_retried_then_delivered() {
    let server = MockServer::start().await;
    receiver().respond_with(ResponseTemplate::new(408)).up_to_n_times(1).expect(1).mount(&server).await;
    receiver().respond_with(ResponseTemplate::new(200)).expect(1).mount(&server).await;

    let delivery = channel().send(&booking_confirmed(&server)).await.expect("delivered on retry");

    assert_eq!(delivery.status, DeliveryStatus::Sent);
}

#[tokio::test]
async fn a_410_is_permanent_and_not_retried() {
    let server = MockServer::start().await;
    receiver()
        .respond_with(ResponseTemplate::new(410).set_body_string("endpoint removed"))
        .expect(1)
        .mount(&server)
        .await;

    let err = channel().send(&booking_confirmed(&server)).await.expect_err("gone");

    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.code(), Some("410"));
    assert!(!err.to_string().contains("endpoint removed"), "the body is not echoed: {err}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    receiver()
        .respond_with(
            ResponseTemplate::new(301).insert_header("location", format!("{}/elsewhere", server.uri())),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/elsewhere")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;

    let err = channel().send(&booking_confirmed(&server)).await.expect_err("moved");

    assert_eq!(err.code(), Some("301"));
}

#[tokio::test]
async fn nothing_is_sent_unsigned_or_to_a_non_http_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;

    let mut unsigned = booking_confirmed(&server);
    unsigned.webhook_secret = None;
    assert!(matches!(channel().send(&unsigned).await, Err(ChannelError::Config(_))));

    let mut bad_secret = booking_confirmed(&server);
    bad_secret.webhook_secret = Some(SecretString::from("whsec_not base64!"));
    assert!(matches!(channel().send(&bad_secret).await, Err(ChannelError::Config(_))));

    for url in ["ftp://example.com/hook", "not a url", ""] {
        let mut m = booking_confirmed(&server);
        m.to = url.to_owned();
        let err = channel().send(&m).await.expect_err("not http");
        assert_eq!(err.code(), Some("invalid_url"), "{url}");
    }
}

#[tokio::test]
async fn by_default_a_loopback_webhook_is_refused_without_connecting() {
    let listener = quiet_listener();
    let addr = listener.local_addr().expect("addr");
    for to in [format!("http://{addr}/hook"), format!("http://localhost:{}/hook", addr.port())] {
        let mut m = message(&to, "");
        m.webhook_secret = Some(SecretString::from(SECRET));

        let err = WebhookChannel::new(fast_retry()).expect("a client").send(&m).await.expect_err("refused");

        assert!(err.is_permanent(), "{to}: {err:?}");
        assert_eq!(err.code(), Some("target_not_allowed"), "{to}: {err:?}");
    }
    assert!(nothing_connected(&listener), "the listener saw a connection");
    let seen = count_accepts(listener);

    // With loopback allowed (`outbound.allow`), the same webhook goes out.
    let mut m = message(&format!("http://localhost:{}/hook", addr.port()), "");
    m.webhook_secret = Some(SecretString::from(SECRET));
    let allowed =
        WebhookChannel::with_outbound(common::no_retry(), OutboundPolicy::loopback()).expect("a client");
    let answer = allowed.send(&m).await;
    assert!(!matches!(answer, Err(ref e) if e.code() == Some("target_not_allowed")), "{answer:?}");
    assert!(seen.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the allowed webhook connected");
}
