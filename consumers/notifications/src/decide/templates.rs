//! Templates rendered with minijinja in strict mode: a variable the template names but the
//! sender did not give is an error, found when the template is created (against its sample
//! variables) rather than when a message is due.

use std::collections::HashMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

/// The rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
}

/// A template's parts as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts<'a> {
    pub subject: Option<&'a str>,
    pub body: &'a str,
    pub html: Option<&'a str>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // HTML parts escape what they interpolate; text parts do not.
    env.set_auto_escape_callback(
        |name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None },
    );
    env
}

/// Renders every part; the error names the part and what went wrong (e.g. an undefined variable).
pub fn render(parts: &Parts<'_>, variables: &HashMap<String, String>) -> Result<Rendered, String> {
    let env = environment();
    let one = |name: &str, source: &str| {
        env.render_named_str(name, source, variables)
            .map_err(|e| format!("{}: {e}", name.trim_end_matches(".txt")))
    };
    Ok(Rendered {
        subject: parts.subject.map(|s| one("subject.txt", s)).transpose()?,
        body: one("body.txt", parts.body)?,
        html: parts.html.map(|h| one("html.html", h)).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn given_all_variables_when_rendered_then_text_is_plain_and_html_is_escaped() {
        let parts = Parts {
            subject: Some("Receipt {{ number }}"),
            body: "Thanks {{ name }}, we received {{ amount }}.",
            html: Some("<p>Thanks {{ name }}</p>"),
        };
        let out =
            render(&parts, &vars(&[("number", "INV-000007"), ("name", "Ada <3"), ("amount", "EUR 20.00")]))
                .expect("renders");
        assert_eq!(out.subject.as_deref(), Some("Receipt INV-000007"));
        assert_eq!(out.body, "Thanks Ada <3, we received EUR 20.00.");
        assert_eq!(out.html.as_deref(), Some("<p>Thanks Ada &lt;3</p>"));
    }

    #[test]
    fn a_missing_variable_or_bad_syntax_is_an_error_naming_the_part() {
        let parts = Parts { subject: None, body: "Hi {{ name }}", html: None };
        let err = render(&parts, &vars(&[])).expect_err("name is undefined");
        assert!(err.starts_with("body:") && err.contains("undefined"), "{err}");
        let broken = Parts { subject: Some("{% if %}"), body: "x", html: None };
        assert!(render(&broken, &vars(&[])).expect_err("syntax").starts_with("subject:"));
    }
}
