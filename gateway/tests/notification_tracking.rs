//! Delivery tracking through the gateway against the real broker: the open pixel, the click
//! redirect and Twilio's status callback, each with a signed link; what a forged, tampered or
//! misused link gets (a pixel but no command; a 400 and no redirect); a Twilio callback whose
//! signature does not match is refused.

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use reqwest::{Method, redirect::Policy};
use serde_json::Value;
use studyspot_bus::{Codec, InboundMessage};
use studyspot_config::Settings;
use studyspot_schemas::{Record, notifications};
use studyspot_tracking_links::{Keys, Links, Target};
use support::TestGateway;

const PUBLIC: &str = "https://hooks.studyspot.test";
const TWILIO_TOKEN: &str = "twilio-auth-token";

fn configure(s: &mut Settings) {
    let t = &mut s.notifications.tracking;
    t.enabled = true;
    t.public_base_url = PUBLIC.into();
    t.signing_key_id = "k2".into();
    t.secrets.insert("k2".into(), "a second tracking secret, 32 bytes or more".to_owned().into());
    t.twilio_auth_token = TWILIO_TOKEN.to_owned().into();
}

/// Links as the delivery worker signs them, with the gateway's keys.
fn links(settings: &Settings) -> Links {
    let t = &settings.notifications.tracking;
    Links::new(PUBLIC, Keys::new(&t.signing_key_id, t.secrets.clone()), 3_600)
}

