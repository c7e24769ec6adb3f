//! Signed tracking links of notifications: the open pixel, the click redirect and the provider
//! status callback. The delivery worker signs them (see [`html::instrument`] for e-mails), the
//! gateway verifies them; both read the same `[notifications.tracking]` settings. Neither side
//! needs the other: a link carries everything the gateway needs to name the notification.
//!
//! A token is `{key_id}.{payload}.{signature}`: the payload is the base64url (no padding) of a
//! small JSON object ([`Link`]), the signature the base64url of HMAC-SHA256 over
//! `{key_id}.{payload}` under the secret named `key_id`. New links are signed with the current
//! key; every configured key verifies, so a key rotates by adding the new one, making it current,
//! and removing the old one once its links no longer matter.

pub mod html;

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The 1×1 pixel of an HTML e-mail.
    Open,
    /// A link in an HTML e-mail, redirected to its target.
    Click,
    /// A provider's delivery status callback (Twilio's `StatusCallback`).
    Status,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Open => "open",
            Kind::Click => "click",
            Kind::Status => "status",
        }
    }
}

/// What a token says, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    #[serde(rename = "n")]
    pub notification_id: String,
    #[serde(rename = "r")]
    pub recipient_id: String,
    #[serde(rename = "o")]
    pub organization_id: String,
    #[serde(rename = "k")]
    pub kind: Kind,
    /// The click's target (http or https).
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Not accepted after this (seconds since the epoch); never expires when absent.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the token is not key_id.payload.signature")]
    Malformed,
    #[error("the token names key {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token's payload is not a link: {0}")]
    BadPayload(String),
    #[error("the link expired")]
    Expired,
    #[error("no signing key is configured")]
    NoKey,
}

/// The signing keys: the current one signs, all verify.
#[derive(Clone, Default)]
pub struct Keys {
    current: String,
    secrets: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("current", &self.current)
            .field("key_ids", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Keys {
    /// `current` names the signing key among `secrets`; empty secrets and badly named keys are
    /// left out (a key id is 1 to 32 letters, digits, `_` or `-`).
    pub fn new(current: &str, secrets: impl IntoIterator<Item = (String, SecretString)>) -> Self {
        let secrets =
            secrets.into_iter().filter(|(id, s)| valid_key_id(id) && !s.expose_secret().is_empty()).collect();
        Self { current: current.to_owned(), secrets }
    }

    /// Whether links can be signed: the current key is configured.
    pub fn can_sign(&self) -> bool {
        self.secrets.contains_key(&self.current)
    }

    fn mac(secret: &SecretString, signed: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(signed.as_bytes());
        mac
    }

    pub fn sign(&self, link: &Link) -> Result<String, LinkError> {
        let secret = self.secrets.get(&self.current).ok_or(LinkError::NoKey)?;
        let payload = B64.encode(serde_json::to_vec(link).map_err(|e| LinkError::BadPayload(e.to_string()))?);
        let signed = format!("{}.{payload}", self.current);
        let signature = B64.encode(Self::mac(secret, &signed).finalize().into_bytes());
        Ok(format!("{signed}.{signature}"))
    }

    /// The link a token names, if its signature holds under the key it names and it has not
    /// expired at `now` (seconds since the epoch). Constant-time comparison.
    pub fn verify(&self, token: &str, now: i64) -> Result<Link, LinkError> {
        let mut parts = token.split('.');
        let (Some(key_id), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkError::Malformed);
        };
        let secret = self.secrets.get(key_id).ok_or_else(|| LinkError::UnknownKey(key_id.to_owned()))?;
        let signature = B64.decode(signature).map_err(|_| LinkError::Malformed)?;
        Self::mac(secret, &format!("{key_id}.{payload}"))
            .verify_slice(&signature)
            .map_err(|_| LinkError::BadSignature)?;
        let bytes = B64.decode(payload).map_err(|_| LinkError::Malformed)?;
        let link: Link = serde_json::from_slice(&bytes).map_err(|e| LinkError::BadPayload(e.to_string()))?;
        if link.expires_at.is_some_and(|at| now > at) {
            return Err(LinkError::Expired);
        }
        Ok(link)
    }
}

/// Whose message a link is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub notification_id: String,
    pub recipient_id: String,
    pub organization_id: String,
}

