//! The subscription state machine: trials, periods, renewals with coupons, overage and credits,
//! plan changes prorated to the second, pause / resume, cancellation and dunning.
//!
//! Every transition happens at an instant carried by a command (`effective_at`, or a billing run's
//! `up_to`); nothing here reads a clock, so replaying the commands rebuilds the same invoices.
//! A command first brings the subscription up to its instant ([`Machine::advance`]): renewals,
//! trial ends, resumes and dunning retries due before it happen first, whether or not a billing
//! run got to them.

use chrono::{DateTime, Duration, Utc};
use studyspot_ids::{
    CouponId, CreditNoteId, Currency, Cycle, InvoiceId, MemberId, OrganizationId, PaymentMethodId, PlanId,
    SubscriptionId, UsageId,
};

use super::{
    Refusal, basis_points,
    catalog::{Coupon, Plan},
    derived,
    periods::{monthly, period, prorate},
};

/// A member's subscription: its plan, period, trial, coupon, pause, cancellation and dunning,
/// and how far commands have brought it (`applied_through`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub subscription_id: SubscriptionId,
    pub organization_id: OrganizationId,
    pub member_id: MemberId,
    pub plan_id: PlanId,
    pub plan_version: i32,
    pub currency: Currency,
    /// trialing, active, past_due, paused, suspended or cancelled.
    pub status: String,
    pub anchor: DateTime<Utc>,
    pub period_index: i32,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    pub covered_from: DateTime<Utc>,
    pub covered_value_minor: i64,
    pub trial_end: Option<DateTime<Utc>>,
    pub trial_notice_sent: bool,
    pub cancel_at_period_end: bool,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub paused_at: Option<DateTime<Utc>>,
    pub resume_at: Option<DateTime<Utc>>,
    pub coupon_id: Option<CouponId>,
    pub coupon_percent_bps: Option<i32>,
    pub coupon_amount_minor: Option<i64>,
    pub coupon_cycles_left: Option<i32>,
    pub payment_method_id: Option<PaymentMethodId>,
    pub dunning_invoice_id: Option<InvoiceId>,
    pub dunning_attempt: i32,
    pub dunning_started_at: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub applied_through: DateTime<Utc>,
    pub next_due_at: Option<DateTime<Utc>>,
    pub mrr_minor: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How an organization's subscriptions are billed (from `[billing.subscriptions]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The trial-ending notice goes out this long before the trial ends.
    pub trial_notice_days: i64,
    /// After a renewal payment fails, retries this many days after the renewal, in order.
    pub dunning_retry_days: Vec<i64>,
    /// When retries run out: cancel (the invoice becomes uncollectible) or suspend (it stays open).
    pub dunning_final_action: String,
    /// An invoice is due this many days after it is issued.
    pub invoice_due_days: i64,
    /// An invoice staff collect (cash, bank transfer) is due this many days after it is issued;
    /// dunning starts only then.
    pub manual_invoice_due_days: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            trial_notice_days: 3,
            dunning_retry_days: vec![1, 3, 5],
            dunning_final_action: "cancel".into(),
            invoice_due_days: 0,
            manual_invoice_due_days: 7,
        }
    }
}

/// What a subscription command needs besides the subscription.
#[derive(Debug, Clone)]
pub struct Context {
    /// The plan version the subscription is on.
    pub plan: Plan,
    /// A stored payment method renewals can charge.
    pub has_method: bool,
    /// The member pays by cash or bank transfer, which staff record: invoices wait for that
    /// until they are due instead of failing at once for want of something to charge.
    pub collected_by_staff: bool,
    /// Usage of the current period, by metric.
    pub usage: Vec<(String, i64)>,
    /// Charges waiting for the next invoice.
    pub pending: Vec<(String, i64)>,
    /// What the subscription's open credit notes still hold.
    pub credit_minor: i64,
}

/// One line of a subscription's invoice; discounts are negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillLine {
    pub description: String,
    pub quantity: i64,
    pub unit_amount_minor: i64,
    pub amount_minor: i64,
    pub tax_minor: i64,
}

/// An invoice the subscription issues, priced, with the credit it draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub invoice_id: InvoiceId,
    /// period (a new period, in advance), proration (a plan change settled now) or final.
    pub kind: &'static str,
    pub at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub lines: Vec<BillLine>,
    pub tax_rate_bps: i32,
    pub subtotal_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub credit_applied_minor: i64,
    pub amount_due_minor: i64,
    /// It bills the charges that were waiting (they are marked as billed by it).
    pub takes_pending: bool,
    /// A payment is to be charged to the stored method.
    pub charge: bool,
}

