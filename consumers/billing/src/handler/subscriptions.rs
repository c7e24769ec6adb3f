//! Subscription commands: load the subscription and what it needs, let `decide` rule, then write
//! what it decided — invoices (credits drawn, numbered in the organization's series, then
//! charged through the provider worker), credit notes, waiting charges, history — and emit the
//! events.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use studyspot_billing_projection::{
    CreditNote, Invoice, InvoiceLine, Subscription as SubscriptionRow, credits, invoices, methods, payments,
    plans, subscriptions, usage,
};
use studyspot_consumer_runtime::{HandleError, Out, malformed};
use studyspot_schemas::{
    Record,
    billing::{
        BillSubscription, BillingRunStarted, CancelSubscription, CatalogCommandRejected,
        ChangeSubscriptionPlan, CouponDefined, CreatePayment, CreateSubscription, CreditNoteIssued,
        DefineCoupon, DefinePlan, InvoiceCreated, InvoiceStatusChanged, PRORATIONS, PauseSubscription,
        PaymentCreated, PlanAllowance, PlanPublished, RecordUsage, ResumeSubscription, RunBilling,
        SubscriptionCancelScheduled, SubscriptionCreated, SubscriptionDunningStep, SubscriptionPlanChanged,
        SubscriptionRenewed, SubscriptionStatusChanged, SubscriptionTrialEnding, USAGE_METRICS,
        UsageRecorded, UsageThresholdReached,
    },
};

use studyspot_ids::{InvoiceId, MemberId, PaymentMethodId, SubscriptionId};

use super::state;
use crate::{
    decide::{
        self, Malformed, Refusal,
        catalog::{self, Plan},
        parse, parse_opt, payments as payment_rules,
        subscriptions::{
            self as rules, Bill, Command, Context, CreateRequest, CreateState, Decided, Event,
            IssueCreditNote, Loaded, Outcome, Policy, Subscription,
        },
    },
    shell::{Refuse, ask_number, start_charge},
};

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn instant<C: Record>(field: &str, ms: i64) -> Result<DateTime<Utc>, HandleError> {
    studyspot_consumer_runtime::instant(field, ms).map_err(malformed::<C>)
}

/// The command's `effective_at`, or when it was accepted.
fn effective<C: Record>(out: &Out<'_>, effective_at: Option<i64>) -> Result<DateTime<Utc>, HandleError> {
    match effective_at {
        Some(ms) => instant::<C>("effective_at", ms),
        None => out.message.occurred_at(),
    }
}

