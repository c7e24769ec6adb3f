//! The gateway refuses to start with a secret anyone could know — one that shipped as a default,
//! an empty or a short one — for tokens, tracking links and QR codes, unless it runs in
//! development mode. The check comes before any connection, so no infrastructure is needed.

use studyspot_config::{Settings, secrets::Secrets};

fn strong() -> Settings {
    let mut settings = Settings::load(None).expect("defaults");
    Secrets::random().apply(&mut settings);
    settings
}

async fn refusal(settings: &Settings) -> String {
    match studyspot_gateway::app(settings, Default::default()).await {
        Ok(_) => panic!("the gateway started"),
        Err(e) => e.to_string(),
    }
}

/// What a case does to strong settings, and what the refusal must say.
type Case = (&'static str, fn(&mut Settings), &'static str);

#[tokio::test]
async fn a_published_empty_or_short_secret_keeps_the_gateway_from_starting() {
    let cases: [Case; 6] = [
        (
            "the old default HS256 secret",
            |s| s.auth.hs256_secret = "studyspot-local-development-secret-change-me".to_owned().into(),
            "auth.hs256_secret is a published development value",
        ),
        (
            "no HS256 secret and no JWKS file",
            |s| s.auth.hs256_secret = String::new().into(),
            "neither auth.hs256_secret nor auth.jwks_file",
        ),
        (
            "a short HS256 secret",
            |s| s.auth.hs256_secret = "hunter2".to_owned().into(),
            "shorter than 32 bytes",
        ),
        (
            "the old default tracking secret",
            |s| {
                s.notifications
                    .tracking
                    .secrets
                    .insert("k1".into(), "studyspot-development-tracking-secret".to_owned().into());
            },
            "notifications.tracking.secrets.k1 is a published development value",
        ),
        (
            "the old default QR key",
            |s| {
                s.attendance
                    .qr
                    .keys
                    .insert("dev1".into(), "studyspot-development-qr-key-change-me".to_owned().into());
            },
            "attendance.qr.keys.dev1 is a published development value",
        ),
        ("no QR signing key", |s| s.attendance.qr.keys.clear(), "attendance.qr.keys has no key \"k1\""),
    ];
    for (what, weaken, says) in cases {
        let mut settings = strong();
        weaken(&mut settings);
        let refused = refusal(&settings).await;
        assert!(refused.contains(says), "{what}: {refused}");
    }
}

#[tokio::test]
async fn development_mode_is_the_explicit_exception() {
    // With the flag, missing secrets are filled in and the gateway gets as far as its database
    // (none runs on this port, so it stops there, past the secrets).
    let mut settings = Settings::load(None).expect("defaults");
    settings.development = true;
    settings.postgres.url = "postgres://nobody:nothing@127.0.0.1:1/none".to_owned().into();
    let refused = refusal(&settings).await;
    assert!(!refused.contains("insecure secrets"), "{refused}");
    assert!(refused.contains("ledger"), "{refused}");
}
