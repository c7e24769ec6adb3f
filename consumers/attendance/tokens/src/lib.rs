//! QR check-in tokens: short-lived, signed, bound to a venue and seat or to a member.
//!
//! Format: `ssq1.<key id>.<payload>.<mac>`, where `payload` is the base64url (no padding) of
//! `kind|organization|venue|seat|member|expires_at_ms|nonce` and `mac` the base64url of
//! HMAC-SHA256 under the named key over `ssq1.<key id>.<payload>`. The key id travels in the
//! token, so keys rotate: mint with the newest, keep verifying with the older ones until their
//! tokens have expired. Nothing here reads a clock: the caller says what "now" is.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: &str = "ssq1";

/// What a token is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Shown by a member's app: proves who is checking in; single use.
    Member,
    /// Shown at a seat (kiosk or print): proves where; single use unless printed.
    Seat,
    /// Printed on a seat: reusable until it expires (or its key is retired).
    SeatCode,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "m",
            Self::Seat => "s",
            Self::SeatCode => "p",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "m" => Some(Self::Member),
            "s" => Some(Self::Seat),
            "p" => Some(Self::SeatCode),
            _ => None,
        }
    }

    /// Whether a second use of the same token is a replay.
    pub fn single_use(self) -> bool {
        !matches!(self, Self::SeatCode)
    }
}

/// The signed claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub kind: Kind,
    pub organization_id: String,
    pub venue_id: String,
    /// Seat tokens name their seat; member tokens may.
    pub seat_id: Option<String>,
    /// Member tokens name their member.
    pub member_id: Option<String>,
    pub expires_at_ms: i64,
    /// Unique per minted token: what a replay is recognised by.
    pub nonce: String,
}

/// Why a token is refused; `code()` is what the refusal event and the metrics carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a StudySpot QR token")]
    Malformed,
    #[error("the token's key {0} is not known (retired or never issued)")]
    UnknownKey(String),
    #[error("the token's signature does not verify")]
    Forged,
    #[error("the token expired")]
    Expired,
    #[error("no signing key is configured")]
    NoKey,
    #[error("a token field may not contain '|' or be empty: {0}")]
    BadField(&'static str),
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "token_malformed",
            Self::UnknownKey(_) => "token_unknown_key",
            Self::Forged => "token_forged",
            Self::Expired => "token_expired",
            Self::NoKey => "token_no_key",
            Self::BadField(_) => "token_bad_field",
        }
    }
}

/// The keys: the one that signs new tokens, and every key still accepted.
#[derive(Clone)]
pub struct Keys {
    current: String,
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keys").field("current", &self.current).field("accepted", &ids).finish()
    }
}

impl Keys {
    /// `current` must be one of `keys` (id, secret); empty secrets are ignored.
    pub fn new(current: &str, keys: impl IntoIterator<Item = (String, Vec<u8>)>) -> Result<Self, TokenError> {
        let keys: Vec<(String, Vec<u8>)> = keys.into_iter().filter(|(_, s)| !s.is_empty()).collect();
        if !keys.iter().any(|(id, _)| id == current) {
            return Err(TokenError::NoKey);
        }
        Ok(Self { current: current.to_owned(), keys })
    }