/// A derived id for the `n`th thing of a kind a command creates: the same on replay.
fn derived_id(out: &Out<'_>, prefix: &str, n: usize) -> String {
    let name = format!("{}/{prefix}/{n}", out.message.metadata.event_id);
    format!("{prefix}_{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).simple())
}

fn refuse_catalog<C: Record>(out: &mut Out<'_>, refusal: Refusal) {
    let command_id = out.command_id();
    out.reject(|metadata| CatalogCommandRejected {
        metadata,
        command_id,
        command_type: C::FULL_NAME.to_owned(),
        code: refusal.code.to_owned(),
        reason: refusal.reason,
    });
}

/// Writes and announces what a catalogue command decided, or its refusal.
async fn catalog_events<C: Record>(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    at: DateTime<Utc>,
    decided: Result<Vec<catalog::Event>, Refusal>,
) -> Result<(), HandleError> {
    let events = match decided {
        Ok(events) => events,
        Err(refusal) => {
            refuse_catalog::<C>(out, refusal);
            return Ok(());
        }
    };
    for event in events {
        match event {
            catalog::Event::PlanPublished(plan) => {
                plans::insert(tx, &state::plan_row(out.org(), &plan, at)).await?;
                out.emit(|metadata| PlanPublished {
                    metadata,
                    allowances: plan
                        .allowances
                        .iter()
                        .map(|a| PlanAllowance {
                            metric: a.metric.clone(),
                            included: a.included,
                            overage_unit_minor: a.overage_unit_minor,
                        })
                        .collect(),
                    plan_id: plan.plan_id.into(),
                    version: plan.version,
                    name: plan.name,
                    tier: plan.tier.into(),
                    cycle: plan.cycle.into(),
                    price_minor: plan.price_minor,
                    currency: plan.currency.into(),
                    trial_days: plan.trial_days,
                });
            }
            catalog::Event::CouponDefined(coupon) => {
                plans::insert_coupon(tx, &state::coupon_row(out.org(), &coupon, at)).await?;
                out.emit(|metadata| CouponDefined {
                    metadata,
                    coupon_id: coupon.coupon_id.into(),
                    name: coupon.name,
                    percent_off_bps: coupon.percent_off_bps,
                    amount_off_minor: coupon.amount_off_minor,
                    currency: coupon.currency.map(Into::into),
                    duration: coupon.duration,
                    duration_cycles: coupon.duration_cycles,
                });
            }
        }
    }
    Ok(())
}

pub(super) async fn define_plan(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: DefinePlan = out.message.record()?;
    let defined = catalog::parse_plan(&c).map_err(malformed::<DefinePlan>)?;
    let at = out.message.occurred_at()?;
    let current = plans::latest(tx, out.org(), &c.plan_id).await?.map(Plan::try_from).transpose()?;
    catalog_events::<DefinePlan>(tx, out, at, catalog::decide_plan(current.as_ref(), &defined)).await
}

pub(super) async fn define_coupon(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: DefineCoupon = out.message.record()?;
    let defined = catalog::parse_coupon(&c).map_err(malformed::<DefineCoupon>)?;
    let at = out.message.occurred_at()?;
    let exists = plans::coupon(tx, out.org(), &c.coupon_id).await?.is_some();
    catalog_events::<DefineCoupon>(tx, out, at, catalog::decide_coupon(exists, &defined)).await
}

/// Fans a billing run out as one `BillSubscription` per due subscription, keyed by its member.
pub(super) async fn run_billing(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: RunBilling = out.message.record()?;
    decide::check_filled(&[("metadata.organization_id", &c.metadata.organization_id)])
        .map_err(malformed::<RunBilling>)?;
    let up_to = instant::<RunBilling>("up_to", c.up_to)?;
    let due = subscriptions::due(tx, &c.metadata.organization_id, up_to).await?;
    for (subscription_id, member_id) in &due {
        out.emit(|metadata| BillSubscription {
            metadata,
            subscription_id: subscription_id.clone(),
            member_id: member_id.clone(),
            up_to: c.up_to,
        });
    }
    out.emit(|metadata| BillingRunStarted {
        metadata,
        up_to: c.up_to,
        subscriptions: i32::try_from(due.len()).unwrap_or(i32::MAX),
    });
    Ok(())
}

/// The organization's subscription of that id, whoever's it is.
async fn load_subscription(
    tx: &mut PgConnection,
    organization_id: &str,
    subscription_id: &str,
) -> Result<Option<Subscription>, HandleError> {
    subscriptions::load(tx, organization_id, subscription_id).await?.map(Subscription::try_from).transpose()
}

/// The subscription with its plan version, method, usage, waiting charges and credit.
async fn loaded(tx: &mut PgConnection, sub: Subscription) -> Result<Loaded, HandleError> {
    let (org, id) = (sub.organization_id.as_str(), sub.subscription_id.as_str());
    let plan = plans::version(tx, org, sub.plan_id.as_str(), sub.plan_version).await?.ok_or_else(|| {
        HandleError::malformed(CreateSubscription::FULL_NAME, "the subscription's plan is gone")
    })?;
    let (has_method, collected_by_staff) =
        collection(tx, org, &sub.member_id, sub.payment_method_id.as_ref()).await?;
    let ctx = Context {
        has_method,
        collected_by_staff,
        usage: usage::counters(tx, org, id, sub.current_period_start).await?,
        pending: subscriptions::pending_items(tx, org, id)
            .await?
            .into_iter()
            .map(|i| (i.description, i.amount_minor))
            .collect(),
        credit_minor: credits::available(tx, org, id).await?,
        plan: plan.try_into()?,
    };
    Ok(Loaded { sub, ctx })
}

/// The stored method a subscription pays with: its own, else the member's default — of the
/// subscription's organization only, so a subscription naming another organization's method
/// has none.
async fn payment_method(
    tx: &mut PgConnection,
    organization_id: &str,
    member_id: &str,
    payment_method_id: Option<&str>,
) -> Result<Option<studyspot_billing_projection::PaymentMethod>, HandleError> {
    Ok(match payment_method_id {
        Some(id) => methods::load(tx, organization_id, id).await?.filter(|m| m.member_id == member_id),
        None => methods::default_for(tx, organization_id, member_id).await?,
    })
}

/// Cash and bank transfers are collected by staff, not charged.
fn staff_collect(method: &studyspot_billing_projection::PaymentMethod) -> bool {
    matches!(method.method.as_str(), "cash" | "bank_transfer")
}

/// The stored method renewals charge, if the subscription pays with one that can be charged.
async fn charge_method(
    tx: &mut PgConnection,
    sub: &SubscriptionRow,
) -> Result<Option<studyspot_billing_projection::PaymentMethod>, HandleError> {
    let method =
        payment_method(tx, &sub.organization_id, &sub.member_id, sub.payment_method_id.as_deref()).await?;
    Ok(method.filter(|m| !staff_collect(m)))
}

/// How a subscription's invoices are collected: (charged to a stored method, recorded by staff).
async fn collection(
    tx: &mut PgConnection,
    organization_id: &str,
    member_id: &MemberId,
    payment_method_id: Option<&PaymentMethodId>,
) -> Result<(bool, bool), HandleError> {
    let (member_id, payment_method_id) = (member_id.as_str(), payment_method_id.map(PaymentMethodId::as_str));
    let method = payment_method(tx, organization_id, member_id, payment_method_id).await?;
    Ok((method.as_ref().is_some_and(|m| !staff_collect(m)), method.as_ref().is_some_and(staff_collect)))
}

pub(super) async fn create_subscription(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
) -> Result<(), HandleError> {
    let c: CreateSubscription = out.message.record()?;
    decide::check_filled(&[
        ("subscription_id", &c.subscription_id),
        ("member_id", &c.member_id),
        ("plan_id", &c.plan_id),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])
    .map_err(malformed::<CreateSubscription>)?;
    let at = effective::<CreateSubscription>(out, c.effective_at)?;
    let resume_at = c.resume_at.map(|ms| instant::<CreateSubscription>("resume_at", ms)).transpose()?;
    let request = (|| {
        Ok(CreateRequest {
            subscription_id: parse("subscription_id", &c.subscription_id)?,
            organization_id: parse("metadata.organization_id", &c.metadata.organization_id)?,
            member_id: parse("member_id", &c.member_id)?,
            plan_id: parse("plan_id", &c.plan_id)?,
            coupon_id: parse_opt("coupon_id", c.coupon_id.as_deref())?,
            trial_days: c.trial_days,
            paused: c.paused,
            resume_at,
            payment_method_id: parse_opt("payment_method_id", c.payment_method_id.as_deref())?,
        })
    })()
    .map_err(malformed::<CreateSubscription>)?;
    let org = c.metadata.organization_id.as_str();
    let (has_method, collected_by_staff) =
        collection(tx, org, &request.member_id, request.payment_method_id.as_ref()).await?;
    let given = CreateState {
        exists: subscriptions::load(tx, org, &c.subscription_id).await?.is_some(),
        plan: plans::latest(tx, org, &c.plan_id).await?.map(Plan::try_from).transpose()?,
        coupon: match &c.coupon_id {
            Some(id) => plans::coupon(tx, org, id).await?.map(catalog::Coupon::try_from).transpose()?,
            None => None,
        },
        has_method,
        collected_by_staff,
    };
    match rules::decide_create(&given, &request, at, policy) {
        Ok(decided) => write(tx, out, decided).await,
        Err(refusal) => {
            out.refuse::<CreateSubscription>(&c.member_id, refusal);
            Ok(())
        }
    }
}

/// A member's command on their subscription at `at`: loads it, lets `decide` rule, writes.
async fn command<C: Record>(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
    (subscription_id, member_id): (&str, &str),
    at: DateTime<Utc>,
    command: Command,
) -> Result<(), HandleError> {
    decide::check_filled(&[("subscription_id", subscription_id), ("member_id", member_id)])
        .map_err(malformed::<C>)?;
    let ids: (SubscriptionId, MemberId) =
        (|| Ok((parse("subscription_id", subscription_id)?, parse("member_id", member_id)?)))()
            .map_err(malformed::<C>)?;
    let given = match load_subscription(tx, out.org(), subscription_id).await? {
        Some(sub) => Some(loaded(tx, sub).await?),
        None => None,
    };
    match rules::decide(given.as_ref(), (&ids.0, &ids.1), &command, at, policy) {
        Ok(Some(decided)) => write(tx, out, decided).await,
        Ok(None) => Ok(()),
        Err(refusal) => {
            out.refuse::<C>(member_id, refusal);
            Ok(())
        }
    }
}

pub(super) async fn change_plan(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
) -> Result<(), HandleError> {
    let c: ChangeSubscriptionPlan = out.message.record()?;
    if !PRORATIONS.contains(&c.proration.as_str()) {
        return Err(malformed::<ChangeSubscriptionPlan>(Malformed(format!(
            "proration {:?} is not one of {}",
            c.proration,
            PRORATIONS.join(", ")
        ))));
    }
    let at = effective::<ChangeSubscriptionPlan>(out, c.effective_at)?;
    let plan_id = parse("plan_id", &c.plan_id).map_err(malformed::<ChangeSubscriptionPlan>)?;
    let plan = plans::latest(tx, out.org(), &c.plan_id).await?.map(Plan::try_from).transpose()?;
    let change = Command::ChangePlan { plan_id, plan, proration: c.proration.clone() };
    command::<ChangeSubscriptionPlan>(tx, out, policy, (&c.subscription_id, &c.member_id), at, change).await
}

pub(super) async fn pause(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
) -> Result<(), HandleError> {
    let c: PauseSubscription = out.message.record()?;
    let at = effective::<PauseSubscription>(out, c.effective_at)?;
    let resume_at = c.resume_at.map(|ms| instant::<PauseSubscription>("resume_at", ms)).transpose()?;
    let pause = Command::Pause { resume_at };
    command::<PauseSubscription>(tx, out, policy, (&c.subscription_id, &c.member_id), at, pause).await
}

pub(super) async fn resume(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
) -> Result<(), HandleError> {
    let c: ResumeSubscription = out.message.record()?;
    let at = effective::<ResumeSubscription>(out, c.effective_at)?;
    command::<ResumeSubscription>(tx, out, policy, (&c.subscription_id, &c.member_id), at, Command::Resume)
        .await
}

pub(super) async fn cancel(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
) -> Result<(), HandleError> {
    let c: CancelSubscription = out.message.record()?;
    let at = effective::<CancelSubscription>(out, c.effective_at)?;
    let cancel = Command::Cancel { at_period_end: c.at_period_end, prorate: c.prorate };
    command::<CancelSubscription>(tx, out, policy, (&c.subscription_id, &c.member_id), at, cancel).await
}

pub(super) async fn bill(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
) -> Result<(), HandleError> {
    let c: BillSubscription = out.message.record()?;
    let up_to = instant::<BillSubscription>("up_to", c.up_to)?;
    command::<BillSubscription>(tx, out, policy, (&c.subscription_id, &c.member_id), up_to, Command::Bill)
        .await
}

pub(super) async fn issue_credit_note(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: studyspot_schemas::billing::IssueCreditNote = out.message.record()?;
    decide::check_filled(&[
        ("credit_note_id", &c.credit_note_id),
        ("subscription_id", &c.subscription_id),
        ("member_id", &c.member_id),
    ])
    .map_err(malformed::<studyspot_schemas::billing::IssueCreditNote>)?;
    if c.amount_minor <= 0 {
        return Err(malformed::<studyspot_schemas::billing::IssueCreditNote>(Malformed(
            "amount_minor must be positive".into(),
        )));
    }
    let request = (|| {
        Ok(IssueCreditNote {
            credit_note_id: parse("credit_note_id", &c.credit_note_id)?,
            subscription_id: parse("subscription_id", &c.subscription_id)?,
            member_id: parse("member_id", &c.member_id)?,
            amount_minor: c.amount_minor,
            memo: c.memo.clone(),
        })
    })()
    .map_err(malformed::<studyspot_schemas::billing::IssueCreditNote>)?;
    let at = out.message.occurred_at()?;
    let org = out.org().to_owned();
    let sub = load_subscription(tx, &org, &c.subscription_id).await?;
    let exists = credits::exists(tx, &org, &c.credit_note_id).await?;
    match rules::decide_credit_note(sub.as_ref(), exists, &request, at) {
        Ok(note) => credit_note(tx, out, &state::credit_note_row(&org, &note)).await,
        Err(refusal) => {
            out.refuse::<studyspot_schemas::billing::IssueCreditNote>(&c.member_id, refusal);
            Ok(())
        }
    }
}

async fn credit_note(tx: &mut PgConnection, out: &mut Out<'_>, note: &CreditNote) -> Result<(), HandleError> {
    credits::insert(tx, note).await?;
    out.emit(|metadata| CreditNoteIssued {
        metadata,
        credit_note_id: note.credit_note_id.clone(),
        subscription_id: note.subscription_id.clone(),
        member_id: note.member_id.clone(),
        amount_minor: note.amount_minor,
        currency: note.currency.clone(),
        reason: note.reason.clone(),
    });
    Ok(())
}

pub(super) async fn record_usage(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
) -> Result<(), HandleError> {
    let c: RecordUsage = out.message.record()?;
    decide::check_filled(&[("usage_id", &c.usage_id)]).map_err(malformed::<RecordUsage>)?;
    if !USAGE_METRICS.contains(&c.metric.as_str()) {
        return Err(malformed::<RecordUsage>(Malformed(format!(
            "metric {:?} is not one of {}",
            c.metric,
            USAGE_METRICS.join(", ")
        ))));
    }
    if c.quantity <= 0 {
        return Err(malformed::<RecordUsage>(Malformed("quantity must be positive".into())));
    }
    let at = effective::<RecordUsage>(out, c.effective_at)?;
    let usage = Command::RecordUsage {
        usage_id: parse("usage_id", &c.usage_id).map_err(malformed::<RecordUsage>)?,
        metric: c.metric.clone(),
        quantity: c.quantity,
        dated: c.effective_at.is_some(),
    };
    command::<RecordUsage>(tx, out, policy, (&c.subscription_id, &c.member_id), at, usage).await
}

/// Usage counted once per usage id, and what it crossed of the allowance.
async fn count_usage(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    sub: &SubscriptionRow,
    (usage_id, metric, quantity): (String, String, i64),
    (included, period_start, at): (i64, DateTime<Utc>, DateTime<Utc>),
) -> Result<(), HandleError> {
    let org = &sub.organization_id;
    let first =
        usage::record_once(tx, org, &usage_id, &sub.subscription_id, &metric, quantity, period_start, at)
            .await?;
    // A usage id seen before counts nothing and says nothing.
    if !first {
        return Ok(());
    }
    let used = usage::add(tx, org, &sub.subscription_id, period_start, &metric, quantity).await?;
    out.emit(|metadata| UsageRecorded {
        metadata,
        usage_id,
        subscription_id: sub.subscription_id.clone(),
        member_id: sub.member_id.clone(),
        metric: metric.clone(),
        quantity,
        used,
        included,
    });
    for percent in rules::thresholds_crossed(used - quantity, used, included) {
        out.emit(|metadata| UsageThresholdReached {
            metadata,
            subscription_id: sub.subscription_id.clone(),
            member_id: sub.member_id.clone(),
            metric: metric.clone(),
            percent,
            used,
            included,
            period_start: millis(period_start),
        });
    }
    Ok(())
}

/// A subscription invoice's payment failed: the next dunning step.
pub(super) async fn payment_failed(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
    organization_id: &str,
    invoice_id: &str,
    at: DateTime<Utc>,
) -> Result<(), HandleError> {
    settle(tx, out, policy, (organization_id, invoice_id), at, |i| Outcome::Failed(i)).await
}

/// A subscription invoice was paid: a subscription dunning for it is current again.
pub(super) async fn invoice_paid(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
    organization_id: &str,
    invoice_id: &str,
    at: DateTime<Utc>,
) -> Result<(), HandleError> {
    settle(tx, out, policy, (organization_id, invoice_id), at, |i| Outcome::Paid(i)).await
}

async fn settle(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    policy: &Policy,
    (organization_id, invoice_id): (&str, &str),
    at: DateTime<Utc>,
    outcome: impl for<'i> FnOnce(&'i InvoiceId) -> Outcome<'i>,
) -> Result<(), HandleError> {
    let Some(subscription_id) =
        invoices::load(tx, organization_id, invoice_id).await?.and_then(|i| i.subscription_id)
    else {
        return Ok(());
    };
    let Some(sub) = load_subscription(tx, organization_id, &subscription_id).await? else { return Ok(()) };
    let invoice_id: InvoiceId = state::stored("invoice", "invoice_id", invoice_id)?;
    let given = loaded(tx, sub).await?;
    write(tx, out, rules::decide_outcome(&given, outcome(&invoice_id), at, policy)).await
}

