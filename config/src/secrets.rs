//! The secrets a process signs or verifies with, checked before it starts: nothing anyone could
//! know — a value that ever shipped in the defaults, an empty or a short one — is accepted outside
//! development mode (`development = true`, `STUDYSPOT_DEVELOPMENT=true`). In development mode a
//! missing secret is filled with a well-known development value, and every weak one is logged.
//!
//! `./deploy/local/up` does not need development mode: it writes random secrets once
//! (`studyspot secrets init`, a file of mode 0600 named to every process by
//! `STUDYSPOT_SECRETS_FILE`); test harnesses give their processes [`Secrets::random`].

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use crate::Settings;

/// The shortest secret accepted outside development mode, in bytes (HMAC-SHA256's block of
/// entropy; RFC 7518 asks HS256 keys to be at least this long).
pub const MIN_SECRET_BYTES: usize = 32;

/// What development mode fills in when a secret is missing.
pub const DEVELOPMENT_HS256_SECRET: &str = "studyspot-development-hs256-secret-never-in-production";
pub const DEVELOPMENT_TRACKING_SECRET: &str = "studyspot-development-tracking-secret-never-in-production";
pub const DEVELOPMENT_QR_KEY: &str = "studyspot-development-qr-key-never-in-production";

/// Every secret that was ever public: the defaults earlier versions shipped and the development
/// values above. Refused outside development mode wherever they are configured.
const KNOWN: [&str; 6] = [
    "studyspot-local-development-secret-change-me",
    "studyspot-development-tracking-secret",
    "studyspot-development-qr-key-change-me",
    DEVELOPMENT_HS256_SECRET,
    DEVELOPMENT_TRACKING_SECRET,
    DEVELOPMENT_QR_KEY,
];

/// A secret a process needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// `auth`: verifying (gateway) or minting (`studyspot token`) bearer tokens. HS256 is on
    /// only with a secret; without one, RS256 tokens of `auth.jwks_file` are the only way in.
    Auth,
    /// `notifications.tracking.secrets`: signing (notifications) or verifying (gateway) tracking
    /// links, when tracking is enabled.
    TrackingLinks,
    /// `attendance.qr.keys`: signing (gateway) or verifying (attendance) QR check-in tokens.
    QrKeys,
}

/// Why a process refuses to start: every weak secret, named by its setting.
#[derive(Debug, thiserror::Error)]
#[error(
    "insecure secrets (set real ones, e.g. in the file named by STUDYSPOT_SECRETS_FILE, or run with STUDYSPOT_DEVELOPMENT=true on a developer's machine):\n  - {}",
    .0.join("\n  - ")
)]
pub struct InsecureSecrets(pub Vec<String>);

/// What is wrong with one secret, if anything.
fn weakness(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("is empty")
    } else if KNOWN.contains(&value) {
        Some("is a published development value")
    } else if value.len() < MIN_SECRET_BYTES {
        Some("is shorter than 32 bytes")
    } else {
        None
    }
}

