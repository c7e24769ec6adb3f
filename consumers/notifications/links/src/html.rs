//! Tracking in an HTML e-mail: a 1×1 open pixel, and every `http(s)` link of an `<a>` or
//! `<area>` rewritten to its signed click redirect. Done by the delivery worker just before
//! sending, so the stored message stays the rendered one. Everything else (mailto:, tel:,
//! anchors, relative links, stylesheets, comments) is left as it is.

use crate::{LinkError, Links, Target};

/// `html` with the pixel and click redirects of `target`; `now` in seconds since the epoch.
pub fn instrument(html: &str, links: &Links, target: &Target, now: i64) -> Result<String, LinkError> {
    let mut out = String::with_capacity(html.len() + 512);
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            let end = comment.find("-->").map_or(rest.len(), |e| e + 4 + 3);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let end = tag_end(rest);
        let tag = &rest[..end];
        if is_link_tag(tag) {
            out.push_str(&rewrite_tag(tag, links, target, now)?);
        } else {
            out.push_str(tag);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    let pixel = format!(
        "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0;width:1px;height:1px\" />",
        links.open_url(target, now)?
    );
    match out.to_ascii_lowercase().rfind("</body") {
        Some(at) => out.insert_str(at, &pixel),
        None => out.push_str(&pixel),
    }
    Ok(out)
}

/// The length of the tag at the start of `s` (through its `>`, quotes respected).
fn tag_end(s: &str) -> usize {
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return i + 1,
            (None, _) => {}
        }
    }
    s.len()
}

fn is_link_tag(tag: &str) -> bool {
    let name: String =
        tag[1..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    name == "a" || name == "area"
}

fn unescape(value: &str) -> String {
    value.replace("&quot;", "\"").replace("&#38;", "&").replace("&amp;", "&")
}

fn is_web(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// The tag with its `href` (if an http(s) URL) replaced by the click redirect.
fn rewrite_tag(tag: &str, links: &Links, target: &Target, now: i64) -> Result<String, LinkError> {
    let bytes = tag.as_bytes();
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find("href") {
        let at = from + found;
        from = at + 4;
        // An attribute name of its own: preceded by whitespace, followed by `=`.
        if at == 0 || !bytes[at - 1].is_ascii_whitespace() {
            continue;
        }
        let mut i = at + 4;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let (start, end) = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let close = tag[i + 1..].find(q as char).map_or(tag.len(), |e| i + 1 + e);
                (i + 1, close)
            }
            Some(_) => {
                let close =
                    tag[i..].find(|c: char| c.is_ascii_whitespace() || c == '>').map_or(tag.len(), |e| i + e);
                (i, close)
            }
            None => return Ok(tag.to_owned()),
        };
        let value = unescape(&tag[start..end]);
        if !is_web(&value) {
            return Ok(tag.to_owned());
        }
        let click = links.click_url(target, value.trim(), now)?;
        return Ok(format!("{}{click}{}", &tag[..start], &tag[end..]));
    }
    Ok(tag.to_owned())
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::{Keys, Kind};

    fn links() -> Links {
        Links::new("https://gw.example", Keys::new("k1", [("k1".to_owned(), SecretString::from("s"))]), 0)
    }

    fn target() -> Target {
        Target {
            notification_id: "ntf_1".into(),
            recipient_id: "mem_1".into(),
            organization_id: "org_1".into(),
        }
    }

    /// The click targets of the rewritten links, in order.
    fn targets(html: &str) -> Vec<String> {
        let keys = links().keys().clone();
        html.split("https://gw.example/api/notifications/tracking/click/")
            .skip(1)
            .map(|rest| {
                let token: String =
                    rest.chars().take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
                let link = keys.verify(&token, 0).expect("a valid click token");
                assert_eq!(link.kind, Kind::Click);
                link.url.expect("a target")
            })
            .collect()
    }

    #[test]
    fn a_pixel_goes_before_the_body_ends_and_web_links_become_signed_redirects() {
        let html = r#"<html><body><p>Hi <a href="https://example.org/plans?a=1&amp;b=2">plans</a>,
            <A class="x" HREF='http://example.org/x'>x</A> <a href=https://example.org/bare>bare</a></p></body></html>"#;
        let out = instrument(html, &links(), &target(), 0).expect("instrumented");
        assert_eq!(
            targets(&out),
            vec!["https://example.org/plans?a=1&b=2", "http://example.org/x", "https://example.org/bare"]
        );
        let pixel =
            out.find("<img src=\"https://gw.example/api/notifications/tracking/open/").expect("pixel");
        assert!(pixel > out.find("bare</a>").expect("text") && pixel < out.find("</body>").expect("end"));
        assert!(out.contains(r#"class="x""#) && out.contains(">plans</a>"));
    }

    #[test]
    fn mailto_tel_anchors_relative_links_stylesheets_and_comments_are_left_alone() {
        let html = concat!(
            r#"<link rel="stylesheet" href="https://cdn.example/s.css">"#,
            r#"<a href="mailto:help@example.org">mail</a><a href="tel:+49301234">call</a>"#,
            r##"<a href="#top">top</a><a href="/relative">rel</a><a name="x">no href</a>"##,
            r#"<!-- <a href="https://example.org/commented"> -->"#,
            r#"<a data-href="https://example.org/data">data</a>"#,
        );
        let out = instrument(html, &links(), &target(), 0).expect("instrumented");
        assert!(targets(&out).is_empty(), "{out}");
        let pixel = out.find("<img").expect("pixel appended without a body");
        assert_eq!(&out[..pixel], html);
    }
}
