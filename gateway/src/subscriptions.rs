//! Billing's subscriptions: the organization's plans and coupons, members' subscriptions (create,
//! change plan, pause, resume, cancel), usage, credit notes and billing runs; and their reads, with
//! the subscriptions dashboard. The gateway only checks shapes and who may ask; billing decides.
//! Times are RFC 3339 here and epoch milliseconds in the commands.

use std::collections::{HashMap, HashSet};

use axum::{Extension, Json, extract::State, response::Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use studyspot_billing_projection::{
    Invoice,
    subscription_reads::{
        self as reads, Coupon, CreditNote, MetricUsage, Plan, Subscription, SubscriptionsDashboard,
    },
};
use studyspot_bus::TraceContext;
use studyspot_ids::{
    CouponId, CreditNoteId, Currency, Cycle, MemberId, PaymentMethodId, PlanId, PlanTier, SubscriptionId,
    UsageId,
};
use studyspot_schemas::billing;

use crate::{
    AppState, GatewayError,
    auth::Caller,
    billing::optional_id,
    commands::{Accept, CommandRequest, PathId, accept, answer, metadata, one_of, required},
    error::projection_missing,
    ledger::Idempotency,
    queries::{
        ListParams, Page, Params, analytics_range, member_scope, only_params, query_values, rows, time_param,
        visible,
    },
};

/// The longest trial a plan or a subscription may give, in days.
const MAX_TRIAL_DAYS: i32 = 730;

/// Path segments under /api/subscriptions/ that are not subscription ids.
const RESERVED_IDS: [&str; 5] = ["plans", "coupons", "usage", "billing", "analytics"];

fn millis(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(|t| t.timestamp_millis())
}

/// When a command takes effect. Only operators and services name an instant (back-office
/// corrections, simulations, feeds): a member's own commands take effect when accepted, so no
/// member moves their billing clock.
fn effective(caller: &Caller, at: Option<DateTime<Utc>>) -> Result<Option<i64>, GatewayError> {
    if at.is_some() {
        caller.require_operator("naming effective_at")?;
    }
    Ok(millis(at))
}

/// How far ahead of the gateway's clock a billing run's `up_to` may be (clocks differ a little).
const RUN_BILLING_LEEWAY_SECS: i64 = 60;

fn trial_days(days: Option<i32>) -> Result<(), GatewayError> {
    match days {
        Some(d) if !(0..=MAX_TRIAL_DAYS).contains(&d) => {
            Err(GatewayError::invalid("trial_days", format!("trial_days must be 0 to {MAX_TRIAL_DAYS}")))
        }
        _ => Ok(()),
    }
}

/// A command on the organization's catalogue (plans, coupons, billing runs): keyed by the
/// organization, about no member.
fn catalog_how<'a>(
    caller: &'a Caller,
    trace: &'a TraceContext,
    idempotency: Option<Idempotency>,
    aggregate: (&'static str, String),
) -> Accept<'a> {
    Accept { caller, trace, idempotency, aggregate, member_id: None }
}

fn member_how<'a>(
    caller: &'a Caller,
    trace: &'a TraceContext,
    idempotency: Option<Idempotency>,
    aggregate: (&'static str, String),
    member_id: &'a str,
) -> Accept<'a> {
    Accept { caller, trace, idempotency, aggregate, member_id: Some(member_id) }
}

