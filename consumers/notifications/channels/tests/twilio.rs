//! SMS and WhatsApp against a fake Twilio that checks every request exactly, and Twilio's
//! request signatures.

mod common;

use common::{IDEMPOTENCY_KEY, basic, fast_retry, form_is, message};
use serde_json::{Value, json};
use studyspot_notification_channels::{
    Channel, ChannelError, ChannelName, Delivery, DeliveryStatus, RetryPolicy, TwilioChannel, TwilioConfig,
    twilio_signature, verify_twilio_signature,
};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const SID: &str = "ACa1b2c3d4e5f60718293a4b5c6d7e8f90";
const TOKEN: &str = "twilio-auth-token-for-tests";
const MESSAGES: &str = "/2010-04-01/Accounts/ACa1b2c3d4e5f60718293a4b5c6d7e8f90/Messages.json";
const FROM: &str = "+14155238886";
const TO: &str = "+919000090000";
const BODY: &str = "StudySpot: seat A-12 is booked for 1 March, 09:30.";
const CALLBACK: &str = "https://api.studyspot.app/api/webhooks/twilio/status";

fn config(server: &MockServer) -> TwilioConfig {
    let mut config = TwilioConfig::new(SID, TOKEN, FROM);
    config.base_url = server.uri();
    config.status_callback = Some(CALLBACK.to_owned());
    config
}

fn sms(server: &MockServer, retry: RetryPolicy) -> TwilioChannel {
    TwilioChannel::sms(&config(server), retry).expect("valid config")
}

/// The create-message call, with everything a call must carry.
fn create() -> MockBuilder {
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .and(header("authorization", basic(SID, TOKEN).as_str()))
        .and(header("I-Twilio-Idempotency-Token", IDEMPOTENCY_KEY))
        .and(header("content-type", "application/x-www-form-urlencoded"))
}

/// A message resource as Twilio returns it.
fn created(sid: &str, to: &str, from: Option<&str>, status: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "account_sid": SID,
        "api_version": "2010-04-01",
        "body": BODY,
        "date_created": "Sun, 01 Mar 2026 04:00:00 +0000",
        "date_sent": null,
        "date_updated": "Sun, 01 Mar 2026 04:00:00 +0000",
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": from,
        "messaging_service_sid": if from.is_none() { json!("MG9752274e9e519418a7406176694466fa") } else { Value::Null },
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": { "media": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}/Media.json") },
        "to": to,
        "uri": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json")
    }))
}

fn twilio_error(status: u16, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status
    }))
}

#[tokio::test]
async fn an_sms_is_one_form_post_with_the_idempotency_token() {
    let server = MockServer::start().await;
    create()
        .and(form_is(&[("To", TO), ("From", FROM), ("Body", BODY), ("StatusCallback", CALLBACK)]))
        .respond_with(created("SM3a8f0e6c2b7d4e1f9a0b1c2d3e4f5a6b", TO, Some(FROM), "queued"))
        .expect(1)
        .mount(&server)
        .await;

    let channel = sms(&server, fast_retry());
    assert_eq!(channel.name(), ChannelName::Sms);
    let delivery = channel.send(&message(TO, BODY)).await.expect("queued");

    assert_eq!(
        delivery,
        Delivery {
            provider_message_id: Some("SM3a8f0e6c2b7d4e1f9a0b1c2d3e4f5a6b".to_owned()),
            status: DeliveryStatus::Queued
        }
    );
}

#[tokio::test]
async fn a_whatsapp_message_prefixes_both_addresses() {
    let server = MockServer::start().await;
    let (to, from) = ("whatsapp:+919000090000", "whatsapp:+14155238886");
    create()
        .and(form_is(&[("To", to), ("From", from), ("Body", BODY), ("StatusCallback", CALLBACK)]))
        .respond_with(created("SMd0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5", to, Some(from), "queued"))
        .expect(1)
        .mount(&server)
        .await;

    let channel = TwilioChannel::whatsapp(&config(&server), fast_retry()).expect("valid config");
    assert_eq!(channel.name(), ChannelName::WhatsApp);
    let delivery = channel.send(&message(TO, BODY)).await.expect("queued");

    assert_eq!(delivery.provider_message_id.as_deref(), Some("SMd0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5"));
    assert_eq!(delivery.status, DeliveryStatus::Queued);
}

#[tokio::test]
async fn a_messaging_service_replaces_from_and_sent_means_sent() {
    let server = MockServer::start().await;
    create()
        .and(form_is(&[
            ("To", TO),
            ("MessagingServiceSid", "MG9752274e9e519418a7406176694466fa"),
            ("Body", BODY),
        ]))
        .respond_with(created("SM0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e", TO, None, "sent"))
        .expect(1)
        .mount(&server)
        .await;

    let mut config = config(&server);
    config.messaging_service_sid = Some("MG9752274e9e519418a7406176694466fa".to_owned());
    config.status_callback = None;
    let channel = TwilioChannel::sms(&config, fast_retry()).expect("valid config");
    let delivery = channel.send(&message(TO, BODY)).await.expect("sent");

    assert_eq!(delivery.status, DeliveryStatus::Sent);
}

