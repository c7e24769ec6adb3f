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
    /// A zone without a seat (a seat's zone is the seat's).
    #[avro(default = "null")]
    pub zone_id: Option<String>,
    /// A signed QR token (`studyspot-qr-tokens`) scanned at the seat or shown by the member.
    #[avro(default = "null")]
    pub qr_token: Option<String>,
    /// Staff checked the member in (at the desk): no QR token needed.
    #[avro(default = "false")]
    pub staff_assisted: bool,
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
    #[avro(default = "null")]
    pub zone_id: Option<String>,
    /// Members present in the zone after this check-in.
    #[avro(default = "null")]
    pub zone_occupancy: Option<i32>,
    /// The booking this check-in honours.
    #[avro(default = "null")]
    pub booking_id: Option<String>,
    /// What entitles the member: the subscription's id, or the pass's.
    #[avro(default = "null")]
    pub subscription_id: Option<String>,
    #[avro(default = "null")]
    pub pass_id: Option<String>,
    /// The venue's name when the member checked in, for messages that speak to people.
    #[avro(default = "null")]
    pub venue_name: Option<String>,
    /// What is printed on the seat.
    #[avro(default = "null")]
    pub seat_label: Option<String>,
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

/// Weekdays as `weekday` fields name them: 1 = Monday … 7 = Sunday (ISO 8601).
pub const WEEKDAYS: std::ops::RangeInclusive<i32> = 1..=7;
/// Why a session ended.
pub const CHECK_OUT_REASONS: [&str; 5] =
    ["manual", "closing_time", "max_stay", "entitlement_lost", "operator"];
/// How a booking repeats.
pub const RECURRENCES: [&str; 2] = ["daily", "weekly"];

/// A part of a venue with a capacity of its own (a silent room, a group area).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct Zone {
    pub zone_id: String,
    pub name: String,
    pub capacity: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct Seat {
    pub seat_id: String,
    #[avro(default = "null")]
    pub zone_id: Option<String>,
    pub label: String,
}

/// One opening interval of a weekday, in the venue's time zone: `opens` and `closes` as `HH:MM`
/// (`closes` may be `24:00`). A weekday without an interval is closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct OpeningHours {
    /// 1 = Monday … 7 = Sunday.
    pub weekday: i32,
    pub opens: String,
    pub closes: String,
}

/// The venue's rules, enforced (not advisory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct VenueLimits {
    /// Bookings a member may hold that have not ended.
    pub max_bookings_per_member: i32,
    /// Bookings of one member that may overlap in time.
    pub max_concurrent_bookings: i32,
    /// How far ahead a booking may start.
    pub max_days_ahead: i32,
    pub min_booking_minutes: i32,
    pub max_booking_minutes: i32,
    /// A booking not checked into this long after it starts is released as a no-show (15–60).
    pub no_show_grace_minutes: i32,
    /// A session is checked out automatically (and an overstay reported) after this long.
    pub max_stay_minutes: i32,
}

/// Define a venue, or replace its definition (zones, seats, hours, capacity, limits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct DefineVenue {
    pub metadata: EventMetadata,
    /// `ven_…`, chosen by the caller.
    pub venue_id: String,
    pub name: String,
    /// IANA, e.g. `Europe/Berlin`: opening hours and closing times are in it.
    pub time_zone: String,
    pub capacity: i32,
    #[avro(default = "[]")]
    pub zones: Vec<Zone>,
    #[avro(default = "[]")]
    pub seats: Vec<Seat>,
    #[avro(default = "[]")]
    pub opening_hours: Vec<OpeningHours>,
    pub limits: VenueLimits,
    /// Members check in with a QR token (staff at the desk need none).
    #[avro(default = "true")]
    pub qr_required: bool,
}
record!(
    DefineVenue,
    "studyspot.attendance.DefineVenue",
    "attendance/DefineVenue.avsc",
    COMMANDS,
    key = |r| &r.venue_id
);

/// Grant a member a pass to a venue for a time range (a day pass, a trial visit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct GrantPass {
    pub metadata: EventMetadata,
    pub pass_id: String,
    pub member_id: String,
    pub venue_id: String,
    pub valid_from: i64,
    pub valid_until: i64,
}
record!(
    GrantPass,
    "studyspot.attendance.GrantPass",
    "attendance/GrantPass.avsc",
    COMMANDS,
    key = |r| &r.venue_id
);

/// End the member's open session at the venue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct CheckOut {
    pub metadata: EventMetadata,
    pub member_id: String,
    pub venue_id: String,
    /// The session meant; absent: the member's open session at the venue.
    #[avro(default = "null")]
    pub session_id: Option<String>,
    /// manual, entitlement_lost or operator (closing_time and max_stay come from `RunAttendance`).
    pub reason: String,
    /// When the session ended (default: when accepted).
    #[avro(default = "null")]
    pub effective_at: Option<i64>,
}
record!(
    CheckOut,
    "studyspot.attendance.CheckOut",
    "attendance/CheckOut.avsc",
    COMMANDS,
    key = |r| &r.venue_id
);

/// How a booking repeats: `count` occurrences in all, `frequency` apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct Recurrence {
    /// daily or weekly.
    pub frequency: String,
    pub count: i32,
}

