//! minijinja with every operation that can build a large value in one step checked before it
//! does. Fuel counts instructions, not what one instruction costs: `"x" * 100000000` is one
//! instruction (minijinja allows strings up to 100 MB that way), so is `~` of two large strings
//! (doubling a string forty times takes forty), a filter over a large sequence
//! (`range(100000) * 100000 | join`) or a filter with a large argument (`indent(10**9)`,
//! `"%999999999s"|format(1)`, `batch(10**9, "x")`). What minijinja 2.24 offers, and how each is
//! bounded here:
//!
//! - the operators `~`, `+` and `*`: rewritten into the checked functions below (see `rewrite`),
//!   which refuse a string past [`MAX_OUTPUT_BYTES`](crate::MAX_OUTPUT_BYTES) or a sequence past
//!   [`MAX_ITEMS`] before building it, then do what the operator does;
//! - `range()`: at most [`MAX_ITEMS`] numbers (minijinja's own limit is 100 000);
//! - every filter: its input sequence at most [`MAX_ITEMS`] long, its result within the same
//!   limits, and the arguments that size a result checked first (`indent` width, `replace`,
//!   `join`, `format` widths (at most 4096: past 65 535 minijinja panics) and arguments, `batch`
//!   and `slice` counts, `list`, `sum`, `string`,
//!   `pprint`); minijinja has no `center`, `wordwrap`, `truncate`, `tojson` or `urlencode` (the
//!   last two are features this build does not enable);
//! - `debug()` is removed: it writes out the whole render state, and no message needs it;
//! - a value kept by `set` nests at most [`MAX_NESTING`] levels (not an amplifier, but a list
//!   wrapped in itself a step at a time aborted the process by overflowing the stack);
//! - what is written, to the output or into a capture (`{% set %}…{% endset %}`, a macro's
//!   result, `{% filter %}`), is charged like a built value.
//!
//! Everything built is charged to the render's budget ([`WORK_BYTES`](crate::WORK_BYTES)), so
//! many steps that each stay within the limits still end the render, `template_too_costly`. Not
//! charged: the template's own text, which is no value; a loop copying it into a capture is
//! bounded by the fuel alone (at most [`FUEL`](crate::FUEL) copies of a part's source).

use std::sync::LazyLock;

use minijinja::{
    Environment, Error, ErrorKind, State, Value, context, escape_formatter, filters,
    value::{Kwargs, Rest, ValueKind, from_args},
};

use crate::{
    MAX_ITEMS,
    budget::{self, charge, check_items, check_len, text_len},
};

/// The function `a ~ b` is rewritten to.
pub(crate) const CONCAT: &str = "__studyspot_concat";
/// The function `a + b` is rewritten to.
pub(crate) const ADD: &str = "__studyspot_add";
/// The function `a * b` is rewritten to.
pub(crate) const MUL: &str = "__studyspot_mul";
/// The function the value of a `set` statement passes through.
pub(crate) const KEEP: &str = "__studyspot_keep";
/// The deepest a value kept by `set` may nest (lists in lists, maps in lists, …). Dropping or
/// writing a value recurses once a level, so ten thousand levels overflow a thread's stack; a
/// message's data nests a few.
pub(crate) const MAX_NESTING: usize = 100;

/// Adds the checked operators, filters and functions to `env`.
pub(crate) fn install(env: &mut Environment<'_>) {
    env.add_function(CONCAT, concat);
    env.add_function(ADD, add);
    env.add_function(MUL, mul);
    env.add_function(KEEP, keep);
    env.add_function("range", range);
    env.remove_global("debug");
    for (name, original) in builtin_filters() {
        env.add_filter(name, move |state: &State, args: Rest<Value>| {
            checked_filter(name, &original, state, &args)
        });
    }
    env.set_formatter(|out, state, value| {
        charge(text_len(value)?)?;
        escape_formatter(out, state, value)
    });
}

