//! Attendance: venues, seats, check-ins and sessions.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

pub use crate::catalogue::{ATTENDANCE_COMMANDS as COMMANDS, ATTENDANCE_EVENTS as EVENTS};
use crate::{
    EventMetadata,
    record::{record, rejection},
};

/// A member asks to start a session at a venue (optionally at one seat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct CheckIn {
    pub metadata: EventMetadata,
    /// `ses_…`, chosen by the caller so a retried command names the same session.
    pub session_id: String,
    pub member_id: String,
    pub venue_id: String,
    #[avro(default = "null")]
    pub seat_id: Option<String>,
}
record!(CheckIn, "studyspot.attendance.CheckIn", "attendance/CheckIn.avsc", COMMANDS, key = |r| &r.venue_id);

/// A session started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct CheckedIn {
    pub metadata: EventMetadata,
    pub session_id: String,
    pub member_id: String,
    pub venue_id: String,
    #[avro(default = "null")]
    pub seat_id: Option<String>,
    /// Members present at the venue after this check-in.
    pub occupancy: i32,
}
record!(
    CheckedIn,
    "studyspot.attendance.CheckedIn",
    "attendance/CheckedIn.avsc",
    EVENTS,
    key = |r| &r.venue_id
);

/// Attendance refused a well-formed command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct CommandRejected {
    pub metadata: EventMetadata,
    pub command_id: String,
    pub command_type: String,
    pub venue_id: String,
    pub code: String,
    pub reason: String,
}
record!(
    CommandRejected,
    "studyspot.attendance.CommandRejected",
    "attendance/CommandRejected.avsc",
    EVENTS,
    key = |r| &r.venue_id
);

rejection!(CommandRejected);
