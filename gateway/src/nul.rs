//! NUL characters are refused at the door. PostgreSQL's text stores no U+0000 (SQLSTATE 22021;
//! `\u0000` in jsonb is 22P05), so a string holding one that reached a query came back as a 503,
//! and one carried in a command would reach a consumer's projection. No field of the API has a
//! use for it: every way text comes in — the query string and path segments (a middleware over
//! every HTTP route), JSON bodies (commands, and the JSON carried in gRPC strings) and gRPC
//! messages (every string field, before the request is turned into the HTTP operation's) — is
//! checked, and the answer is a 400 `invalid_character` naming the field.

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::Value;

use crate::GatewayError;

fn refused(field: String) -> GatewayError {
    GatewayError::InvalidCharacter { field }
}

/// The middleware: a query parameter or path segment that decodes to a NUL is refused, naming
/// the parameter (the route's name for a path segment).
pub(crate) async fn refuse_in_uri(request: Request, next: Next) -> Response {
    if let Some(field) = nul_in_uri(&request) {
        return refused(field).into_response();
    }
    next.run(request).await
}

/// Only `%00` decodes to a NUL: a raw one cannot be in a URI, and percent-decoding yields bytes.
fn nul_in_uri(request: &Request) -> Option<String> {
    let uri = request.uri();
    if let Some(query) = uri.query().filter(|q| q.contains("%00")) {
        let pair = query.split('&').find(|pair| pair.contains("%00"))?;
        let name = decode(pair.split_once('=').map_or(pair, |(name, _)| name));
        return Some(if name.is_empty() || name.contains('\0') { "query".into() } else { name });
    }
    let path = uri.path();
    if !path.contains("%00") {
        return None;
    }
    let template = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or_default();
    let named = path
        .split('/')
        .zip(template.split('/').chain(std::iter::repeat("")))
        .find(|(segment, _)| segment.contains("%00"))
        .and_then(|(_, pattern)| pattern.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_start_matches('*').to_owned());
    Some(named.unwrap_or_else(|| "path".into()))
}

/// A query parameter's name as a form decodes it (`+` is a space), lossily.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where in `value` a string (or an object's key) holds a NUL: `matchers[0].value`,
/// `variables.name`.
pub(crate) fn in_json(value: &Value) -> Option<String> {
    fn walk(value: &Value, path: &mut String) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(fields) => fields.iter().any(|(key, item)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&key.replace('\0', "\\u0000"));
                let found = key.contains('\0') || walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then(|| if path.is_empty() { "body".into() } else { path })
}

/// A JSON body holding a NUL (only the escape `\u0000` can put one in a JSON string) is refused,
/// naming the field; any other fault is left to the typed parse, which names it better.
pub(crate) fn check_json(bytes: &[u8]) -> Result<(), GatewayError> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => in_json(&value).map_or(Ok(()), |field| Err(refused(field))),
        Err(_) => Ok(()),
    }
}

/// A gRPC message: every string field, by the message's field names (`filters.venue_id`).
pub(crate) fn check_message<M: serde::Serialize>(message: &M) -> Result<(), GatewayError> {
    match serde_json::to_value(message) {
        Ok(value) => in_json(&value).map_or(Ok(()), |field| Err(refused(field))),
        Err(e) => Err(GatewayError::Internal(format!("a gRPC message as JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_path_names_the_field() {
        assert_eq!(in_json(&json!({ "a": "x", "b": [1, { "c": "y\u{0}" }] })), Some("b[1].c".into()));
        assert_eq!(in_json(&json!({ "variables": { "n\u{0}": "v" } })), Some("variables.n\\u0000".into()));
        assert_eq!(in_json(&json!(["\u{0}"])), Some("[0]".into()));
        assert_eq!(in_json(&json!("\u{0}")), Some("body".into()));
        assert_eq!(in_json(&json!({ "a": "\\u0000", "b": null })), None);
        assert!(check_json(br#"{"a": "\\u0000"}"#).is_ok(), "an escaped backslash is no NUL");
        assert!(matches!(
            check_json(br#"{"m": [{"value": "x\u0000"}]}"#),
            Err(GatewayError::InvalidCharacter { field }) if field == "m[0].value"
        ));
    }

    #[test]
    fn query_names_decode() {
        assert_eq!(decode("venue_id"), "venue_id");
        assert_eq!(decode("a%5Bb%5D+c"), "a[b] c");
        assert_eq!(decode("bad%zz%"), "bad%zz%");
    }
}