/// Writes the subscription as `decide` left it, then what happened to it, in order.
async fn write(tx: &mut PgConnection, out: &mut Out<'_>, decided: Decided) -> Result<(), HandleError> {
    let Decided { sub, events } = decided;
    let sub = SubscriptionRow::from(sub);
    subscriptions::save(tx, &sub).await?;
    let ids = (sub.subscription_id.clone(), sub.member_id.clone());
    for (n, event) in events.into_iter().enumerate() {
        match event {
            Event::Created => out.emit(|metadata| SubscriptionCreated {
                metadata,
                subscription_id: sub.subscription_id.clone(),
                member_id: sub.member_id.clone(),
                plan_id: sub.plan_id.clone(),
                plan_version: sub.plan_version,
                status: sub.status.clone(),
                current_period_start: millis(sub.current_period_start),
                current_period_end: millis(sub.current_period_end),
                trial_end: sub.trial_end.map(millis),
                coupon_id: sub.coupon_id.clone(),
            }),
            Event::TrialEnding { trial_end, has_method } => out.emit(|metadata| SubscriptionTrialEnding {
                metadata,
                subscription_id: ids.0.clone(),
                member_id: ids.1.clone(),
                trial_end: millis(trial_end),
                has_payment_method: has_method,
            }),
            Event::Status { from, to, reason, at } => out.emit(|metadata| SubscriptionStatusChanged {
                metadata,
                subscription_id: ids.0.clone(),
                member_id: ids.1.clone(),
                from_status: from,
                status: to,
                reason: reason.into(),
                effective_at: millis(at),
            }),
            Event::Invoice(bill) => issue(tx, out, &sub, bill).await?,
            Event::Retry { invoice_id, at } => retry(tx, out, &sub, invoice_id.as_str(), at).await?,
            Event::Dunning { invoice_id, attempt, next_retry_at, final_action } => {
                out.emit(|metadata| SubscriptionDunningStep {
                    metadata,
                    subscription_id: ids.0.clone(),
                    member_id: ids.1.clone(),
                    invoice_id: invoice_id.into(),
                    attempt,
                    next_retry_at: next_retry_at.map(millis),
                    final_action,
                })
            }
            Event::Uncollectible { invoice_id } => {
                if let Some(invoice) = invoices::load(tx, &sub.organization_id, invoice_id.as_str()).await?
                    && invoice.status == "open"
                {
                    let changed =
                        Invoice { status: "uncollectible".into(), updated_at: sub.updated_at, ..invoice };
                    invoices::save(tx, &changed).await?;
                    out.emit(|metadata| InvoiceStatusChanged {
                        metadata,
                        invoice_id: changed.invoice_id.clone(),
                        member_id: changed.member_id.clone(),
                        from_status: "open".into(),
                        status: changed.status.clone(),
                    });
                }
            }
            Event::Credit { amount_minor, reason, at } => {
                let note = CreditNote {
                    credit_note_id: derived_id(out, "cn", n),
                    organization_id: sub.organization_id.clone(),
                    member_id: sub.member_id.clone(),
                    subscription_id: sub.subscription_id.clone(),
                    currency: sub.currency.clone(),
                    amount_minor,
                    remaining_minor: amount_minor,
                    reason: reason.into(),
                    memo: None,
                    created_at: at,
                };
                credit_note(tx, out, &note).await?;
            }
            Event::Item { description, amount_minor, at } => {
                subscriptions::add_item(
                    tx,
                    &sub.organization_id,
                    &sub.subscription_id,
                    &description,
                    amount_minor,
                    at,
                )
                .await?;
            }
            Event::PlanChanged { from_plan_id, from_version, proration, credit_minor, charge_minor, at } => {
                out.emit(|metadata| SubscriptionPlanChanged {
                    metadata,
                    subscription_id: ids.0.clone(),
                    member_id: ids.1.clone(),
                    from_plan_id: from_plan_id.into(),
                    from_version,
                    plan_id: sub.plan_id.clone(),
                    plan_version: sub.plan_version,
                    proration,
                    credit_minor,
                    charge_minor,
                    effective_at: millis(at),
                });
            }
            Event::CancelScheduled { cancel_at } => out.emit(|metadata| SubscriptionCancelScheduled {
                metadata,
                subscription_id: ids.0.clone(),
                member_id: ids.1.clone(),
                cancel_at: millis(cancel_at),
            }),
            Event::History { at, status, mrr_minor } => {
                subscriptions::record_history(tx, &sub, at, &status, mrr_minor).await?;
            }
            Event::UsageCounted { usage_id, metric, quantity, included, period_start, at } => {
                count_usage(tx, out, &sub, (usage_id.into(), metric, quantity), (included, period_start, at))
                    .await?;
            }
        }
    }
    Ok(())
}

