//! Billing: payments, invoices, subscriptions.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

pub use crate::catalogue::{
    BILLING_CATALOG_COMMANDS as CATALOG_COMMANDS, BILLING_CATALOG_EVENTS as CATALOG_EVENTS,
    BILLING_COMMANDS as COMMANDS, BILLING_EVENTS as EVENTS,
};
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
    /// The invoice this payment pays (in part or in full).
    #[avro(default = "null")]
    pub invoice_id: Option<String>,
    /// A stored payment method (`pm_…`) of the member to charge.
    #[avro(default = "null")]
    pub payment_method_id: Option<String>,
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
    #[avro(default = "null")]
    pub invoice_id: Option<String>,
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

/// The payment states a `status` field may name.
pub const PAYMENT_STATUSES: [&str; 7] =
    ["created", "processing", "requires_action", "succeeded", "failed", "partially_refunded", "refunded"];
/// What a provider said about a charge (`RecordChargeOutcome.outcome`).
pub const CHARGE_OUTCOMES: [&str; 4] = ["succeeded", "failed", "requires_action", "processing"];
/// What a provider said about a refund (`RecordRefundOutcome.outcome`).
pub const REFUND_OUTCOMES: [&str; 3] = ["succeeded", "pending", "failed"];
/// The invoice states a `status` field may name.
pub const INVOICE_STATUSES: [&str; 5] = ["draft", "open", "paid", "void", "uncollectible"];

macro_rules! billing_record {
    ($ty:ident, $topic:ident, key = $key:ident) => {
        record!(
            $ty,
            concat!("studyspot.billing.", stringify!($ty)),
            concat!("billing/", stringify!($ty), ".avsc"),
            $topic,
            key = |r| &r.$key
        );
    };
}

mod subscriptions;
pub use subscriptions::*;

/// Ask billing to charge a created (or failed) payment through the provider its organization uses
/// for the payment's method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct ProcessPayment {
    pub metadata: EventMetadata,
    pub payment_id: String,
    pub member_id: String,
    /// Where a payer returns after a provider's redirect (3-D Secure, PayPal approval).
    #[avro(default = "null")]
    pub return_url: Option<String>,
    /// What some providers require of the payer (Razorpay's UPI: email, phone, IP, user agent).
    #[avro(default = "null")]
    pub payer_email: Option<String>,
    #[avro(default = "null")]
    pub payer_phone: Option<String>,
    /// The payer's client address and `User-Agent`, as the gateway saw them.
    #[avro(default = "null")]
    pub payer_ip: Option<String>,
    #[avro(default = "null")]
    pub payer_user_agent: Option<String>,
    /// The payer scans a QR code (a desktop) instead of opening a UPI app on this device.
    #[avro(default = "false")]
    pub scan_qr: bool,
}
billing_record!(ProcessPayment, COMMANDS, key = member_id);

/// Billing's provider worker reports what a provider said about a charge. Not for apps: the
/// gateway never produces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct RecordChargeOutcome {
    pub metadata: EventMetadata,
    pub payment_id: String,
    pub member_id: String,
    /// The provider call (the `ProcessPayment` command's id) this answers.
    pub call_id: String,
    /// stripe, paypal, razorpay or manual.
    pub connector: String,
    /// succeeded, failed, requires_action or processing.
    pub outcome: String,
    #[avro(default = "null")]
    pub provider_payment_id: Option<String>,
    /// The provider's decline or error code, when failed.
    #[avro(default = "null")]
    pub code: Option<String>,
    #[avro(default = "null")]
    pub message: Option<String>,
    /// redirect, upi_intent, upi_qr or staff_confirmation, when action is required.
    #[avro(default = "null")]
    pub action_kind: Option<String>,
    #[avro(default = "null")]
    pub action_url: Option<String>,
    /// The connector's fee (percentage + fixed, or what the provider reported), minor units.
    pub gateway_fee_minor: i64,
    /// The method's processing fee, minor units.
    pub processing_fee_minor: i64,
}
billing_record!(RecordChargeOutcome, COMMANDS, key = member_id);

/// Staff confirm that a cash or bank-transfer payment was received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct ConfirmManualPayment {
    pub metadata: EventMetadata,
    pub payment_id: String,
    pub member_id: String,
    /// A receipt or bank reference.
    #[avro(default = "null")]
    pub reference: Option<String>,
}
billing_record!(ConfirmManualPayment, COMMANDS, key = member_id);

/// Staff record a cash or bank-transfer payment they received for an invoice, in one step: the
/// payment is created succeeded (no provider is asked) and pays the invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct RecordManualPayment {
    pub metadata: EventMetadata,
    /// `pay_…`, chosen by the caller so a retried command names the same payment.
    pub payment_id: String,
    pub member_id: String,
    /// The invoice it pays (in part or in full).
    pub invoice_id: String,
    /// Amount in the currency's minor units; never a float.
    pub amount_minor: i64,
    /// ISO 4217 code, upper case: the invoice's.
    pub currency: String,
    /// cash or bank_transfer.
    pub method: String,
    /// A receipt or bank reference.
    #[avro(default = "null")]
    pub reference: Option<String>,
}
billing_record!(RecordManualPayment, COMMANDS, key = member_id);