/// An environment without limits that does what the operators do, once they are checked.
static PLAIN: LazyLock<Environment<'static>> = LazyLock::new(Environment::new);

fn operator(expression: &str, a: Value, b: Value) -> Result<Value, Error> {
    PLAIN.compile_expression(expression)?.eval(context! { a => a, b => b })
}

fn defined(values: [&Value; 2]) -> Result<(), Error> {
    if values.iter().any(|v| v.is_undefined()) {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    Ok(())
}

fn is_sequence(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// How many items a sequence holds, counting at most one past the limit when it does not say.
fn items(value: &Value) -> Result<usize, Error> {
    if let Some(n) = value.len() {
        return Ok(n);
    }
    Ok(value.try_iter()?.take(MAX_ITEMS + 1).count())
}

/// `a ~ b`: both as text, at most the output limit together.
fn concat(a: Value, b: Value) -> Result<Value, Error> {
    defined([&a, &b])?;
    let len = text_len(&a)?.saturating_add(text_len(&b)?);
    check_len("`~`", len)?;
    charge(len)?;
    Ok(Value::from(format!("{a}{b}")))
}

/// `a + b`: numbers, or two strings or two sequences within the limits.
fn add(a: Value, b: Value) -> Result<Value, Error> {
    defined([&a, &b])?;
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        check_len("`+`", x.len().saturating_add(y.len()))?;
    } else if is_sequence(&a) && is_sequence(&b) {
        check_items("`+`", items(&a)?.saturating_add(items(&b)?))?;
    }
    let sum = operator("a + b", a, b)?;
    budget::built("`+`", &sum)?;
    Ok(sum)
}

/// `a * b`: numbers, or a string or sequence repeated within the limits.
fn mul(a: Value, b: Value) -> Result<Value, Error> {
    defined([&a, &b])?;
    let repeats = |v: &Value| v.as_str().is_some() || is_sequence(v);
    let (repeated, times) = if repeats(&a) { (&a, &b) } else { (&b, &a) };
    if repeats(repeated)
        && let Some(times) = times.as_usize()
    {
        match repeated.as_str() {
            Some(s) => check_len("`*`", s.len().saturating_mul(times))?,
            None => check_items("`*`", items(repeated)?.saturating_mul(times))?,
        }
    }
    let product = operator("a * b", a, b)?;
    budget::built("`*`", &product)?;
    Ok(product)
}

/// The value of a `set`, nested at most [`MAX_NESTING`] levels deep (each item looked at is
/// charged).
fn keep(value: Value) -> Result<Value, Error> {
    nesting(&value, 0)?;
    Ok(value)
}

fn nesting(value: &Value, depth: usize) -> Result<(), Error> {
    if !matches!(value.kind(), ValueKind::Seq | ValueKind::Map) {
        return Ok(());
    }
    if depth >= MAX_NESTING {
        return Err(budget::too_costly(format!("a value nests more than {MAX_NESTING} levels deep")));
    }
    let map = value.kind() == ValueKind::Map;
    for item in value.try_iter()? {
        charge(16)?;
        if map {
            nesting(&value.get_item(&item)?, depth + 1)?;
        } else {
            nesting(&item, depth + 1)?;
        }
    }
    Ok(())
}

/// `range()` of at most [`MAX_ITEMS`] numbers.
fn range(lower: isize, upper: Option<isize>, step: Option<isize>) -> Result<Value, Error> {
    let (start, end) = match upper {
        Some(upper) => (lower, upper),
        None => (0, lower),
    };
    let step = step.unwrap_or(1);
    let span = match step.signum() {
        1 => end.saturating_sub(start),
        -1 => start.saturating_sub(end),
        _ => 0,
    };
    let len = if span <= 0 { 0 } else { span.unsigned_abs().div_ceil(step.unsigned_abs()) };
    check_items("range()", len)?;
    minijinja::functions::range(lower, upper, Some(step))
}

/// A builtin filter, checked: its input, the arguments that size its result, and its result.
fn checked_filter(
    name: &'static str,
    original: &Value,
    state: &State,
    args: &[Value],
) -> Result<Value, Error> {
    let what = format!("`{name}`");
    if let Some(input) = args.first() {
        if is_sequence(input) || name == "list" {
            check_items(&what, items(input)?)?;
        }
        charge(budget::size(input))?;
    }
    before(name, args)?;
    let result = original.call(state, args)?;
    budget::built(&what, &result)?;
    Ok(result)
}

fn arg(args: &[Value], index: usize) -> Option<&Value> {
    args.get(index).filter(|v| !v.is_kwargs())
}

fn text_of(value: &Value) -> Result<String, Error> {
    text_len(value)?;
    Ok(value.as_str().map_or_else(|| value.to_string(), str::to_owned))
}

/// Refuses, before the filter runs, arguments that would size its result past the limits.
fn before(name: &str, args: &[Value]) -> Result<(), Error> {
    let Some(input) = args.first() else { return Ok(()) };
    match name {
        "indent" => {
            let (_, kwargs): (&[Value], Kwargs) = from_args(args)?;
            let width = match arg(args, 1) {
                Some(w) => w.as_usize(),
                None => kwargs.peek::<Option<usize>>("width")?,
            }
            .unwrap_or(4);
            let text = text_len(input)?;
            let lines = input.as_str().map_or(1, |s| s.matches('\n').count() + 1);
            check_len("`indent`", text.saturating_add(lines.saturating_mul(width.saturating_add(1))))
        }
        "replace" => {
            let (Some(from), Some(to)) = (arg(args, 1), arg(args, 2)) else { return Ok(()) };
            let (text, from, to) = (text_of(input)?, text_of(from)?, text_of(to)?);
            let occurrences =
                if from.is_empty() { text.chars().count() + 1 } else { text.matches(from.as_str()).count() };
            check_len("`replace`", text.len().saturating_add(occurrences.saturating_mul(to.len())))
        }
        "join" => {
            let separator = arg(args, 1).map(text_len).transpose()?.unwrap_or(0);
            let mut len = 0usize;
            for (i, item) in input.try_iter()?.enumerate() {
                len = len.saturating_add(text_len(&item)?).saturating_add(if i > 0 { separator } else { 0 });
                check_len("`join`", len)?;
            }
            Ok(())
        }
        "format" => {
            let mut len = text_len(input)?.saturating_add(printf_widths(input.as_str().unwrap_or_default())?);
            for value in args.iter().skip(1) {
                len = len.saturating_add(text_len(value)?);
                check_len("`format`", len)?;
            }
            check_len("`format`", len)
        }
        "batch" | "slice" => {
            let count = arg(args, 1).and_then(Value::as_usize).unwrap_or(0);
            check_items(&format!("`{name}`"), count)
        }
        "sum" => {
            let (mut bytes, mut items_in_all) = (0usize, 0usize);
            for item in input.try_iter()? {
                match item.as_str() {
                    Some(s) => bytes = bytes.saturating_add(s.len()),
                    None if is_sequence(&item) => items_in_all = items_in_all.saturating_add(items(&item)?),
                    None => {}
                }
                check_len("`sum`", bytes)?;
                check_items("`sum`", items_in_all)?;
            }
            Ok(())
        }
        "string" => text_len(input).map(drop),
        "pprint" => budget::pretty_len(input).map(drop),
        _ => Ok(()),
    }
}

/// The widest width or precision `format` takes. Rust's formatting, which minijinja's uses,
/// panics past 65 535 (`'%.70000f'|format(1.5)` did), and no message pads further than this.
const MAX_FORMAT_WIDTH: usize = 4096;

/// The widths and precisions a printf-style format string asks for, in all; one past
/// [`MAX_FORMAT_WIDTH`], or taken from the arguments (`*`, whose size is not in the format
/// string), is refused.
fn printf_widths(format: &str) -> Result<usize, Error> {
    let wide = |n: usize| {
        if n > MAX_FORMAT_WIDTH {
            Err(budget::too_costly(format!("`format` pads to {n}, more than {MAX_FORMAT_WIDTH}")))
        } else {
            Ok(n)
        }
    };
    let mut total = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        if chars.peek() == Some(&'(') {
            // A mapping key: `%(name)s`.
            for k in chars.by_ref() {
                if k == ')' {
                    break;
                }
            }
        }
        let mut number = 0usize;
        while let Some(&c) = chars.peek() {
            match c {
                '0'..='9' => {
                    let digit = c.to_digit(10).map_or(0, |d| d as usize);
                    number = number.saturating_mul(10).saturating_add(digit);
                }
                '.' => {
                    total = total.saturating_add(wide(number)?);
                    number = 0;
                }
                '-' | '+' | ' ' | '#' => {}
                '*' => {
                    return Err(budget::too_costly(
                        "`format` takes no width or precision from its arguments (`*`)".into(),
                    ));
                }
                _ => break,
            }
            chars.next();
        }
        total = total.saturating_add(wide(number)?);
        chars.next();
    }
    Ok(total)
}