/// The subscription a request names, as the caller may see it (404 otherwise). Commands on a
/// subscription are keyed by its member, whom the caller does not have to name.
pub(crate) async fn subscription_with(
    state: &AppState,
    caller: &Caller,
    subscription_id: &str,
) -> Result<Subscription, GatewayError> {
    let found =
        reads::find_subscription(&state.readonly, caller.organization_id.as_str(), subscription_id).await;
    visible(caller, found, |s| &s.member_id, || format!("subscription {subscription_id}"))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanAllowanceRequest {
    /// seat_hours, bookings, api_calls or notifications; each at most once per plan.
    pub(crate) metric: String,
    /// Per period.
    pub(crate) included: i64,
    /// Per unit beyond `included`, in the plan's minor units; 0: usage beyond is not billed.
    pub(crate) overage_unit_minor: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefinePlanRequest {
    /// Chosen by the caller (`plan_…`) or by the gateway; an existing plan's id publishes its next version.
    #[schema(value_type = Option<String>)]
    pub(crate) plan_id: Option<PlanId>,
    pub(crate) name: String,
    /// basic, premium, enterprise or custom.
    #[schema(value_type = String)]
    pub(crate) tier: PlanTier,
    /// daily, weekly, monthly, quarterly or yearly.
    #[schema(value_type = String)]
    pub(crate) cycle: Cycle,
    /// Per cycle, in minor units.
    pub(crate) price_minor: i64,
    #[schema(value_type = String)]
    pub(crate) currency: Currency,
    /// 0 to 730; default 0.
    pub(crate) trial_days: Option<i32>,
    /// Basis points, 0 to 10000 (1900 = 19 %); default 0.
    pub(crate) tax_rate_bps: Option<i32>,
    #[serde(default)]
    pub(crate) allowances: Vec<PlanAllowanceRequest>,
}

#[utoipa::path(post, path = "/api/subscriptions/plans", tag = "subscriptions", request_body = DefinePlanRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted: billing publishes the plan (or its next version)", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services define plans", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn define_plan(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<DefinePlanRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(define_plan_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn define_plan_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: DefinePlanRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("defining a plan")?;
    required("name", &body.name)?;
    if body.price_minor < 0 {
        return Err(GatewayError::invalid("price_minor", "price_minor cannot be negative"));
    }
    trial_days(body.trial_days)?;
    if body.tax_rate_bps.is_some_and(|t| !(0..=10_000).contains(&t)) {
        return Err(GatewayError::invalid("tax_rate_bps", "tax_rate_bps must be 0 to 10000"));
    }
    let mut metrics = HashSet::new();
    for (n, allowance) in body.allowances.iter().enumerate() {
        let field = |name: &str| format!("allowances[{n}].{name}");
        one_of(&field("metric"), &allowance.metric, &billing::USAGE_METRICS)?;
        if !metrics.insert(allowance.metric.as_str()) {
            return Err(GatewayError::invalid(
                &field("metric"),
                format!("{} is named twice; a plan has one allowance per metric", allowance.metric),
            ));
        }
        if allowance.included < 0 {
            return Err(GatewayError::invalid(&field("included"), "included cannot be negative"));
        }
        if allowance.overage_unit_minor < 0 {
            return Err(GatewayError::invalid(
                &field("overage_unit_minor"),
                "overage_unit_minor cannot be negative",
            ));
        }
    }
    let plan_id = optional_id(body.plan_id, "plan");
    let command = billing::DefinePlan {
        metadata: metadata(caller),
        plan_id: plan_id.clone(),
        name: body.name,
        tier: body.tier.into(),
        cycle: body.cycle.into(),
        price_minor: body.price_minor,
        currency: body.currency.into(),
        trial_days: body.trial_days.unwrap_or(0),
        tax_rate_bps: body.tax_rate_bps.unwrap_or(0),
        allowances: body
            .allowances
            .into_iter()
            .map(|a| billing::PlanAllowance {
                metric: a.metric,
                included: a.included,
                overage_unit_minor: a.overage_unit_minor,
            })
            .collect(),
    };
    accept(state, command, catalog_how(caller, trace, idempotency, ("plan_id", plan_id))).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefineCouponRequest {
    /// The code members enter, e.g. STUDENT.
    #[schema(value_type = String)]
    pub(crate) coupon_id: CouponId,
    pub(crate) name: String,
    /// Basis points off, 1 to 10000 (2000 = 20 %); or else `amount_off_minor` with `currency`.
    pub(crate) percent_off_bps: Option<i32>,
    /// A fixed amount off each invoiced period.
    pub(crate) amount_off_minor: Option<i64>,
    /// The currency of `amount_off_minor`.
    #[schema(value_type = Option<String>)]
    pub(crate) currency: Option<Currency>,
    /// once, repeating or forever.
    pub(crate) duration: String,
    /// For `repeating` only (and required then): how many invoiced periods, more than 0.
    pub(crate) duration_cycles: Option<i32>,
}

#[utoipa::path(post, path = "/api/subscriptions/coupons", tag = "subscriptions", request_body = DefineCouponRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services define coupons", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn define_coupon(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<DefineCouponRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(define_coupon_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn define_coupon_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: DefineCouponRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("defining a coupon")?;
    required("name", &body.name)?;
    match (body.percent_off_bps, body.amount_off_minor) {
        (Some(_), Some(_)) => {
            return Err(GatewayError::invalid(
                "amount_off_minor",
                "give either percent_off_bps or amount_off_minor, not both",
            ));
        }
        (None, None) => {
            return Err(GatewayError::invalid(
                "percent_off_bps",
                "give percent_off_bps, or amount_off_minor with currency",
            ));
        }
        (Some(percent), None) => {
            if !(1..=10_000).contains(&percent) {
                return Err(GatewayError::invalid("percent_off_bps", "percent_off_bps must be 1 to 10000"));
            }
            if body.currency.is_some() {
                return Err(GatewayError::invalid("currency", "currency goes with amount_off_minor only"));
            }
        }
        (None, Some(amount)) => {
            if amount <= 0 {
                return Err(GatewayError::invalid(
                    "amount_off_minor",
                    "amount_off_minor must be a positive number of minor units",
                ));
            }
            if body.currency.is_none() {
                return Err(GatewayError::invalid("currency", "amount_off_minor needs its currency"));
            }
        }
    }
    one_of("duration", &body.duration, &billing::COUPON_DURATIONS)?;
    match (body.duration.as_str(), body.duration_cycles) {
        ("repeating", None) => {
            return Err(GatewayError::invalid("duration_cycles", "a repeating coupon needs duration_cycles"));
        }
        ("repeating", Some(cycles)) if cycles <= 0 => {
            return Err(GatewayError::invalid("duration_cycles", "duration_cycles must be positive"));
        }
        ("repeating", Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(GatewayError::invalid(
                "duration_cycles",
                "duration_cycles goes with duration repeating only",
            ));
        }
    }
    let coupon_id = String::from(body.coupon_id);
    let command = billing::DefineCoupon {
        metadata: metadata(caller),
        coupon_id: coupon_id.clone(),
        name: body.name,
        percent_off_bps: body.percent_off_bps,
        amount_off_minor: body.amount_off_minor,
        currency: body.currency.map(String::from),
        duration: body.duration,
        duration_cycles: body.duration_cycles,
    };
    accept(state, command, catalog_how(caller, trace, idempotency, ("coupon_id", coupon_id))).await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBillingRequest {
    /// Bill what is due up to then (RFC 3339; not in the future); default now.
    pub(crate) up_to: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/subscriptions/billing", tag = "subscriptions", request_body = RunBillingRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted: billing bills every subscription due (trial ends, renewals, retries, resumes, cancellations)", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services run billing", body = crate::openapi::ErrorBody),
    )
)]
pub async fn run_billing(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<RunBillingRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(run_billing_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn run_billing_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: RunBillingRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("running billing")?;
    // A run renews, ends trials and retries dunning for everything due by `up_to`; an instant
    // ahead of now would charge, cancel and cut members off today for a future that has not come.
    let now = Utc::now();
    let up_to = body.up_to.unwrap_or(now);
    if up_to > now + chrono::Duration::seconds(RUN_BILLING_LEEWAY_SECS) {
        return Err(GatewayError::invalid(
            "up_to",
            format!(
                "up_to {} is in the future: a billing run brings subscriptions up to now at most",
                up_to.to_rfc3339()
            ),
        ));
    }
    let command = billing::RunBilling { metadata: metadata(caller), up_to: up_to.timestamp_millis() };
    let aggregate = ("organization_id", caller.organization_id.to_string());
    accept(state, command, catalog_how(caller, trace, idempotency, aggregate)).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscriptionRequest {
    /// Chosen by the caller (`sub_…`) or by the gateway.
    #[schema(value_type = Option<String>)]
    pub(crate) subscription_id: Option<SubscriptionId>,
    #[schema(value_type = String)]
    pub(crate) member_id: MemberId,
    /// On the plan's current version.
    #[schema(value_type = String)]
    pub(crate) plan_id: PlanId,
    /// When the first period starts (RFC 3339; operators only); default when accepted.
    pub(crate) effective_at: Option<DateTime<Utc>>,
    /// Overrides the plan's trial, 0 to 730 days; 0 for none (operators only).
    pub(crate) trial_days: Option<i32>,
    /// Created paused: nothing is charged until it resumes.
    #[serde(default)]
    pub(crate) paused: bool,
    /// With `paused`: resume then.
    pub(crate) resume_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>)]
    pub(crate) coupon_id: Option<CouponId>,
    /// The stored method renewals charge; default the member's default method.
    #[schema(value_type = Option<String>)]
    pub(crate) payment_method_id: Option<PaymentMethodId>,
}