/// What happened to a subscription, in order: announced, written to the projection, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The subscription was created (`SubscriptionCreated`, from its state after the command).
    Created,
    TrialEnding {
        trial_end: DateTime<Utc>,
        has_method: bool,
    },
    Status {
        from: String,
        to: String,
        reason: &'static str,
        at: DateTime<Utc>,
    },
    Invoice(Bill),
    /// Charge the invoice again (a dunning retry).
    Retry {
        invoice_id: InvoiceId,
        at: DateTime<Utc>,
    },
    Dunning {
        invoice_id: InvoiceId,
        attempt: i32,
        next_retry_at: Option<DateTime<Utc>>,
        final_action: String,
    },
    /// The invoice will not be collected (dunning cancelled the subscription).
    Uncollectible {
        invoice_id: InvoiceId,
    },
    Credit {
        amount_minor: i64,
        reason: &'static str,
        at: DateTime<Utc>,
    },
    /// A charge for the next invoice.
    Item {
        description: String,
        amount_minor: i64,
        at: DateTime<Utc>,
    },
    PlanChanged {
        from_plan_id: PlanId,
        from_version: i32,
        proration: String,
        credit_minor: i64,
        charge_minor: i64,
        at: DateTime<Utc>,
    },
    CancelScheduled {
        cancel_at: DateTime<Utc>,
    },
    /// The subscription's status or MRR changed at `at`.
    History {
        at: DateTime<Utc>,
        status: String,
        mrr_minor: i64,
    },
    /// Usage counted in the period that started at `period_start` (once per usage id: a usage id
    /// seen before counts nothing and says nothing).
    UsageCounted {
        usage_id: UsageId,
        metric: String,
        quantity: i64,
        included: i64,
        period_start: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

/// A subscription being moved by one command: its state and what happened to it, in order.
#[derive(Debug, Clone)]
pub struct Machine<'p> {
    pub sub: Subscription,
    pub steps: Vec<Event>,
    ctx: Context,
    policy: &'p Policy,
    recorded: (String, i64),
    /// Arrears taken early (before a plan change) for the next bill, and whether they include the
    /// waiting charges.
    carried: (Vec<(String, i64, i64)>, bool),
}

fn refuse(code: &'static str, reason: impl Into<String>) -> Refusal {
    Refusal::new(code, reason)
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// The invoice id of a subscription's bill: derived, so a replay names the same invoices.
pub fn invoice_id(subscription_id: &SubscriptionId, kind: &str, at: DateTime<Utc>) -> InvoiceId {
    derived(format!("inv_{}_{kind}_{}", subscription_id.as_str().trim_start_matches("sub_"), at.timestamp()))
}

/// The coupon's discount of one period's plan price, if it still applies.
fn coupon_discount(sub: &Subscription, price_minor: i64) -> i64 {
    if sub.coupon_id.is_none() || sub.coupon_cycles_left == Some(0) {
        return 0;
    }
    match (sub.coupon_percent_bps, sub.coupon_amount_minor) {
        (Some(bps), _) => basis_points(price_minor, i64::from(bps)).unwrap_or(0).min(price_minor),
        (None, Some(amount)) => amount.min(price_minor),
        (None, None) => 0,
    }
}

/// Monthly recurring revenue of the subscription on `plan`: the plan's price after a coupon that
/// still applies, per month; nothing unless it is active or past due.
pub fn mrr(sub: &Subscription, plan: &Plan) -> i64 {
    if !matches!(sub.status.as_str(), "active" | "past_due") {
        return 0;
    }
    monthly(plan.price_minor - coupon_discount(sub, plan.price_minor), plan.cycle.as_str())
}

/// A new subscription at `at`; the first period is billed at once unless it starts with a trial or
/// paused.
pub fn create<'p>(
    c: &CreateRequest,
    ctx: Context,
    coupon: Option<&Coupon>,
    at: DateTime<Utc>,
    policy: &'p Policy,
) -> Result<Machine<'p>, Refusal> {
    let plan = &ctx.plan;
    if let Some(coupon) = coupon
        && coupon.amount_off_minor.is_some()
        && coupon.currency.as_ref() != Some(&plan.currency)
    {
        return Err(refuse(
            "currency_mismatch",
            format!(
                "coupon {} is in {:?}; the plan bills in {}",
                coupon.coupon_id,
                coupon.currency.as_ref().map(Currency::as_str),
                plan.currency
            ),
        ));
    }
    let trial_days = c.trial_days.unwrap_or(plan.trial_days);
    let sub = Subscription {
        subscription_id: c.subscription_id.clone(),
        organization_id: c.organization_id.clone(),
        member_id: c.member_id.clone(),
        plan_id: plan.plan_id.clone(),
        plan_version: plan.version,
        currency: plan.currency.clone(),
        status: "created".into(),
        anchor: at,
        current_period_start: at,
        current_period_end: at,
        covered_from: at,
        coupon_id: coupon.map(|c| c.coupon_id.clone()),
        coupon_percent_bps: coupon.and_then(|c| c.percent_off_bps),
        coupon_amount_minor: coupon.and_then(|c| c.amount_off_minor),
        coupon_cycles_left: coupon.and_then(|c| match c.duration.as_str() {
            "once" => Some(1),
            "repeating" => c.duration_cycles,
            _ => None,
        }),
        payment_method_id: c.payment_method_id.clone(),
        applied_through: at,
        created_at: at,
        updated_at: at,
        period_index: 0,
        covered_value_minor: 0,
        trial_end: None,
        trial_notice_sent: false,
        cancel_at_period_end: false,
        cancelled_at: None,
        cancel_reason: None,
        paused_at: None,
        resume_at: None,
        dunning_invoice_id: None,
        dunning_attempt: 0,
        dunning_started_at: None,
        next_retry_at: None,
        next_due_at: None,
        mrr_minor: 0,
    };
    let mut m = Machine {
        sub,
        steps: Vec::new(),
        ctx,
        policy,
        recorded: (String::new(), -1),
        carried: (Vec::new(), false),
    };
    if c.paused {
        m.sub.paused_at = Some(at);
        m.sub.resume_at = c.resume_at;
        m.set_status("paused", "created_paused", at);
    } else if trial_days > 0 {
        let trial_end = at + days(i64::from(trial_days));
        m.sub.trial_end = Some(trial_end);
        m.sub.current_period_end = trial_end;
        m.set_status("trialing", "created", at);
    } else {
        m.start_periods(at, "created")?;
    }
    m.finish(at);
    Ok(m)
}

