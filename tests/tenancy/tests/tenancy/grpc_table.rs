//! Every gRPC method of the gateway's descriptor, aimed at A's records as its HTTP twin is. Where
//! a method shares its operation with HTTP (the `*_with` functions), the call still proves that
//! the method reaches that operation with the caller's organization and member.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use studyspot_grpc_api::{self as pb, gateway_client::GatewayClient};
use studyspot_tenancy_suite::reply::GrpcReply;
use tonic::transport::Channel;

use crate::{
    cases::{
        Control::{self, Member1Sees, OwnerDiffers, OwnerSees, Unseeded},
        Expect::{self, AnsweredOwn, AppliedOwn, NothingOfA, Rejected},
        GrpcCall, GrpcCase, GrpcProbe,
        Who::{self, AMember2, BMember, BStaff},
        authorized,
    },
    http_table::{FB, NF},
    seed::*,
};

/// A call of `$method` with `$request`, built afresh for each caller.
macro_rules! call {
    ($method:ident, $request:expr) => {{
        let call: GrpcCall = Box::new(
            move |mut client: GatewayClient<Channel>,
                  token: Option<String>|
                  -> BoxFuture<'static, GrpcReply> {
                let request = $request;
                Box::pin(
                    async move { GrpcReply::of(client.$method(authorized(request, token.as_deref())).await) },
                )
            },
        );
        call
    }};
}

fn probe(call: GrpcCall) -> GrpcProbe {
    GrpcProbe { call, checks: Vec::new(), control: None }
}

impl GrpcProbe {
    fn by(mut self, who: Who, expect: Expect) -> Self {
        self.checks.push((who, expect));
        self
    }

    fn by3(self, b_staff: Expect, b_member: Expect, a_member_2: Expect) -> Self {
        self.by(BStaff, b_staff).by(BMember, b_member).by(AMember2, a_member_2)
    }

    fn control(mut self, control: Control) -> Self {
        self.control = Some(control);
        self
    }
}

fn case(rpc: &'static str, probes: Vec<GrpcProbe>) -> GrpcCase {
    GrpcCase { rpc, probes }
}

fn filters(pairs: &[(&str, &str)]) -> pb::ListRequest {
    pb::ListRequest {
        filters: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    }
}

fn window(extra: &[(&str, &str)]) -> pb::ListRequest {
    let (from, to) = (day(-3, 0), day(5, 0));
    let mut pairs = vec![("from", from.as_str()), ("to", to.as_str())];
    pairs.extend_from_slice(extra);
    filters(&pairs)
}

fn own(id: &str) -> Option<String> {
    Some(id.to_owned())
}

fn lines() -> Vec<pb::InvoiceLine> {
    vec![pb::InvoiceLine {
        description: "Beta's own".into(),
        quantity: 1,
        unit_amount_minor: 100,
        ..Default::default()
    }]
}

fn opening_hours() -> Vec<pb::VenueOpeningHours> {
    (1..=7)
        .map(|weekday| pb::VenueOpeningHours { weekday, opens: "00:00".into(), closes: "24:00".into() })
        .collect()
}

fn monitoring(body: serde_json::Value) -> pb::MonitoringCommandRequest {
    pb::MonitoringCommandRequest { body_json: body.to_string() }
}

/// `GetPayment` of A's payment with A named in `x-organization-id`.
fn naming_organization(org_a: &str) -> GrpcCall {
    let org_a = org_a.to_owned();
    Box::new(
        move |mut client: GatewayClient<Channel>, token: Option<String>| -> BoxFuture<'static, GrpcReply> {
            let mut request = authorized(pb::GetPaymentRequest { payment_id: PAID.into() }, token.as_deref());
            request
                .metadata_mut()
                .insert("x-organization-id", org_a.parse().expect("an ASCII organization id"));
            Box::pin(async move { GrpcReply::of(client.get_payment(request).await) })
        },
    )
}

