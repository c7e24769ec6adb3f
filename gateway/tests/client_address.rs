//! The payer's address a payment is processed with: whoever connected, unless that is a proxy
//! named in `gateway.trusted_proxies` — a client cannot name itself another address by writing an
//! `X-Forwarded-For` header. (Headers only: every connection here is to loopback.)

#[allow(dead_code, reason = "the support module serves every test binary; this one uses part of it")]
mod support;

use reqwest::Method;
use serde_json::json;
use studyspot_tokens::Role;
use support::TestGateway;

/// Processes `pay_1` with a forged `X-Forwarded-For`; the payer address on the command it produced.
async fn payer_ip(gw: &TestGateway) -> Option<String> {
    gw.payment("pay_1", "mem_1", |_| {}).await;
    let token = gw.token(Some("org_1"), &[Role::Member], Some("mem_1"));
    let request = gw
        .request(Method::POST, "/api/payments/pay_1/process", Some(&token))
        .header("X-Forwarded-For", "127.0.0.66, 127.0.0.20")
        .json(&json!({}));
    let (status, _, body) = TestGateway::send(request).await;
    assert_eq!(status, 202, "{body}");
    let commands = gw.read_all(studyspot_schemas::billing::COMMANDS.name);
    let codec = studyspot_bus::Codec::new(&gw.settings.registry.url).expect("codec");
    let decoded = codec.decode(commands[0].payload.as_deref().expect("payload")).await.expect("decode");
    let command: studyspot_schemas::billing::ProcessPayment = decoded.into_record().expect("ProcessPayment");
    command.payer_ip
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forwarded_address_is_believed_only_from_a_trusted_proxy() {
    let direct = TestGateway::start(|_| {}).await;
    assert_eq!(payer_ip(&direct).await.as_deref(), Some("127.0.0.1"), "the forged header is ignored");

    let proxied = TestGateway::start(|s| s.gateway.trusted_proxies = vec!["127.0.0.1/32".into()]).await;
    assert_eq!(
        payer_ip(&proxied).await.as_deref(),
        Some("127.0.0.20"),
        "behind our proxy: the hop it appended, not the one the client wrote"
    );
}