/// An invoice of the subscription: written open with its credits drawn, and numbered in the
/// organization's series; once it has its number it is paid at once (nothing due), charged to
/// the stored method, or left open for the member to pay.
async fn issue(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    sub: &SubscriptionRow,
    bill: Bill,
) -> Result<(), HandleError> {
    let invoice_id = bill.invoice_id.to_string();
    if invoices::load(tx, &sub.organization_id, &invoice_id).await?.is_some() {
        return Ok(());
    }
    let lines: Vec<InvoiceLine> = bill
        .lines
        .iter()
        .enumerate()
        .map(|(n, l)| InvoiceLine {
            invoice_id: invoice_id.clone(),
            line_no: i32::try_from(n + 1).unwrap_or(i32::MAX),
            description: l.description.clone(),
            quantity: l.quantity,
            unit_amount_minor: l.unit_amount_minor,
            amount_minor: l.amount_minor,
            tax_rate_bps: bill.tax_rate_bps,
            tax_name: None,
            tax_minor: l.tax_minor,
        })
        .collect();
    let mut invoice = Invoice {
        invoice_id,
        organization_id: sub.organization_id.clone(),
        member_id: sub.member_id.clone(),
        number: None,
        currency: sub.currency.clone(),
        subtotal_minor: bill.subtotal_minor,
        tax_minor: bill.tax_minor,
        total_minor: bill.total_minor,
        amount_paid_minor: 0,
        status: "open".into(),
        due_at: bill.due_at,
        created_at: bill.at,
        updated_at: bill.at,
        issued_at: Some(bill.at),
        paid_at: None,
        subscription_id: Some(sub.subscription_id.clone()),
        period_start: bill.period.map(|p| p.0),
        period_end: bill.period.map(|p| p.1),
        credit_applied_minor: 0,
        charge_on_number: bill.charge,
    };
    invoices::insert(tx, &invoice, &lines).await?;
    invoice.credit_applied_minor = credits::apply(
        tx,
        &sub.organization_id,
        &sub.subscription_id,
        &invoice.invoice_id,
        bill.credit_applied_minor,
    )
    .await?;
    if bill.takes_pending {
        subscriptions::invoice_items(tx, &sub.organization_id, &sub.subscription_id, &invoice.invoice_id)
            .await?;
    }
    invoices::save(tx, &invoice).await?;
    out.emit(|metadata| InvoiceCreated {
        metadata,
        invoice_id: invoice.invoice_id.clone(),
        member_id: invoice.member_id.clone(),
        currency: invoice.currency.clone(),
        subtotal_minor: invoice.subtotal_minor,
        tax_minor: invoice.tax_minor,
        total_minor: invoice.total_minor,
        due_at: millis(invoice.due_at),
    });
    if let Some((start, end)) = bill.period {
        out.emit(|metadata| SubscriptionRenewed {
            metadata,
            subscription_id: sub.subscription_id.clone(),
            member_id: sub.member_id.clone(),
            period_start: millis(start),
            period_end: millis(end),
            invoice_id: invoice.invoice_id.clone(),
            amount_due_minor: invoice.amount_due_minor(),
        });
    }
    ask_number(out, &invoice);
    Ok(())
}

