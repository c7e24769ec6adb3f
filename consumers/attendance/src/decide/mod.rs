//! Attendance decisions: no I/O, no clock; state in, outcome out. Every instant comes from a
//! record (the command's acceptance time, a check-out's `effective_at`, a scheduler's `up_to`).

pub mod bookings;
pub mod entitlements;
pub mod sessions;
pub mod venue;

use chrono::{DateTime, Utc};

/// A command that cannot be meant as written: the caller's bug, not a business refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// A well-formed command the domain refuses: `code` is machine-readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub reason: String,
}

impl Refusal {
    pub fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}

pub(crate) fn instant(field: &str, ms: i64) -> Result<DateTime<Utc>, Malformed> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Malformed(format!("{field} {ms} is not a valid time")))
}

pub(crate) fn filled(fields: &[(&str, &str)]) -> Result<(), Malformed> {
    match studyspot_schemas::first_blank(fields) {
        Some(field) => Err(Malformed(format!("{field} is empty"))),
        None => Ok(()),
    }
}
