use crate::{RecordInfo, alerts, attendance, billing, notifications};

/// How a subject's schemas may evolve, as the registry enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    /// New readers read all old records: consumers upgrade first (commands).
    BackwardTransitive,
    /// Both ways against every version: analysts replay years of history with today's readers,
    /// and old readers keep reading new events.
    FullTransitive,
}

impl Compatibility {
    /// The level's name in the Confluent registry API.
    pub fn as_registry_level(self) -> &'static str {
        match self {
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// Requests to one domain, produced by the gateway (or a scheduler); one consumer applies them.
    Commands,
    /// Facts a domain published; anyone may read them.
    Events,
}

/// One topic of the backbone.
#[derive(Debug)]
pub struct Topic {
    pub name: &'static str,
    /// Where records this consumer could not handle go, with the reason in headers.
    pub dead_letter: &'static str,
    pub kind: TopicKind,
    /// The domain that owns (writes) the topic.
    pub owner: &'static str,
    /// The record field whose value is the partition key; order is kept per key.
    pub key_field: &'static str,
    pub compatibility: Compatibility,
    pub records: &'static [RecordInfo],
}

impl Topic {
    /// The registry subject of `record_full_name` on this topic (TopicRecordNameStrategy).
    pub fn subject(&self, record_full_name: &str) -> String {
        format!("{}-{}", self.name, record_full_name)
    }

