//! Billing's projection: payments, refunds, payment methods, invoices, and the provider calls
//! billing's worker makes; plans, coupons, subscriptions, usage and credit notes.

use sqlx::migrate::Migrator;

pub mod calls;
pub mod credits;
pub mod invoices;
pub mod methods;
pub mod payments;
pub mod plans;
pub mod reads;
pub mod refunds;
pub mod subscription_reads;
pub mod subscriptions;
pub mod usage;

pub use credits::CreditNote;
pub use invoices::{Invoice, InvoiceLine};
pub use methods::PaymentMethod;
pub use payments::{Payment, insert_payment, payment_exists};
pub use plans::{Allowance, Coupon, Plan};
pub use refunds::Refund;
pub use subscriptions::Subscription;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");
