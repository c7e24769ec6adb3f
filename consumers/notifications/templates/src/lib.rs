//! Notification templates, rendered one way wherever they are rendered: the gateway (checking a
//! template's sample variables, previews) and the notifications consumer (creation, every message
//! due). minijinja in strict mode — a variable the template names but nobody gave is an error —
//! with HTML escaped in the `html` part only.
//!
//! Templates come from tenants, so rendering one is bounded: the source of a part, the work it
//! may do (minijinja's fuel: about one unit per instruction, so nested `range()` loops run out
//! instead of pinning a thread), its nesting (the recursion limit, macros included) and what it
//! writes (the output is written into a buffer that refuses bytes past the limit, so a loop
//! cannot fill memory before the limit is checked). Each limit hit is its own error with a
//! machine-readable [`RenderError::code`], naming the part.
//!
//! Not bounded by fuel: the cost of one operation. minijinja repeats a string up to 100 MB in one
//! instruction (`"x" * 100000000`) and `~` concatenates without a limit, so a template can still
//! allocate a lot in a few steps; the fuel caps how many such steps it takes.

use std::{
    collections::{HashMap, HashSet},
    io,
};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

/// The longest source of one part, in bytes. A rich HTML e-mail stays well below it.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;
/// The most one part may render to, in bytes: four times the longest source, and small enough
/// that a message with all three parts fits a Kafka record (1 MB by default).
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// minijinja's fuel for rendering one part: about one unit per instruction executed. A
/// notification interpolates a handful of variables (tens of instructions) and loops, if at
/// all, over short lists; 100 000 instructions take a few milliseconds.
pub const FUEL: u64 = 100_000;
/// How deep blocks, loops and macro calls may nest while rendering (minijinja's default is 500;
/// a macro call counts as several levels).
pub const RECURSION_LIMIT: usize = 100;

/// The parts of a notification template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Subject,
    Body,
    Html,
}

impl Part {
    /// The field that holds the part, in requests and in errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Body => "body",
            Self::Html => "html",
        }
    }
}

/// Why a part did not render; the message names the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{} is not a valid template: {detail}", part.name())]
    Syntax { part: Part, detail: String },
    /// Variables the part uses that were not given, sorted.
    #[error("{} uses {}, which {} undefined", part.name(), quoted(names), if names.len() == 1 { "is" } else { "are" })]
    Undefined { part: Part, names: Vec<String> },
    #[error("{} does not render: {detail}", part.name())]
    Failed { part: Part, detail: String },
    #[error("{} is {len} bytes long; a template part may be at most {MAX_SOURCE_BYTES} bytes", part.name())]
    SourceTooLarge { part: Part, len: usize },
    #[error(
        "{} takes too much work to render (more than {FUEL} steps, or nested deeper than {RECURSION_LIMIT} levels): loop over the variables you have, not over large ranges",
        part.name()
    )]
    TooCostly { part: Part },
    #[error("{} renders to more than {MAX_OUTPUT_BYTES} bytes", part.name())]
    OutputTooLarge { part: Part },
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
}

impl RenderError {
    /// The part that did not render.
    pub fn part(&self) -> Part {
        match self {
            Self::Syntax { part, .. }
            | Self::Undefined { part, .. }
            | Self::Failed { part, .. }
            | Self::SourceTooLarge { part, .. }
            | Self::TooCostly { part }
            | Self::OutputTooLarge { part } => *part,
        }
    }

    /// A limit's machine-readable code, `None` for a template that is simply wrong (a syntax
    /// error, an undefined variable, a failing filter).
    pub fn limit_code(&self) -> Option<&'static str> {
        match self {
            Self::SourceTooLarge { .. } => Some("template_too_large"),
            Self::TooCostly { .. } => Some("template_too_costly"),
            Self::OutputTooLarge { .. } => Some("template_output_too_large"),
            Self::Syntax { .. } | Self::Undefined { .. } | Self::Failed { .. } => None,
        }
    }
}

/// The rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub body: String,
    pub html: Option<String>,
}

/// A template's parts as stored or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts<'a> {
    pub subject: Option<&'a str>,
    pub body: &'a str,
    pub html: Option<&'a str>,
}

/// Renders every part; the first part that fails is the error.
pub fn render(parts: &Parts<'_>, variables: &HashMap<String, String>) -> Result<Rendered, RenderError> {
    Ok(Rendered {
        subject: parts.subject.map(|s| render_part(Part::Subject, s, variables)).transpose()?,
        body: render_part(Part::Body, parts.body, variables)?,
        html: parts.html.map(|h| render_part(Part::Html, h, variables)).transpose()?,
    })
}

fn environment<'source>() -> Environment<'source> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // HTML parts escape what they interpolate; text parts do not.
    env.set_auto_escape_callback(|name| if name == "html" { AutoEscape::Html } else { AutoEscape::None });
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env
}

