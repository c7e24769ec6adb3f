//! What one render may build beyond its output: every value a checked operation or filter makes
//! (and every value written, into the output or into a capture) is charged here, so a template
//! that builds large values one step at a time runs out long before memory or a thread's time
//! does. One budget per render, on the rendering thread (a render runs on one thread, start to
//! end); the limit hit is remembered so the render's error names it.

use std::{cell::Cell, fmt};

use minijinja::{Error, ErrorKind, Value};

use crate::{MAX_ITEMS, MAX_OUTPUT_BYTES, WORK_BYTES};

/// Which limit a render hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// A value larger than the output may be.
    Output,
    /// Too much built in all, or a sequence or width past its limit.
    Cost,
}

thread_local! {
    static SPENT: Cell<usize> = const { Cell::new(0) };
    static EXCEEDED: Cell<Option<Exceeded>> = const { Cell::new(None) };
}

/// Starts the budget of a render on this thread.
pub(crate) fn start() {
    SPENT.set(0);
    EXCEEDED.set(None);
}

/// The limit the render on this thread hit, if any.
pub(crate) fn exceeded() -> Option<Exceeded> {
    EXCEEDED.get()
}

fn refuse(which: Exceeded, what: String) -> Error {
    EXCEEDED.set(Some(which));
    Error::new(ErrorKind::InvalidOperation, what)
}

/// A value of `bytes` would be larger than any part may render to.
pub(crate) fn too_large(what: &str, bytes: usize) -> Error {
    refuse(Exceeded::Output, format!("{what} would be {bytes} bytes, more than {MAX_OUTPUT_BYTES}"))
}

/// Too costly: a sequence, a width or the work in all past its limit.
pub(crate) fn too_costly(what: String) -> Error {
    refuse(Exceeded::Cost, what)
}

/// Refuses a string of `bytes` past the output limit.
pub(crate) fn check_len(what: &str, bytes: usize) -> Result<(), Error> {
    if bytes > MAX_OUTPUT_BYTES { Err(too_large(what, bytes)) } else { Ok(()) }
}

/// Refuses a sequence of `items` past [`MAX_ITEMS`].
pub(crate) fn check_items(what: &str, items: usize) -> Result<(), Error> {
    if items > MAX_ITEMS {
        Err(too_costly(format!("{what} would hold {items} items, more than {MAX_ITEMS}")))
    } else {
        Ok(())
    }
}

/// Charges `bytes` of work to the render.
pub(crate) fn charge(bytes: usize) -> Result<(), Error> {
    let spent = SPENT.get().saturating_add(bytes);
    SPENT.set(spent);
    if spent > WORK_BYTES {
        Err(too_costly(format!("the template builds more than {WORK_BYTES} bytes of values")))
    } else {
        Ok(())
    }
}

/// What a value costs to hold: a string its bytes, a sequence or map 16 bytes an item (its items
/// are shared, not copied), anything else 16 bytes.
pub(crate) fn size(value: &Value) -> usize {
    match value.as_str() {
        Some(s) => s.len(),
        None => value.len().unwrap_or(1).saturating_mul(16),
    }
}

/// Refuses a built value past its limits and charges it.
pub(crate) fn built(what: &str, value: &Value) -> Result<(), Error> {
    match value.as_str() {
        Some(s) => check_len(what, s.len())?,
        None => {
            if let Some(items) = value.len() {
                check_items(what, items)?;
            }
        }
    }
    charge(size(value))
}

/// The length of `value` as text (what `{{ value }}` or `~` make of it), without making it:
/// counting stops past the output limit, so a huge sequence costs no more than the limit.
pub(crate) fn text_len(value: &Value) -> Result<usize, Error> {
    if let Some(s) = value.as_str() {
        return Ok(s.len());
    }
    text_len_of(format_args!("{value}"))
}

/// The length of `{value:#?}` (`pprint`), counted the same way.
pub(crate) fn pretty_len(value: &Value) -> Result<usize, Error> {
    text_len_of(format_args!("{value:#?}"))
}

fn text_len_of(args: fmt::Arguments<'_>) -> Result<usize, Error> {
    let mut counter = Counter(0);
    match fmt::write(&mut counter, args) {
        Ok(()) => Ok(counter.0),
        Err(_) => Err(too_large("the value as text", counter.0)),
    }
}

/// Counts bytes written, refusing those past the output limit.
struct Counter(usize);

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 = self.0.saturating_add(s.len());
        if self.0 > MAX_OUTPUT_BYTES { Err(fmt::Error) } else { Ok(()) }
    }
}
