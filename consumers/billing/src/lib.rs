//! Billing: payments now; invoices, refunds and subscriptions follow. Pure decisions in
//! [`decide`], the shell in [`handler`].

pub mod decide;
pub mod handler;

pub use handler::BillingHandler;

pub const NAME: &str = "billing";
pub const DEFAULT_OPS_PORT: u16 = 9101;
