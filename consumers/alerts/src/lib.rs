//! Alerts: metric samples now; rules, the alert lifecycle and silences follow. Pure decisions in
//! [`decide`], the shell in [`handler`].

pub mod decide;
pub mod handler;

pub use handler::AlertsHandler;

pub const NAME: &str = "alerts";
pub const DEFAULT_OPS_PORT: u16 = 9104;
