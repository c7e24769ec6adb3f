//! Billing: payments over provider connectors, refunds, payment methods and invoices
//! (subscriptions follow). Pure decisions in [`decide`], the shell in [`handler`], the calls to
//! payment providers in [`provider`].

pub mod decide;
pub mod handler;
pub mod provider;

pub use handler::BillingHandler;

pub const NAME: &str = "billing";
pub const DEFAULT_OPS_PORT: u16 = 9101;