/// Ask billing to refund a succeeded payment, fully (no amount) or in part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct RefundPayment {
    pub metadata: EventMetadata,
    /// `re_…`, chosen by the caller.
    pub refund_id: String,
    pub payment_id: String,
    pub member_id: String,
    /// Minor units; absent means everything not yet refunded.
    #[avro(default = "null")]
    pub amount_minor: Option<i64>,
    #[avro(default = "null")]
    pub reason: Option<String>,
}
billing_record!(RefundPayment, COMMANDS, key = member_id);

/// Billing's provider worker reports what a provider said about a refund.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct RecordRefundOutcome {
    pub metadata: EventMetadata,
    pub refund_id: String,
    pub payment_id: String,
    pub member_id: String,
    /// The provider call (the `RefundPayment` command's id) this answers.
    pub call_id: String,
    /// succeeded, pending or failed.
    pub outcome: String,
    #[avro(default = "null")]
    pub provider_refund_id: Option<String>,
    #[avro(default = "null")]
    pub code: Option<String>,
    #[avro(default = "null")]
    pub message: Option<String>,
}
billing_record!(RecordRefundOutcome, COMMANDS, key = member_id);

/// Store a member's payment method (a provider token, never card numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct AddPaymentMethod {
    pub metadata: EventMetadata,
    /// `pm_…`, chosen by the caller.
    pub payment_method_id: String,
    pub member_id: String,
    /// card, bank_transfer, upi, wallet or cash.
    pub method: String,
    /// The provider's token for it (e.g. Stripe `pm_…`), when the method needs one.
    #[avro(default = "null")]
    pub provider_token: Option<String>,
    /// For people, e.g. "Visa •••• 4242".
    #[avro(default = "null")]
    pub label: Option<String>,
    #[avro(default = "false")]
    pub make_default: bool,
}
billing_record!(AddPaymentMethod, COMMANDS, key = member_id);

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct InvoiceLine {
    pub description: String,
    pub quantity: i64,
    pub unit_amount_minor: i64,
    /// Tax on this line in basis points (1900 = 19 %).
    #[avro(default = "0")]
    pub tax_rate_bps: i32,
    /// The tax's name on the invoice, e.g. "VAT".
    #[avro(default = "null")]
    pub tax_name: Option<String>,
}

/// Ask billing to create an invoice; `finalize` numbers and opens it at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct CreateInvoice {
    pub metadata: EventMetadata,
    /// `inv_…`, chosen by the caller.
    pub invoice_id: String,
    pub member_id: String,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    /// Milliseconds since the Unix epoch.
    pub due_at: i64,
    #[avro(default = "true")]
    pub finalize: bool,
}
billing_record!(CreateInvoice, COMMANDS, key = member_id);

/// Ask billing to move an invoice: finalize a draft (`open`), `void` it or mark it `uncollectible`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct ChangeInvoiceStatus {
    pub metadata: EventMetadata,
    pub invoice_id: String,
    pub member_id: String,
    /// open, void or uncollectible.
    pub status: String,
}
billing_record!(ChangeInvoiceStatus, COMMANDS, key = member_id);

/// A charge went to a provider; `attempt` counts tries of this payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct PaymentProcessingStarted {
    pub metadata: EventMetadata,
    pub payment_id: String,
    pub member_id: String,
    pub attempt: i32,
}
billing_record!(PaymentProcessingStarted, EVENTS, key = member_id);

/// The money was captured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct PaymentSucceeded {
    pub metadata: EventMetadata,
    pub payment_id: String,
    pub member_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub method: String,
    pub connector: String,
    #[avro(default = "null")]
    pub provider_payment_id: Option<String>,
    pub gateway_fee_minor: i64,
    pub processing_fee_minor: i64,
    #[avro(default = "null")]
    pub invoice_id: Option<String>,
}
billing_record!(PaymentSucceeded, EVENTS, key = member_id);

/// The provider declined or the charge could not be made; `code` is the provider's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct PaymentFailed {
    pub metadata: EventMetadata,
    pub payment_id: String,
    pub member_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub method: String,
    pub connector: String,
    pub code: String,
    pub message: String,
}
billing_record!(PaymentFailed, EVENTS, key = member_id);

/// The payer (or staff, for cash) must act before the payment can complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct PaymentRequiresAction {
    pub metadata: EventMetadata,
    pub payment_id: String,
    pub member_id: String,
    pub connector: String,
    pub action_kind: String,
    #[avro(default = "null")]
    pub action_url: Option<String>,
}
billing_record!(PaymentRequiresAction, EVENTS, key = member_id);

/// A refund was accepted and goes to the provider; its amount is reserved against the payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct RefundRequested {
    pub metadata: EventMetadata,
    pub refund_id: String,
    pub payment_id: String,
    pub member_id: String,
    pub amount_minor: i64,
    pub currency: String,
}
billing_record!(RefundRequested, EVENTS, key = member_id);