    pub fn record(&self, full_name: &str) -> Option<&RecordInfo> {
        self.records.iter().find(|r| r.full_name == full_name)
    }
}

pub static BILLING_COMMANDS: Topic = Topic {
    name: "studyspot.billing.commands.v1",
    dead_letter: "studyspot.billing.commands.v1.dlq",
    kind: TopicKind::Commands,
    owner: "billing",
    key_field: "member_id",
    compatibility: Compatibility::BackwardTransitive,
    records: &[
        RecordInfo::of::<billing::CreatePayment>(),
        RecordInfo::of::<billing::ProcessPayment>(),
        RecordInfo::of::<billing::RecordChargeOutcome>(),
        RecordInfo::of::<billing::ConfirmManualPayment>(),
        RecordInfo::of::<billing::RecordManualPayment>(),
        RecordInfo::of::<billing::RefundPayment>(),
        RecordInfo::of::<billing::RecordRefundOutcome>(),
        RecordInfo::of::<billing::AddPaymentMethod>(),
        RecordInfo::of::<billing::CreateInvoice>(),
        RecordInfo::of::<billing::ChangeInvoiceStatus>(),
        RecordInfo::of::<billing::ProviderNotified>(),
        RecordInfo::of::<billing::CreateSubscription>(),
        RecordInfo::of::<billing::ChangeSubscriptionPlan>(),
        RecordInfo::of::<billing::PauseSubscription>(),
        RecordInfo::of::<billing::ResumeSubscription>(),
        RecordInfo::of::<billing::CancelSubscription>(),
        RecordInfo::of::<billing::RecordUsage>(),
        RecordInfo::of::<billing::IssueCreditNote>(),
        RecordInfo::of::<billing::BillSubscription>(),
        RecordInfo::of::<billing::AssignInvoiceNumber>(),
    ],
};

pub static BILLING_EVENTS: Topic = Topic {
    name: "studyspot.billing.events.v1",
    dead_letter: "studyspot.billing.events.v1.dlq",
    kind: TopicKind::Events,
    owner: "billing",
    key_field: "member_id",
    compatibility: Compatibility::FullTransitive,
    records: &[
        RecordInfo::of::<billing::PaymentCreated>(),
        RecordInfo::of::<billing::PaymentProcessingStarted>(),
        RecordInfo::of::<billing::PaymentSucceeded>(),
        RecordInfo::of::<billing::PaymentFailed>(),
        RecordInfo::of::<billing::PaymentRequiresAction>(),
        RecordInfo::of::<billing::RefundRequested>(),
        RecordInfo::of::<billing::RefundIssued>(),
        RecordInfo::of::<billing::RefundFailed>(),
        RecordInfo::of::<billing::PaymentMethodAdded>(),
        RecordInfo::of::<billing::InvoiceCreated>(),
        RecordInfo::of::<billing::InvoiceIssued>(),
        RecordInfo::of::<billing::InvoicePaid>(),
        RecordInfo::of::<billing::InvoiceStatusChanged>(),
        RecordInfo::of::<billing::CommandRejected>(),
        RecordInfo::of::<billing::SubscriptionCreated>(),
        RecordInfo::of::<billing::SubscriptionStatusChanged>(),
        RecordInfo::of::<billing::SubscriptionTrialEnding>(),
        RecordInfo::of::<billing::SubscriptionRenewed>(),
        RecordInfo::of::<billing::SubscriptionPlanChanged>(),
        RecordInfo::of::<billing::SubscriptionCancelScheduled>(),
        RecordInfo::of::<billing::SubscriptionDunningStep>(),
        RecordInfo::of::<billing::UsageRecorded>(),
        RecordInfo::of::<billing::UsageThresholdReached>(),
        RecordInfo::of::<billing::CreditNoteIssued>(),
    ],
};

/// Organization-wide billing requests: the plan and coupon catalogue, billing runs (fanned out
/// per member onto the billing command topic), and invoice numbering (one series per organization,
/// in this topic's order).
pub static BILLING_CATALOG_COMMANDS: Topic = Topic {
    name: "studyspot.billing.catalog.commands.v1",
    dead_letter: "studyspot.billing.catalog.commands.v1.dlq",
    kind: TopicKind::Commands,
    owner: "billing",
    key_field: "organization_id",
    compatibility: Compatibility::BackwardTransitive,
    records: &[
        RecordInfo::of::<billing::DefinePlan>(),
        RecordInfo::of::<billing::DefineCoupon>(),
        RecordInfo::of::<billing::RunBilling>(),
        RecordInfo::of::<billing::NumberInvoice>(),
    ],
};

pub static BILLING_CATALOG_EVENTS: Topic = Topic {
    name: "studyspot.billing.catalog.events.v1",
    dead_letter: "studyspot.billing.catalog.events.v1.dlq",
    kind: TopicKind::Events,
    owner: "billing",
    key_field: "organization_id",
    compatibility: Compatibility::FullTransitive,
    records: &[
        RecordInfo::of::<billing::PlanPublished>(),
        RecordInfo::of::<billing::CouponDefined>(),
        RecordInfo::of::<billing::BillingRunStarted>(),
        RecordInfo::of::<billing::CatalogCommandRejected>(),
    ],
};

pub static NOTIFICATIONS_COMMANDS: Topic = Topic {
    name: "studyspot.notifications.commands.v1",
    dead_letter: "studyspot.notifications.commands.v1.dlq",
    kind: TopicKind::Commands,
    owner: "notifications",
    key_field: "recipient_id",
    compatibility: Compatibility::BackwardTransitive,
    records: &[
        RecordInfo::of::<notifications::SendNotification>(),
        RecordInfo::of::<notifications::SetPreferences>(),
        RecordInfo::of::<notifications::RecordDeliveryOutcome>(),
        RecordInfo::of::<notifications::CancelNotifications>(),
        RecordInfo::of::<notifications::RecordDeliveryStatus>(),
        RecordInfo::of::<notifications::MarkNotificationsRead>(),
        RecordInfo::of::<notifications::ReleaseNotification>(),
    ],
};

/// Organization-wide notification requests: templates and campaigns.
pub static NOTIFICATIONS_CATALOG_COMMANDS: Topic = Topic {
    name: "studyspot.notifications.catalog.commands.v1",
    dead_letter: "studyspot.notifications.catalog.commands.v1.dlq",
    kind: TopicKind::Commands,
    owner: "notifications",
    key_field: "organization_id",
    compatibility: Compatibility::BackwardTransitive,
    records: &[
        RecordInfo::of::<notifications::CreateTemplate>(),
        RecordInfo::of::<notifications::CreateCampaign>(),
        RecordInfo::of::<notifications::LaunchCampaign>(),
        RecordInfo::of::<notifications::CancelCampaign>(),
    ],
};

pub static NOTIFICATIONS_CATALOG_EVENTS: Topic = Topic {
    name: "studyspot.notifications.catalog.events.v1",
    dead_letter: "studyspot.notifications.catalog.events.v1.dlq",
    kind: TopicKind::Events,
    owner: "notifications",
    key_field: "organization_id",
    compatibility: Compatibility::FullTransitive,
    records: &[
        RecordInfo::of::<notifications::TemplatePublished>(),
        RecordInfo::of::<notifications::CatalogCommandRejected>(),
        RecordInfo::of::<notifications::CampaignCreated>(),
        RecordInfo::of::<notifications::CampaignLaunched>(),
        RecordInfo::of::<notifications::CampaignCancelled>(),
    ],
};

pub static NOTIFICATIONS_EVENTS: Topic = Topic {
    name: "studyspot.notifications.events.v1",
    dead_letter: "studyspot.notifications.events.v1.dlq",
    kind: TopicKind::Events,
    owner: "notifications",
    key_field: "recipient_id",
    compatibility: Compatibility::FullTransitive,
    records: &[
        RecordInfo::of::<notifications::NotificationQueued>(),
        RecordInfo::of::<notifications::CommandRejected>(),
        RecordInfo::of::<notifications::PreferencesUpdated>(),
        RecordInfo::of::<notifications::NotificationDeferred>(),
        RecordInfo::of::<notifications::NotificationSuppressed>(),
        RecordInfo::of::<notifications::NotificationSent>(),
        RecordInfo::of::<notifications::NotificationFailed>(),
        RecordInfo::of::<notifications::NotificationTracked>(),
        RecordInfo::of::<notifications::NotificationsRead>(),
        RecordInfo::of::<notifications::NotificationDigested>(),
        RecordInfo::of::<notifications::WebhookEndpointDisabled>(),
    ],
};

pub static ATTENDANCE_COMMANDS: Topic = Topic {
    name: "studyspot.attendance.commands.v1",
    dead_letter: "studyspot.attendance.commands.v1.dlq",
    kind: TopicKind::Commands,
    owner: "attendance",
    key_field: "venue_id",
    compatibility: Compatibility::BackwardTransitive,
    records: &[
        RecordInfo::of::<attendance::CheckIn>(),
        RecordInfo::of::<attendance::DefineVenue>(),
        RecordInfo::of::<attendance::GrantPass>(),
        RecordInfo::of::<attendance::CheckOut>(),
        RecordInfo::of::<attendance::CreateBooking>(),
        RecordInfo::of::<attendance::CancelBooking>(),
        RecordInfo::of::<attendance::CancelBookings>(),
        RecordInfo::of::<attendance::RunAttendance>(),
    ],
};

pub static ATTENDANCE_EVENTS: Topic = Topic {
    name: "studyspot.attendance.events.v1",
    dead_letter: "studyspot.attendance.events.v1.dlq",
    kind: TopicKind::Events,
    owner: "attendance",
    key_field: "venue_id",
    compatibility: Compatibility::FullTransitive,
    records: &[
        RecordInfo::of::<attendance::CheckedIn>(),
        RecordInfo::of::<attendance::CommandRejected>(),
        RecordInfo::of::<attendance::VenueDefined>(),
        RecordInfo::of::<attendance::PassGranted>(),
        RecordInfo::of::<attendance::SessionCompleted>(),
        RecordInfo::of::<attendance::OverstayDetected>(),
        RecordInfo::of::<attendance::BookingCreated>(),
        RecordInfo::of::<attendance::BookingCancelled>(),
        RecordInfo::of::<attendance::BookingNoShow>(),
    ],
};

pub static ALERTS_COMMANDS: Topic = Topic {
    name: "studyspot.alerts.commands.v1",
    dead_letter: "studyspot.alerts.commands.v1.dlq",
    kind: TopicKind::Commands,
    owner: "alerts",
    key_field: "organization_id",
    compatibility: Compatibility::BackwardTransitive,
    records: &[
        RecordInfo::of::<alerts::RecordMetricSample>(),
        RecordInfo::of::<alerts::RecordMetricSamples>(),
        RecordInfo::of::<alerts::DefineAlertRule>(),
        RecordInfo::of::<alerts::DefineRoute>(),
        RecordInfo::of::<alerts::DefineInhibitRule>(),
        RecordInfo::of::<alerts::CreateSilence>(),
        RecordInfo::of::<alerts::ExpireSilence>(),
        RecordInfo::of::<alerts::EvaluateRules>(),
        RecordInfo::of::<alerts::PruneMetricSamples>(),
        RecordInfo::of::<alerts::DefineDashboard>(),
        RecordInfo::of::<alerts::DefineReport>(),
        RecordInfo::of::<alerts::GenerateReports>(),
        RecordInfo::of::<alerts::DefineHealthCheck>(),
        RecordInfo::of::<alerts::RecordProbeResult>(),
        RecordInfo::of::<alerts::RecordLogs>(),
        RecordInfo::of::<alerts::EnforceLogRetention>(),
    ],
};

pub static ALERTS_EVENTS: Topic = Topic {
    name: "studyspot.alerts.events.v1",
    dead_letter: "studyspot.alerts.events.v1.dlq",
    kind: TopicKind::Events,
    owner: "alerts",
    key_field: "organization_id",
    compatibility: Compatibility::FullTransitive,
    records: &[
        RecordInfo::of::<alerts::MetricSampleRecorded>(),
        RecordInfo::of::<alerts::CommandRejected>(),
        RecordInfo::of::<alerts::AlertConfigChanged>(),
        RecordInfo::of::<alerts::AlertStateChanged>(),
        RecordInfo::of::<alerts::AlertFired>(),
        RecordInfo::of::<alerts::AlertResolved>(),
        RecordInfo::of::<alerts::MetricSamplesPruned>(),
        RecordInfo::of::<alerts::AlertGroupNotified>(),
        RecordInfo::of::<alerts::ReportGenerated>(),
        RecordInfo::of::<alerts::HealthCheckStatusChanged>(),
    ],
};

static CATALOGUE: [&Topic; 12] = [
    &BILLING_COMMANDS,
    &BILLING_EVENTS,
    &BILLING_CATALOG_COMMANDS,
    &BILLING_CATALOG_EVENTS,
    &NOTIFICATIONS_COMMANDS,
    &NOTIFICATIONS_EVENTS,
    &NOTIFICATIONS_CATALOG_COMMANDS,
    &NOTIFICATIONS_CATALOG_EVENTS,
    &ATTENDANCE_COMMANDS,
    &ATTENDANCE_EVENTS,
    &ALERTS_COMMANDS,
    &ALERTS_EVENTS,
];

/// Every topic of the backbone.
pub fn catalogue() -> &'static [&'static Topic] {
    &CATALOGUE
}

pub fn topic_by_name(name: &str) -> Option<&'static Topic> {
    CATALOGUE.iter().copied().find(|t| t.name == name)
}
