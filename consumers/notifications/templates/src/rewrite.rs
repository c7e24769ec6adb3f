//! Rewrites the operators minijinja gives no hook for into calls of checked functions:
//! `a ~ b` → `__studyspot_concat(a, b)`, `a + b` → `__studyspot_add(a, b)`, `a * b` →
//! `__studyspot_mul(a, b)` (see `checked`), and the value of every `{% set … = value %}` into
//! `__studyspot_keep((value))`, which refuses a value nested past a limit (a list wrapped in a
//! list ten thousand times over, one `set` a step, overflowed the stack when dropped or
//! written). The VM applies an operator, and folds one of
//! constants while compiling, without asking the environment, so a template's source is changed
//! instead: parsed (minijinja's own parser, through its `unstable_machinery`), each such operator
//! found in the syntax tree, and the call written around its operands' source. Precedence is the
//! parser's: an operator's span starts where its left operand does (a parenthesis included) and
//! ends where its right one does, so wrapping the span and turning the operator into a comma
//! keeps every operand whole.

use minijinja::{
    Error,
    machinery::{WhitespaceConfig, parse},
    syntax::SyntaxConfig,
};
use serde_json::Value as Json;

use crate::checked::{ADD, CONCAT, KEEP, MUL};

/// `source` with every `~`, `+` and `*` operator a call of its checked function. A syntax error is
/// the parser's, as compiling the template would report it.
pub(crate) fn checked_operators(name: &str, source: &str) -> Result<String, Error> {
    let ast = parse(source, name, SyntaxConfig, WhitespaceConfig::default())?;
    let tree = serde_json::to_value(&ast).map_err(|e| internal(format!("the syntax tree: {e}")))?;
    let mut operators = Vec::new();
    let mut kept = Vec::new();
    let mut raw = Vec::new();
    find_operators(&tree, &mut operators, &mut kept, &mut raw);
    let mut edits = Vec::with_capacity(operators.len() * 3 + kept.len() * 2);
    for (start, end) in raw {
        edits.extend(raw_text_steps(source, start, end));
    }
    for (target_end, end) in kept {
        let after = source
            .get(target_end..end)
            .ok_or_else(|| internal("a set's value is out of the source".into()))?;
        let assign = after.find('=').ok_or_else(|| internal("no `=` in a set".into()))?;
        let value = &after[assign + 1..];
        let start = target_end + assign + 1 + (value.len() - value.trim_start().len());
        // Two parentheses: a tuple (`set a, b = x, y`) stays one argument.
        // The outermost call where it starts: the value holds every operator in it.
        edits.push(Edit { at: start, order: (1, 0), remove: 0, text: format!("{KEEP}((") });
        edits.push(Edit { at: end, order: (0, 0), remove: 0, text: "))".into() });
    }
    for op in operators {
        let between = source
            .get(op.left_end..op.right_start)
            .ok_or_else(|| internal("an operator's operands are out of the source".into()))?;
        let at = between
            .find(op.symbol)
            .map(|i| op.left_end + i)
            .ok_or_else(|| internal(format!("no `{}` between its operands", op.symbol)))?;
        edits.push(Edit {
            at: op.start,
            order: (1, usize::MAX - (op.end - op.start)),
            remove: 0,
            text: format!("{}(", op.function),
        });
        edits.push(Edit { at, order: (2, 0), remove: op.symbol.len(), text: ",".into() });
        edits.push(Edit { at: op.end, order: (0, 0), remove: 0, text: ")".into() });
    }
    // At one place: closing an operand before opening the next, the outer call before the inner.
    edits.sort_by_key(|e| (e.at, e.order));
    let mut out = String::with_capacity(source.len() + edits.len() * 24);
    let mut copied = 0;
    for edit in edits {
        out.push_str(source.get(copied..edit.at).ok_or_else(|| internal("overlapping rewrites".into()))?);
        out.push_str(&edit.text);
        copied = edit.at + edit.remove;
    }
    out.push_str(source.get(copied..).unwrap_or_default());
    Ok(out)
}

