//! Billing's subscription half: plans and coupons (per organization), subscriptions, usage and
//! credit notes (per member), and the time-carrying commands that drive renewals.
//!
//! Times are milliseconds since the Unix epoch. A command's `effective_at` is the instant it takes
//! effect (default: when the gateway accepted it); billing refuses one earlier than what it has
//! already applied to the subscription, so history is never rewritten.

use apache_avro::AvroSchema;
use serde::{Deserialize, Serialize};

use super::{CATALOG_COMMANDS, CATALOG_EVENTS, COMMANDS, EVENTS};
use crate::{
    EventMetadata,
    record::{record, rejection},
};

/// Plan tiers.
pub const PLAN_TIERS: [&str; 4] = ["basic", "premium", "enterprise", "custom"];
/// Billing cycles.
pub const CYCLES: [&str; 5] = ["daily", "weekly", "monthly", "quarterly", "yearly"];
/// What a plan includes and counts.
pub const USAGE_METRICS: [&str; 4] = ["seat_hours", "bookings", "api_calls", "notifications"];
/// How a plan change is settled.
pub const PRORATIONS: [&str; 3] = ["next_invoice", "immediately", "none"];
/// How long a coupon applies.
pub const COUPON_DURATIONS: [&str; 3] = ["once", "repeating", "forever"];
/// The subscription states a `status` field may name.
pub const SUBSCRIPTION_STATUSES: [&str; 6] =
    ["trialing", "active", "past_due", "paused", "suspended", "cancelled"];

macro_rules! catalog_record {
    ($ty:ident, $topic:ident) => {
        record!(
            $ty,
            concat!("studyspot.billing.", stringify!($ty)),
            concat!("billing/", stringify!($ty), ".avsc"),
            $topic,
            key = |r| &r.metadata.organization_id
        );
    };
}

/// What a plan includes of one metric per period, and the price of each unit beyond it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct PlanAllowance {
    /// seat_hours, bookings, api_calls or notifications.
    pub metric: String,
    pub included: i64,
    /// Per unit beyond `included`, in the plan's minor units; 0 means usage stops counting as billable.
    pub overage_unit_minor: i64,
}

/// Publish a plan of the organization, or a new version of it: subscribers keep the version they
/// are on until they move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct DefinePlan {
    pub metadata: EventMetadata,
    /// `plan_…`, chosen by the caller; the same id again is the plan's next version.
    pub plan_id: String,
    pub name: String,
    /// basic, premium, enterprise or custom.
    pub tier: String,
    /// daily, weekly, monthly, quarterly or yearly.
    pub cycle: String,
    /// Per cycle, in minor units.
    pub price_minor: i64,
    pub currency: String,
    #[avro(default = "0")]
    pub trial_days: i32,
    /// Tax on the plan's invoice lines, in basis points.
    #[avro(default = "0")]
    pub tax_rate_bps: i32,
    #[avro(default = "[]")]
    pub allowances: Vec<PlanAllowance>,
}
catalog_record!(DefinePlan, CATALOG_COMMANDS);

/// Define a coupon (its id is the code members enter, e.g. STUDENT).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct DefineCoupon {
    pub metadata: EventMetadata,
    pub coupon_id: String,
    pub name: String,
    /// Either a percentage (basis points, 2000 = 20 %) …
    #[avro(default = "null")]
    pub percent_off_bps: Option<i32>,
    /// … or a fixed amount off each invoiced period, in `currency`.
    #[avro(default = "null")]
    pub amount_off_minor: Option<i64>,
    #[avro(default = "null")]
    pub currency: Option<String>,
    /// once, repeating (for `duration_cycles` periods) or forever.
    pub duration: String,
    #[avro(default = "null")]
    pub duration_cycles: Option<i32>,
}
catalog_record!(DefineCoupon, CATALOG_COMMANDS);

