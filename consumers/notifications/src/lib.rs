//! Notifications: messages to members and operators over email, SMS, WhatsApp, push, in-app and
//! webhooks. Pure decisions in [`decide`] (routing by preferences, quiet hours and caps;
//! templates), the shell in [`handler`], other domains' events turned into notifications in
//! [`triggers`].

pub mod alert_triggers;
pub mod campaigns;
pub mod decide;
pub mod delivery;
mod endpoints;
pub mod handler;
mod shell;
mod state;
pub mod tracking;
pub mod triggers;

pub use handler::NotificationsHandler;

pub const NAME: &str = "notifications";
pub const DEFAULT_OPS_PORT: u16 = 9102;
