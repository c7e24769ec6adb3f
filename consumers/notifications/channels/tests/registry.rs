//! [`channels`] builds what the configuration names, and the configuration reads as documented.

use std::str::FromStr;

use serde_json::json;
use studyspot_notification_channels::{
    ChannelName, ChannelsConfig, ExposeSecret, OutboundPolicy, RetryPolicy, TlsMode, UnknownChannel, channels,
};

const PRIVATE_KEY: &str = include_str!("fixtures/fcm-test-key.pem");

#[test]
fn every_configured_channel_is_built_under_its_name() {
    let config: ChannelsConfig = serde_json::from_value(json!({
        "email": {
            "host": "smtp.example.com",
            "port": 465,
            "tls": "tls",
            "username": "apikey",
            "password": "smtp-password",
            "from": "StudySpot <noreply@studyspot.app>"
        },
        "sms": { "account_sid": "AC123", "auth_token": "token", "from": "+14155238886" },
        "whatsapp": { "account_sid": "AC123", "auth_token": "token", "messaging_service_sid": "MG123" },
        "push": {
            "project_id": "studyspot-test",
            "client_email": "fcm@studyspot-test.iam.gserviceaccount.com",
            "private_key": PRIVATE_KEY
        },
        "retry": { "max_attempts": 5 }
    }))
    .expect("a valid configuration");
    assert_eq!(config.email.as_ref().map(|e| e.tls), Some(TlsMode::Tls));
    assert_eq!(
        config.email.as_ref().and_then(|e| e.password.as_ref()).map(|p| p.expose_secret()),
        Some("smtp-password")
    );
    assert_eq!(config.retry, RetryPolicy { max_attempts: 5, ..RetryPolicy::default() });
    assert!(!format!("{config:?}").contains("smtp-password"), "secrets are redacted");

    let built = channels(&config, &OutboundPolicy::default()).expect("built");

    let mut names: Vec<ChannelName> = built.keys().copied().collect();
    names.sort();
    assert_eq!(names, ChannelName::ALL.to_vec());
    for (name, channel) in &built {
        assert_eq!(channel.name(), *name);
    }
}

#[test]
fn by_default_only_webhooks_are_built() {
    let built = channels(&ChannelsConfig::default(), &OutboundPolicy::default()).expect("built");
    assert_eq!(built.keys().copied().collect::<Vec<_>>(), vec![ChannelName::Webhook]);

    let config: ChannelsConfig = serde_json::from_value(json!({ "webhook": false })).expect("valid");
    assert!(channels(&config, &OutboundPolicy::default()).expect("built").is_empty());
}

#[test]
fn unknown_keys_are_refused() {
    let err = serde_json::from_value::<ChannelsConfig>(json!({ "sms": {
        "account_sid": "AC123", "auth_token": "token", "from": "+1", "form": "+1"
    } }));
    assert!(err.is_err());
}

#[test]
fn a_misconfigured_channel_fails_the_build() {
    let config: ChannelsConfig = serde_json::from_value(json!({
        "sms": { "account_sid": "AC123", "auth_token": "token" }
    }))
    .expect("valid shape");
    assert!(channels(&config, &OutboundPolicy::default()).is_err(), "an SMS channel without a sender");
}

#[test]
fn names_round_trip() {
    for name in ChannelName::ALL {
        assert_eq!(ChannelName::from_str(name.as_str()), Ok(name));
        assert_eq!(serde_json::to_value(name).unwrap(), json!(name.as_str()));
    }
    assert_eq!(ChannelName::from_str(" WhatsApp "), Ok(ChannelName::WhatsApp));
    assert_eq!(ChannelName::from_str("in_app"), Err(UnknownChannel("in_app".to_owned())));
}