/// A subscription invoice that got its number is charged to the subscription's stored method.
pub(super) async fn charge_numbered(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    invoice: &Invoice,
) -> Result<(), HandleError> {
    let Some(subscription_id) = &invoice.subscription_id else { return Ok(()) };
    let org = &invoice.organization_id;
    let Some(sub) = subscriptions::load(tx, org, subscription_id).await? else { return Ok(()) };
    if payments::load(tx, org, &payment_of(&invoice.invoice_id)).await?.is_some() {
        return Ok(());
    }
    create_and_charge(tx, out, &sub, invoice, invoice.issued_at.unwrap_or(invoice.created_at)).await?;
    Ok(())
}

/// A payment of the invoice's amount due on the subscription's method, charged through the
/// provider worker; `false` when there is no method to charge.
async fn create_and_charge(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    sub: &SubscriptionRow,
    invoice: &Invoice,
    at: DateTime<Utc>,
) -> Result<bool, HandleError> {
    let Some(method) = charge_method(tx, sub).await? else { return Ok(false) };
    let command = CreatePayment {
        // The subscription's organization, whichever record brought the charge about.
        metadata: studyspot_schemas::EventMetadata {
            organization_id: sub.organization_id.clone(),
            ..out.message.metadata.clone()
        },
        payment_id: payment_of(&invoice.invoice_id),
        member_id: sub.member_id.clone(),
        amount_minor: invoice.amount_due_minor(),
        currency: invoice.currency.clone(),
        method: method.method.clone(),
        description: Some(format!("Invoice {}", invoice.number.clone().unwrap_or_default())),
        invoice_id: Some(invoice.invoice_id.clone()),
        payment_method_id: Some(method.payment_method_id.clone()),
    };
    let ctx = payment_rules::CreateContext {
        exists: false,
        method_of: Some(state::method_view(&method)?),
        invoice: Some(state::invoice_view(invoice)?),
    };
    let asked = payment_rules::parse_create(&command).map_err(malformed::<CreatePayment>)?;
    let payment = payment_rules::create(&ctx, &asked, at)
        .map_err(|r| HandleError::malformed(CreatePayment::FULL_NAME, r.reason))?;
    let created = studyspot_billing_projection::Payment::from(payment.clone());
    out.emit(|metadata| PaymentCreated {
        metadata,
        payment_id: created.payment_id,
        member_id: created.member_id,
        amount_minor: created.amount_minor,
        currency: created.currency,
        method: created.method,
        description: created.description,
        invoice_id: created.invoice_id,
    });
    let call_id = derived_id(out, "call", 0) + &invoice.invoice_id;
    charge(tx, out, &payment, call_id).await?;
    Ok(true)
}