/// Bill the organization's subscriptions due up to `up_to`: trial ends, renewals, dunning retries,
/// scheduled resumes and cancellations. Billing fans it out as one `BillSubscription` per due
/// subscription, keyed by member, so a renewal day spreads over every partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct RunBilling {
    pub metadata: EventMetadata,
    pub up_to: i64,
}
catalog_record!(RunBilling, CATALOG_COMMANDS);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct PlanPublished {
    pub metadata: EventMetadata,
    pub plan_id: String,
    pub version: i32,
    pub name: String,
    pub tier: String,
    pub cycle: String,
    pub price_minor: i64,
    pub currency: String,
    pub trial_days: i32,
    pub allowances: Vec<PlanAllowance>,
}
catalog_record!(PlanPublished, CATALOG_EVENTS);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct CouponDefined {
    pub metadata: EventMetadata,
    pub coupon_id: String,
    pub name: String,
    #[avro(default = "null")]
    pub percent_off_bps: Option<i32>,
    #[avro(default = "null")]
    pub amount_off_minor: Option<i64>,
    #[avro(default = "null")]
    pub currency: Option<String>,
    pub duration: String,
    #[avro(default = "null")]
    pub duration_cycles: Option<i32>,
}
catalog_record!(CouponDefined, CATALOG_EVENTS);

/// A billing run found these subscriptions due and asked for each to be billed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct BillingRunStarted {
    pub metadata: EventMetadata,
    pub up_to: i64,
    pub subscriptions: i32,
}
catalog_record!(BillingRunStarted, CATALOG_EVENTS);

/// Billing refused a well-formed catalog command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct CatalogCommandRejected {
    pub metadata: EventMetadata,
    pub command_id: String,
    pub command_type: String,
    pub code: String,
    pub reason: String,
}
catalog_record!(CatalogCommandRejected, CATALOG_EVENTS);
rejection!(CatalogCommandRejected);

/// Subscribe a member to a plan's current version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct CreateSubscription {
    pub metadata: EventMetadata,
    /// `sub_…`, chosen by the caller.
    pub subscription_id: String,
    pub member_id: String,
    pub plan_id: String,
    /// When the first period starts (default: when accepted).
    #[avro(default = "null")]
    pub effective_at: Option<i64>,
    /// Overrides the plan's trial length; 0 for none.
    #[avro(default = "null")]
    pub trial_days: Option<i32>,
    /// Created paused: nothing is charged until it is resumed (or at `resume_at`).
    #[avro(default = "false")]
    pub paused: bool,
    #[avro(default = "null")]
    pub resume_at: Option<i64>,
    #[avro(default = "null")]
    pub coupon_id: Option<String>,
    /// The stored method renewals charge (default: the member's default method).
    #[avro(default = "null")]
    pub payment_method_id: Option<String>,
}
billing_record!(CreateSubscription, COMMANDS, key = member_id);

/// Move a subscription to another plan (or to its plan's current version) mid-cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct ChangeSubscriptionPlan {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    pub plan_id: String,
    /// next_invoice (credit and charge on the renewal invoice), immediately (an invoice now) or
    /// none (the new price from the next period).
    pub proration: String,
    #[avro(default = "null")]
    pub effective_at: Option<i64>,
}
billing_record!(ChangeSubscriptionPlan, COMMANDS, key = member_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct PauseSubscription {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    /// Resume automatically then.
    #[avro(default = "null")]
    pub resume_at: Option<i64>,
    #[avro(default = "null")]
    pub effective_at: Option<i64>,
}
billing_record!(PauseSubscription, COMMANDS, key = member_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct ResumeSubscription {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    #[avro(default = "null")]
    pub effective_at: Option<i64>,
}
billing_record!(ResumeSubscription, COMMANDS, key = member_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct CancelSubscription {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    /// Cancel when the current period ends instead of now.
    #[avro(default = "false")]
    pub at_period_end: bool,
    /// Cancelling now: credit the unused part of the paid period.
    #[avro(default = "false")]
    pub prorate: bool,
    #[avro(default = "null")]
    pub reason: Option<String>,
    #[avro(default = "null")]
    pub effective_at: Option<i64>,
}
billing_record!(CancelSubscription, COMMANDS, key = member_id);

/// Count usage against the subscription's allowance; `usage_id` makes it count once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct RecordUsage {
    pub metadata: EventMetadata,
    pub usage_id: String,
    pub subscription_id: String,
    pub member_id: String,
    /// seat_hours, bookings, api_calls or notifications.
    pub metric: String,
    pub quantity: i64,
    #[avro(default = "null")]
    pub effective_at: Option<i64>,
}
billing_record!(RecordUsage, COMMANDS, key = member_id);

/// A goodwill credit for the member, applied to the subscription's next invoices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct IssueCreditNote {
    pub metadata: EventMetadata,
    pub credit_note_id: String,
    pub subscription_id: String,
    pub member_id: String,
    pub amount_minor: i64,
    #[avro(default = "null")]
    pub memo: Option<String>,
}
billing_record!(IssueCreditNote, COMMANDS, key = member_id);

/// Bill one subscription for everything due up to `up_to` (from a `RunBilling`, or a scheduler).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct BillSubscription {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    pub up_to: i64,
}
billing_record!(BillSubscription, COMMANDS, key = member_id);

