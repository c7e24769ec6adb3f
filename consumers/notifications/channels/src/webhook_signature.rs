//! Standard Webhooks signatures (standardwebhooks.com, symmetric `v1`), as pure functions: the
//! webhook channel signs with [`sign`]; a receiver (and our tests) checks with [`verify`].
//!
//! - The secret is `whsec_` + base64 of the key bytes (the prefix is optional here).
//! - The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, the timestamp in unix
//!   seconds and the body byte for byte.
//! - `webhook-signature` is `v1,` + base64(HMAC-SHA256(key, content)); a header may carry
//!   several space-separated signatures (during a secret rotation), any one `v1` match passes.
//! - A timestamp more than [`TOLERANCE_SECS`] away from the receiver's clock is refused, which
//!   bounds replays.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// How far a message's timestamp may be from the receiver's clock, either way: five minutes.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Standard base64 that also accepts keys written without their `=` padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a signature could not be made or did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The secret is not (`whsec_` +) base64 of at least one byte.
    #[error("invalid webhook secret: {0}")]
    InvalidSecret(String),
    /// A header is missing, empty or unreadable.
    #[error("malformed webhook header: {0}")]
    MalformedHeader(String),
    /// The timestamp is more than [`TOLERANCE_SECS`] before or after `now`.
    #[error("webhook timestamp {timestamp} is more than {TOLERANCE_SECS} s away from now ({now})")]
    TimestampOutOfTolerance {
        /// The message's `webhook-timestamp`.
        timestamp: i64,
        /// The receiver's clock.
        now: i64,
    },
    /// No `v1` signature in the header matches.
    #[error("no matching webhook signature")]
    SignatureMismatch,
}

/// The key bytes of a `whsec_…` secret (the prefix is optional).
pub fn secret_key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
    let key = LENIENT_BASE64
        .decode(encoded)
        .map_err(|err| SignatureError::InvalidSecret(format!("not base64 after {SECRET_PREFIX}: {err}")))?;
    if key.is_empty() {
        return Err(SignatureError::InvalidSecret("empty".to_owned()));
    }
    Ok(key)
}

/// The `webhook-signature` header value for a message: `v1,{base64 signature}`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, payload: &[u8]) -> Result<String, SignatureError> {
    Ok(sign_with_key(&secret_key(secret)?, msg_id, timestamp, payload))
}

/// [`sign`] with the decoded key.
pub(crate) fn sign_with_key(key: &[u8], msg_id: &str, timestamp: i64, payload: &[u8]) -> String {
    format!("v1,{}", BASE64.encode(mac(key, msg_id, timestamp, payload).finalize().into_bytes()))
}

/// Checks a received message: its `webhook-id`, `webhook-timestamp` and `webhook-signature`
/// header values and its raw body, at the receiver's clock `now` (unix seconds). Constant-time.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: &str,
    signature_header: &str,
    payload: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let key = secret_key(secret)?;
    if msg_id.trim().is_empty() {
        return Err(SignatureError::MalformedHeader("empty webhook-id".to_owned()));
    }
    let timestamp_secs: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::MalformedHeader(format!("webhook-timestamp {timestamp:?}")))?;
    if now.abs_diff(timestamp_secs) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::TimestampOutOfTolerance { timestamp: timestamp_secs, now });
    }
    if signature_header.trim().is_empty() {
        return Err(SignatureError::MalformedHeader("empty webhook-signature".to_owned()));
    }
    let expected = mac(&key, msg_id, timestamp_secs, payload);
    let matched = signature_header
        .split_whitespace()
        .filter_map(|versioned| versioned.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| BASE64.decode(signature).ok())
        .any(|signature| expected.clone().verify_slice(&signature).is_ok());
    if matched { Ok(()) } else { Err(SignatureError::SignatureMismatch) }
}

fn mac(key: &[u8], msg_id: &str, timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector of the Standard Webhooks reference libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_reference_vector() {
        assert_eq!(sign(SECRET, MSG_ID, TIMESTAMP, PAYLOAD).unwrap(), SIGNATURE);
        // The prefix is optional.
        assert_eq!(sign(&SECRET[SECRET_PREFIX.len()..], MSG_ID, TIMESTAMP, PAYLOAD).unwrap(), SIGNATURE);
    }

    #[test]
    fn verifies_the_reference_vector_within_the_tolerance() {
        let ts = TIMESTAMP.to_string();
        assert_eq!(verify(SECRET, MSG_ID, &ts, SIGNATURE, PAYLOAD, TIMESTAMP), Ok(()));
        assert_eq!(verify(SECRET, MSG_ID, &ts, SIGNATURE, PAYLOAD, TIMESTAMP + TOLERANCE_SECS), Ok(()));
        assert_eq!(verify(SECRET, MSG_ID, &ts, SIGNATURE, PAYLOAD, TIMESTAMP - TOLERANCE_SECS), Ok(()));
        for now in [TIMESTAMP + TOLERANCE_SECS + 1, TIMESTAMP - TOLERANCE_SECS - 1] {
            assert_eq!(
                verify(SECRET, MSG_ID, &ts, SIGNATURE, PAYLOAD, now),
                Err(SignatureError::TimestampOutOfTolerance { timestamp: TIMESTAMP, now })
            );
        }
    }

    #[test]
    fn refuses_what_was_not_signed() {
        let ts = TIMESTAMP.to_string();
        // The reference libraries' "invalid signature": the last character differs.
        let wrong = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert_eq!(
            verify(SECRET, MSG_ID, &ts, wrong, PAYLOAD, TIMESTAMP),
            Err(SignatureError::SignatureMismatch)
        );
        let body = br#"{"test": 2432232315}"#;
        assert_eq!(
            verify(SECRET, MSG_ID, &ts, SIGNATURE, body, TIMESTAMP),
            Err(SignatureError::SignatureMismatch)
        );
        assert_eq!(
            verify(SECRET, "msg_other", &ts, SIGNATURE, PAYLOAD, TIMESTAMP),
            Err(SignatureError::SignatureMismatch)
        );
        let v2 = SIGNATURE.replace("v1,", "v2,");
        assert_eq!(
            verify(SECRET, MSG_ID, &ts, &v2, PAYLOAD, TIMESTAMP),
            Err(SignatureError::SignatureMismatch)
        );
        assert!(matches!(
            verify(SECRET, MSG_ID, "hello", SIGNATURE, PAYLOAD, TIMESTAMP),
            Err(SignatureError::MalformedHeader(_))
        ));
        assert!(matches!(
            verify(SECRET, "", &ts, SIGNATURE, PAYLOAD, TIMESTAMP),
            Err(SignatureError::MalformedHeader(_))
        ));
        assert!(matches!(
            verify("whsec_!!!", MSG_ID, &ts, SIGNATURE, PAYLOAD, TIMESTAMP),
            Err(SignatureError::InvalidSecret(_))
        ));
        assert!(matches!(
            verify("whsec_", MSG_ID, &ts, SIGNATURE, PAYLOAD, TIMESTAMP),
            Err(SignatureError::InvalidSecret(_))
        ));
    }

    #[test]
    fn any_v1_signature_of_several_passes() {
        let ts = TIMESTAMP.to_string();
        let header = format!(
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {SIGNATURE} v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
        );
        assert_eq!(verify(SECRET, MSG_ID, &ts, &header, PAYLOAD, TIMESTAMP), Ok(()));
    }
}
