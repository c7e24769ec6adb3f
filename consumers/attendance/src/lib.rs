//! Attendance: who is where. Pure decisions in [`decide`], the shell in [`handler`].

pub mod decide;
pub mod handler;

pub use handler::AttendanceHandler;

pub const NAME: &str = "attendance";
pub const DEFAULT_OPS_PORT: u16 = 9103;
