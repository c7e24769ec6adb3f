//! Notifications: messages to members and operators. Pure decisions in [`decide`], the shell in
//! [`handler`].

pub mod decide;
pub mod handler;

pub use handler::NotificationsHandler;

pub const NAME: &str = "notifications";
pub const DEFAULT_OPS_PORT: u16 = 9102;
