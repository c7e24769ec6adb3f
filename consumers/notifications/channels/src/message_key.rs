//! The idempotency key a notification's message carries to its provider.
//!
//! A notification id is unique only within its organization (two organizations may both send
//! `ntf_welcome`), while a provider de-duplicates by the key alone across the whole account: keyed
//! by the notification id, one organization's message would be answered with (Twilio) or collapsed
//! into (mail clients by `Message-ID`, Standard Webhooks receivers by `webhook-id`) another's. So
//! the key names both: `{organization}/{notification}`, each percent-encoded outside
//! `A–Z a–z 0–9 - . _ ~`. It depends on nothing else, so every attempt, retry and replay of a
//! message carries the same key; it is plain ASCII, so it fits any header; and it reads back
//! ([`parse_message_key`]) for receivers and fakes that count messages per notification.

use std::fmt::Write as _;

/// The key of `organization_id`'s notification `notification_id`.
pub fn message_key(organization_id: &str, notification_id: &str) -> String {
    let mut key = String::with_capacity(organization_id.len() + notification_id.len() + 1);
    encode_into(&mut key, organization_id);
    key.push('/');
    encode_into(&mut key, notification_id);
    key
}

/// The (organization, notification) a [`message_key`] names; `None` for any other string.
pub fn parse_message_key(key: &str) -> Option<(String, String)> {
    let (organization, notification) = key.split_once('/')?;
    Some((decode(organization)?, decode(notification)?))
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn encode_into(out: &mut String, part: &str) {
    for b in part.bytes() {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn decode(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = part.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if unreserved(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_notification_id_in_two_organizations_has_two_keys() {
        assert_eq!(message_key("org_a", "ntf_1"), "org_a/ntf_1");
        assert_ne!(message_key("org_a", "ntf_1"), message_key("org_b", "ntf_1"));
        assert_eq!(message_key("org_a", "ntf_1"), message_key("org_a", "ntf_1"), "stable");
    }

    #[test]
    fn ids_holding_the_separator_cannot_make_another_pair_s_key() {
        // Without encoding both would be "a/b/c".
        assert_ne!(message_key("a/b", "c"), message_key("a", "b/c"));
        for (org, id) in [("a/b", "c"), ("a", "b/c"), ("org 1", "ntf%2F\r\nx"), ("組織", "通知")] {
            let key = message_key(org, id);
            assert!(key.bytes().all(|b| b.is_ascii_graphic()), "{key}");
            assert_eq!(parse_message_key(&key), Some((org.to_owned(), id.to_owned())), "{key}");
        }
    }

    #[test]
    fn what_is_not_a_message_key_does_not_parse() {
        for other in ["ntf_1", "org/nt f", "org/%zz", "org/%4", "a/b/c"] {
            assert_eq!(parse_message_key(other), None, "{other}");
        }
    }
}