/// Builds tracking URLs under the gateway's public base URL.
#[derive(Debug, Clone)]
pub struct Links {
    base_url: String,
    keys: Keys,
    ttl_secs: Option<i64>,
}

/// The gateway's paths, relative to its public base URL; `{token}` follows each.
pub const OPEN_PATH: &str = "/api/notifications/tracking/open/";
pub const CLICK_PATH: &str = "/api/notifications/tracking/click/";
pub const TWILIO_STATUS_PATH: &str = "/api/notifications/tracking/twilio/";

impl Links {
    /// `ttl_secs`: links expire that long after they are made (0: never).
    pub fn new(base_url: &str, keys: Keys, ttl_secs: u64) -> Self {
        let ttl_secs = (ttl_secs > 0).then(|| i64::try_from(ttl_secs).unwrap_or(i64::MAX / 4));
        Self { base_url: base_url.trim_end_matches('/').to_owned(), keys, ttl_secs }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn url(
        &self,
        path: &str,
        target: &Target,
        kind: Kind,
        url: Option<&str>,
        now: i64,
    ) -> Result<String, LinkError> {
        let token = self.keys.sign(&Link {
            notification_id: target.notification_id.clone(),
            recipient_id: target.recipient_id.clone(),
            organization_id: target.organization_id.clone(),
            kind,
            url: url.map(str::to_owned),
            expires_at: self.ttl_secs.map(|ttl| now.saturating_add(ttl)),
        })?;
        Ok(format!("{}{path}{token}", self.base_url))
    }

    /// The open pixel's URL; `now` in seconds since the epoch.
    pub fn open_url(&self, target: &Target, now: i64) -> Result<String, LinkError> {
        self.url(OPEN_PATH, target, Kind::Open, None, now)
    }

    /// The click redirect to `url`.
    pub fn click_url(&self, target: &Target, url: &str, now: i64) -> Result<String, LinkError> {
        self.url(CLICK_PATH, target, Kind::Click, Some(url), now)
    }

    /// Twilio's `StatusCallback` for the message (never expires: callbacks come when they come).
    pub fn twilio_status_url(&self, target: &Target) -> Result<String, LinkError> {
        let token = self.keys.sign(&Link {
            notification_id: target.notification_id.clone(),
            recipient_id: target.recipient_id.clone(),
            organization_id: target.organization_id.clone(),
            kind: Kind::Status,
            url: None,
            expires_at: None,
        })?;
        Ok(format!("{}{TWILIO_STATUS_PATH}{token}", self.base_url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(current: &str, pairs: &[(&str, &str)]) -> Keys {
        Keys::new(current, pairs.iter().map(|(k, v)| ((*k).to_owned(), SecretString::from(*v))))
    }

    fn link() -> Link {
        Link {
            notification_id: "ntf_1".into(),
            recipient_id: "mem_1".into(),
            organization_id: "org_1".into(),
            kind: Kind::Click,
            url: Some("https://example.org/a?b=c&d=e".into()),
            expires_at: Some(2_000),
        }
    }

    #[test]
    fn a_signed_link_verifies_and_says_what_was_signed() {
        let k = keys("k1", &[("k1", "secret one")]);
        let token = k.sign(&link()).expect("signs");
        assert!(token.starts_with("k1."));
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "url-safe: {token}");
        assert_eq!(k.verify(&token, 1_000), Ok(link()));
    }

    #[test]
    fn a_tampered_payload_or_signature_is_refused() {
        let k = keys("k1", &[("k1", "secret one")]);
        let token = k.sign(&link()).expect("signs");
        let (head, signature) = token.rsplit_once('.').expect("three parts");
        let (kid, _) = head.split_once('.').expect("kid");
        let mut other = link();
        other.url = Some("https://evil.example/".into());
        let forged_payload = B64.encode(serde_json::to_vec(&other).expect("json"));
        assert_eq!(k.verify(&format!("{kid}.{forged_payload}.{signature}"), 0), Err(LinkError::BadSignature));
        let mut flipped = signature.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert_eq!(k.verify(&format!("{head}.{flipped}"), 0), Err(LinkError::BadSignature));
        assert_eq!(k.verify("nonsense", 0), Err(LinkError::Malformed));
        assert_eq!(k.verify("a.b.c.d", 0), Err(LinkError::Malformed));
    }

    #[test]
    fn a_wrong_key_is_refused_and_an_unknown_key_id_is_named() {
        let signer = keys("k1", &[("k1", "secret one")]);
        let token = signer.sign(&link()).expect("signs");
        let other = keys("k1", &[("k1", "another secret")]);
        assert_eq!(other.verify(&token, 0), Err(LinkError::BadSignature));
        let rotated_away = keys("k2", &[("k2", "secret two")]);
        assert_eq!(rotated_away.verify(&token, 0), Err(LinkError::UnknownKey("k1".into())));
    }

    #[test]
    fn after_rotation_new_links_use_the_new_key_and_old_links_still_verify() {
        let before = keys("k1", &[("k1", "secret one")]);
        let old = before.sign(&link()).expect("signs");
        let after = keys("k2", &[("k1", "secret one"), ("k2", "secret two")]);
        let new = after.sign(&link()).expect("signs");
        assert!(new.starts_with("k2."));
        assert_eq!(after.verify(&old, 0), Ok(link()));
        assert_eq!(after.verify(&new, 0), Ok(link()));
        assert_eq!(before.verify(&new, 0), Err(LinkError::UnknownKey("k2".into())));
    }

    #[test]
    fn an_expired_link_is_refused_and_one_without_expiry_never_expires() {
        let k = keys("k1", &[("k1", "secret one")]);
        let token = k.sign(&link()).expect("signs");
        assert!(k.verify(&token, 2_000).is_ok(), "valid through its last second");
        assert_eq!(k.verify(&token, 2_001), Err(LinkError::Expired));
        let forever = Link { expires_at: None, ..link() };
        assert!(k.verify(&k.sign(&forever).expect("signs"), i64::MAX).is_ok());
    }

    #[test]
    fn without_the_current_key_nothing_is_signed() {
        let k = keys("k2", &[("k1", "secret one"), ("k2", "")]);
        assert!(!k.can_sign());
        assert_eq!(k.sign(&link()), Err(LinkError::NoKey));
    }

    #[test]
    fn urls_are_under_the_public_base_and_expire_after_the_ttl() {
        let k = keys("k1", &[("k1", "secret one")]);
        let links = Links::new("https://api.example.org/", k.clone(), 100);
        let target = Target {
            notification_id: "ntf_1".into(),
            recipient_id: "mem_1".into(),
            organization_id: "org_1".into(),
        };
        let open = links.open_url(&target, 1_000).expect("open");
        let token =
            open.strip_prefix("https://api.example.org/api/notifications/tracking/open/").expect("path");
        let read = k.verify(token, 1_000).expect("verifies");
        assert_eq!((read.kind, read.expires_at), (Kind::Open, Some(1_100)));
        let click = links.click_url(&target, "https://example.org/x", 1_000).expect("click");
        let token = click.rsplit('/').next().expect("token");
        assert_eq!(k.verify(token, 1_000).expect("verifies").url.as_deref(), Some("https://example.org/x"));
        let status = links.twilio_status_url(&target).expect("status");
        let token = status.rsplit('/').next().expect("token");
        assert_eq!(k.verify(token, i64::MAX).expect("never expires").kind, Kind::Status);
    }
}