fn target() -> Target {
    Target { notification_id: "ntf_1".into(), recipient_id: "mem_1".into(), organization_id: "org_1".into() }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The path of a public tracking URL, to call on the test's gateway.
fn path(url: &str) -> &str {
    url.strip_prefix(PUBLIC).expect("under the public base")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().expect("client")
}

async fn commands(gw: &TestGateway) -> Vec<notifications::RecordDeliveryStatus> {
    let codec = Codec::new(&gw.settings.registry.url).expect("codec");
    let mut out = Vec::new();
    for record in gw.read_all(notifications::COMMANDS.name) {
        let r: &InboundMessage = &record;
        assert_eq!(r.key.as_deref(), Some(b"mem_1".as_slice()), "keyed by the recipient");
        let decoded = codec.decode(r.payload.as_deref().expect("payload")).await.expect("decode");
        out.push(
            decoded
                .into_record()
                .unwrap_or_else(|e| panic!("a {}: {e}", notifications::RecordDeliveryStatus::FULL_NAME)),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pixel_is_always_a_gif_but_only_a_valid_open_link_records_an_open() {
    let gw = TestGateway::start(configure).await;
    let links = links(&gw.settings);
    let open = links.open_url(&target(), now()).expect("signed");
    let http = client();

    let response = http.get(format!("{}{}", gw.base, path(&open))).send().await.expect("pixel");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "image/gif");
    assert!(response.headers()["cache-control"].to_str().expect("ascii").contains("no-store"));
    assert!(response.bytes().await.expect("body").starts_with(b"GIF89a"));

    // Forged, tampered, expired under another key, or a click link: still a pixel, nothing recorded.
    let other = Links::new(PUBLIC, Keys::new("k2", [("k2".to_owned(), "other".to_owned().into())]), 0)
        .open_url(&target(), now())
        .expect("signed");
    let click = links.click_url(&target(), "https://example.org/", now()).expect("signed");
    let click_token = click.rsplit('/').next().expect("token");
    for bad in [
        "garbage",
        path(&other).rsplit('/').next().expect("token"),
        &format!("{}x", &open[open.len() - 8..]),
        click_token,
    ] {
        let response = http
            .get(format!("{}/api/notifications/tracking/open/{bad}", gw.base))
            .send()
            .await
            .expect("pixel");
        assert_eq!(response.status().as_u16(), 200, "{bad}");
        assert_eq!(response.headers()["content-type"], "image/gif");
    }

    let recorded = commands(&gw).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let c = &recorded[0];
    assert_eq!(
        (c.notification_id.as_str(), c.status.as_str(), c.source.as_str(), c.url.as_deref()),
        ("ntf_1", "opened", "open_pixel", None)
    );
    assert_eq!(
        (c.metadata.organization_id.as_str(), c.metadata.actor.as_str()),
        ("org_1", "tracking:open_pixel")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_replayed_in_a_loop_records_only_its_allowance_and_still_gets_its_pixel_and_redirect() {
    let gw = TestGateway::start(|s| {
        configure(s);
        s.notifications.tracking.events_per_link_per_hour = 3;
    })
    .await;
    let links = links(&gw.settings);
    let open = links.open_url(&target(), now()).expect("signed");
    let click = links.click_url(&target(), "https://example.org/", now()).expect("signed");
    let http = client();
    for _ in 0..25 {
        let pixel = http.get(format!("{}{}", gw.base, path(&open))).send().await.expect("pixel");
        assert_eq!(pixel.status().as_u16(), 200);
        let redirect = http.get(format!("{}{}", gw.base, path(&click))).send().await.expect("click");
        assert_eq!(redirect.status().as_u16(), 302, "the recipient still gets where they were going");
    }
    let recorded = commands(&gw).await;
    let count = |status: &str| recorded.iter().filter(|c| c.status == status).count();
    assert_eq!((count("opened"), count("clicked")), (3, 3), "{recorded:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_click_link_redirects_to_its_signed_target_and_a_bad_one_is_refused_without_redirect() {
    let gw = TestGateway::start(configure).await;
    let links = links(&gw.settings);
    let target_url = "https://example.org/plans?ref=mail&x=1";
    let click = links.click_url(&target(), target_url, now()).expect("signed");
    let http = client();

    let response = http.get(format!("{}{}", gw.base, path(&click))).send().await.expect("click");
    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(response.headers()["location"], target_url);

    // A tampered token, an open link used as a click link, a token of a key not configured.
    let token = click.rsplit('/').next().expect("token");
    let (head, _) = token.rsplit_once('.').expect("signature");
    let tampered = format!("{head}.AAAA");
    let open = links.open_url(&target(), now()).expect("signed");
    let open_token = open.rsplit('/').next().expect("token");
    let unknown_key = format!("k9{}", &token[2..]);
    for bad in [tampered.as_str(), open_token, unknown_key.as_str(), "not-a-token"] {
        let response = http
            .get(format!("{}/api/notifications/tracking/click/{bad}", gw.base))
            .send()
            .await
            .expect("click");
        assert_eq!(response.status().as_u16(), 400, "{bad}");
        assert!(response.headers().get("location").is_none(), "never redirected");
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            (body["error"]["code"].as_str(), body["error"]["field"].as_str()),
            (Some("invalid_link"), Some("token")),
            "{body}"
        );
    }

    let recorded = commands(&gw).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(
        (recorded[0].status.as_str(), recorded[0].url.as_deref(), recorded[0].source.as_str()),
        ("clicked", Some(target_url), "click_redirect")
    );
}

fn twilio_form(status: &str) -> Vec<(String, String)> {
    [("MessageSid", "SM123"), ("MessageStatus", status), ("AccountSid", "AC1"), ("To", "+4915112345678")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_status_callbacks_are_verified_and_final_statuses_become_commands_once() {
    let gw = TestGateway::start(configure).await;
    let callback = links(&gw.settings).twilio_status_url(&target()).expect("signed");
    let post = |form: Vec<(String, String)>, signature: Option<String>| {
        let mut request = gw.request(Method::POST, path(&callback), None).form(&form);
        if let Some(s) = signature {
            request = request.header("X-Twilio-Signature", s);
        }
        TestGateway::send(request)
    };
    let sign = |form: &[(String, String)]| {
        studyspot_notification_channels::twilio_signature(TWILIO_TOKEN, &callback, form)
    };

    let delivered = twilio_form("delivered");
    let (status, _, first) = post(delivered.clone(), Some(sign(&delivered))).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["notification_id"], "ntf_1");
    // Twilio repeats a callback: the same command.
    let (status, headers, again) = post(delivered.clone(), Some(sign(&delivered))).await;
    assert_eq!((status, &again["command_id"]), (202, &first["command_id"]), "{again}");
    assert_eq!(headers.get("idempotent-replayed").map(|v| v.to_str().ok()), Some(Some("true")));

    // Signed with another token, over other parameters, or not signed: refused.
    let wrong = studyspot_notification_channels::twilio_signature("another token", &callback, &delivered);
    let (status, _, body) = post(delivered.clone(), Some(wrong)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_signature")), "{body}");
    let (status, _, _) = post(twilio_form("undelivered"), Some(sign(&delivered))).await;
    assert_eq!(status, 401);
    let (status, _, body) = post(delivered.clone(), None).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("X-Twilio-Signature")), "{body}");

    // A step before the end is acknowledged and recorded nowhere; a failure is undelivered.
    let sent = twilio_form("sent");
    let (status, _, body) = post(sent.clone(), Some(sign(&sent))).await;
    assert_eq!((status, body["ignored"].as_bool()), (200, Some(true)), "{body}");
    let mut failed = twilio_form("failed");
    failed.push(("ErrorCode".into(), "30006".into()));
    let (status, _, _) = post(failed.clone(), Some(sign(&failed))).await;
    assert_eq!(status, 202);

    let recorded = commands(&gw).await;
    let seen: Vec<(&str, Option<&str>, &str)> = recorded
        .iter()
        .map(|c| (c.status.as_str(), c.provider_status.as_deref(), c.source.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("delivered", Some("delivered"), "twilio"), ("undelivered", Some("failed/30006"), "twilio")]
    );
    assert_eq!(recorded[0].metadata.actor, "provider:twilio");
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_callbacks_of_two_organizations_for_the_same_ids_are_two_commands() {
    let gw = TestGateway::start(configure).await;
    let links = links(&gw.settings);
    let delivered = twilio_form("delivered");
    let mut command_ids = Vec::new();
    // The same notification id, MessageSid and status, signed for each organization.
    for org in ["org_1", "org_2"] {
        let callback =
            links.twilio_status_url(&Target { organization_id: org.into(), ..target() }).expect("signed");
        let signature =
            studyspot_notification_channels::twilio_signature(TWILIO_TOKEN, &callback, &delivered);
        let request = gw
            .request(Method::POST, path(&callback), None)
            .form(&delivered)
            .header("X-Twilio-Signature", signature);
        let (status, headers, body) = TestGateway::send(request).await;
        assert_eq!(status, 202, "{org}: {body}");
        assert!(headers.get("idempotent-replayed").is_none(), "{org}'s callback taken for a repeat");
        command_ids.push(body["command_id"].clone());
    }
    assert_ne!(command_ids[0], command_ids[1], "one command id for two organizations");

    let recorded = commands(&gw).await;
    let seen: Vec<(&str, &str, &str)> = recorded
        .iter()
        .map(|c| (c.metadata.organization_id.as_str(), c.notification_id.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(seen, [("org_1", "ntf_1", "delivered"), ("org_2", "ntf_1", "delivered")]);
    assert_ne!(recorded[0].metadata.event_id, recorded[1].metadata.event_id);
}
