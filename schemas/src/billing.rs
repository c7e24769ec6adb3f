//! Billing: payments, invoices, subscriptions.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

pub use crate::catalogue::{BILLING_COMMANDS as COMMANDS, BILLING_EVENTS as EVENTS};
use crate::{
    EventMetadata,
    record::{record, rejection},
};

/// The payment methods a `method` field may name.
pub const PAYMENT_METHODS: [&str; 5] = ["card", "bank_transfer", "upi", "wallet", "cash"];

/// Ask billing to record a payment a member owes or makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct CreatePayment {
    pub metadata: EventMetadata,
    /// `pay_…`, chosen by the caller so a retried command names the same payment.
    pub payment_id: String,
    pub member_id: String,
    /// Amount in the currency's minor units (cents, paise); never a float.
    pub amount_minor: i64,
    /// ISO 4217 code, upper case.
    pub currency: String,
    /// card, bank_transfer, upi, wallet or cash.
    pub method: String,
    #[avro(default = "null")]
    pub description: Option<String>,
}
record!(
    CreatePayment,
    "studyspot.billing.CreatePayment",
    "billing/CreatePayment.avsc",
    COMMANDS,
    key = |r| &r.member_id
);

/// A payment exists and awaits processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct PaymentCreated {
    pub metadata: EventMetadata,
    pub payment_id: String,
    pub member_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub method: String,
    #[avro(default = "null")]
    pub description: Option<String>,
}
record!(
    PaymentCreated,
    "studyspot.billing.PaymentCreated",
    "billing/PaymentCreated.avsc",
    EVENTS,
    key = |r| &r.member_id
);

/// Billing refused a well-formed command; `code` is machine-readable, `reason` is for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct CommandRejected {
    pub metadata: EventMetadata,
    /// The event id of the refused command.
    pub command_id: String,
    /// The refused command's record full name.
    pub command_type: String,
    pub member_id: String,
    pub code: String,
    pub reason: String,
}
record!(
    CommandRejected,
    "studyspot.billing.CommandRejected",
    "billing/CommandRejected.avsc",
    EVENTS,
    key = |r| &r.member_id
);

rejection!(CommandRejected);
