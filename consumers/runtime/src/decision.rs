//! What every domain's decisions and handlers share: the two ways a command fails ([`Malformed`],
//! [`Refusal`]) and [`Out`], the follow-on records of one inbound message.

use chrono::{DateTime, Utc};
use studyspot_schemas::{EventMetadata, Record, Rejection};

use crate::{Effects, HandleError, Inbound};

/// The command cannot be meant as written (the caller's bug, not a business refusal): it goes to
/// the dead-letter topic. The gateway lets none of these through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// A well-formed command the domain refuses: a `…CommandRejected` event with this
/// machine-readable code and a reason for people.
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

/// The dead letter a malformed command `C` becomes.
pub fn malformed<C: Record>(m: Malformed) -> HandleError {
    HandleError::malformed(C::FULL_NAME, m.0)
}

/// The first of `fields` (name, value) that is blank, as malformed.
pub fn filled(fields: &[(&str, &str)]) -> Result<(), Malformed> {
    match studyspot_schemas::first_blank(fields) {
        Some(field) => Err(Malformed(format!("{field} is empty"))),
        None => Ok(()),
    }
}

/// A field's milliseconds since the epoch as an instant, or malformed.
pub fn instant(field: &str, ms: i64) -> Result<DateTime<Utc>, Malformed> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Malformed(format!("{field} {ms} is not a valid time")))
}

/// The follow-on records of one inbound message, numbered in the order they are emitted: their
/// ids derive from the message's and that number, so a re-applied message emits the same ids.
pub struct Out<'a> {
    pub message: &'a Inbound,
    effects: &'a mut Effects,
    actor: &'static str,
    next: u32,
}

impl<'a> Out<'a> {
    pub fn new(message: &'a Inbound, effects: &'a mut Effects, actor: &'static str) -> Self {
        Self { message, effects, actor, next: 0 }
    }

    /// The organization the message acts in.
    pub fn org(&self) -> &str {
        &self.message.metadata.organization_id
    }

    /// The id of the command being decided (what a rejection names).
    pub fn command_id(&self) -> String {
        self.message.metadata.event_id.clone()
    }

    /// The metadata of the next follow-on record.
    pub fn metadata(&mut self) -> EventMetadata {
        self.next += 1;
        self.message.follow_on(self.next - 1, self.actor)
    }

    pub fn emit<R: Record>(&mut self, record: impl FnOnce(EventMetadata) -> R) {
        let metadata = self.metadata();
        self.effects.emit(record(metadata));
    }

    /// Emits a record that already carries the metadata [`Out::metadata`] gave it (its event id
    /// written to the projection first).
    pub fn emit_record<R: Record>(&mut self, record: R) {
        self.effects.emit(record);
    }

    /// Emits the domain's rejection of the command (its code and reason become the outcome).
    pub fn reject<R: Rejection>(&mut self, rejection: impl FnOnce(EventMetadata) -> R) {
        let metadata = self.metadata();
        self.effects.reject(rejection(metadata));
    }
}