pub fn table(a_command: &str, org_a: &str) -> Vec<GrpcCase> {
    let a_command = a_command.to_owned();
    vec![
        // Attendance.
        case(
            "Gateway/DefineVenue",
            vec![
                probe(call!(
                    define_venue,
                    pb::DefineVenueRequest {
                        venue_id: own("ven_beta_grpc"),
                        name: "Beta's own venue".into(),
                        time_zone: "Europe/Berlin".into(),
                        capacity: 10,
                        opening_hours: opening_hours(),
                        ..Default::default()
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/GrantPass",
            vec![
                probe(call!(
                    grant_pass,
                    pb::GrantPassRequest {
                        pass_id: own("pas_beta_grpc"),
                        member_id: "mem_1".into(),
                        venue_id: VENUE.into(),
                        valid_from: day(0, 0),
                        valid_until: day(9, 0)
                    }
                ))
                .by3(Rejected("venue_not_found"), FB, FB),
            ],
        ),
        case(
            "Gateway/CreateBooking",
            vec![
                probe(call!(
                    create_booking,
                    pb::CreateBookingRequest {
                        booking_id: own("bkg_beta_grpc"),
                        member_id: "mem_1".into(),
                        venue_id: VENUE.into(),
                        seat_id: own(SEAT),
                        starts_at: day(3, 14),
                        ends_at: day(3, 16),
                        ..Default::default()
                    }
                ))
                .by3(Rejected("venue_not_found"), Rejected("venue_not_found"), FB),
            ],
        ),
        case(
            "Gateway/CancelBooking",
            vec![
                probe(call!(cancel_booking, pb::CancelBookingRequest { booking_id: BOOKING.into() }))
                    .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/CancelBookings",
            vec![
                probe(call!(
                    cancel_bookings,
                    pb::CancelBookingsRequest {
                        member_id: "mem_1".into(),
                        venue_id: VENUE.into(),
                        from: day(1, 0),
                        to: day(4, 0)
                    }
                ))
                .by3(AppliedOwn, AppliedOwn, FB),
            ],
        ),
        case(
            "Gateway/CheckIn",
            vec![
                probe(call!(
                    check_in,
                    pb::CheckInRequest {
                        session_id: own("ses_beta_grpc"),
                        member_id: "mem_1".into(),
                        venue_id: VENUE.into(),
                        seat_id: own(SEAT),
                        ..Default::default()
                    }
                ))
                .by3(Rejected("venue_not_found"), Rejected("venue_not_found"), FB),
            ],
        ),
        case(
            "Gateway/CheckOut",
            vec![
                probe(call!(
                    check_out,
                    pb::CheckOutRequest {
                        member_id: "mem_1".into(),
                        venue_id: own(VENUE),
                        session_id: own(SESSION),
                        ..Default::default()
                    }
                ))
                .by3(Rejected("no_open_session"), Rejected("no_open_session"), FB),
            ],
        ),
        case(
            "Gateway/MintQrToken",
            vec![
                probe(call!(
                    mint_qr_token,
                    pb::MintQrTokenRequest {
                        kind: "seat".into(),
                        venue_id: VENUE.into(),
                        seat_id: own(SEAT),
                        member_id: None
                    }
                ))
                .by3(
                    AnsweredOwn(
                        201,
                        "signed for the caller's own organization, where A's venue does not exist",
                    ),
                    FB,
                    FB,
                ),
            ],
        ),
        case(
            "Gateway/GetOccupancy",
            vec![
                probe(call!(get_occupancy, filters(&[("venue_id", VENUE)])))
                    .by3(NothingOfA, NothingOfA, NothingOfA)
                    .control(OwnerSees),
            ],
        ),
        case(
            "Gateway/GetAttendanceDashboard",
            vec![
                probe(call!(get_attendance_dashboard, window(&[("venue_id", VENUE)])))
                    .by3(NothingOfA, FB, FB)
                    .control(OwnerDiffers),
            ],
        ),
        case(
            "Gateway/ListSessions",
            vec![
                probe(call!(list_sessions, filters(&[])))
                    .by3(NothingOfA, NothingOfA, NothingOfA)
                    .control(OwnerSees),
            ],
        ),
        // Commands and events.
        case(
            "Gateway/GetCommand",
            vec![
                probe(call!(
                    get_command,
                    pb::GetCommandRequest { command_id: a_command.clone(), wait_ms: None }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        // Checked live and from the start of the log by `stream.rs`.
        case("Gateway/StreamEvents", Vec::new()),
        // Payments.
        case(
            "Gateway/CreatePayment",
            vec![
                probe(call!(
                    create_payment,
                    pb::CreatePaymentRequest {
                        payment_id: own("pay_beta_grpc"),
                        member_id: "mem_1".into(),
                        amount_minor: 11_900,
                        currency: "EUR".into(),
                        method: "cash".into(),
                        invoice_id: own(INVOICE),
                        ..Default::default()
                    }
                ))
                .by3(Rejected("invoice_not_found"), Rejected("invoice_not_found"), FB),
            ],
        ),
        case(
            "Gateway/ListPayments",
            vec![
                probe(call!(list_payments, filters(&[])))
                    .by3(NothingOfA, NothingOfA, NothingOfA)
                    .control(OwnerSees),
            ],
        ),
        case(
            "Gateway/GetPayment",
            vec![
                probe(call!(get_payment, pb::GetPaymentRequest { payment_id: PAID.into() })).by3(NF, NF, NF),
                // Naming A as the organization is for platform admins only.
                probe(naming_organization(org_a)).by(BStaff, Expect::Refused(403, "organization_mismatch")),
            ],
        ),
        case(
            "Gateway/ProcessPayment",
            vec![
                probe(call!(
                    process_payment,
                    pb::ProcessPaymentRequest { payment_id: UNPROCESSED.into(), ..Default::default() }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/ConfirmPayment",
            vec![
                probe(call!(
                    confirm_payment,
                    pb::ConfirmPaymentRequest { payment_id: AWAITING_STAFF.into(), reference: None }
                ))
                .by3(NF, FB, FB),
            ],
        ),
        case(
            "Gateway/RefundPayment",
            vec![
                probe(call!(
                    refund_payment,
                    pb::RefundPaymentRequest {
                        payment_id: PAID.into(),
                        refund_id: own("re_beta_grpc"),
                        amount_minor: Some(100),
                        reason: None
                    }
                ))
                .by3(NF, FB, FB),
            ],
        ),
        case(
            "Gateway/AddPaymentMethod",
            vec![
                probe(call!(
                    add_payment_method,
                    pb::AddPaymentMethodRequest {
                        payment_method_id: own("pm_beta_grpc"),
                        member_id: "mem_1".into(),
                        method: "cash".into(),
                        ..Default::default()
                    }
                ))
                .by(BStaff, AppliedOwn)
                .by(AMember2, FB),
            ],
        ),
        case(
            "Gateway/CreateInvoice",
            vec![
                probe(call!(
                    create_invoice,
                    pb::CreateInvoiceRequest {
                        invoice_id: own("inv_beta_grpc"),
                        member_id: "mem_1".into(),
                        currency: "EUR".into(),
                        lines: lines(),
                        due_at: day(30, 0),
                        finalize: None
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/ChangeInvoiceStatus",
            vec![
                probe(call!(
                    change_invoice_status,
                    pb::ChangeInvoiceStatusRequest { invoice_id: INVOICE.into(), status: "void".into() }
                ))
                .by3(NF, FB, FB),
            ],
        ),
        case(
            "Gateway/RecordInvoicePayment",
            vec![
                probe(call!(
                    record_invoice_payment,
                    pb::RecordInvoicePaymentRequest {
                        invoice_id: INVOICE.into(),
                        method: "cash".into(),
                        payment_id: own("pay_beta_grpc_cash"),
                        ..Default::default()
                    }
                ))
                .by3(NF, FB, FB),
            ],
        ),
        case(
            "Gateway/ListRefunds",
            vec![
                probe(call!(list_refunds, filters(&[])))
                    .by3(NothingOfA, NothingOfA, NothingOfA)
                    .control(OwnerSees),
            ],
        ),
        case(
            "Gateway/ListInvoices",
            vec![
                probe(call!(list_invoices, filters(&[])))
                    .by3(NothingOfA, NothingOfA, NothingOfA)
                    .control(OwnerSees),
            ],
        ),
        case(
            "Gateway/ListPaymentMethods",
            vec![
                probe(call!(list_payment_methods, filters(&[])))
                    .by3(NothingOfA, NothingOfA, NothingOfA)
                    .control(OwnerSees),
            ],
        ),
        case(
            "Gateway/GetPaymentsDashboard",
            vec![
                probe(call!(get_payments_dashboard, window(&[])))
                    .by3(NothingOfA, FB, FB)
                    .control(OwnerDiffers),
            ],
        ),
        // Subscriptions.
        case(
            "Gateway/DefinePlan",
            vec![
                probe(call!(
                    define_plan,
                    pb::DefinePlanRequest {
                        plan_id: own("plan_beta_grpc"),
                        name: "Beta's own".into(),
                        tier: "basic".into(),
                        cycle: "monthly".into(),
                        price_minor: 900,
                        currency: "EUR".into(),
                        ..Default::default()
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/DefineCoupon",
            vec![
                probe(call!(
                    define_coupon,
                    pb::DefineCouponRequest {
                        coupon_id: "coupon_beta_grpc".into(),
                        name: "Beta's own".into(),
                        percent_off_bps: Some(1000),
                        duration: "once".into(),
                        ..Default::default()
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/RunBilling",
            vec![probe(call!(run_billing, pb::RunBillingRequest { up_to: None })).by3(AppliedOwn, FB, FB)],
        ),
        case(
            "Gateway/CreateSubscription",
            vec![
                probe(call!(
                    create_subscription,
                    pb::CreateSubscriptionRequest {
                        subscription_id: own("sub_beta_grpc"),
                        member_id: "mem_1".into(),
                        plan_id: PLAN.into(),
                        ..Default::default()
                    }
                ))
                .by3(Rejected("plan_not_found"), Rejected("plan_not_found"), FB),
            ],
        ),
        case(
            "Gateway/ChangeSubscriptionPlan",
            vec![
                probe(call!(
                    change_subscription_plan,
                    pb::ChangeSubscriptionPlanRequest {
                        subscription_id: SUBSCRIPTION.into(),
                        plan_id: PLAN.into(),
                        ..Default::default()
                    }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/PauseSubscription",
            vec![
                probe(call!(
                    pause_subscription,
                    pb::PauseSubscriptionRequest {
                        subscription_id: SUBSCRIPTION.into(),
                        ..Default::default()
                    }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/ResumeSubscription",
            vec![
                probe(call!(
                    resume_subscription,
                    pb::ResumeSubscriptionRequest {
                        subscription_id: SUBSCRIPTION.into(),
                        effective_at: None
                    }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/CancelSubscription",
            vec![
                probe(call!(
                    cancel_subscription,
                    pb::CancelSubscriptionRequest {
                        subscription_id: SUBSCRIPTION.into(),
                        ..Default::default()
                    }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/IssueCreditNote",
            vec![
                probe(call!(
                    issue_credit_note,
                    pb::IssueCreditNoteRequest {
                        subscription_id: SUBSCRIPTION.into(),
                        amount_minor: 100,
                        ..Default::default()
                    }
                ))
                .by3(NF, FB, FB),
            ],
        ),
        case(
            "Gateway/RecordUsage",
            vec![
                probe(call!(
                    record_usage,
                    pb::RecordUsageRequest {
                        usage_id: "use_beta_grpc".into(),
                        subscription_id: SUBSCRIPTION.into(),
                        metric: "seat_hours".into(),
                        quantity: 50,
                        effective_at: None
                    }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/ListPlans",
            vec![
                probe(call!(list_plans, filters(&[("all_versions", "true")])))
                    .by3(NothingOfA, NothingOfA, NothingOfA)
                    .control(OwnerSees),
            ],
        ),
        case(
            "Gateway/GetPlan",
            vec![
                probe(call!(get_plan, pb::GetPlanRequest { plan_id: PLAN.into() }))
                    .by(BStaff, NF)
                    .by(BMember, NF),
            ],
        ),
        case(
            "Gateway/ListCoupons",
            vec![probe(call!(list_coupons, filters(&[]))).by3(NothingOfA, FB, FB).control(OwnerSees)],
        ),
        case(
            "Gateway/ListSubscriptions",
            vec![
                probe(call!(list_subscriptions, filters(&[])))
                    .by3(NothingOfA, NothingOfA, NothingOfA)
                    .control(OwnerSees),
            ],
        ),
        case(
            "Gateway/GetSubscription",
            vec![
                probe(call!(
                    get_subscription,
                    pb::GetSubscriptionRequest { subscription_id: SUBSCRIPTION.into() }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/GetSubscriptionUsage",
            vec![
                probe(call!(
                    get_subscription_usage,
                    pb::GetSubscriptionUsageRequest {
                        subscription_id: SUBSCRIPTION.into(),
                        period_start: None
                    }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/ListSubscriptionInvoices",
            vec![
                probe(call!(
                    list_subscription_invoices,
                    pb::SubscriptionListRequest {
                        subscription_id: SUBSCRIPTION.into(),
                        ..Default::default()
                    }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/ListCreditNotes",
            vec![
                probe(call!(
                    list_credit_notes,
                    pb::SubscriptionListRequest {
                        subscription_id: SUBSCRIPTION.into(),
                        ..Default::default()
                    }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/GetSubscriptionsDashboard",
            vec![
                probe(call!(get_subscriptions_dashboard, window(&[])))
                    .by3(NothingOfA, FB, FB)
                    .control(OwnerDiffers),
            ],
        ),
        // Notifications.
        case(
            "Gateway/SendNotification",
            vec![
                probe(call!(
                    send_notification,
                    pb::SendNotificationRequest {
                        notification_id: own("ntf_beta_grpc"),
                        recipient_id: "mem_1".into(),
                        channel: "in_app".into(),
                        category: "transactional".into(),
                        template_id: own(TEMPLATE),
                        variables: BTreeMap::from([("name".to_owned(), "x".to_owned())]),
                        ..Default::default()
                    }
                ))
                .by3(Rejected("template_not_found"), FB, FB),
            ],
        ),
        case(
            "Gateway/CreateTemplate",
            vec![
                probe(call!(
                    create_template,
                    pb::CreateTemplateRequest {
                        template_id: own("tpl_beta_grpc"),
                        channel: "in_app".into(),
                        body: "Beta's own".into(),
                        ..Default::default()
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/PreviewTemplate",
            vec![
                probe(call!(
                    preview_template,
                    pb::PreviewTemplateRequest { body: "Hello".into(), ..Default::default() }
                ))
                .by3(
                    AnsweredOwn(200, "renders only the text it is sent; it names no record"),
                    FB,
                    FB,
                ),
            ],
        ),
        case(
            "Gateway/SetPreferences",
            vec![
                probe(call!(
                    set_preferences,
                    pb::SetPreferencesRequest {
                        recipient_id: "mem_1".into(),
                        email: own("beta.grpc@example.com"),
                        ..Default::default()
                    }
                ))
                .by(BStaff, AppliedOwn)
                .by(AMember2, FB),
            ],
        ),
        case(
            "Gateway/CancelNotifications",
            vec![
                probe(call!(
                    cancel_notifications,
                    pb::CancelNotificationsRequest {
                        recipient_id: "mem_1".into(),
                        transaction_id: TRANSACTION.into()
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/GetNotification",
            vec![
                probe(call!(
                    get_notification,
                    pb::GetNotificationRequest { notification_id: DELIVERED.into() }
                ))
                .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/ListNotifications",
            vec![
                probe(call!(list_notifications, filters(&[])))
                    .by3(NothingOfA, NothingOfA, NothingOfA)
                    .control(OwnerSees),
            ],
        ),
        case(
            "Gateway/ListTemplates",
            vec![
                probe(call!(list_templates, filters(&[("all_versions", "true")])))
                    .by3(NothingOfA, FB, FB)
                    .control(OwnerSees),
            ],
        ),
        case(
            "Gateway/GetPreferences",
            vec![
                probe(call!(get_preferences, pb::GetPreferencesRequest { recipient_id: "mem_1".into() }))
                    .by3(NF, NF, NF),
            ],
        ),
        case(
            "Gateway/ListInbox",
            vec![
                probe(call!(list_inbox, filters(&[])))
                    .by3(NothingOfA, NothingOfA, NothingOfA)
                    .control(Member1Sees),
            ],
        ),
        case(
            "Gateway/GetNotificationsDashboard",
            vec![
                probe(call!(get_notifications_dashboard, window(&[])))
                    .by3(NothingOfA, FB, FB)
                    .control(OwnerDiffers),
            ],
        ),
        case(
            "Gateway/CreateCampaign",
            vec![
                probe(call!(
                    create_campaign,
                    pb::CreateCampaignRequest {
                        campaign_id: own("cmp_beta_grpc"),
                        name: "Beta".into(),
                        kind: "broadcast".into(),
                        category: "marketing".into(),
                        channel: own("in_app"),
                        template_id: own(TEMPLATE),
                        body: "x".into(),
                        segment: Some(pb::Segment {
                            recipient_ids: vec!["mem_1".into()],
                            ..Default::default()
                        }),
                        send_at: Some(day(20, 9)),
                        ..Default::default()
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/LaunchCampaign",
            vec![probe(call!(launch_campaign, pb::CampaignRequest { campaign_id: CAMPAIGN.into() })).by3(
                Rejected("campaign_not_found"),
                FB,
                FB,
            )],
        ),
        case(
            "Gateway/CancelCampaign",
            vec![probe(call!(cancel_campaign, pb::CampaignRequest { campaign_id: CAMPAIGN.into() })).by3(
                Rejected("campaign_not_found"),
                FB,
                FB,
            )],
        ),
        case(
            "Gateway/GetCampaign",
            vec![
                probe(call!(get_campaign, pb::CampaignRequest { campaign_id: CAMPAIGN.into() }))
                    .by3(NF, FB, FB),
            ],
        ),
        case(
            "Gateway/ListCampaigns",
            vec![probe(call!(list_campaigns, filters(&[]))).by3(NothingOfA, FB, FB).control(OwnerSees)],
        ),
        case(
            "Gateway/MarkNotificationsRead",
            vec![
                probe(call!(
                    mark_notifications_read,
                    pb::MarkNotificationsReadRequest { notification_ids: vec![DELIVERED.into()] }
                ))
                .by(BMember, AppliedOwn)
                .by(AMember2, AppliedOwn),
            ],
        ),
        case(
            "Gateway/SendNotificationNow",
            vec![
                probe(call!(
                    send_notification_now,
                    pb::GetNotificationRequest { notification_id: SCHEDULED.into() }
                ))
                .by3(NF, FB, FB),
            ],
        ),
        // Monitoring.
        case(
            "Gateway/RecordMetricSample",
            vec![
                probe(call!(
                    record_metric_sample,
                    pb::RecordMetricSampleRequest { metric: METRIC.into(), value: 7.0, ..Default::default() }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/RecordMetricSamples",
            vec![
                probe(call!(
                    record_metric_samples,
                    pb::RecordMetricSamplesRequest {
                        samples: vec![pb::RecordMetricSampleRequest {
                            metric: METRIC.into(),
                            value: 8.0,
                            ..Default::default()
                        }]
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/ListMetricSamples",
            vec![
                probe(call!(list_metric_samples, filters(&[("metric", METRIC)])))
                    .by3(NothingOfA, FB, FB)
                    .control(OwnerSees),
            ],
        ),
        case(
            "Gateway/DefineAlertRule",
            vec![
                probe(call!(define_alert_rule, monitoring(rule_body("rul_beta_grpc", "Beta's own"))))
                    .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/DefineAlertRoute",
            vec![
                probe(call!(define_alert_route, monitoring(route_body("rte_beta_grpc"))))
                    .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/DefineInhibitRule",
            vec![
                probe(call!(define_inhibit_rule, monitoring(inhibition_body("inh_beta_grpc"))))
                    .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/CreateSilence",
            vec![
                probe(call!(
                    create_silence,
                    monitoring(serde_json::json!({
                        "silence_id": SILENCE, "expire": true, "matchers": [], "ends_at": day(30, 0)
                    }))
                ))
                .by3(Rejected("silence_not_found"), FB, FB),
            ],
        ),
        case(
            "Gateway/ListAlertRules",
            vec![probe(call!(list_alert_rules, filters(&[]))).by3(NothingOfA, FB, FB).control(OwnerSees)],
        ),
        case(
            "Gateway/ListSilences",
            vec![probe(call!(list_silences, filters(&[]))).by3(NothingOfA, FB, FB).control(OwnerSees)],
        ),
        case(
            "Gateway/ListActiveAlerts",
            vec![
                probe(call!(list_active_alerts, filters(&[])))
                    .by3(NothingOfA, FB, FB)
                    .control(Unseeded("no rule of A fires: the suite runs no evaluation")),
            ],
        ),
        case(
            "Gateway/ListAlertHistory",
            vec![
                probe(call!(list_alert_history, filters(&[("rule_id", RULE)])))
                    .by3(NothingOfA, FB, FB)
                    .control(Unseeded("no rule of A has changed state: the suite runs no evaluation")),
            ],
        ),
        case(
            "Gateway/DefineHealthCheck",
            vec![
                probe(call!(
                    define_health_check,
                    pb::DefineHealthCheckRequest {
                        health_check_id: own("hck_beta_grpc"),
                        name: "Beta's own".into(),
                        kind: own("tcp"),
                        target: "127.0.0.1:9".into(),
                        ..Default::default()
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/ListHealthChecks",
            vec![probe(call!(list_health_checks, filters(&[]))).by3(NothingOfA, FB, FB).control(OwnerSees)],
        ),
        case(
            "Gateway/GetHealthCheck",
            vec![
                probe(call!(
                    get_health_check,
                    pb::HealthCheckRequest { health_check_id: HEALTH_CHECK.into(), ..Default::default() }
                ))
                .by3(NF, FB, FB),
            ],
        ),
        case(
            "Gateway/RecordLogs",
            vec![
                probe(call!(
                    record_logs,
                    pb::RecordLogsRequest {
                        records: vec![pb::LogRecordInput {
                            level: "warn".into(),
                            service: LOG_SERVICE.into(),
                            message: "Beta's own".into(),
                            ..Default::default()
                        }]
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/SearchLogs",
            vec![
                probe(call!(search_logs, filters(&[("service", LOG_SERVICE)])))
                    .by3(NothingOfA, FB, FB)
                    .control(OwnerSees),
            ],
        ),
        case(
            "Gateway/DefineDashboard",
            vec![
                probe(call!(
                    define_dashboard,
                    pb::DefineDashboardRequest {
                        dashboard_id: own("dsh_beta_grpc"),
                        name: "Beta's own".into(),
                        widgets: vec![pb::DashboardWidget {
                            title: "Revenue".into(),
                            kind: "revenue".into(),
                            ..Default::default()
                        }]
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/ListDashboards",
            vec![probe(call!(list_dashboards, filters(&[]))).by3(NothingOfA, FB, FB).control(OwnerSees)],
        ),
        case(
            "Gateway/GetDashboard",
            vec![
                probe(call!(get_dashboard, pb::DashboardRequest { dashboard_id: DASHBOARD.into() }))
                    .by3(NF, FB, FB),
            ],
        ),
        case(
            "Gateway/GetDashboardData",
            vec![
                probe(call!(
                    get_dashboard_data,
                    pb::DashboardDataRequest {
                        dashboard_id: DASHBOARD.into(),
                        from: day(-3, 0),
                        to: day(5, 0)
                    }
                ))
                .by3(NF, FB, FB),
            ],
        ),
        case(
            "Gateway/DefineReport",
            vec![
                probe(call!(
                    define_report,
                    pb::DefineReportRequest {
                        report_id: own("rpt_beta_grpc"),
                        name: "Beta's own".into(),
                        schedule: "daily".into(),
                        sections: vec!["revenue".into()],
                        ..Default::default()
                    }
                ))
                .by3(AppliedOwn, FB, FB),
            ],
        ),
        case(
            "Gateway/ListReports",
            vec![probe(call!(list_reports, filters(&[]))).by3(NothingOfA, FB, FB).control(OwnerSees)],
        ),
        case(
            "Gateway/GetReport",
            vec![probe(call!(get_report, pb::ReportRequest { report_id: REPORT.into() })).by3(NF, FB, FB)],
        ),
        case(
            "Gateway/GetReportRunFile",
            vec![
                probe(call!(
                    get_report_run_file,
                    pb::ReportRunFileRequest {
                        report_id: REPORT.into(),
                        run_id: "run_1".into(),
                        format: "csv".into()
                    }
                ))
                .by3(NF, FB, FB),
            ],
        ),
    ]
}