/// What [`create`] needs of the command.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub subscription_id: SubscriptionId,
    pub organization_id: OrganizationId,
    pub member_id: MemberId,
    pub plan_id: PlanId,
    pub coupon_id: Option<CouponId>,
    pub trial_days: Option<i32>,
    pub paused: bool,
    pub resume_at: Option<DateTime<Utc>>,
    pub payment_method_id: Option<PaymentMethodId>,
}

impl<'p> Machine<'p> {
    /// Loads a subscription for a command at `at`; refuses instants before what was applied.
    pub fn load(
        sub: Subscription,
        ctx: Context,
        policy: &'p Policy,
        at: DateTime<Utc>,
    ) -> Result<Self, Refusal> {
        if at < sub.applied_through {
            return Err(refuse(
                "effective_at_before_applied",
                format!(
                    "subscription {} is applied through {}; {} is earlier",
                    sub.subscription_id,
                    sub.applied_through.to_rfc3339(),
                    at.to_rfc3339()
                ),
            ));
        }
        let recorded = (sub.status.clone(), sub.mrr_minor);
        Ok(Self { sub, steps: Vec::new(), ctx, policy, recorded, carried: (Vec::new(), false) })
    }

    /// Loads a subscription to settle a payment's outcome, which arrives when the provider
    /// answers: it takes effect at the subscription's own latest instant if that is later.
    pub fn for_outcome(
        sub: Subscription,
        ctx: Context,
        policy: &'p Policy,
        at: DateTime<Utc>,
    ) -> (Self, DateTime<Utc>) {
        let at = at.max(sub.applied_through);
        let recorded = (sub.status.clone(), sub.mrr_minor);
        (Self { sub, steps: Vec::new(), ctx, policy, recorded, carried: (Vec::new(), false) }, at)
    }

    pub fn plan(&self) -> &Plan {
        &self.ctx.plan
    }

    fn cycle(&self) -> Cycle {
        self.ctx.plan.cycle
    }

    fn note(&mut self, at: DateTime<Utc>) {
        let mrr = mrr(&self.sub, &self.ctx.plan);
        self.sub.mrr_minor = mrr;
        if self.recorded != (self.sub.status.clone(), mrr) {
            self.recorded = (self.sub.status.clone(), mrr);
            self.steps.push(Event::History { at, status: self.sub.status.clone(), mrr_minor: mrr });
        }
    }

    fn set_status(&mut self, to: &str, reason: &'static str, at: DateTime<Utc>) {
        if self.sub.status != to {
            let from = std::mem::replace(&mut self.sub.status, to.to_owned());
            if from != "created" {
                self.steps.push(Event::Status { from, to: to.to_owned(), reason, at });
            }
        }
        self.note(at);
    }