/// A subscription exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct SubscriptionCreated {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    pub plan_id: String,
    pub plan_version: i32,
    pub status: String,
    pub current_period_start: i64,
    pub current_period_end: i64,
    #[avro(default = "null")]
    pub trial_end: Option<i64>,
    #[avro(default = "null")]
    pub coupon_id: Option<String>,
}
billing_record!(SubscriptionCreated, EVENTS, key = member_id);

/// A subscription's status moved; `reason` says why (trial_converted, payment_failed, recovered,
/// paused, resumed, cancelled, dunning_exhausted, no_payment_method, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct SubscriptionStatusChanged {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    pub from_status: String,
    pub status: String,
    pub reason: String,
    pub effective_at: i64,
}
billing_record!(SubscriptionStatusChanged, EVENTS, key = member_id);

/// The trial ends soon (the notice the notifications consumer turns into a message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct SubscriptionTrialEnding {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    pub trial_end: i64,
    pub has_payment_method: bool,
}
billing_record!(SubscriptionTrialEnding, EVENTS, key = member_id);

/// A new period began and was invoiced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct SubscriptionRenewed {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    pub period_start: i64,
    pub period_end: i64,
    pub invoice_id: String,
    pub amount_due_minor: i64,
}
billing_record!(SubscriptionRenewed, EVENTS, key = member_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct SubscriptionPlanChanged {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    pub from_plan_id: String,
    pub from_version: i32,
    pub plan_id: String,
    pub plan_version: i32,
    pub proration: String,
    /// Credit for the old plan's unused time and charge for the new plan's rest of the period.
    pub credit_minor: i64,
    pub charge_minor: i64,
    pub effective_at: i64,
}
billing_record!(SubscriptionPlanChanged, EVENTS, key = member_id);

/// Cancellation is scheduled for the end of the current period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct SubscriptionCancelScheduled {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    pub cancel_at: i64,
}
billing_record!(SubscriptionCancelScheduled, EVENTS, key = member_id);

/// A renewal payment failed: a step of the dunning schedule. `next_retry_at` is null on the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct SubscriptionDunningStep {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    pub invoice_id: String,
    /// 1 for the first failure, then one more per retry.
    pub attempt: i32,
    #[avro(default = "null")]
    pub next_retry_at: Option<i64>,
    /// What happens when retries run out: cancel or suspend.
    pub final_action: String,
}
billing_record!(SubscriptionDunningStep, EVENTS, key = member_id);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct UsageRecorded {
    pub metadata: EventMetadata,
    pub usage_id: String,
    pub subscription_id: String,
    pub member_id: String,
    pub metric: String,
    pub quantity: i64,
    /// In the current period, after this record.
    pub used: i64,
    pub included: i64,
}
billing_record!(UsageRecorded, EVENTS, key = member_id);

/// Usage of a metric crossed 80 % or 100 % of the period's allowance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct UsageThresholdReached {
    pub metadata: EventMetadata,
    pub subscription_id: String,
    pub member_id: String,
    pub metric: String,
    pub percent: i32,
    pub used: i64,
    pub included: i64,
    pub period_start: i64,
}
billing_record!(UsageThresholdReached, EVENTS, key = member_id);

/// A credit the member's later invoices draw on (proration, cancellation, pause, goodwill).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "studyspot.billing")]
pub struct CreditNoteIssued {
    pub metadata: EventMetadata,
    pub credit_note_id: String,
    pub subscription_id: String,
    pub member_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub reason: String,
}
billing_record!(CreditNoteIssued, EVENTS, key = member_id);
