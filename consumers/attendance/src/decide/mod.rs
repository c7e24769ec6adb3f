//! Attendance decisions: no I/O, no clock; state in, events out. Every instant comes from a
//! record (the command's acceptance time, a check-out's `effective_at`, a scheduler's `up_to`).
//!
//! Each command has a `decide(&State, &Command, at) -> Result<Vec<Event>, Refusal>`: the state is
//! what the handler loaded (domain types, not rows), the events are what the handler writes to
//! the projection and emits, in their order. Every refusal is decided here.

pub mod bookings;
pub mod entitlements;
pub mod passes;
pub mod sessions;
pub mod tick;
pub mod venue;

use chrono::{DateTime, Utc};
pub use studyspot_consumer_runtime::{Malformed, Refusal, filled, instant};
use studyspot_schemas::attendance::{
    BookingCancelled, BookingCreated, BookingNoShow, CheckOut, CheckedIn, OverstayDetected, PassGranted,
    SessionCompleted, VenueDefined,
};

/// What a decision brings about. Each carries the record it is announced as (its metadata the
/// deciding command's until the handler numbers it as a follow-on) and what the projection keeps
/// beside it that the record does not say.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The venue as it is now defined, at this version.
    VenueDefined(VenueDefined, venue::Venue),
    PassGranted(PassGranted),
    /// A session opened; when it ends by itself and the single-use token it spent.
    CheckedIn(CheckedIn, sessions::Stay),
    OverstayDetected(OverstayDetected),
    SessionCompleted(SessionCompleted),
    /// A booking (or one occurrence of a series), released as a no-show at `no_show_at`.
    BookingCreated(BookingCreated, DateTime<Utc>),
    BookingCancelled(BookingCancelled),
    BookingNoShow(BookingNoShow),
    /// A member who lost their entitlement is checked out through a command on the venue's
    /// partition (occupancy stays ordered per venue).
    CheckOutAsked(CheckOut),
}

pub(crate) fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}
