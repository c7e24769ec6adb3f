//! Billing's projection: payments, refunds, payment methods, invoices, and the provider calls
//! billing's worker makes (subscriptions follow).

use sqlx::migrate::Migrator;

pub mod calls;
pub mod invoices;
pub mod methods;
pub mod payments;
pub mod reads;
pub mod refunds;

pub use invoices::{Invoice, InvoiceLine};
pub use methods::PaymentMethod;
pub use payments::{Payment, insert_payment, payment_exists};
pub use refunds::Refund;

pub static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");
