//! Billing: payments over provider connectors, refunds, payment methods and invoices; plans,
//! coupons and subscriptions with renewals, proration, usage and dunning. Pure decisions in
//! [`decide`], the shell in [`handler`], the calls to payment providers in [`provider`], the
//! clock that asks for due billing in [`scheduler`].

pub mod decide;
pub mod handler;
pub mod provider;
pub mod scheduler;
mod shell;

pub use handler::BillingHandler;

pub const NAME: &str = "billing";
pub const DEFAULT_OPS_PORT: u16 = 9101;