    fn secret(&self, id: &str) -> Option<&[u8]> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, s)| s.as_slice())
    }

    fn mac(secret: &[u8], signed: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(signed.as_bytes());
        mac
    }

    /// The token for `claims`, signed with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        for (name, value) in [
            ("organization_id", Some(claims.organization_id.as_str())),
            ("venue_id", Some(claims.venue_id.as_str())),
            ("seat_id", claims.seat_id.as_deref()),
            ("member_id", claims.member_id.as_deref()),
            ("nonce", Some(claims.nonce.as_str())),
        ] {
            if value.is_some_and(|v| v.is_empty() || v.contains('|')) {
                return Err(TokenError::BadField(name));
            }
        }
        let plain = format!(
            "{}|{}|{}|{}|{}|{}|{}",
            claims.kind.as_str(),
            claims.organization_id,
            claims.venue_id,
            claims.seat_id.as_deref().unwrap_or(""),
            claims.member_id.as_deref().unwrap_or(""),
            claims.expires_at_ms,
            claims.nonce
        );
        let signed = format!("{VERSION}.{}.{}", self.current, URL_SAFE_NO_PAD.encode(plain));
        let secret = self.secret(&self.current).ok_or(TokenError::NoKey)?;
        let tag = Self::mac(secret, &signed).finalize().into_bytes();
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// The claims of a genuine token that has not expired at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let mut parts = token.trim().split('.');
        let (Some(VERSION), Some(kid), Some(payload), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let secret = self.secret(kid).ok_or_else(|| TokenError::UnknownKey(kid.to_owned()))?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| TokenError::Forged)?;
        Self::mac(secret, &format!("{VERSION}.{kid}.{payload}"))
            .verify_slice(&tag)
            .map_err(|_| TokenError::Forged)?;
        let plain = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        let plain = String::from_utf8(plain).map_err(|_| TokenError::Malformed)?;
        let fields: Vec<&str> = plain.split('|').collect();
        let [kind, org, venue, seat, member, expires, nonce] = fields[..] else {
            return Err(TokenError::Malformed);
        };
        let claims = Claims {
            kind: Kind::parse(kind).ok_or(TokenError::Malformed)?,
            organization_id: org.to_owned(),
            venue_id: venue.to_owned(),
            seat_id: (!seat.is_empty()).then(|| seat.to_owned()),
            member_id: (!member.is_empty()).then(|| member.to_owned()),
            expires_at_ms: expires.parse().map_err(|_| TokenError::Malformed)?,
            nonce: nonce.to_owned(),
        };
        if claims.expires_at_ms <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(current: &str) -> Keys {
        Keys::new(
            current,
            [("k1".into(), b"first secret".to_vec()), ("k2".into(), b"second secret".to_vec())],
        )
        .expect("keys")
    }

    fn seat_claims() -> Claims {
        Claims {
            kind: Kind::Seat,
            organization_id: "org_1".into(),
            venue_id: "ven_1".into(),
            seat_id: Some("seat_a1".into()),
            member_id: None,
            expires_at_ms: 2_000,
            nonce: "n1".into(),
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let token = keys("k1").sign(&seat_claims()).expect("sign");
        assert!(token.starts_with("ssq1.k1."));
        assert_eq!(keys("k1").verify(&token, 1_999), Ok(seat_claims()));
        assert_eq!(keys("k1").verify(&token, 2_000), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_signed_with_an_older_key_still_verifies_after_rotation() {
        let token = keys("k1").sign(&seat_claims()).expect("sign");
        assert_eq!(keys("k2").verify(&token, 0), Ok(seat_claims()));
        let retired = Keys::new("k2", [("k2".into(), b"second secret".to_vec())]).expect("keys");
        assert_eq!(retired.verify(&token, 0), Err(TokenError::UnknownKey("k1".into())));
    }

    #[test]
    fn a_changed_payload_or_signature_is_forged() {
        let token = keys("k1").sign(&seat_claims()).expect("sign");
        let parts: Vec<&str> = token.split('.').collect();
        let mut other = seat_claims();
        other.seat_id = Some("seat_b9".into());
        let other_payload = keys("k1").sign(&other).expect("sign");
        let swapped = format!(
            "{}.{}.{}.{}",
            parts[0],
            parts[1],
            other_payload.split('.').nth(2).expect("payload"),
            parts[3]
        );
        assert_eq!(keys("k1").verify(&swapped, 0), Err(TokenError::Forged));
        let foreign = Keys::new("k1", [("k1".into(), b"someone else's".to_vec())]).expect("keys");
        assert_eq!(foreign.verify(&token, 0), Err(TokenError::Forged));
        assert_eq!(keys("k1").verify("hello", 0), Err(TokenError::Malformed));
    }

    #[test]
    fn fields_with_the_separator_are_refused_when_signing() {
        let mut claims = seat_claims();
        claims.venue_id = "ven|1".into();
        assert_eq!(keys("k1").sign(&claims), Err(TokenError::BadField("venue_id")));
        assert!(Keys::new("k9", [("k1".into(), b"x".to_vec())]).is_err());
    }
}