#[utoipa::path(post, path = "/api/subscriptions", tag = "subscriptions", request_body = CreateSubscriptionRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "A member subscribes only themselves", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn create_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<CreateSubscriptionRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(create_subscription_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn create_subscription_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: CreateSubscriptionRequest,
) -> Result<(Value, bool), GatewayError> {
    trial_days(body.trial_days)?;
    if body.resume_at.is_some() && !body.paused {
        return Err(GatewayError::invalid("resume_at", "resume_at goes with paused: true"));
    }
    caller.require_member_or_operator(body.member_id.as_str(), "subscribing")?;
    if body.trial_days.is_some() {
        // The plan says how long its trial is; only the back office grants another.
        caller.require_operator("choosing trial_days")?;
    }
    let subscription_id = optional_id(body.subscription_id, "sub");
    if RESERVED_IDS.contains(&subscription_id.as_str()) {
        return Err(GatewayError::invalid(
            "subscription_id",
            format!("{subscription_id} names a route of the API; choose another subscription_id"),
        ));
    }
    let command = billing::CreateSubscription {
        metadata: metadata(caller),
        subscription_id: subscription_id.clone(),
        member_id: body.member_id.to_string(),
        plan_id: body.plan_id.into(),
        effective_at: effective(caller, body.effective_at)?,
        trial_days: body.trial_days,
        paused: body.paused,
        resume_at: millis(body.resume_at),
        coupon_id: body.coupon_id.map(String::from),
        payment_method_id: body.payment_method_id.map(String::from),
    };
    let how =
        member_how(caller, trace, idempotency, ("subscription_id", subscription_id), body.member_id.as_str());
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeSubscriptionPlanRequest {
    /// Another plan, or the same one to move to its current version.
    #[schema(value_type = String)]
    pub(crate) plan_id: PlanId,
    /// next_invoice (default: credit and charge on the renewal invoice), immediately (an invoice
    /// now) or none (the new price from the next period).
    pub(crate) proration: Option<String>,
    /// When it takes effect (RFC 3339; operators only, never before what billing applied); default when accepted.
    pub(crate) effective_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/subscriptions/{id}/change-plan", tag = "subscriptions", request_body = ChangeSubscriptionPlanRequest,
    params(("id" = String, Path, description = "The subscription id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription visible to this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn change_plan(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(subscription_id): PathId<SubscriptionId>,
    request: CommandRequest<ChangeSubscriptionPlanRequest>,
) -> Result<Response, GatewayError> {
    let answered =
        change_plan_with(&state, &caller, &trace, request.idempotency, subscription_id, request.body).await?;
    Ok(answer(answered))
}

pub(crate) async fn change_plan_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    subscription_id: SubscriptionId,
    body: ChangeSubscriptionPlanRequest,
) -> Result<(Value, bool), GatewayError> {
    let proration = body.proration.unwrap_or_else(|| "next_invoice".to_owned());
    one_of("proration", &proration, &billing::PRORATIONS)?;
    let subscription = subscription_with(state, caller, subscription_id.as_str()).await?;
    let command = billing::ChangeSubscriptionPlan {
        metadata: metadata(caller),
        subscription_id: subscription.subscription_id.clone(),
        member_id: subscription.member_id.clone(),
        plan_id: body.plan_id.into(),
        proration,
        effective_at: effective(caller, body.effective_at)?,
    };
    let how = member_how(
        caller,
        trace,
        idempotency,
        ("subscription_id", subscription_id.into()),
        &subscription.member_id,
    );
    accept(state, command, how).await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseSubscriptionRequest {
    /// Resume automatically then (RFC 3339).
    pub(crate) resume_at: Option<DateTime<Utc>>,
    /// When it takes effect (RFC 3339; operators only, never before what billing applied); default when accepted.
    pub(crate) effective_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/subscriptions/{id}/pause", tag = "subscriptions", request_body = PauseSubscriptionRequest,
    params(("id" = String, Path, description = "The subscription id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription visible to this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(subscription_id): PathId<SubscriptionId>,
    request: CommandRequest<PauseSubscriptionRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(pause_with(&state, &caller, &trace, request.idempotency, subscription_id, request.body).await?))
}

pub(crate) async fn pause_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    subscription_id: SubscriptionId,
    body: PauseSubscriptionRequest,
) -> Result<(Value, bool), GatewayError> {
    if let (Some(resume_at), Some(effective_at)) = (body.resume_at, body.effective_at)
        && resume_at <= effective_at
    {
        return Err(GatewayError::invalid("resume_at", "resume_at must be after effective_at"));
    }
    let subscription = subscription_with(state, caller, subscription_id.as_str()).await?;
    let command = billing::PauseSubscription {
        metadata: metadata(caller),
        subscription_id: subscription.subscription_id.clone(),
        member_id: subscription.member_id.clone(),
        resume_at: millis(body.resume_at),
        effective_at: effective(caller, body.effective_at)?,
    };
    let how = member_how(
        caller,
        trace,
        idempotency,
        ("subscription_id", subscription_id.into()),
        &subscription.member_id,
    );
    accept(state, command, how).await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeSubscriptionRequest {
    /// When it takes effect (RFC 3339; operators only, never before what billing applied); default when accepted.
    pub(crate) effective_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/subscriptions/{id}/resume", tag = "subscriptions", request_body = ResumeSubscriptionRequest,
    params(("id" = String, Path, description = "The subscription id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription visible to this token", body = crate::openapi::ErrorBody),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(subscription_id): PathId<SubscriptionId>,
    request: CommandRequest<ResumeSubscriptionRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(
        resume_with(&state, &caller, &trace, request.idempotency, subscription_id, request.body).await?,
    ))
}

pub(crate) async fn resume_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    subscription_id: SubscriptionId,
    body: ResumeSubscriptionRequest,
) -> Result<(Value, bool), GatewayError> {
    let subscription = subscription_with(state, caller, subscription_id.as_str()).await?;
    let command = billing::ResumeSubscription {
        metadata: metadata(caller),
        subscription_id: subscription.subscription_id.clone(),
        member_id: subscription.member_id.clone(),
        effective_at: effective(caller, body.effective_at)?,
    };
    let how = member_how(
        caller,
        trace,
        idempotency,
        ("subscription_id", subscription_id.into()),
        &subscription.member_id,
    );
    accept(state, command, how).await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelSubscriptionRequest {
    /// Cancel when the current period ends instead of now; default false.
    #[serde(default)]
    pub(crate) at_period_end: bool,
    /// Cancelling now: credit the unused part of the paid period; default false.
    #[serde(default)]
    pub(crate) prorate: bool,
    pub(crate) reason: Option<String>,
    /// When it takes effect (RFC 3339; operators only, never before what billing applied); default when accepted.
    pub(crate) effective_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/subscriptions/{id}/cancel", tag = "subscriptions", request_body = CancelSubscriptionRequest,
    params(("id" = String, Path, description = "The subscription id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription visible to this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(subscription_id): PathId<SubscriptionId>,
    request: CommandRequest<CancelSubscriptionRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(
        cancel_with(&state, &caller, &trace, request.idempotency, subscription_id, request.body).await?,
    ))
}

pub(crate) async fn cancel_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    subscription_id: SubscriptionId,
    body: CancelSubscriptionRequest,
) -> Result<(Value, bool), GatewayError> {
    if body.at_period_end && body.prorate {
        return Err(GatewayError::invalid(
            "prorate",
            "prorate credits the rest of the period when cancelling now, not at_period_end",
        ));
    }
    let subscription = subscription_with(state, caller, subscription_id.as_str()).await?;
    let command = billing::CancelSubscription {
        metadata: metadata(caller),
        subscription_id: subscription.subscription_id.clone(),
        member_id: subscription.member_id.clone(),
        at_period_end: body.at_period_end,
        prorate: body.prorate,
        reason: body.reason,
        effective_at: effective(caller, body.effective_at)?,
    };
    let how = member_how(
        caller,
        trace,
        idempotency,
        ("subscription_id", subscription_id.into()),
        &subscription.member_id,
    );
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueCreditNoteRequest {
    /// Chosen by the caller (`cn_…`) or by the gateway.
    #[schema(value_type = Option<String>)]
    pub(crate) credit_note_id: Option<CreditNoteId>,
    /// In the subscription's currency; more than 0.
    pub(crate) amount_minor: i64,
    pub(crate) memo: Option<String>,
}

#[utoipa::path(post, path = "/api/subscriptions/{id}/credit-notes", tag = "subscriptions", request_body = IssueCreditNoteRequest,
    params(("id" = String, Path, description = "The subscription id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted: a goodwill credit the subscription's next invoices draw on", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services issue credit notes", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription in this organization", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn issue_credit_note(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(subscription_id): PathId<SubscriptionId>,
    request: CommandRequest<IssueCreditNoteRequest>,
) -> Result<Response, GatewayError> {
    let answered =
        issue_credit_note_with(&state, &caller, &trace, request.idempotency, subscription_id, request.body)
            .await?;
    Ok(answer(answered))
}

pub(crate) async fn issue_credit_note_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    subscription_id: SubscriptionId,
    body: IssueCreditNoteRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("issuing a credit note")?;
    if body.amount_minor <= 0 {
        return Err(GatewayError::invalid(
            "amount_minor",
            "amount_minor must be a positive number of minor units",
        ));
    }
    let credit_note_id = optional_id(body.credit_note_id, "cn");
    let subscription = subscription_with(state, caller, subscription_id.as_str()).await?;
    let command = billing::IssueCreditNote {
        metadata: metadata(caller),
        credit_note_id: credit_note_id.clone(),
        subscription_id: subscription.subscription_id.clone(),
        member_id: subscription.member_id.clone(),
        amount_minor: body.amount_minor,
        memo: body.memo,
    };
    let how =
        member_how(caller, trace, idempotency, ("credit_note_id", credit_note_id), &subscription.member_id);
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordUsageRequest {
    /// Chosen by the caller: the same id counts once.
    #[schema(value_type = String)]
    pub(crate) usage_id: UsageId,
    #[schema(value_type = String)]
    pub(crate) subscription_id: SubscriptionId,
    /// seat_hours, bookings, api_calls or notifications.
    pub(crate) metric: String,
    /// More than 0.
    pub(crate) quantity: i64,
    /// When it takes effect (RFC 3339; operators only, never before what billing applied); default when accepted.
    pub(crate) effective_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/subscriptions/usage", tag = "subscriptions", request_body = RecordUsageRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted: counted against the subscription's allowance", body = crate::openapi::Accepted),
        (status = 400, description = "Malformed JSON, wrong types or unknown fields", body = crate::openapi::ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription visible to this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn record_usage(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<RecordUsageRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(record_usage_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn record_usage_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: RecordUsageRequest,
) -> Result<(Value, bool), GatewayError> {
    one_of("metric", &body.metric, &billing::USAGE_METRICS)?;
    if body.quantity <= 0 {
        return Err(GatewayError::invalid("quantity", "quantity must be positive"));
    }
    let subscription = subscription_with(state, caller, body.subscription_id.as_str()).await?;
    let usage_id = String::from(body.usage_id);
    let command = billing::RecordUsage {
        metadata: metadata(caller),
        usage_id: usage_id.clone(),
        subscription_id: subscription.subscription_id.clone(),
        member_id: subscription.member_id.clone(),
        metric: body.metric,
        quantity: body.quantity,
        effective_at: effective(caller, body.effective_at)?,
    };
    let how = member_how(caller, trace, idempotency, ("usage_id", usage_id), &subscription.member_id);
    accept(state, command, how).await
}

#[utoipa::path(get, path = "/api/subscriptions/plans", tag = "subscriptions",
    params(
        ("all_versions" = Option<bool>, Query, description = "true: every version of every plan; default the current version of each"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<Plan>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn plans(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(plans_with(&state, &caller, query_values(params)?).await?.json())
}

/// The organization's plans; every caller of the organization may read them.
pub(crate) async fn plans_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<Plan>, GatewayError> {
    let params = ListParams::parse(values, &["all_versions"])?;
    let all_versions = match params.get("all_versions") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(GatewayError::invalid("all_versions", "all_versions must be true or false")),
    };
    let rows = rows(
        reads::list_plans(
            &state.readonly,
            caller.organization_id.as_str(),
            all_versions,
            params.after(),
            params.fetch_limit(),
        )
        .await,
    )?;
    Ok(params.page(rows, |p| (p.created_at, p.cursor_key.as_str())))
}

#[utoipa::path(get, path = "/api/subscriptions/plans/{id}", tag = "subscriptions",
    params(("id" = String, Path, description = "The plan id")),
    responses(
        (status = 200, description = "The plan's current version, with every version (latest first) in `versions`", body = crate::openapi::PlanWithVersions),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such plan in this organization", body = crate::openapi::ErrorBody),
    )
)]
pub async fn plan(
    State(state): State<AppState>,
    caller: Caller,
    PathId(plan_id): PathId<PlanId>,
) -> Result<Json<Value>, GatewayError> {
    let versions = plan_with(&state, &caller, plan_id.as_str()).await?;
    let mut body = json!(versions[0]);
    body["versions"] = json!(versions);
    Ok(Json(body))
}

/// Every version of a plan, latest first; never empty (404 instead).
pub(crate) async fn plan_with(
    state: &AppState,
    caller: &Caller,
    plan_id: &str,
) -> Result<Vec<Plan>, GatewayError> {
    let versions = rows(reads::find_plan(&state.readonly, caller.organization_id.as_str(), plan_id).await)?;
    if versions.is_empty() {
        return Err(GatewayError::NotFound(format!("plan {plan_id}")));
    }
    Ok(versions)
}

#[utoipa::path(get, path = "/api/subscriptions/coupons", tag = "subscriptions",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<Coupon>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services list coupons", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn coupons(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(coupons_with(&state, &caller, query_values(params)?).await?.json())
}

/// The organization's coupons; their ids are the codes members enter, so only operators list them.
pub(crate) async fn coupons_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<Coupon>, GatewayError> {
    caller.require_operator("listing coupons")?;
    let params = ListParams::parse(values, &[])?;
    let rows = rows(
        reads::list_coupons(
            &state.readonly,
            caller.organization_id.as_str(),
            params.after(),
            params.fetch_limit(),
        )
        .await,
    )?;
    Ok(params.page(rows, |c| (c.created_at, c.coupon_id.as_str())))
}

#[utoipa::path(get, path = "/api/subscriptions", tag = "subscriptions",
    params(
        ("member_id" = Option<String>, Query, description = "Only this member's subscriptions"),
        ("status" = Option<String>, Query, description = "trialing, active, past_due, paused, suspended or cancelled"),
        ("plan_id" = Option<String>, Query, description = "Only subscriptions of this plan"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<Subscription>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(subscriptions_with(&state, &caller, query_values(params)?).await?.json())
}

pub(crate) async fn subscriptions_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<Subscription>, GatewayError> {
    let params = ListParams::parse(values, &["member_id", "status", "plan_id"])?;
    if let Some(status) = params.get("status") {
        one_of("status", status, &billing::SUBSCRIPTION_STATUSES)?;
    }
    let filter = reads::SubscriptionFilter {
        organization_id: caller.organization_id.as_str(),
        member_id: member_scope(caller, params.get("member_id"))?,
        status: params.get("status"),
        plan_id: params.get("plan_id"),
    };
    let rows = rows(
        reads::list_subscriptions(&state.readonly, &filter, params.after(), params.fetch_limit()).await,
    )?;
    Ok(params.page(rows, |s| (s.created_at, s.subscription_id.as_str())))
}

#[utoipa::path(get, path = "/api/subscriptions/{id}", tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 200, description = "The subscription", body = Subscription),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription visible to this token", body = crate::openapi::ErrorBody),
    )
)]
pub async fn subscription(
    State(state): State<AppState>,
    caller: Caller,
    PathId(subscription_id): PathId<SubscriptionId>,
) -> Result<Json<Value>, GatewayError> {
    Ok(Json(json!(subscription_with(&state, &caller, subscription_id.as_str()).await?)))
}

/// A subscription's usage in one period.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubscriptionUsage {
    pub subscription_id: String,
    pub period_start: DateTime<Utc>,
    /// By metric: counted, included by the plan version, and the percentage used.
    pub metrics: Vec<MetricUsage>,
}

#[utoipa::path(get, path = "/api/subscriptions/{id}/usage", tag = "subscriptions",
    params(
        ("id" = String, Path, description = "The subscription id"),
        ("period_start" = Option<String>, Query, description = "RFC 3339: the period that starts then; default the current period"),
    ),
    responses(
        (status = 200, description = "Usage by metric against the plan's allowance", body = SubscriptionUsage),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription visible to this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    PathId(subscription_id): PathId<SubscriptionId>,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(Json(json!(usage_with(&state, &caller, subscription_id.as_str(), query_values(params)?).await?)))
}

pub(crate) async fn usage_with(
    state: &AppState,
    caller: &Caller,
    subscription_id: &str,
    values: HashMap<String, String>,
) -> Result<SubscriptionUsage, GatewayError> {
    only_params(&values, &["period_start"])?;
    let period_start = time_param(&values, "period_start")?;
    let subscription = subscription_with(state, caller, subscription_id).await?;
    let period_start = period_start.unwrap_or(subscription.current_period_start);
    let metrics = rows(
        reads::subscription_usage(
            &state.readonly,
            caller.organization_id.as_str(),
            subscription_id,
            period_start,
        )
        .await,
    )?;
    Ok(SubscriptionUsage { subscription_id: subscription.subscription_id, period_start, metrics })
}

#[utoipa::path(get, path = "/api/subscriptions/{id}/invoices", tag = "subscriptions",
    params(
        ("id" = String, Path, description = "The subscription id"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<Invoice>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription visible to this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn invoices(
    State(state): State<AppState>,
    caller: Caller,
    PathId(subscription_id): PathId<SubscriptionId>,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(invoices_with(&state, &caller, subscription_id.as_str(), query_values(params)?).await?.json())
}

pub(crate) async fn invoices_with(
    state: &AppState,
    caller: &Caller,
    subscription_id: &str,
    values: HashMap<String, String>,
) -> Result<Page<Invoice>, GatewayError> {
    let params = ListParams::parse(values, &[])?;
    let subscription = subscription_with(state, caller, subscription_id).await?;
    let rows = rows(
        reads::list_subscription_invoices(
            &state.readonly,
            caller.organization_id.as_str(),
            &subscription.subscription_id,
            params.after(),
            params.fetch_limit(),
        )
        .await,
    )?;
    Ok(params.page(rows, |i| (i.created_at, i.invoice_id.as_str())))
}

#[utoipa::path(get, path = "/api/subscriptions/{id}/credit-notes", tag = "subscriptions",
    params(
        ("id" = String, Path, description = "The subscription id"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<CreditNote>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such subscription visible to this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn credit_notes(
    State(state): State<AppState>,
    caller: Caller,
    PathId(subscription_id): PathId<SubscriptionId>,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(credit_notes_with(&state, &caller, subscription_id.as_str(), query_values(params)?).await?.json())
}

pub(crate) async fn credit_notes_with(
    state: &AppState,
    caller: &Caller,
    subscription_id: &str,
    values: HashMap<String, String>,
) -> Result<Page<CreditNote>, GatewayError> {
    let params = ListParams::parse(values, &[])?;
    let subscription = subscription_with(state, caller, subscription_id).await?;
    let rows = rows(
        reads::list_credit_notes(
            &state.readonly,
            caller.organization_id.as_str(),
            &subscription.subscription_id,
            params.after(),
            params.fetch_limit(),
        )
        .await,
    )?;
    Ok(params.page(rows, |c| (c.created_at, c.credit_note_id.as_str())))
}

#[utoipa::path(get, path = "/api/subscriptions/analytics/dashboard", tag = "subscriptions",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339; default 30 days before `to`"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now, and then each subscription as it reads now (its latest state, even one a command dated ahead of the clock)"),
    ),
    responses(
        (status = 200, description = "Per currency: MRR and ARR at `to`, MRR at `from`, new, churned, expansion and contraction MRR, subscriptions by status, churn rate, net revenue retention, growth", body = SubscriptionsDashboard),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services see analytics", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(Json(json!(dashboard_with(&state, &caller, query_values(params)?).await?)))
}

/// The subscriptions as of `from` and as of `to` (RFC 3339; default the 30 days before now).
pub(crate) async fn dashboard_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<SubscriptionsDashboard, GatewayError> {
    caller.require_operator("subscription analytics")?;
    // Without `to` the caller asks about now: the states subscriptions read, not history cut at
    // the clock (a command with a future effective_at is already what the subscription reads).
    let as_of = if values.contains_key("to") { reads::AsOf::Instant } else { reads::AsOf::Current };
    let (from, to) = analytics_range(&values)?;
    match reads::subscriptions_dashboard(&state.readonly, caller.organization_id.as_str(), from, to, as_of)
        .await
    {
        Err(e) if projection_missing(&e) => Ok(SubscriptionsDashboard { from, to, currencies: Vec::new() }),
        other => Ok(other?),
    }
}