    fn ensure_live(&self) -> Result<(), Refusal> {
        match self.sub.status.as_str() {
            "cancelled" => Err(refuse(
                "subscription_cancelled",
                format!("subscription {} is cancelled", self.sub.subscription_id),
            )),
            "suspended" => Err(refuse(
                "subscription_suspended",
                format!(
                    "subscription {} is suspended until its open invoice is paid",
                    self.sub.subscription_id
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Period 0 from `at` on the current plan, billed now.
    fn start_periods(&mut self, at: DateTime<Utc>, reason: &'static str) -> Result<(), Refusal> {
        let (start, end) = period(at, self.cycle().as_str(), 0)
            .ok_or_else(|| refuse("invalid_period", format!("no {} period starts at {at}", self.cycle())))?;
        self.sub.anchor = at;
        self.sub.period_index = 0;
        self.sub.current_period_start = start;
        self.sub.current_period_end = end;
        self.set_status("active", reason, at);
        self.bill_period(start);
        Ok(())
    }

    /// The invoice of the current period, in advance: the plan, its coupon, what the previous period
    /// used beyond its allowance, and the charges waiting for it.
    fn bill_period(&mut self, at: DateTime<Utc>) {
        let plan = self.ctx.plan.clone();
        let mut lines = vec![(format!("{} ({})", plan.name, plan.cycle), 1, plan.price_minor)];
        let discount = coupon_discount(&self.sub, plan.price_minor);
        if discount > 0 {
            let coupon = self.sub.coupon_id.as_ref().map(CouponId::as_str).unwrap_or_default();
            lines.push((format!("Coupon {coupon}"), 1, -discount));
        }
        if let Some(left) = self.sub.coupon_cycles_left.as_mut()
            && *left > 0
        {
            *left -= 1;
        }
        self.sub.covered_from = self.sub.current_period_start;
        self.sub.covered_value_minor = plan.price_minor - discount;
        let period = Some((self.sub.current_period_start, self.sub.current_period_end));
        self.issue("period", at, period, lines);
        // A coupon used up changes MRR from this period on.
        self.note(at);
    }

    /// What the current period used beyond its allowance, and the waiting charges; taken once.
    fn arrears(&mut self) -> (Vec<(String, i64, i64)>, bool) {
        let (mut lines, carried_pending) = std::mem::take(&mut self.carried);
        for (metric, used) in std::mem::take(&mut self.ctx.usage) {
            if let Some(a) = self.ctx.plan.allowance(&metric) {
                let over = used - a.included;
                if over > 0 && a.overage_unit_minor > 0 {
                    lines.push((
                        format!("{metric} beyond the {} included", a.included),
                        over,
                        a.overage_unit_minor,
                    ));
                }
            }
        }
        let pending = std::mem::take(&mut self.ctx.pending);
        let takes_pending = carried_pending || !pending.is_empty();
        lines.extend(pending.into_iter().map(|(description, amount)| (description, 1, amount)));
        (lines, takes_pending)
    }

    fn issue(
        &mut self,
        kind: &'static str,
        at: DateTime<Utc>,
        period: Option<(DateTime<Utc>, DateTime<Utc>)>,
        mut lines: Vec<(String, i64, i64)>,
    ) {
        let (arrears, takes_pending) = if kind == "proration" { (Vec::new(), false) } else { self.arrears() };
        lines.extend(arrears);
        if lines.is_empty() {
            return;
        }
        let bps = self.ctx.plan.tax_rate_bps;
        let lines: Vec<BillLine> = lines
            .into_iter()
            .map(|(description, quantity, unit)| {
                let amount = quantity.saturating_mul(unit);
                BillLine {
                    description,
                    quantity,
                    unit_amount_minor: unit,
                    amount_minor: amount,
                    tax_minor: basis_points(amount, i64::from(bps)).unwrap_or(0),
                }
            })
            .collect();
        let subtotal: i64 = lines.iter().map(|l| l.amount_minor).sum();
        let tax: i64 = lines.iter().map(|l| l.tax_minor).sum();
        let total = (subtotal + tax).max(0);
        let credit = self.ctx.credit_minor.min(total);
        self.ctx.credit_minor -= credit;
        let due = total - credit;
        let invoice_id = invoice_id(&self.sub.subscription_id, kind, at);
        let charge = due > 0 && self.ctx.has_method;
        let by_staff = !self.ctx.has_method && self.ctx.collected_by_staff;
        let due_at = at
            + days(if by_staff { self.policy.manual_invoice_due_days } else { self.policy.invoice_due_days });
        self.steps.push(Event::Invoice(Bill {
            invoice_id: invoice_id.clone(),
            kind,
            at,
            due_at,
            period,
            lines,
            tax_rate_bps: bps,
            subtotal_minor: subtotal,
            tax_minor: tax,
            total_minor: total,
            credit_applied_minor: credit,
            amount_due_minor: due,
            takes_pending,
            charge,
        }));
        if due > 0 && !self.ctx.has_method && kind != "final" {
            if by_staff {
                self.await_payment(&invoice_id, due_at);
            } else {
                // Nothing to charge: the invoice waits to be paid, and dunning reminds the member.
                self.payment_failed(&invoice_id, at);
            }
        }
    }

    /// An invoice staff collect waits for its payment until `due_at`; unpaid then, dunning starts
    /// (the retry due then finds nothing to charge and counts as the first failed attempt), and
    /// its reminders follow the schedule from the due date.
    fn await_payment(&mut self, invoice_id: &InvoiceId, due_at: DateTime<Utc>) {
        if self.sub.dunning_invoice_id.is_some() {
            // An older unpaid invoice is being collected; this one waits behind it.
            return;
        }
        self.sub.dunning_invoice_id = Some(invoice_id.clone());
        self.sub.dunning_attempt = 0;
        self.sub.dunning_started_at = Some(due_at);
        self.sub.next_retry_at = Some(due_at);
    }

    /// The earliest billing work due, with its instant.
    fn next_due(&self) -> Option<(DateTime<Utc>, Due)> {
        let s = &self.sub;
        let mut due: Vec<(DateTime<Utc>, Due)> = Vec::new();
        match s.status.as_str() {
            "trialing" => {
                if let Some(end) = s.trial_end {
                    if !s.trial_notice_sent {
                        due.push((
                            (end - days(self.policy.trial_notice_days)).max(s.created_at),
                            Due::TrialNotice,
                        ));
                    }
                    due.push((end, Due::TrialEnd));
                }
            }
            "active" | "past_due" => {
                if let Some(retry) = s.next_retry_at {
                    due.push((retry, Due::Retry));
                }
                due.push((s.current_period_end, Due::PeriodEnd));
            }
            "paused" => {
                if let Some(resume) = s.resume_at {
                    due.push((resume, Due::Resume));
                }
            }
            _ => {}
        }
        due.into_iter().min()
    }

    /// Does everything due up to `up_to`, in time order.
    pub fn advance(&mut self, up_to: DateTime<Utc>) -> Result<(), Refusal> {
        // A daily plan billed for a decade is ~3,650 periods; more means a bad instant.
        for _ in 0..10_000 {
            let Some((at, due)) = self.next_due().filter(|(at, _)| *at <= up_to) else {
                return Ok(());
            };
            match due {
                Due::TrialNotice => {
                    self.sub.trial_notice_sent = true;
                    let trial_end = self.sub.trial_end.unwrap_or(at);
                    let has_method = self.ctx.has_method || self.ctx.collected_by_staff;
                    self.steps.push(Event::TrialEnding { trial_end, has_method });
                }
                Due::TrialEnd => {
                    if self.sub.cancel_at_period_end {
                        self.cancel_now(at, "cancelled", false);
                    } else if self.ctx.has_method || self.ctx.collected_by_staff {
                        self.start_periods(at, "trial_converted")?;
                    } else {
                        self.cancel_now(at, "no_payment_method", false);
                    }
                }
                Due::PeriodEnd => {
                    if self.sub.cancel_at_period_end {
                        self.cancel_now(at, "cancelled", false);
                    } else {
                        self.renew()?;
                    }
                }
                Due::Retry => {
                    self.sub.next_retry_at = None;
                    // A retry is due only while an invoice is being collected.
                    if let Some(invoice) = self.sub.dunning_invoice_id.clone() {
                        if self.ctx.has_method {
                            self.steps.push(Event::Retry { invoice_id: invoice, at });
                        } else {
                            self.payment_failed(&invoice, at);
                        }
                    }
                }
                Due::Resume => self.resume_now(at)?,
            }
        }
        Err(refuse("too_many_periods", "more than 10,000 billing steps in one command"))
    }

    fn renew(&mut self) -> Result<(), Refusal> {
        let index = self.sub.period_index + 1;
        let (start, end) = period(self.sub.anchor, self.cycle().as_str(), index)
            .ok_or_else(|| refuse("invalid_period", "the next period is out of range"))?;
        self.sub.period_index = index;
        self.sub.current_period_start = start;
        self.sub.current_period_end = end;
        self.bill_period(start);
        Ok(())
    }

    /// A charge of `invoice_id` failed (or could not be tried): the next dunning step.
    pub fn payment_failed(&mut self, invoice_id: &InvoiceId, at: DateTime<Utc>) {
        if !matches!(self.sub.status.as_str(), "active" | "past_due") {
            return;
        }
        if self.sub.dunning_invoice_id.as_ref() != Some(invoice_id) {
            if self.sub.dunning_invoice_id.is_some() {
                // Dunning follows the oldest unpaid invoice; a later one waits behind it.
                return;
            }
            self.sub.dunning_invoice_id = Some(invoice_id.clone());
            self.sub.dunning_attempt = 0;
            self.sub.dunning_started_at = Some(at);
        }
        self.sub.dunning_attempt += 1;
        let attempt = self.sub.dunning_attempt;
        let started = self.sub.dunning_started_at.unwrap_or(at);
        let schedule = &self.policy.dunning_retry_days;
        let next =
            usize::try_from(attempt - 1).ok().and_then(|n| schedule.get(n)).map(|d| started + days(*d));
        self.sub.next_retry_at = next;
        self.steps.push(Event::Dunning {
            invoice_id: invoice_id.clone(),
            attempt,
            next_retry_at: next,
            final_action: self.policy.dunning_final_action.clone(),
        });
        if next.is_some() {
            self.set_status("past_due", "payment_failed", at);
        } else if self.policy.dunning_final_action == "suspend" {
            self.set_status("suspended", "dunning_exhausted", at);
        } else {
            self.steps.push(Event::Uncollectible { invoice_id: invoice_id.clone() });
            self.sub.dunning_invoice_id = None;
            self.sub.cancelled_at = Some(at);
            self.sub.cancel_reason = Some("dunning_exhausted".into());
            self.set_status("cancelled", "dunning_exhausted", at);
        }
    }

    /// `invoice_id` was paid: a subscription dunning for it is current again.
    pub fn invoice_paid(&mut self, invoice_id: &InvoiceId, at: DateTime<Utc>) {
        if self.sub.dunning_invoice_id.as_ref() != Some(invoice_id) {
            return;
        }
        self.sub.dunning_invoice_id = None;
        self.sub.dunning_attempt = 0;
        self.sub.dunning_started_at = None;
        self.sub.next_retry_at = None;
        if matches!(self.sub.status.as_str(), "past_due" | "suspended") {
            self.set_status("active", "recovered", at);
        }
    }

    /// The unused part of what the current period's plan coverage was charged.
    fn unused_credit(&self, at: DateTime<Utc>) -> i64 {
        if !matches!(self.sub.status.as_str(), "active" | "past_due") {
            return 0;
        }
        prorate(self.sub.covered_value_minor, self.sub.covered_from, at, self.sub.current_period_end)
    }

    fn credit(&mut self, amount_minor: i64, reason: &'static str, at: DateTime<Utc>) {
        if amount_minor > 0 {
            self.ctx.credit_minor += amount_minor;
            self.steps.push(Event::Credit { amount_minor, reason, at });
        }
    }

    fn cancel_now(&mut self, at: DateTime<Utc>, reason: &'static str, prorate: bool) {
        if prorate {
            let credit = self.unused_credit(at);
            self.credit(credit, "cancellation", at);
        }
        // What the last period used beyond its allowance and what was waiting are still owed.
        self.issue("final", at, None, Vec::new());
        self.sub.cancelled_at = Some(at);
        self.sub.cancel_reason = Some(reason.into());
        self.sub.cancel_at_period_end = false;
        self.sub.next_retry_at = None;
        self.sub.current_period_end = self.sub.current_period_end.min(at).max(self.sub.current_period_start);
        self.set_status("cancelled", reason, at);
    }

    fn resume_now(&mut self, at: DateTime<Utc>) -> Result<(), Refusal> {
        self.sub.paused_at = None;
        self.sub.resume_at = None;
        self.start_periods(at, "resumed")
    }

    /// Brings the subscription's bookkeeping to `at` after a command.
    pub fn finish(&mut self, at: DateTime<Utc>) {
        self.sub.applied_through = self.sub.applied_through.max(at);
        self.sub.updated_at = self.sub.applied_through;
        self.sub.next_due_at = self.next_due().map(|(at, _)| at);
        self.note(at);
    }

    /// Switch to `plan` at `at`, prorating as `proration` says.
    pub fn change_plan(&mut self, plan: Plan, proration: &str, at: DateTime<Utc>) -> Result<(), Refusal> {
        self.ensure_live()?;
        if plan.currency != self.sub.currency {
            return Err(refuse(
                "currency_mismatch",
                format!(
                    "plan {} bills in {}; the subscription in {}",
                    plan.plan_id, plan.currency, self.sub.currency
                ),
            ));
        }
        if plan.plan_id == self.sub.plan_id && plan.version == self.sub.plan_version {
            return Err(refuse(
                "plan_unchanged",
                format!(
                    "subscription {} is already on {} v{}",
                    self.sub.subscription_id, plan.plan_id, plan.version
                ),
            ));
        }
        let (from_plan_id, from_version) = (self.sub.plan_id.clone(), self.sub.plan_version);
        let billing = matches!(self.sub.status.as_str(), "active" | "past_due") && proration != "none";
        let new_cycle = plan.cycle != self.ctx.plan.cycle;
        if billing && new_cycle {
            // Usage so far is measured against the old plan's allowance.
            self.carried = self.arrears();
        }
        self.ctx.plan = plan;
        self.sub.plan_id = self.ctx.plan.plan_id.clone();
        self.sub.plan_version = self.ctx.plan.version;
        let (mut credit, mut charge) = (0, 0);
        if billing {
            credit = self.unused_credit(at);
            self.credit(credit, "proration", at);
            if new_cycle {
                // A new cycle starts a new period now, billed in full.
                let (start, end) = period(at, self.cycle().as_str(), 0)
                    .ok_or_else(|| refuse("invalid_period", format!("no period starts at {at}")))?;
                self.sub.anchor = at;
                self.sub.period_index = 0;
                self.sub.current_period_start = start;
                self.sub.current_period_end = end;
                self.bill_period(at);
                charge = self.sub.covered_value_minor;
            } else {
                let price = self.ctx.plan.price_minor;
                let net = match self.sub.coupon_percent_bps {
                    Some(_) => price - coupon_discount(&self.sub, price),
                    None => price,
                };
                charge = prorate(net, self.sub.current_period_start, at, self.sub.current_period_end);
                self.sub.covered_from = at;
                self.sub.covered_value_minor = charge;
                let description =
                    format!("{}: rest of the period from {}", self.ctx.plan.name, at.to_rfc3339());
                if proration == "immediately" {
                    self.issue("proration", at, None, vec![(description, 1, charge)]);
                } else if charge > 0 {
                    self.steps.push(Event::Item { description, amount_minor: charge, at });
                }
            }
        }
        self.steps.push(Event::PlanChanged {
            from_plan_id,
            from_version,
            proration: proration.to_owned(),
            credit_minor: credit,
            charge_minor: charge,
            at,
        });
        self.note(at);
        Ok(())
    }

    pub fn pause(&mut self, resume_at: Option<DateTime<Utc>>, at: DateTime<Utc>) -> Result<(), Refusal> {
        self.ensure_live()?;
        let id = &self.sub.subscription_id;
        match self.sub.status.as_str() {
            "paused" => {
                return Err(refuse("subscription_paused", format!("subscription {id} is already paused")));
            }
            "trialing" => {
                return Err(refuse(
                    "subscription_trialing",
                    format!("subscription {id} is in its trial; cancel it instead"),
                ));
            }
            "past_due" => {
                return Err(refuse(
                    "subscription_past_due",
                    format!("subscription {id} has an unpaid invoice"),
                ));
            }
            _ => {}
        }
        if resume_at.is_some_and(|r| r <= at) {
            return Err(refuse("invalid_resume_at", "resume_at must be after the pause takes effect"));
        }
        let credit = self.unused_credit(at);
        self.credit(credit, "pause", at);
        self.sub.current_period_end = at;
        self.sub.covered_value_minor = 0;
        self.sub.paused_at = Some(at);
        self.sub.resume_at = resume_at;
        self.set_status("paused", "paused", at);
        Ok(())
    }

    /// Resumes a paused subscription, or withdraws a cancellation scheduled for the period's end.
    pub fn resume(&mut self, at: DateTime<Utc>) -> Result<(), Refusal> {
        self.ensure_live()?;
        match self.sub.status.as_str() {
            "paused" => self.resume_now(at),
            _ if self.sub.cancel_at_period_end => {
                self.sub.cancel_at_period_end = false;
                let status = self.sub.status.clone();
                self.steps.push(Event::Status {
                    from: status.clone(),
                    to: status,
                    reason: "cancellation_withdrawn",
                    at,
                });
                Ok(())
            }
            _ => Err(refuse(
                "subscription_not_paused",
                format!("subscription {} is {}, not paused", self.sub.subscription_id, self.sub.status),
            )),
        }
    }

    pub fn cancel(&mut self, at_period_end: bool, prorate: bool, at: DateTime<Utc>) -> Result<(), Refusal> {
        if self.sub.status == "cancelled" {
            return Err(refuse(
                "subscription_cancelled",
                format!("subscription {} is cancelled", self.sub.subscription_id),
            ));
        }
        if at_period_end && matches!(self.sub.status.as_str(), "active" | "past_due" | "trialing") {
            if self.sub.cancel_at_period_end {
                return Err(refuse(
                    "cancellation_scheduled",
                    "the subscription already ends with its period",
                ));
            }
            self.sub.cancel_at_period_end = true;
            self.steps.push(Event::CancelScheduled { cancel_at: self.sub.current_period_end });
            return Ok(());
        }
        self.cancel_now(at, "cancelled", prorate);
        Ok(())
    }

    /// May usage be counted now?
    pub fn check_usage(&self) -> Result<(), Refusal> {
        self.ensure_live()?;
        if self.sub.status == "paused" {
            return Err(refuse(
                "subscription_paused",
                format!("subscription {} is paused", self.sub.subscription_id),
            ));
        }
        Ok(())
    }
}

/// What a command decided: the subscription as it is now, and what happened to it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub sub: Subscription,
    pub events: Vec<Event>,
}

impl From<Machine<'_>> for Decided {
    fn from(m: Machine<'_>) -> Self {
        Self { sub: m.sub, events: m.steps }
    }
}

/// What bears on a new subscription: whether its id is taken, the plan's latest version and the
/// coupon it names (`None` when they do not exist), and how the member pays.
#[derive(Debug, Clone, Default)]
pub struct CreateState {
    pub exists: bool,
    pub plan: Option<Plan>,
    pub coupon: Option<Coupon>,
    /// A stored payment method renewals can charge.
    pub has_method: bool,
    /// The member pays by cash or bank transfer, which staff record.
    pub collected_by_staff: bool,
}

/// `CreateSubscription`: a new subscription of the plan's latest version, with the coupon.
pub fn decide_create(
    given: &CreateState,
    c: &CreateRequest,
    at: DateTime<Utc>,
    policy: &Policy,
) -> Result<Decided, Refusal> {
    if given.exists {
        return Err(refuse(
            "subscription_exists",
            format!("subscription {} already exists", c.subscription_id),
        ));
    }
    let Some(plan) = &given.plan else {
        return Err(refuse("plan_not_found", format!("plan {} does not exist", c.plan_id)));
    };
    if let Some(coupon_id) = &c.coupon_id
        && given.coupon.is_none()
    {
        return Err(refuse("coupon_not_found", format!("coupon {coupon_id} does not exist")));
    }
    let ctx = Context {
        plan: plan.clone(),
        has_method: given.has_method,
        collected_by_staff: given.collected_by_staff,
        usage: Vec::new(),
        pending: Vec::new(),
        credit_minor: 0,
    };
    let coupon = if c.coupon_id.is_some() { given.coupon.as_ref() } else { None };
    let mut decided = Decided::from(create(c, ctx, coupon, at, policy)?);
    decided.events.insert(0, Event::Created);
    Ok(decided)
}

/// A subscription as the handler loaded it for a command: the subscription and what it needs.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub sub: Subscription,
    pub ctx: Context,
}

/// A member's command on their subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Moves to `plan`, the latest version of `plan_id` (`None`: there is no such plan).
    ChangePlan {
        plan_id: PlanId,
        plan: Option<Plan>,
        proration: String,
    },
    Pause {
        resume_at: Option<DateTime<Utc>>,
    },
    /// Resumes a pause, or withdraws a cancellation scheduled for the period's end.
    Resume,
    Cancel {
        at_period_end: bool,
        prorate: bool,
    },
    /// A billing run's work, up to its instant.
    Bill,
    /// Usage of `metric`; `dated`: the command says when it happened (otherwise it counts in the
    /// period it arrives in).
    RecordUsage {
        usage_id: UsageId,
        metric: String,
        quantity: i64,
        dated: bool,
    },
}

/// A command on the member's subscription at `at`: the subscription is brought up to `at` first
/// (renewals, trial ends, resumes and retries due before it happen), then changed. `Ok(None)`:
/// nothing to do (a billing run older than what the subscription has seen).
pub fn decide(
    given: Option<&Loaded>,
    (subscription_id, member_id): (&SubscriptionId, &MemberId),
    c: &Command,
    at: DateTime<Utc>,
    policy: &Policy,
) -> Result<Option<Decided>, Refusal> {
    if let Command::ChangePlan { plan_id, plan: None, .. } = c {
        return Err(refuse("plan_not_found", format!("plan {plan_id} does not exist")));
    }
    let mut at = at;
    if let Some(loaded) = given {
        match c {
            // Its work was done by later commands.
            Command::Bill if at < loaded.sub.applied_through => return Ok(None),
            // Usage without an instant of its own (a completed session, counted as its event
            // arrives) can arrive after the subscription moved past the event's time — a renewal
            // ran while the event was on its way. It counts in the period it arrives in, instead
            // of being refused and lost. Deterministic on replay: the subscription's state comes
            // from the same partition, in order.
            Command::RecordUsage { dated: false, .. } => at = at.max(loaded.sub.applied_through),
            _ => {}
        }
    }
    let Some(loaded) = given.filter(|l| &l.sub.member_id == member_id) else {
        return Err(refuse(
            "subscription_not_found",
            format!("subscription {subscription_id} does not exist for member {member_id}"),
        ));
    };
    let mut m = Machine::load(loaded.sub.clone(), loaded.ctx.clone(), policy, at)?;
    m.advance(at)?;
    let mut counted = None;
    match c {
        Command::ChangePlan { plan: Some(plan), proration, .. } => {
            m.change_plan(plan.clone(), proration, at)?
        }
        Command::ChangePlan { plan: None, .. } | Command::Bill => {}
        Command::Pause { resume_at } => m.pause(*resume_at, at)?,
        Command::Resume => m.resume(at)?,
        Command::Cancel { at_period_end, prorate } => m.cancel(*at_period_end, *prorate, at)?,
        Command::RecordUsage { usage_id, metric, quantity, .. } => {
            m.check_usage()?;
            counted = Some(Event::UsageCounted {
                usage_id: usage_id.clone(),
                metric: metric.clone(),
                quantity: *quantity,
                included: m.plan().allowance(metric).map_or(0, |a| a.included),
                period_start: m.sub.current_period_start,
                at,
            });
        }
    }
    m.finish(at);
    let mut decided = Decided::from(m);
    decided.events.extend(counted);
    Ok(Some(decided))
}

/// What a payment of one of the subscription's invoices came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The charge of the invoice failed: the next dunning step.
    Failed(&'a InvoiceId),
    /// The invoice was paid: a subscription dunning for it is current again.
    Paid(&'a InvoiceId),
}

/// A payment's outcome, which arrives when the provider answers: it takes effect at the
/// subscription's own latest instant if that is later, and is never refused.
pub fn decide_outcome(loaded: &Loaded, outcome: Outcome<'_>, at: DateTime<Utc>, policy: &Policy) -> Decided {
    let (mut m, at) = Machine::for_outcome(loaded.sub.clone(), loaded.ctx.clone(), policy, at);
    match outcome {
        Outcome::Failed(invoice_id) => m.payment_failed(invoice_id, at),
        Outcome::Paid(invoice_id) => m.invoice_paid(invoice_id, at),
    }
    m.finish(at);
    Decided::from(m)
}

/// A credit note staff issue on a subscription (or one a change of it issues): what it holds, in
/// the subscription's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNote {
    pub credit_note_id: CreditNoteId,
    pub subscription_id: SubscriptionId,
    pub member_id: MemberId,
    pub currency: Currency,
    pub amount_minor: i64,
    pub reason: String,
    pub memo: Option<String>,
    pub at: DateTime<Utc>,
}

/// What `IssueCreditNote` asks for, its ids parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueCreditNote {
    pub credit_note_id: CreditNoteId,
    pub subscription_id: SubscriptionId,
    pub member_id: MemberId,
    pub amount_minor: i64,
    pub memo: Option<String>,
}