/// Renders one part with `variables`, within the limits.
pub fn render_part(
    part: Part,
    source: &str,
    variables: &HashMap<String, String>,
) -> Result<String, RenderError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(RenderError::SourceTooLarge { part, len: source.len() });
    }
    let env = environment();
    let template = env
        .template_from_named_str(part.name(), source)
        .map_err(|e| RenderError::Syntax { part, detail: e.to_string() })?;
    let mut out = Capped::default();
    match template.render_captured_to(variables, &mut out) {
        Ok(_) => Ok(String::from_utf8(out.bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        Err(_) if out.exceeded => Err(RenderError::OutputTooLarge { part }),
        Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(RenderError::TooCostly { part }),
        // minijinja has no kind of its own for its recursion limit.
        Err(e)
            if e.kind() == ErrorKind::InvalidOperation
                && e.detail().is_some_and(|d| d.contains("recursion limit")) =>
        {
            Err(RenderError::TooCostly { part })
        }
        Err(e) if e.kind() == ErrorKind::UndefinedError => {
            let globals: HashSet<&str> = env.globals().map(|(name, _)| name).collect();
            let mut names: Vec<String> = template
                .undeclared_variables(false)
                .into_iter()
                .filter(|v| !variables.contains_key(v) && !globals.contains(v.as_str()))
                .collect();
            names.sort();
            if names.is_empty() {
                Err(RenderError::Failed { part, detail: e.to_string() })
            } else {
                Err(RenderError::Undefined { part, names })
            }
        }
        Err(e) => Err(RenderError::Failed { part, detail: e.to_string() }),
    }
}

/// The output of one part: refuses the write that would take it past [`MAX_OUTPUT_BYTES`], which
/// ends the render at once.
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    exceeded: bool,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT_BYTES {
            self.exceeded = true;
            return Err(io::Error::other("template output limit reached"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn body(source: &str) -> Result<String, RenderError> {
        render_part(Part::Body, source, &vars(&[]))
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
    fn a_missing_variable_or_bad_syntax_names_the_part_and_the_variables() {
        let parts =
            Parts { subject: None, body: "Hi {{ name }} {{ when }} {{ range(2)|length }}", html: None };
        let err = render(&parts, &vars(&[])).expect_err("undefined");
        assert_eq!(
            err,
            RenderError::Undefined { part: Part::Body, names: vec!["name".into(), "when".into()] }
        );
        assert_eq!(err.to_string(), "body uses `name`, `when`, which are undefined");
        assert_eq!(err.limit_code(), None);
        let broken = Parts { subject: Some("{% if %}"), body: "x", html: None };
        let err = render(&broken, &vars(&[])).expect_err("syntax");
        assert!(matches!(err, RenderError::Syntax { part: Part::Subject, .. }), "{err}");
    }

    #[test]
    fn nested_ranges_run_out_of_fuel_quickly() {
        let started = Instant::now();
        let err = body("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}")
            .expect_err("too costly");
        assert_eq!(err, RenderError::TooCostly { part: Part::Body });
        assert_eq!(err.limit_code(), Some("template_too_costly"));
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        // A loop that does nothing visible is counted all the same.
        assert_eq!(
            body("{% for a in range(100000) %}{% set b = a %}{% endfor %}"),
            Err(RenderError::TooCostly { part: Part::Body })
        );
    }

    #[test]
    fn recursion_is_bounded() {
        let source = "{% macro down(n) %}{{ down(n + 1) }}{% endmacro %}{{ down(0) }}";
        assert_eq!(body(source), Err(RenderError::TooCostly { part: Part::Body }));
    }

    #[test]
    fn output_past_the_limit_is_refused_and_what_fits_renders() {
        let err = body("{{ 'x' * 300000 }}").expect_err("too large");
        assert_eq!(err, RenderError::OutputTooLarge { part: Part::Body });
        assert_eq!(err.limit_code(), Some("template_output_too_large"));
        let big = format!("{{% for i in range({}) %}}{}{{% endfor %}}", 1000, "y".repeat(300));
        assert_eq!(body(&big), Err(RenderError::OutputTooLarge { part: Part::Body }));
        assert_eq!(body("{{ 'x' * 1000 }}").map(|s| s.len()), Ok(1000));
    }

    #[test]
    fn a_source_past_the_limit_is_refused_before_it_is_parsed() {
        let source = "a".repeat(MAX_SOURCE_BYTES + 1);
        let err = render_part(Part::Html, &source, &vars(&[])).expect_err("too large");
        assert_eq!(err, RenderError::SourceTooLarge { part: Part::Html, len: MAX_SOURCE_BYTES + 1 });
        assert_eq!(err.limit_code(), Some("template_too_large"));
        assert!(err.to_string().starts_with("html is 65537 bytes long"), "{err}");
    }

    #[test]
    fn a_short_loop_over_what_was_given_renders() {
        let out = body("{% for word in text.split(' ') %}[{{ word }}]{% endfor %}");
        assert!(out.is_err(), "text is undefined");
        let out = render_part(
            Part::Body,
            "{% for c in text|list %}{{ c|upper }}{% endfor %}",
            &vars(&[("text", "abc")]),
        );
        assert_eq!(out.as_deref(), Ok("ABC"));
    }
}