/// Book a seat or a zone (or the venue) for a time range, once or recurring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct CreateBooking {
    pub metadata: EventMetadata,
    /// `bkg_…`; the n-th occurrence of a series (n ≥ 2) is `<booking_id>-<n>`.
    pub booking_id: String,
    pub member_id: String,
    pub venue_id: String,
    #[avro(default = "null")]
    pub seat_id: Option<String>,
    #[avro(default = "null")]
    pub zone_id: Option<String>,
    pub starts_at: i64,
    pub ends_at: i64,
    #[avro(default = "null")]
    pub recurrence: Option<Recurrence>,
}
record!(
    CreateBooking,
    "studyspot.attendance.CreateBooking",
    "attendance/CreateBooking.avsc",
    COMMANDS,
    key = |r| &r.venue_id
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct CancelBooking {
    pub metadata: EventMetadata,
    pub booking_id: String,
    pub member_id: String,
    pub venue_id: String,
}
record!(
    CancelBooking,
    "studyspot.attendance.CancelBooking",
    "attendance/CancelBooking.avsc",
    COMMANDS,
    key = |r| &r.venue_id
);

/// Cancel every booking of the member at the venue that starts in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct CancelBookings {
    pub metadata: EventMetadata,
    pub member_id: String,
    pub venue_id: String,
    pub from: i64,
    pub to: i64,
}
record!(
    CancelBookings,
    "studyspot.attendance.CancelBookings",
    "attendance/CancelBookings.avsc",
    COMMANDS,
    key = |r| &r.venue_id
);

/// The scheduler's tick for one venue: everything due up to `up_to` happens (check-outs at
/// closing time or after the maximum stay, no-shows released).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct RunAttendance {
    pub metadata: EventMetadata,
    pub venue_id: String,
    pub up_to: i64,
}
record!(
    RunAttendance,
    "studyspot.attendance.RunAttendance",
    "attendance/RunAttendance.avsc",
    COMMANDS,
    key = |r| &r.venue_id
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct VenueDefined {
    pub metadata: EventMetadata,
    pub venue_id: String,
    pub name: String,
    pub time_zone: String,
    pub capacity: i32,
    pub zones: Vec<Zone>,
    pub seats: i32,
    /// 1 for the first definition, then one more per change.
    pub version: i32,
}
record!(
    VenueDefined,
    "studyspot.attendance.VenueDefined",
    "attendance/VenueDefined.avsc",
    EVENTS,
    key = |r| &r.venue_id
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct PassGranted {
    pub metadata: EventMetadata,
    pub pass_id: String,
    pub member_id: String,
    pub venue_id: String,
    pub valid_from: i64,
    pub valid_until: i64,
}
record!(
    PassGranted,
    "studyspot.attendance.PassGranted",
    "attendance/PassGranted.avsc",
    EVENTS,
    key = |r| &r.venue_id
);

/// A session ended; its duration is what billing counts as usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct SessionCompleted {
    pub metadata: EventMetadata,
    pub session_id: String,
    pub member_id: String,
    pub venue_id: String,
    #[avro(default = "null")]
    pub seat_id: Option<String>,
    #[avro(default = "null")]
    pub zone_id: Option<String>,
    pub checked_in_at: i64,
    pub checked_out_at: i64,
    pub duration_seconds: i64,
    /// manual, closing_time, max_stay, entitlement_lost or operator.
    pub reason: String,
    /// Members present at the venue after this check-out.
    pub occupancy: i32,
    #[avro(default = "null")]
    pub zone_occupancy: Option<i32>,
    /// The subscription the session counts against (absent for a pass).
    #[avro(default = "null")]
    pub subscription_id: Option<String>,
}
record!(
    SessionCompleted,
    "studyspot.attendance.SessionCompleted",
    "attendance/SessionCompleted.avsc",
    EVENTS,
    key = |r| &r.venue_id
);

/// A member stayed beyond the maximum stay (they are checked out with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct OverstayDetected {
    pub metadata: EventMetadata,
    pub session_id: String,
    pub member_id: String,
    pub venue_id: String,
    #[avro(default = "null")]
    pub seat_id: Option<String>,
    pub checked_in_at: i64,
    /// When the stay should have ended.
    pub limit_at: i64,
    pub max_stay_minutes: i32,
    /// The venue's name, for messages that speak to people.
    #[avro(default = "null")]
    pub venue_name: Option<String>,
}
record!(
    OverstayDetected,
    "studyspot.attendance.OverstayDetected",
    "attendance/OverstayDetected.avsc",
    EVENTS,
    key = |r| &r.venue_id
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct BookingCreated {
    pub metadata: EventMetadata,
    pub booking_id: String,
    pub member_id: String,
    pub venue_id: String,
    #[avro(default = "null")]
    pub seat_id: Option<String>,
    #[avro(default = "null")]
    pub zone_id: Option<String>,
    pub starts_at: i64,
    pub ends_at: i64,
    /// The first booking's id for every occurrence of a recurring booking.
    #[avro(default = "null")]
    pub series_id: Option<String>,
}
record!(
    BookingCreated,
    "studyspot.attendance.BookingCreated",
    "attendance/BookingCreated.avsc",
    EVENTS,
    key = |r| &r.venue_id
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct BookingCancelled {
    pub metadata: EventMetadata,
    pub booking_id: String,
    pub member_id: String,
    pub venue_id: String,
    pub starts_at: i64,
}
record!(
    BookingCancelled,
    "studyspot.attendance.BookingCancelled",
    "attendance/BookingCancelled.avsc",
    EVENTS,
    key = |r| &r.venue_id
);

/// A booking was not checked into within the grace period: its seat is released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.attendance")]
pub struct BookingNoShow {
    pub metadata: EventMetadata,
    pub booking_id: String,
    pub member_id: String,
    pub venue_id: String,
    #[avro(default = "null")]
    pub seat_id: Option<String>,
    #[avro(default = "null")]
    pub zone_id: Option<String>,
    pub starts_at: i64,
    pub released_at: i64,
    /// The venue's name, for messages that speak to people.
    #[avro(default = "null")]
    pub venue_name: Option<String>,
}
record!(
    BookingNoShow,
    "studyspot.attendance.BookingNoShow",
    "attendance/BookingNoShow.avsc",
    EVENTS,
    key = |r| &r.venue_id
);
