//! The e-mail channel against an in-test SMTP sink.

mod common;

use common::{Captured, IDEMPOTENCY_KEY, SmtpSink, fast_retry, message, no_retry};
use mail_parser::{MessageParser, MimeHeaders};
use studyspot_notification_channels::{
    Channel, ChannelError, ChannelName, Delivery, DeliveryStatus, EmailChannel, EmailConfig, RetryPolicy,
    TlsMode,
};
use tokio::net::TcpListener;

fn config(port: u16) -> EmailConfig {
    let mut config = EmailConfig::new("127.0.0.1", "StudySpot <noreply@studyspot.app>");
    config.port = port;
    config.tls = TlsMode::None;
    config.hello_name = Some("worker.studyspot.test".to_owned());
    config
}

fn channel(port: u16, retry: RetryPolicy) -> EmailChannel {
    EmailChannel::new(&config(port), retry).expect("valid config")
}

fn only(captured: &[Captured]) -> &Captured {
    assert_eq!(captured.len(), 1, "{captured:#?}");
    &captured[0]
}

#[tokio::test]
async fn text_and_html_go_out_with_the_derived_message_id() {
    let sink = SmtpSink::accepting().await;
    let email = channel(sink.port(), fast_retry());
    assert_eq!(email.name(), ChannelName::Email);
    let mut m = message("Asha Rao <asha.rao@example.com>", "Seat A-12 is yours on 1 March, 09:30.");
    m.subject = Some("Your booking is confirmed".to_owned());
    m.html = Some("<p>Seat <b>A-12</b> is yours on 1 March, 09:30.</p>".to_owned());

    let delivery = email.send(&m).await.expect("sent");

    let message_id = email.message_id(IDEMPOTENCY_KEY);
    let bare = message_id.trim_start_matches('<').trim_end_matches('>');
    assert_eq!(
        delivery,
        Delivery { provider_message_id: Some(bare.to_owned()), status: DeliveryStatus::Sent }
    );
    assert!(bare.ends_with("@studyspot.app"), "{bare}");

    let captured = sink.captured();
    let captured = only(&captured);
    assert_eq!(captured.mail_from, "MAIL FROM:<noreply@studyspot.app>");
    assert_eq!(captured.rcpt_to, vec!["RCPT TO:<asha.rao@example.com>".to_owned()]);

    let parsed = MessageParser::default().parse(&captured.data).expect("a parsable message");
    let from = parsed.from().and_then(|a| a.first()).expect("From");
    assert_eq!((from.name(), from.address()), (Some("StudySpot"), Some("noreply@studyspot.app")));
    let to = parsed.to().and_then(|a| a.first()).expect("To");
    assert_eq!((to.name(), to.address()), (Some("Asha Rao"), Some("asha.rao@example.com")));
    assert_eq!(parsed.subject(), Some("Your booking is confirmed"));
    assert_eq!(parsed.message_id(), Some(bare));
    assert_eq!(parsed.header("X-StudySpot-Idempotency-Key").and_then(|h| h.as_text()), Some(IDEMPOTENCY_KEY));
    assert_eq!(parsed.text_body_count(), 1);
    assert_eq!(parsed.html_body_count(), 1);
    assert_eq!(
        parsed.body_text(0).as_deref().map(str::trim_end),
        Some("Seat A-12 is yours on 1 March, 09:30.")
    );
    assert_eq!(
        parsed.body_html(0).as_deref().map(str::trim_end),
        Some("<p>Seat <b>A-12</b> is yours on 1 March, 09:30.</p>")
    );
    assert!(parsed.date().is_some(), "a Date header");
}

#[tokio::test]
async fn a_text_only_message_is_plain_text_and_a_resend_keeps_its_message_id() {
    let sink = SmtpSink::accepting().await;
    let email = channel(sink.port(), fast_retry());
    let m =
        message("asha.rao@example.com", "Your plan renews on 1 April: ₹499.\n.A line starting with a dot.");

    let first = email.send(&m).await.expect("sent");
    let second = email.send(&m).await.expect("sent again");
    assert_eq!(first, second);

    let captured = sink.captured();
    assert_eq!(captured.len(), 2);
    let ids: Vec<String> = captured
        .iter()
        .map(|c| {
            let parsed = MessageParser::default().parse(&c.data).expect("parsable");
            assert_eq!(parsed.subject(), None);
            assert_eq!(parsed.parts.len(), 1, "a single text/plain part, no HTML alternative");
            let content_type = parsed.root_part().content_type().expect("Content-Type");
            assert_eq!((content_type.ctype(), content_type.subtype()), ("text", Some("plain")));
            assert_eq!(
                parsed.body_text(0).as_deref().map(str::trim_end),
                // SMTP carries CRLF line ends; the dot-stuffed line comes back intact.
                Some("Your plan renews on 1 April: ₹499.\r\n.A line starting with a dot.")
            );
            parsed.message_id().expect("Message-ID").to_owned()
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(first.provider_message_id.as_deref(), Some(ids[0].as_str()));
}

#[tokio::test]
async fn a_rejected_recipient_is_permanent_with_the_smtp_code_and_not_retried() {
    let sink =
        SmtpSink::start("550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown").await;
    let email = channel(sink.port(), fast_retry());

    let err = email.send(&message("gone@example.com", "Hello")).await.expect_err("rejected");

    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.code(), Some("550"));
    assert!(err.to_string().contains("User unknown"), "{err}");
    assert_eq!(sink.connections(), 1, "a permanent failure is not retried");
    assert!(sink.captured().is_empty());
}

#[tokio::test]
async fn a_4xx_reply_is_retried_then_transient() {
    let sink = SmtpSink::start("451 4.7.1 Greylisted, try again later").await;
    let email = channel(sink.port(), fast_retry());

    let err = email.send(&message("asha.rao@example.com", "Hello")).await.expect_err("deferred");

    assert!(
        matches!(err, ChannelError::Transient(ref m) if m.contains("451") && m.contains("Greylisted")),
        "{err:?}"
    );
    assert_eq!(sink.connections(), 3, "every attempt of the policy was made");
}

#[tokio::test]
async fn an_unparsable_recipient_is_permanent_without_connecting() {
    let sink = SmtpSink::accepting().await;
    let email = channel(sink.port(), fast_retry());

    let err = email.send(&message("not an address", "Hello")).await.expect_err("invalid");

    assert_eq!(err.code(), Some("invalid_address"));
    assert_eq!(sink.connections(), 0);
}

#[tokio::test]
async fn an_unreachable_relay_is_transient() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let err =
        channel(port, fast_retry()).send(&message("asha.rao@example.com", "Hello")).await.expect_err("down");
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn a_silent_relay_times_out_as_transient() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts connections (kept open) and never greets.
    let silent = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let retry = RetryPolicy { timeout_ms: 200, ..no_retry() };

    let err =
        channel(port, retry).send(&message("asha.rao@example.com", "Hello")).await.expect_err("timeout");

    assert!(err.is_transient(), "{err:?}");
    silent.abort();
}
