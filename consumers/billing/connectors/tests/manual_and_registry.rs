//! The manual connector and the connector registry built from configuration.

mod common;

use common::{charge_request, refund_request};
use studyspot_payment_connectors::{
    ChargeOutcome, ConnectorName, ConnectorsConfig, ManualConnector, NextAction, PaymentConnector,
    RefundOutcome, RetryPolicy, connectors,
};

#[tokio::test]
async fn a_manual_charge_waits_for_staff() {
    let outcome = ManualConnector.charge(&charge_request("cash", 30_000, "INR")).await.expect("no network");
    assert_eq!(
        outcome,
        ChargeOutcome::RequiresAction {
            provider_payment_id: "manual_pay_1".to_owned(),
            action: NextAction { kind: "staff_confirmation".to_owned(), url: None },
        }
    );
}

#[tokio::test]
async fn a_manual_refund_succeeds_at_once() {
    let outcome =
        ManualConnector.refund(&refund_request("manual_pay_1", 10_000, "INR")).await.expect("no network");
    assert_eq!(outcome, RefundOutcome::Succeeded { provider_refund_id: "manual_ref_1".to_owned() });
}

#[tokio::test]
async fn a_manual_payment_has_nothing_to_fetch() {
    let outcome = ManualConnector
        .fetch(&charge_request("bank_transfer", 30_000, "INR"), Some("manual_pay_1"))
        .await
        .expect("ok");
    assert_eq!(outcome, None);
}

#[test]
fn connector_names_round_trip() {
    for name in ConnectorName::ALL {
        assert_eq!(name.as_str().parse::<ConnectorName>().expect("known"), name);
        assert_eq!(serde_json::to_value(name).expect("serializes"), serde_json::json!(name.as_str()));
    }
    assert_eq!("PayPal".parse::<ConnectorName>().expect("case-insensitive"), ConnectorName::PayPal);
    assert!("square".parse::<ConnectorName>().is_err());
}

#[test]
fn the_registry_builds_what_is_configured_with_documented_defaults() {
    let config: ConnectorsConfig = serde_json::from_value(serde_json::json!({
        "stripe": { "secret_key": "sk_test_x", "webhook_secret": "whsec_x" },
        "paypal": { "client_id": "id", "client_secret": "paypal-secret", "base_url": "http://127.0.0.1:9/" },
        "razorpay": { "key_id": "rzp_test_x", "key_secret": "razorpay-secret" },
        "retry": { "max_attempts": 2 }
    }))
    .expect("deserializes");
    assert_eq!(config.stripe.as_ref().map(|s| s.base_url.as_str()), Some("https://api.stripe.com/"));
    assert_eq!(config.paypal.as_ref().map(|p| p.base_url.as_str()), Some("http://127.0.0.1:9/"));
    assert_eq!(config.razorpay.as_ref().map(|r| r.base_url.as_str()), Some("https://api.razorpay.com"));
    assert_eq!(config.retry, RetryPolicy { max_attempts: 2, ..RetryPolicy::default() });
    assert_eq!(
        RetryPolicy::default(),
        RetryPolicy { max_attempts: 4, base_delay_ms: 200, max_delay_ms: 5_000, timeout_ms: 10_000 }
    );
    assert!(config.manual, "manual is on unless turned off");

    let debug = format!("{config:?}");
    for secret in ["sk_test_x", "whsec_x", "paypal-secret", "razorpay-secret"] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug: {debug}");
    }

    let built = connectors(&config).expect("builds");
    let mut names: Vec<_> = built.keys().copied().collect();
    names.sort();
    assert_eq!(names, ConnectorName::ALL.to_vec());
    for (name, connector) in &built {
        assert_eq!(connector.name(), *name);
    }

    let only_manual = connectors(&ConnectorsConfig::default()).expect("builds");
    assert_eq!(only_manual.keys().copied().collect::<Vec<_>>(), vec![ConnectorName::Manual]);
}
