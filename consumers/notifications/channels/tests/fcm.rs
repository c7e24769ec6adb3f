//! Push against a fake Google: a token endpoint that verifies the service account's JWT
//! assertion with the test key's public half, and an FCM that checks every send exactly.

mod common;

use common::{fast_retry, form_of, message};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use studyspot_notification_channels::headers::{FCM_SCOPE, JWT_BEARER_GRANT};
use studyspot_notification_channels::{
    Channel, ChannelError, ChannelName, Delivery, DeliveryStatus, FcmChannel, FcmConfig, Message, RetryPolicy,
};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Match, Mock, MockBuilder, MockServer, Request, ResponseTemplate};

const PROJECT: &str = "studyspot-test";
const EMAIL: &str = "fcm-sender@studyspot-test.iam.gserviceaccount.com";
const KEY_ID: &str = "4c1f7e2a9b3d5e6f";
const PRIVATE_KEY: &str = include_str!("fixtures/fcm-test-key.pem");
const PUBLIC_KEY: &str = include_str!("fixtures/fcm-test-key.pub.pem");
const SEND_PATH: &str = "/v1/projects/studyspot-test/messages:send";
const DEVICE: &str = "fcm-registration-token-for-asha-pixel-8";
const NAME: &str = "projects/studyspot-test/messages/0:1772357400000000%31bd1c9631bd1c96";

fn token_uri(server: &MockServer) -> String {
    format!("{}/token", server.uri())
}

fn config(server: &MockServer) -> FcmConfig {
    let mut config = FcmConfig::new(PROJECT, EMAIL, PRIVATE_KEY);
    config.private_key_id = Some(KEY_ID.to_owned());
    config.token_uri = token_uri(server);
    config.base_url = server.uri();
    config
}

fn push(server: &MockServer, retry: RetryPolicy) -> FcmChannel {
    FcmChannel::new(&config(server), retry).expect("valid config")
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    scope: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// A JWT-bearer grant whose assertion is signed by the test key for this service account.
struct SignedGrant {
    audience: String,
}

impl Match for SignedGrant {
    fn matches(&self, request: &Request) -> bool {
        let form = form_of(request);
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        if form.len() != 2 || field("grant_type").as_deref() != Some(JWT_BEARER_GRANT) {
            eprintln!("not a JWT-bearer grant: {form:?}");
            return false;
        }
        let Some(assertion) = field("assertion") else { return false };
        let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).expect("test public key");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[EMAIL]);
        match jsonwebtoken::decode::<Claims>(&assertion, &key, &validation) {
            Ok(token) => {
                let claims = token.claims;
                let ok = token.header.kid.as_deref() == Some(KEY_ID)
                    && claims.iss == EMAIL
                    && claims.aud == self.audience
                    && claims.scope == FCM_SCOPE
                    && claims.exp == claims.iat + 3_600;
                if !ok {
                    eprintln!("unexpected assertion: {:?} {claims:?}", token.header);
                }
                ok
            }
            Err(err) => {
                eprintln!("assertion does not verify: {err}");
                false
            }
        }
    }
}

fn token_endpoint(server: &MockServer) -> MockBuilder {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(SignedGrant { audience: token_uri(server) })
}

fn access_token(token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": token,
        "expires_in": 3599,
        "token_type": "Bearer"
    }))
}

fn fcm_send(token: &str) -> MockBuilder {
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .and(header("content-type", "application/json"))
}

fn booking_reminder() -> Message {
    let mut m = message(DEVICE, "Seat A-12 from 09:30. Tap to check in.");
    m.subject = Some("Your session starts in 15 minutes".to_owned());
    m.data = [
        ("booking_id".to_owned(), "bk_0195f0e2".to_owned()),
        ("deep_link".to_owned(), "studyspot://bookings/bk_0195f0e2".to_owned()),
    ]
    .into();
    m
}

fn booking_reminder_json() -> Value {
    json!({ "message": {
        "token": DEVICE,
        "notification": {
            "title": "Your session starts in 15 minutes",
            "body": "Seat A-12 from 09:30. Tap to check in."
        },
        "data": {
            "booking_id": "bk_0195f0e2",
            "deep_link": "studyspot://bookings/bk_0195f0e2"
        }
    } })
}

fn fcm_error(status: u16, google_status: &str, fcm_code: Option<&str>, message: &str) -> ResponseTemplate {
    let details = match fcm_code {
        Some(code) => {
            json!([{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code }])
        }
        None => json!([]),
    };
    ResponseTemplate::new(status).set_body_json(json!({ "error": {
        "code": status, "message": message, "status": google_status, "details": details
    } }))
}

#[tokio::test]
async fn a_push_is_sent_with_a_token_from_the_jwt_bearer_grant_which_is_then_reused() {
    let server = MockServer::start().await;
    token_endpoint(&server)
        .respond_with(access_token("ya29.c.test-access-token"))
        .expect(1)
        .mount(&server)
        .await;
    fcm_send("ya29.c.test-access-token")
        .and(body_json(booking_reminder_json()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "name": NAME })))
        .expect(2)
        .mount(&server)
        .await;

    let channel = push(&server, fast_retry());
    assert_eq!(channel.name(), ChannelName::Push);
    let first = channel.send(&booking_reminder()).await.expect("sent");
    let second = channel.send(&booking_reminder()).await.expect("sent with the cached token");

    let expected = Delivery { provider_message_id: Some(NAME.to_owned()), status: DeliveryStatus::Sent };
    assert_eq!(first, expected);
    assert_eq!(second, expected);
}