impl Settings {
    /// Checks the secrets of `needed`: outside development mode any weak one is an error naming
    /// each; in development mode missing ones get the development values, and every weak one is
    /// only reported in the returned warnings (the caller logs them).
    pub fn secure(&mut self, needed: &[Secret]) -> Result<Vec<String>, InsecureSecrets> {
        let mut problems = Vec::new();
        let development = self.development;
        for secret in needed {
            match secret {
                Secret::Auth => {
                    let auth = &mut self.auth;
                    let hs256 = auth.hs256_secret.expose_secret().to_owned();
                    if hs256.is_empty() && !auth.jwks_file.trim().is_empty() {
                        // HS256 is off: RS256 tokens only.
                        continue;
                    }
                    if hs256.is_empty() && development {
                        auth.hs256_secret = SecretString::from(DEVELOPMENT_HS256_SECRET);
                        problems.push(
                            "auth.hs256_secret is the development value: anyone can mint tokens".to_owned(),
                        );
                        continue;
                    }
                    if hs256.is_empty() {
                        problems.push(
                            "auth: neither auth.hs256_secret nor auth.jwks_file is set, so no token could be verified"
                                .to_owned(),
                        );
                    } else if let Some(why) = weakness(&hs256) {
                        problems.push(format!("auth.hs256_secret {why}: anyone could mint tokens"));
                    }
                }
                Secret::TrackingLinks => {
                    let tracking = &mut self.notifications.tracking;
                    if !tracking.enabled {
                        continue;
                    }
                    check_keyring(
                        "notifications.tracking.secrets",
                        &tracking.signing_key_id,
                        &mut tracking.secrets,
                        DEVELOPMENT_TRACKING_SECRET,
                        development,
                        &mut problems,
                    );
                }
                Secret::QrKeys => {
                    let qr = &mut self.attendance.qr;
                    check_keyring(
                        "attendance.qr.keys",
                        &qr.signing_key_id,
                        &mut qr.keys,
                        DEVELOPMENT_QR_KEY,
                        development,
                        &mut problems,
                    );
                }
            }
        }
        if problems.is_empty() || development { Ok(problems) } else { Err(InsecureSecrets(problems)) }
    }
}

/// A keyring (key id → secret, one of them signing): the signing key must exist, and no key may
/// be weak, since every key verifies.
fn check_keyring(
    name: &str,
    signing_key_id: &str,
    keys: &mut BTreeMap<String, SecretString>,
    development_value: &str,
    development: bool,
    problems: &mut Vec<String>,
) {
    if keys.get(signing_key_id).is_none_or(|k| k.expose_secret().is_empty()) {
        if development {
            keys.insert(signing_key_id.to_owned(), SecretString::from(development_value));
            problems.push(format!("{name}.{signing_key_id} is the development value"));
        } else {
            problems.push(format!("{name} has no key {signing_key_id:?} (its signing_key_id)"));
        }
    }
    for (id, key) in keys.iter() {
        if let Some(why) = weakness(key.expose_secret())
            && !(development && key.expose_secret() == development_value)
        {
            problems.push(format!("{name}.{id} {why}"));
        }
    }
}

/// A set of random secrets for every key a process may need: what `studyspot secrets init`
/// writes for the local stack, and what test harnesses give the processes they start.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub hs256: String,
    pub tracking: String,
    pub qr: String,
}

impl Secrets {
    /// 32 random bytes each, hex-encoded (64 characters).
    pub fn random() -> Self {
        Self { hs256: random_hex(), tracking: random_hex(), qr: random_hex() }
    }

    /// The `STUDYSPOT_*` variables that set them (key ids as the defaults name them).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("STUDYSPOT_AUTH__HS256_SECRET".to_owned(), self.hs256.clone()),
            ("STUDYSPOT_NOTIFICATIONS__TRACKING__SECRETS__K1".to_owned(), self.tracking.clone()),
            ("STUDYSPOT_ATTENDANCE__QR__KEYS__K1".to_owned(), self.qr.clone()),
        ]
    }

    /// The same as a settings file (`STUDYSPOT_SECRETS_FILE`).
    pub fn toml(&self) -> String {
        format!(
            "# Secrets of this StudySpot installation, generated at random: keep this file private.\n\
             [auth]\nhs256_secret = \"{}\"\n\n\
             [notifications.tracking.secrets]\nk1 = \"{}\"\n\n\
             [attendance.qr.keys]\nk1 = \"{}\"\n",
            self.hs256, self.tracking, self.qr
        )
    }

    /// Sets them in `settings` (for a process in the same address space, e.g. a test's gateway).
    pub fn apply(&self, settings: &mut Settings) {
        settings.auth.hs256_secret = SecretString::from(self.hs256.clone());
        let tracking = &mut settings.notifications.tracking;
        tracking.secrets.insert(tracking.signing_key_id.clone(), SecretString::from(self.tracking.clone()));
        let qr = &mut settings.attendance.qr;
        qr.keys.insert(qr.signing_key_id.clone(), SecretString::from(self.qr.clone()));
    }
}