fn internal(detail: String) -> Error {
    Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("cannot check the template's operators: {detail}"),
    )
}

struct Edit {
    at: usize,
    order: (u8, usize),
    remove: usize,
    text: String,
}

/// One operator to rewrite: its span, where its left operand ends and its right one starts.
struct Operator {
    function: &'static str,
    symbol: &'static str,
    start: usize,
    end: usize,
    left_end: usize,
    right_start: usize,
}

/// Walks the serialized tree (every node is `{"expr"|"stmt": kind, "inner": [node, span]}`),
/// whatever statements hold the expressions: the operators to rewrite, and the source range of
/// each `set` statement's value.
fn find_operators(
    node: &Json,
    found: &mut Vec<Operator>,
    kept: &mut Vec<(usize, usize)>,
    raw: &mut Vec<(usize, usize)>,
) {
    match node {
        Json::Object(map) => {
            if map.get("stmt").and_then(Json::as_str) == Some("EmitRaw")
                && let (Some(start), Some(end)) =
                    (offset(&node["inner"][1], "start_offset"), offset(&node["inner"][1], "end_offset"))
            {
                raw.push((start, end));
            }
            if map.get("expr").and_then(Json::as_str) == Some("BinOp")
                && let Some(op) = operator(node)
            {
                found.push(op);
            }
            if map.get("stmt").and_then(Json::as_str) == Some("Set")
                && let Some(range) = set_value(&node["inner"][0])
            {
                kept.push(range);
            }
            map.values().for_each(|v| find_operators(v, found, kept, raw));
        }
        Json::Array(items) => items.iter().for_each(|v| find_operators(v, found, kept, raw)),
        _ => {}
    }
}

/// Raw template text costs minijinja one step however long it is, so a loop (or a macro called in
/// one) copying a long text into a capture (`{% set c %}…{% endset %}`, a `filter` block, a
/// `caller()`) could build gigabytes within the fuel, out of the output's sight. An empty
/// expression every [`RAW_STEP_BYTES`] of raw text makes its length cost fuel too: what a render
/// copies is then at most fuel × step bytes. Text in a `{% raw %}` block is left alone (an
/// expression there would be printed), as is a text whose span is not the text itself.
fn raw_text_steps(source: &str, start: usize, end: usize) -> Vec<Edit> {
    let Some(text) = source.get(start..end) else { return Vec::new() };
    let before = source[..start].trim_end();
    let in_raw_block = before.strip_suffix("%}").is_some_and(|tag| {
        let tag = tag.trim_end_matches('-').trim_end();
        tag.ends_with("raw")
            && tag[..tag.len() - 3].trim_end().trim_end_matches('-').trim_end().ends_with("{%")
    });
    if in_raw_block || text.len() <= RAW_STEP_BYTES {
        return Vec::new();
    }
    let mut edits = Vec::new();
    let mut last = 0;
    for (i, _) in text.char_indices() {
        // Not right after a `{`: it would open the expression a character early.
        if i - last >= RAW_STEP_BYTES && !text[..i].ends_with('{') {
            edits.push(Edit { at: start + i, order: (3, 0), remove: 0, text: RAW_STEP.into() });
            last = i;
        }
    }
    edits
}

/// What is put between two steps of raw text: it prints nothing and costs fuel.
const RAW_STEP: &str = "{{ '' }}";
/// The most raw text one step of fuel may copy.
pub(crate) const RAW_STEP_BYTES: usize = 128;

fn offset(span: &Json, key: &str) -> Option<usize> {
    span[key].as_u64().and_then(|n| usize::try_from(n).ok())
}