#[tokio::test]
async fn recipient_errors_are_permanent_with_twilios_code_and_not_retried() {
    for (code, text) in [
        (21211, "The 'To' number +91900009 is not a valid phone number."),
        (21614, "'To' number is not a valid mobile number"),
        (21610, "Attempt to send to unsubscribed recipient"),
    ] {
        let server = MockServer::start().await;
        create().respond_with(twilio_error(400, code, text)).expect(1).mount(&server).await;

        let err = sms(&server, fast_retry()).send(&message(TO, BODY)).await.expect_err("refused");

        assert!(err.is_permanent(), "{err:?}");
        assert_eq!(err.code(), Some(code.to_string().as_str()));
        assert!(err.to_string().contains(text), "{err}");
    }
}

#[tokio::test]
async fn a_503_is_retried_with_the_same_token_then_the_message_is_queued() {
    let server = MockServer::start().await;
    create()
        .and(form_is(&[("To", TO), ("From", FROM), ("Body", BODY), ("StatusCallback", CALLBACK)]))
        .respond_with(twilio_error(503, 20503, "Service unavailable"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    create()
        .and(form_is(&[("To", TO), ("From", FROM), ("Body", BODY), ("StatusCallback", CALLBACK)]))
        .respond_with(created("SM5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b", TO, Some(FROM), "queued"))
        .expect(1)
        .mount(&server)
        .await;

    let delivery = sms(&server, fast_retry()).send(&message(TO, BODY)).await.expect("queued on retry");

    assert_eq!(delivery.provider_message_id.as_deref(), Some("SM5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"));
}

#[tokio::test]
async fn rate_limiting_that_outlasts_the_policy_is_transient() {
    let server = MockServer::start().await;
    create().respond_with(twilio_error(429, 20429, "Too Many Requests")).expect(3).mount(&server).await;

    let err = sms(&server, fast_retry()).send(&message(TO, BODY)).await.expect_err("throttled");

    assert!(matches!(err, ChannelError::Transient(ref m) if m.contains("429")), "{err:?}");
}

#[tokio::test]
async fn refused_credentials_and_sender_errors_are_configuration_errors() {
    let server = MockServer::start().await;
    create().respond_with(twilio_error(401, 20003, "Authenticate")).expect(1).mount(&server).await;
    let err = sms(&server, fast_retry()).send(&message(TO, BODY)).await.expect_err("refused");
    assert!(matches!(err, ChannelError::Config(ref m) if m.contains("20003")), "{err:?}");

    let server = MockServer::start().await;
    create()
        .respond_with(twilio_error(400, 21606, "The From phone number is not a valid, SMS-capable number"))
        .expect(1)
        .mount(&server)
        .await;
    let err = sms(&server, fast_retry()).send(&message(TO, BODY)).await.expect_err("refused");
    assert!(matches!(err, ChannelError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn a_sender_is_required() {
    let server = MockServer::start().await;
    let mut config = config(&server);
    config.from = None;
    assert!(matches!(TwilioChannel::sms(&config, fast_retry()), Err(ChannelError::Config(_))));
}

// Twilio's request-validation example (its helper libraries' test suite): auth token 12345.
const DOCS_TOKEN: &str = "12345";
const DOCS_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

fn docs_params() -> Vec<(String, String)> {
    [
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
        ("Caller", "+14158675309"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

#[test]
fn twilios_published_signature_example_verifies() {
    assert_eq!(twilio_signature(DOCS_TOKEN, DOCS_URL, &docs_params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    assert!(verify_twilio_signature(DOCS_TOKEN, DOCS_URL, &docs_params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
}

#[test]
fn a_signature_over_other_parameters_a_url_or_a_token_fails() {
    let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    let mut tampered = docs_params();
    tampered[1].1 = "1235".to_owned();
    assert!(!verify_twilio_signature(DOCS_TOKEN, DOCS_URL, &tampered, good));
    assert!(!verify_twilio_signature(
        DOCS_TOKEN,
        "https://mycompany.com/myapp.php?foo=1&bar=3",
        &docs_params(),
        good
    ));
    assert!(!verify_twilio_signature("54321", DOCS_URL, &docs_params(), good));
    assert!(!verify_twilio_signature(DOCS_TOKEN, DOCS_URL, &docs_params(), "not base64!"));
    assert!(!verify_twilio_signature(DOCS_TOKEN, DOCS_URL, &docs_params(), ""));
}

#[test]
fn ports_added_or_dropped_by_proxies_still_verify() {
    // The same vectors as Twilio's libraries: the signature was made without the port / with
    // the scheme's default port.
    let params = docs_params();
    let with_port = DOCS_URL.replace(".com", ".com:1234");
    assert!(verify_twilio_signature(DOCS_TOKEN, &with_port, &params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    let http_with_port = with_port.replace("https", "http");
    assert!(verify_twilio_signature(DOCS_TOKEN, &http_with_port, &params, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="));
    assert!(verify_twilio_signature(DOCS_TOKEN, DOCS_URL, &params, "kvajT1Ptam85bY51eRf/AJRuM3w="));
    let http = DOCS_URL.replace("https", "http");
    assert!(verify_twilio_signature(DOCS_TOKEN, &http, &params, "0ZXoZLH/DfblKGATFgpif+LLRf4="));
}

#[test]
fn repeated_parameters_are_sorted_by_value() {
    let params: Vec<(String, String)> =
        [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    assert_eq!(twilio_signature(DOCS_TOKEN, DOCS_URL, &params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
}