/// The provider refunded the money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct RefundIssued {
    pub metadata: EventMetadata,
    pub refund_id: String,
    pub payment_id: String,
    pub member_id: String,
    pub amount_minor: i64,
    pub currency: String,
    #[avro(default = "null")]
    pub provider_refund_id: Option<String>,
    /// The payment's status after it: partially_refunded or refunded.
    pub payment_status: String,
}
billing_record!(RefundIssued, EVENTS, key = member_id);

/// The provider refused the refund; its amount is released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct RefundFailed {
    pub metadata: EventMetadata,
    pub refund_id: String,
    pub payment_id: String,
    pub member_id: String,
    pub code: String,
    pub message: String,
}
billing_record!(RefundFailed, EVENTS, key = member_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct PaymentMethodAdded {
    pub metadata: EventMetadata,
    pub payment_method_id: String,
    pub member_id: String,
    pub method: String,
    #[avro(default = "null")]
    pub label: Option<String>,
    pub is_default: bool,
}
billing_record!(PaymentMethodAdded, EVENTS, key = member_id);

/// An invoice exists; `number` is set once it is finalized (drafts have none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct InvoiceCreated {
    pub metadata: EventMetadata,
    pub invoice_id: String,
    pub member_id: String,
    pub currency: String,
    pub subtotal_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub due_at: i64,
}
billing_record!(InvoiceCreated, EVENTS, key = member_id);

/// A finalized invoice got its number (per organization, without gaps, in the order of the
/// organization's partition of the catalog command topic); it is payable from now on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct InvoiceIssued {
    pub metadata: EventMetadata,
    pub invoice_id: String,
    pub member_id: String,
    /// e.g. INV-000042.
    pub number: String,
    pub currency: String,
    pub total_minor: i64,
    pub due_at: i64,
}
billing_record!(InvoiceIssued, EVENTS, key = member_id);

/// Succeeded payments now cover the invoice's total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct InvoicePaid {
    pub metadata: EventMetadata,
    pub invoice_id: String,
    pub member_id: String,
    pub number: String,
    pub currency: String,
    pub amount_paid_minor: i64,
}
billing_record!(InvoicePaid, EVENTS, key = member_id);

/// An invoice was voided or marked uncollectible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct InvoiceStatusChanged {
    pub metadata: EventMetadata,
    pub invoice_id: String,
    pub member_id: String,
    pub from_status: String,
    pub status: String,
}
billing_record!(InvoiceStatusChanged, EVENTS, key = member_id);

/// Number a finalized invoice (billing asks itself, keyed by organization). The organization's
/// numbers are handed out in the order these stand in its one partition, so a replay of the log
/// numbers every invoice the same; the number goes back to the invoice as `AssignInvoiceNumber`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct NumberInvoice {
    pub metadata: EventMetadata,
    pub invoice_id: String,
    pub member_id: String,
}
record!(
    NumberInvoice,
    "studyspot.billing.NumberInvoice",
    "billing/NumberInvoice.avsc",
    CATALOG_COMMANDS,
    key = |r| &r.metadata.organization_id
);

/// The number the organization's series gave a finalized invoice (billing tells itself, keyed by
/// member): the invoice is numbered, and what waited for the number (its charge) goes ahead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct AssignInvoiceNumber {
    pub metadata: EventMetadata,
    pub invoice_id: String,
    pub member_id: String,
    /// e.g. INV-000042.
    pub number: String,
    /// The position in the organization's series (42).
    pub sequence: i64,
}
billing_record!(AssignInvoiceNumber, COMMANDS, key = member_id);

/// A provider told us (by a verified webhook) that one of our payments changed; billing asks the
/// provider for the payment's state at once instead of at its next poll. The webhook is a nudge,
/// not the truth: the answer is fetched from the provider with billing's own credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct ProviderNotified {
    pub metadata: EventMetadata,
    pub payment_id: String,
    pub member_id: String,
    /// stripe or razorpay.
    pub connector: String,
    /// The provider's event type, e.g. payment_intent.succeeded.
    pub event_type: String,
    /// The provider's event id, when it gives one.
    #[avro(default = "null")]
    pub provider_event_id: Option<String>,
    pub provider_payment_id: String,
    /// For a refund's news: our refund id (from the refund's metadata / notes).
    #[avro(default = "null")]
    pub refund_id: Option<String>,
    #[avro(default = "null")]
    pub provider_refund_id: Option<String>,
    /// For a refund's news: succeeded, pending or failed, as the signed event says. There is no
    /// refund lookup at every provider, so the verified event is the answer.
    #[avro(default = "null")]
    pub refund_outcome: Option<String>,
    #[avro(default = "null")]
    pub refund_code: Option<String>,
    #[avro(default = "null")]
    pub refund_message: Option<String>,
}
billing_record!(ProviderNotified, COMMANDS, key = member_id);