/// minijinja's builtin filters by name (aliases included), to be called from their checked
/// versions.
fn builtin_filters() -> Vec<(&'static str, Value)> {
    vec![
        ("safe", Value::from_function(filters::safe)),
        ("escape", Value::from_function(filters::escape)),
        ("e", Value::from_function(filters::escape)),
        ("lower", Value::from_function(filters::lower)),
        ("upper", Value::from_function(filters::upper)),
        ("title", Value::from_function(filters::title)),
        ("capitalize", Value::from_function(filters::capitalize)),
        ("replace", Value::from_function(filters::replace)),
        ("length", Value::from_function(filters::length)),
        ("count", Value::from_function(filters::length)),
        ("dictsort", Value::from_function(filters::dictsort)),
        ("items", Value::from_function(filters::items)),
        ("reverse", Value::from_function(filters::reverse)),
        ("trim", Value::from_function(filters::trim)),
        ("join", Value::from_function(filters::join)),
        ("split", Value::from_function(filters::split)),
        ("lines", Value::from_function(filters::lines)),
        ("default", Value::from_function(filters::default)),
        ("d", Value::from_function(filters::default)),
        ("round", Value::from_function(filters::round)),
        ("abs", Value::from_function(filters::abs)),
        ("int", Value::from_function(filters::int)),
        ("float", Value::from_function(filters::float)),
        ("attr", Value::from_function(filters::attr)),
        ("first", Value::from_function(filters::first)),
        ("last", Value::from_function(filters::last)),
        ("min", Value::from_function(filters::min)),
        ("max", Value::from_function(filters::max)),
        ("sort", Value::from_function(filters::sort)),
        ("list", Value::from_function(filters::list)),
        ("string", Value::from_function(filters::string)),
        ("bool", Value::from_function(filters::bool)),
        ("batch", Value::from_function(filters::batch)),
        ("slice", Value::from_function(filters::slice)),
        ("sum", Value::from_function(filters::sum)),
        ("indent", Value::from_function(filters::indent)),
        ("select", Value::from_function(filters::select)),
        ("reject", Value::from_function(filters::reject)),
        ("selectattr", Value::from_function(filters::selectattr)),
        ("rejectattr", Value::from_function(filters::rejectattr)),
        ("map", Value::from_function(filters::map)),
        ("groupby", Value::from_function(filters::groupby)),
        ("unique", Value::from_function(filters::unique)),
        ("chain", Value::from_function(filters::chain)),
        ("zip", Value::from_function(filters::zip)),
        ("pprint", Value::from_function(filters::pprint)),
        ("format", Value::from_function(filters::format)),
    ]
}