/// Where a `set` statement's value starts (after its target and `=`, whitespace aside; the
/// value's own span may start inside a parenthesis, and a tuple's at its second item) and ends
/// (its span's end, before any closing parenthesis of a value in parentheses, which the two
/// opened around it balance).
fn set_value(set: &Json) -> Option<(usize, usize)> {
    let target_end = offset(&set["target"]["inner"][1], "end_offset")?;
    let end = offset(&set["expr"]["inner"][1], "end_offset")?;
    Some((target_end, end))
}

fn operator(node: &Json) -> Option<Operator> {
    let (function, symbol) = match node["inner"][0]["op"].as_str()? {
        "Concat" => (CONCAT, "~"),
        "Add" => (ADD, "+"),
        "Mul" => (MUL, "*"),
        _ => return None,
    };
    let span = &node["inner"][1];
    let left = &node["inner"][0]["left"]["inner"][1];
    let right = &node["inner"][0]["right"]["inner"][1];
    Some(Operator {
        function,
        symbol,
        start: offset(span, "start_offset")?,
        end: offset(span, "end_offset")?,
        left_end: offset(left, "end_offset")?,
        right_start: offset(right, "start_offset")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(source: &str) -> String {
        checked_operators("body", source).expect("parses")
    }

    #[test]
    fn each_operator_becomes_a_call_around_its_whole_operands() {
        assert_eq!(rewritten("{{ a ~ b }}"), "{{ __studyspot_concat(a , b) }}");
        assert_eq!(rewritten("{{ a ~ b ~ c }}"), "{{ __studyspot_concat(__studyspot_concat(a , b) , c) }}");
        assert_eq!(rewritten("{{ (a ~ b) * 2 }}"), "{{ __studyspot_mul((__studyspot_concat(a , b)) , 2) }}");
        assert_eq!(rewritten("{{ a + b * c }}"), "{{ __studyspot_add(a , __studyspot_mul(b , c)) }}");
        assert_eq!(rewritten("{{ x|upper ~ (y) }}"), "{{ __studyspot_concat(x|upper , (y)) }}");
        assert_eq!(
            rewritten("{% set s = 'x' * 3 %}{% for i in [1] + [2] %}{{ i - 1 }}{% endfor %}"),
            "{% set s = __studyspot_keep((__studyspot_mul('x' , 3))) %}{% for i in __studyspot_add([1] , [2]) %}{{ i - 1 }}{% endfor %}"
        );
        assert_eq!(
            rewritten("{% set ns.l = [ns.l] %}{% set a, b = (1), x %}{% set c %}{{ d }}{% endset %}"),
            "{% set ns.l = __studyspot_keep(([ns.l])) %}{% set a, b = __studyspot_keep(((1), x)) %}{% set c %}{{ d }}{% endset %}"
        );
        assert_eq!(rewritten("{% set x = (a) %}"), "{% set x = __studyspot_keep(((a))) %}");
        // Other operators, raw text and a splat stay as they are.
        assert_eq!(rewritten("a ~ b * c {{ 2 ** 3 }}{{ f(*xs) }}"), "a ~ b * c {{ 2 ** 3 }}{{ f(*xs) }}");
    }

    #[test]
    fn long_raw_text_costs_a_step_of_fuel_per_slice() {
        let text = "a".repeat(300);
        let step = "{{ '' }}";
        assert_eq!(
            rewritten(&format!("{{% if x %}}{text}{{% endif %}}")),
            format!("{{% if x %}}{}{step}{}{step}{}{{% endif %}}", &text[..128], &text[..128], &text[..44])
        );
        // Never right after a `{`, never inside a raw block, and short texts as they are.
        let braces = format!("{}{{{}", "b".repeat(127), "c".repeat(200));
        assert!(!rewritten(&braces).contains("{{{"), "{}", rewritten(&braces));
        let raw = format!("{{% raw %}}{text}{{% endraw %}}");
        assert_eq!(rewritten(&raw), raw);
        assert_eq!(rewritten("short {{ x }} text"), "short {{ x }} text");
    }
}