#[tokio::test]
async fn an_unregistered_token_is_permanent_and_not_retried() {
    let server = MockServer::start().await;
    token_endpoint(&server)
        .respond_with(access_token("ya29.c.test-access-token"))
        .expect(1)
        .mount(&server)
        .await;
    fcm_send("ya29.c.test-access-token")
        .respond_with(fcm_error(404, "NOT_FOUND", Some("UNREGISTERED"), "Requested entity was not found."))
        .expect(1)
        .mount(&server)
        .await;

    let err = push(&server, fast_retry()).send(&booking_reminder()).await.expect_err("unregistered");

    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.code(), Some("UNREGISTERED"));
}

#[tokio::test]
async fn an_invalid_argument_is_permanent() {
    let server = MockServer::start().await;
    token_endpoint(&server)
        .respond_with(access_token("ya29.c.test-access-token"))
        .expect(1)
        .mount(&server)
        .await;
    fcm_send("ya29.c.test-access-token")
        .respond_with(fcm_error(
            400,
            "INVALID_ARGUMENT",
            Some("INVALID_ARGUMENT"),
            "The registration token is not a valid FCM registration token",
        ))
        .expect(1)
        .mount(&server)
        .await;

    let err = push(&server, fast_retry()).send(&booking_reminder()).await.expect_err("invalid");

    assert_eq!(err.code(), Some("INVALID_ARGUMENT"));
}

#[tokio::test]
async fn unavailable_is_retried_then_sent() {
    let server = MockServer::start().await;
    token_endpoint(&server)
        .respond_with(access_token("ya29.c.test-access-token"))
        .expect(1)
        .mount(&server)
        .await;
    fcm_send("ya29.c.test-access-token")
        .respond_with(fcm_error(
            503,
            "UNAVAILABLE",
            Some("UNAVAILABLE"),
            "The service is currently unavailable.",
        ))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    fcm_send("ya29.c.test-access-token")
        .and(body_json(booking_reminder_json()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "name": NAME })))
        .expect(1)
        .mount(&server)
        .await;

    let delivery = push(&server, fast_retry()).send(&booking_reminder()).await.expect("sent on retry");

    assert_eq!(delivery.provider_message_id.as_deref(), Some(NAME));
}

#[tokio::test]
async fn an_internal_error_that_outlasts_the_policy_is_transient() {
    let server = MockServer::start().await;
    token_endpoint(&server)
        .respond_with(access_token("ya29.c.test-access-token"))
        .expect(1)
        .mount(&server)
        .await;
    fcm_send("ya29.c.test-access-token")
        .respond_with(fcm_error(500, "INTERNAL", Some("INTERNAL"), "Internal error encountered."))
        .expect(3)
        .mount(&server)
        .await;

    let err = push(&server, fast_retry()).send(&booking_reminder()).await.expect_err("down");

    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn a_refused_cached_token_is_replaced() {
    let server = MockServer::start().await;
    token_endpoint(&server)
        .respond_with(access_token("ya29.c.first"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    token_endpoint(&server).respond_with(access_token("ya29.c.second")).expect(1).mount(&server).await;
    fcm_send("ya29.c.first")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "name": NAME })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    fcm_send("ya29.c.first")
        .respond_with(fcm_error(
            401,
            "UNAUTHENTICATED",
            None,
            "Request had invalid authentication credentials.",
        ))
        .expect(1)
        .mount(&server)
        .await;
    fcm_send("ya29.c.second")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "name": NAME })))
        .expect(1)
        .mount(&server)
        .await;

    let channel = push(&server, fast_retry());
    channel.send(&booking_reminder()).await.expect("sent with the first token");
    channel.send(&booking_reminder()).await.expect("sent with a new token after the 401");
}

#[tokio::test]
async fn a_refused_grant_is_a_configuration_error() {
    let server = MockServer::start().await;
    token_endpoint(&server)
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant", "error_description": "Invalid JWT Signature."
        })))
        .expect(1)
        .mount(&server)
        .await;
    fcm_send("anything").respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;

    let err = push(&server, fast_retry()).send(&booking_reminder()).await.expect_err("no token");

    assert!(matches!(err, ChannelError::Config(ref m) if m.contains("invalid_grant")), "{err:?}");
}

#[test]
fn a_private_key_that_is_not_rsa_pem_is_a_configuration_error() {
    let config =
        FcmConfig::new(PROJECT, EMAIL, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
    assert!(matches!(FcmChannel::new(&config, RetryPolicy::default()), Err(ChannelError::Config(_))));
}

#[test]
fn a_service_account_key_file_is_read() {
    let file = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": KEY_ID,
        "private_key": PRIVATE_KEY,
        "client_email": EMAIL,
        "client_id": "104729385710293847561",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/fcm-sender%40studyspot-test.iam.gserviceaccount.com",
        "universe_domain": "googleapis.com"
    });
    let config = FcmConfig::from_service_account_json(&file.to_string()).expect("a key file");
    assert_eq!(config.project_id, PROJECT);
    assert_eq!(config.client_email, EMAIL);
    assert_eq!(config.private_key_id.as_deref(), Some(KEY_ID));
    assert_eq!(config.token_uri, FcmConfig::DEFAULT_TOKEN_URI);
    assert_eq!(config.base_url, FcmConfig::DEFAULT_BASE_URL);
    assert!(FcmChannel::new(&config, RetryPolicy::default()).is_ok());
}