/// The payment that charges a subscription invoice.
fn payment_of(invoice_id: &str) -> String {
    format!("pay_{}", invoice_id.trim_start_matches("inv_"))
}

async fn charge(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    payment: &payment_rules::Payment,
    call_id: String,
) -> Result<(), HandleError> {
    // Provider calls are scheduled on the clock the worker runs by: the command's acceptance.
    let now = out.message.occurred_at()?;
    let processing = payment_rules::process(payment, &call_id, payment.updated_at)
        .map_err(|r| HandleError::malformed(CreatePayment::FULL_NAME, r.reason))?;
    start_charge(tx, out, &processing.into(), call_id, None, None, now).await
}

/// A dunning retry: the invoice's failed payment is charged again — or, when the member added a
/// method only after the invoice was issued, a first payment is made for it.
async fn retry(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
    sub: &SubscriptionRow,
    invoice_id: &str,
    at: DateTime<Utc>,
) -> Result<(), HandleError> {
    let Some(payment) = payments::load(tx, &sub.organization_id, &payment_of(invoice_id)).await? else {
        if let Some(invoice) = invoices::load(tx, &sub.organization_id, invoice_id).await?
            && invoice.status == "open"
            && invoice.amount_due_minor() > 0
        {
            if invoice.number.is_some() {
                create_and_charge(tx, out, sub, &invoice, at).await?;
            } else {
                // Its number has not come back yet: the charge goes with it.
                invoices::save(tx, &Invoice { charge_on_number: true, ..invoice }).await?;
            }
        }
        return Ok(());
    };
    if payment.status != "failed" {
        return Ok(());
    }
    let payment = payment_rules::Payment { updated_at: at, ..payment.try_into()? };
    let call_id = derived_id(out, "call", 1) + invoice_id;
    charge(tx, out, &payment, call_id).await
}