/// `IssueCreditNote`: goodwill credit on the member's subscription, under an id not yet taken.
pub fn decide_credit_note(
    sub: Option<&Subscription>,
    exists: bool,
    c: &IssueCreditNote,
    at: DateTime<Utc>,
) -> Result<CreditNote, Refusal> {
    let Some(sub) = sub.filter(|s| s.member_id == c.member_id) else {
        return Err(refuse(
            "subscription_not_found",
            format!("subscription {} does not exist for member {}", c.subscription_id, c.member_id),
        ));
    };
    if exists {
        return Err(refuse("credit_note_exists", format!("credit note {} already exists", c.credit_note_id)));
    }
    Ok(CreditNote {
        credit_note_id: c.credit_note_id.clone(),
        subscription_id: sub.subscription_id.clone(),
        member_id: sub.member_id.clone(),
        currency: sub.currency.clone(),
        amount_minor: c.amount_minor,
        reason: "goodwill".into(),
        memo: c.memo.clone(),
        at,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    TrialNotice,
    Retry,
    Resume,
    TrialEnd,
    PeriodEnd,
}

/// Which thresholds (80 %, 100 %) `before → after` crosses of `included`.
pub fn thresholds_crossed(before: i64, after: i64, included: i64) -> Vec<i32> {
    if included <= 0 {
        return Vec::new();
    }
    [80, 100]
        .into_iter()
        .filter(|p| {
            let line = i128::from(included) * i128::from(*p);
            i128::from(before) * 100 < line && i128::from(after) * 100 >= line
        })
        .collect()
}

#[cfg(test)]
#[path = "subscriptions_tests.rs"]
mod tests;
