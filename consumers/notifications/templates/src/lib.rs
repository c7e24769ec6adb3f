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
//! Fuel does not bound what one instruction costs (`"x" * 100000000` is one), so every operation
//! that can build a large value in one step is checked before it does (`checked`, with the
//! operators rewritten into checked calls by `rewrite`): no value past the output limit
//! (`template_output_too_large`), no sequence past [`MAX_ITEMS`], and no more than [`WORK_BYTES`]
//! built in all (`template_too_costly`), so a render stays within a few megabytes and
//! milliseconds.

mod budget;
mod checked;
mod rewrite;

use std::{
    collections::{HashMap, HashSet},
    io,
};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

use crate::budget::Exceeded;

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
/// The most items a sequence may hold (`range()`, a repeated or concatenated list, a filter's
/// input or result): a message lists a few lines, not thousands.
pub const MAX_ITEMS: usize = 10_000;
/// What one part may build in all while rendering, in bytes: every value the checked operations
/// and filters make and everything written (output and captures). 64 times the output limit: a
/// template that builds its text piece by piece stays far below it.
pub const WORK_BYTES: usize = 64 * MAX_OUTPUT_BYTES;

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
        "{} takes too much work to render (more than {FUEL} steps, nested deeper than {RECURSION_LIMIT} levels, a sequence of more than {MAX_ITEMS} items or more than {WORK_BYTES} bytes built): loop over the variables you have, not over large ranges",
        part.name()
    )]
    TooCostly { part: Part },
    #[error("{} renders to more than {MAX_OUTPUT_BYTES} bytes, or builds a value larger than that", part.name())]
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
    checked::install(&mut env);
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
    let rewritten = rewrite::checked_operators(part.name(), source)
        .map_err(|e| RenderError::Syntax { part, detail: e.to_string() })?;
    let env = environment();
    let template = env
        .template_from_named_str(part.name(), &rewritten)
        .map_err(|e| RenderError::Syntax { part, detail: e.to_string() })?;
    let mut out = Capped::default();
    budget::start();
    let rendered = template.render_captured_to(variables, &mut out);
    match rendered {
        Ok(_) => Ok(String::from_utf8(out.bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
        Err(_) if out.exceeded => Err(RenderError::OutputTooLarge { part }),
        Err(_) if budget::exceeded() == Some(Exceeded::Output) => Err(RenderError::OutputTooLarge { part }),
        Err(_) if budget::exceeded() == Some(Exceeded::Cost) => Err(RenderError::TooCostly { part }),
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

    /// Each way minijinja builds a large value in one step (or a few), with an output that is
    /// small: before the checks each rendered (after allocating up to 100 MB), or panicked (a
    /// precision past 65 535); now each is refused, quickly, with the limit it would pass.
    const AMPLIFIERS: [(&str, &str, &str); 18] = [
        ("string repeat", "{{ ('x' * 100000000)|length }}", "template_output_too_large"),
        ("repeat in a constant", "{% set s = 'x' * 10000000 %}ok", "template_output_too_large"),
        (
            "doubling by ~",
            "{% set a = 'x' * 200000 %}{% set b = a ~ a %}{% set c = b ~ b %}{{ c|length }}",
            "template_output_too_large",
        ),
        ("string +", "{% set a = 'x' * 200000 %}{{ (a + a)|length }}", "template_output_too_large"),
        ("list repeat", "{{ ([1] * 10000000)|length }}", "template_too_costly"),
        ("list +", "{{ (range(10000)|list + range(10000)|list)|length }}", "template_too_costly"),
        ("range", "{{ range(100000)|length }}", "template_too_costly"),
        ("list of a range", "{{ (range(10000) * 100)|list|length }}", "template_too_costly"),
        ("join", "{{ range(10000)|join('x' * 100)|length }}", "template_output_too_large"),
        ("format width", "{{ '%9999999s'|format(1)|length }}", "template_too_costly"),
        ("format precision", "{{ '%.70000f'|format(1.5)|length }}", "template_too_costly"),
        (
            "format arguments",
            "{{ ('%s' * 20)|format(*(['y' * 20000] * 20))|length }}",
            "template_output_too_large",
        ),
        ("indent width", "{{ 'a\nb'|indent(9999999)|length }}", "template_output_too_large"),
        ("indent width kwarg", "{{ 'a\nb'|indent(width=9999999)|length }}", "template_output_too_large"),
        ("replace", "{{ 'abcdefghij'|replace('', 'y' * 100000)|length }}", "template_output_too_large"),
        ("batch", "{{ [1]|batch(1000000, 0)|first|length }}", "template_too_costly"),
        ("slice", "{{ [1]|slice(1000000)|length }}", "template_too_costly"),
        ("string of a list", "{{ (['x' * 100000] * 100)|string|length }}", "template_output_too_large"),
    ];

    #[test]
    fn raw_text_copied_into_a_capture_by_a_loop_runs_out_of_fuel() {
        // 10 000 copies of 6 000 bytes: raw text cost one step however long it was, so the loop
        // built all 60 MB in the capture (at 64 KiB a text, 640 MB) before anything charged it.
        // Now its length costs fuel (rewrite::raw_text_steps): the loop stops within the fuel.
        let source = format!(
            "{{% set c %}}{{% for i in range(10000) %}}{}{{% endfor %}}{{% endset %}}{{{{ c|length }}}}",
            "y".repeat(6000)
        );
        assert_eq!(body(&source), Err(RenderError::TooCostly { part: Part::Body }));
        let copied = usize::try_from(FUEL).expect("fuel fits") * rewrite::RAW_STEP_BYTES;
        assert!(copied < WORK_BYTES, "fuel × step = {copied} bytes at most, within the work budget");
        // The same text rendered plainly, whitespace control and raw blocks included, is unchanged.
        let text = format!("{}\n{}", "y".repeat(500), "z".repeat(300));
        for source in [
            format!("{{% for i in range(3) -%}}  {text}  {{%- endfor %}}"),
            format!("{{% raw %}}{{{{ {text} }}}}{{% endraw %}}"),
        ] {
            let plain = environment().render_str(&source, ()).expect("renders plainly");
            assert_eq!(body(&source).as_deref(), Ok(plain.as_str()), "{source}");
        }
    }

    #[test]
    fn every_single_step_amplifier_is_refused_quickly_with_its_limit() {
        for (name, source, code) in AMPLIFIERS {
            let started = Instant::now();
            let err = body(source).expect_err(name);
            assert_eq!(err.limit_code(), Some(code), "{name}: {err}");
            assert_eq!(err.part(), Part::Body);
            assert!(started.elapsed() < Duration::from_millis(500), "{name} took {:?}", started.elapsed());
        }
        for (name, source, code) in [
            ("~ of a list", "{{ ((['x' * 100000] * 100) ~ '')|length }}", "template_output_too_large"),
            ("pprint", "{{ (['x' * 100000] * 100)|pprint|length }}", "template_output_too_large"),
            ("debug", "{{ debug() }}", ""),
        ] {
            let err = body(source).expect_err(name);
            assert_eq!(err.limit_code().unwrap_or_default(), code, "{name}: {err}");
        }
    }

    #[test]
    fn many_steps_that_each_stay_within_the_limits_run_out_of_work() {
        // 200 strings of 200 KB kept in a list, and a macro's capture made 100 times over.
        for source in [
            "{% set ns = namespace(l=[]) %}{% for i in range(200) %}{% set ns.l = ns.l + ['x' * 200000] %}{% endfor %}{{ ns.l|length }}",
            "{% macro m() %}{{ 'x' * 200000 }}{% endmacro %}{% set ns = namespace(n=0) %}{% for i in range(100) %}{% set ns.n = ns.n + (m()|length) %}{% endfor %}{{ ns.n }}",
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            // Nested ten thousand levels deep, a level a step: the stack overflowed when dropped.
            "{% set ns = namespace(l=[]) %}{% for i in range(10000) %}{% for j in range(3) %}{% set ns.l = [ns.l] %}{% endfor %}{% endfor %}{{ ns.l|length }}",
            "{% set ns = namespace(l=[]) %}{% for i in range(10000) %}{% set ns.l = [1, {'a': ns.l}] %}{% endfor %}{{ ns.l|length }}",
        ] {
            let started = Instant::now();
            let err = body(source).expect_err(source);
            assert!(err.limit_code().is_some(), "{source}: {err}");
            assert!(started.elapsed() < Duration::from_secs(1), "{source} took {:?}", started.elapsed());
        }
    }

    #[test]
    fn the_checked_operators_and_filters_do_what_minijinja_does() {
        let given = vars(&[("first", "Ada"), ("last", "Lovelace"), ("text", "a\nb"), ("amount", "1250")]);
        let cases = [
            ("{{ first ~ ' ' ~ last }}", "Ada Lovelace"),
            ("{{ '-' * 5 }}|{{ 3 * '=' }}", "-----|==="),
            (
                "{{ 2 * 3 + 1 }} {{ 2 + 3 * 2 }} {{ (2 + 3) * 2 }} {{ 1.5 * 2 }} {{ 2 ** 10 }}",
                "7 8 10 3.0 1024",
            ),
            ("{{ amount|int * 2 }} {{ (amount|int + 50) ~ ' EUR' }}", "2500 1300 EUR"),
            ("{{ [1, 2] + [3] }} {{ ([1] * 3)|list }} {{ 'ab' + 'cd' }}", "[1, 2, 3] [1, 1, 1] abcd"),
            (
                "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(3, 0, -1)|list }}",
                "[0, 1, 2] [1, 3, 5] [3, 2, 1]",
            ),
            ("{{ ['a', 'b']|join(', ') }} {{ '%05.1f|%-4s|%%'|format(3.14159, 'x') }}", "a, b 003.1|x   |%"),
            ("{{ text|indent(2) }}|{{ text|indent(width=2, first=true) }}", "a\n  b|  a\n  b"),
            (
                "{{ 'aXbX'|replace('X', '-') }} {{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|slice(2)|list }}",
                "a-b- [[1, 2], [3, 4], [5]] [[1, 2], [3]]",
            ),
            ("{{ [3, 1, 2]|sort|map('string')|join }} {{ [1, 2]|sum }} {{ 'x'|upper }}", "123 3 X"),
        ];
        for (source, want) in cases {
            assert_eq!(render_part(Part::Body, source, &given).as_deref(), Ok(want), "{source}");
        }
        // In HTML a concatenation is escaped as one value, as before.
        let html = render_part(Part::Html, "<p>{{ first ~ '<3' }}</p>", &given);
        assert_eq!(html.as_deref(), Ok("<p>Ada&lt;3</p>"));
        // An undefined operand is named, as minijinja names it.
        assert_eq!(
            render_part(Part::Body, "{{ first ~ nobody }}", &given),
            Err(RenderError::Undefined { part: Part::Body, names: vec!["nobody".into()] })
        );
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