fn random_hex() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Secret; 3] = [Secret::Auth, Secret::TrackingLinks, Secret::QrKeys];

    /// The documented defaults alone, whatever the environment of the test run.
    fn defaults() -> Settings {
        use figment::providers::Format as _;
        figment::Figment::from(figment::providers::Toml::string(crate::DEFAULTS)).extract().expect("defaults")
    }

    #[test]
    fn the_defaults_carry_no_secret_and_are_refused_outside_development() {
        let mut settings = defaults();
        let err = settings.secure(&ALL).expect_err("no secrets configured");
        let text = err.to_string();
        assert!(text.contains("neither auth.hs256_secret nor auth.jwks_file"), "{text}");
        assert!(text.contains("notifications.tracking.secrets has no key \"k1\""), "{text}");
        assert!(text.contains("attendance.qr.keys has no key \"k1\""), "{text}");
    }

    #[test]
    fn secrets_that_shipped_empty_or_short_ones_are_refused() {
        for (value, why) in [
            ("studyspot-local-development-secret-change-me", "published"),
            (DEVELOPMENT_HS256_SECRET, "published"),
            ("too-short", "shorter than 32 bytes"),
        ] {
            let mut settings = defaults();
            Secrets::random().apply(&mut settings);
            settings.auth.hs256_secret = value.into();
            let err = settings.secure(&[Secret::Auth]).expect_err(value);
            assert!(err.to_string().contains(why), "{err}");
        }
        let mut settings = defaults();
        Secrets::random().apply(&mut settings);
        settings.attendance.qr.keys.insert("old".into(), "studyspot-development-qr-key-change-me".into());
        let err = settings.secure(&[Secret::QrKeys]).expect_err("a weak verifying key");
        assert!(err.to_string().contains("attendance.qr.keys.old is a published development value"), "{err}");
    }

    #[test]
    fn random_secrets_pass() {
        let mut settings = defaults();
        Secrets::random().apply(&mut settings);
        assert_eq!(settings.secure(&ALL).expect("strong secrets"), Vec::<String>::new());
    }

    #[test]
    fn an_empty_hs256_secret_turns_hs256_off_when_a_jwks_file_is_set() {
        let mut settings = defaults();
        settings.auth.jwks_file = "/etc/studyspot/jwks.json".into();
        assert!(settings.secure(&[Secret::Auth]).is_ok());
        assert!(settings.auth.hs256_secret.expose_secret().is_empty(), "HS256 stays off");
    }

    #[test]
    fn development_mode_fills_missing_secrets_and_reports_weak_ones() {
        let mut settings = defaults();
        settings.development = true;
        settings.auth.hs256_secret = "short".into();
        settings.notifications.tracking.secrets.clear();
        let warnings = settings.secure(&ALL).expect("development accepts");
        assert!(warnings.iter().any(|w| w.contains("auth.hs256_secret is shorter")), "{warnings:?}");
        assert_eq!(
            settings.notifications.tracking.secrets["k1"].expose_secret(),
            DEVELOPMENT_TRACKING_SECRET
        );
        assert_eq!(settings.attendance.qr.keys["k1"].expose_secret(), DEVELOPMENT_QR_KEY);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail fixes the closure's error type
    fn a_secrets_file_sets_every_key() {
        let secrets = Secrets::random();
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("secrets.toml", &secrets.toml())?;
            jail.set_env("STUDYSPOT_SECRETS_FILE", "secrets.toml");
            let mut settings = Settings::load(None).expect("loads");
            assert!(settings.secure(&ALL).is_ok());
            assert_eq!(settings.auth.hs256_secret.expose_secret(), secrets.hs256);
            Ok(())
        });
    }
}
