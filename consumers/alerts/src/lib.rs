//! Alerts: metric samples (posted, and derived from billing's payment outcomes), rules, the
//! Alertmanager lifecycle with silences, inhibition and routing, and `AlertFired` /
//! `AlertResolved` for notifications. Pure decisions in [`decide`], the shell in [`handler`],
//! evaluation ticks from [`scheduler`].

pub mod dashboards;
pub mod decide;
pub mod derived;
pub mod groups;
pub mod handler;
pub mod health;
pub mod insight_scheduler;
pub mod logs;
pub mod reports;
pub mod retention;
pub mod scheduler;
mod shell;

pub use handler::AlertsHandler;

pub const NAME: &str = "alerts";
pub const DEFAULT_OPS_PORT: u16 = 9104;
