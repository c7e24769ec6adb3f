//! Invoices: priced from their lines (tax per line, rounded half up), numbered after they are
//! finalized, paid by one or more payments.
//!
//! Numbers come from one series per organization, advanced only by `NumberInvoice` commands on
//! the organization's one partition of the catalog command topic, in log order: the live process
//! and a rebuild from the log hand out the same numbers, without gaps. The number goes back to
//! the invoice in an `AssignInvoiceNumber` on the invoice's own (member) partition, and whatever
//! names the number waits for it: the charge of a subscription invoice (its description is
//! "Invoice INV-…"), paying an invoice with nothing due, `InvoiceIssued`, and payments by members.

use chrono::{DateTime, Utc};
use studyspot_ids::{Currency, InvoiceId, MemberId, OrganizationId, SubscriptionId};
use studyspot_schemas::billing::{AssignInvoiceNumber, ChangeInvoiceStatus, CreateInvoice};

use super::{Malformed, Refusal, basis_points, check_currency, check_filled, parse};

/// An invoice: its totals, status and number, and what paid it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub invoice_id: InvoiceId,
    pub organization_id: OrganizationId,
    pub member_id: MemberId,
    /// Set shortly after the invoice is finalized (its number is handed out in the organization's
    /// series, in log order), e.g. INV-000042. An invoice is payable once it has one.
    pub number: Option<String>,
    pub currency: Currency,
    pub subtotal_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub amount_paid_minor: i64,
    /// draft, open, paid, void or uncollectible.
    pub status: String,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub issued_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    /// Set on a subscription's invoices, with the period it bills.
    pub subscription_id: Option<SubscriptionId>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    /// Credit notes drawn on; payments and credits together settle the total.
    pub credit_applied_minor: i64,
    /// A subscription invoice whose charge to the stored method waits for its number.
    pub charge_on_number: bool,
}

impl Invoice {
    /// What payments still have to cover.
    pub fn amount_due_minor(&self) -> i64 {
        (self.total_minor - self.credit_applied_minor - self.amount_paid_minor).max(0)
    }
}

/// One line of an invoice, numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    pub line_no: i32,
    pub description: String,
    pub quantity: i64,
    pub unit_amount_minor: i64,
    /// quantity × unit amount, before tax.
    pub amount_minor: i64,
    pub tax_rate_bps: i32,
    pub tax_name: Option<String>,
    pub tax_minor: i64,
}

/// A number of the organization's series: its position and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedNumber {
    pub sequence: i64,
    pub number: String,
}

pub fn validate(c: &CreateInvoice) -> Result<(), Malformed> {
    check_filled(&[
        ("invoice_id", &c.invoice_id),
        ("member_id", &c.member_id),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])?;
    check_currency(&c.currency)?;
    if c.lines.is_empty() {
        return Err(Malformed("an invoice needs at least one line".into()));
    }
    for (n, line) in c.lines.iter().enumerate() {
        if line.description.trim().is_empty() {
            return Err(Malformed(format!("lines[{n}].description is empty")));
        }
        if line.quantity <= 0 {
            return Err(Malformed(format!("lines[{n}].quantity must be positive")));
        }
        if line.unit_amount_minor < 0 {
            return Err(Malformed(format!("lines[{n}].unit_amount_minor cannot be negative")));
        }
        if !(0..=10_000).contains(&line.tax_rate_bps) {
            return Err(Malformed(format!("lines[{n}].tax_rate_bps must be 0 to 10000")));
        }
    }
    Ok(())
}

/// A `CreateInvoice` priced: its ids parsed, its lines with their amounts and taxes, and its
/// totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub invoice_id: InvoiceId,
    pub organization_id: OrganizationId,
    pub member_id: MemberId,
    pub currency: Currency,
    pub lines: Vec<InvoiceLine>,
    pub subtotal_minor: i64,
    pub tax_minor: i64,
    pub due_at: DateTime<Utc>,
}

pub fn price(c: &CreateInvoice) -> Result<Priced, Malformed> {
    let overflow = || Malformed("the invoice's amounts overflow".into());
    let mut lines = Vec::with_capacity(c.lines.len());
    let (mut subtotal, mut tax) = (0_i64, 0_i64);
    for (n, line) in c.lines.iter().enumerate() {
        let amount = line.quantity.checked_mul(line.unit_amount_minor).ok_or_else(overflow)?;
        let line_tax = basis_points(amount, i64::from(line.tax_rate_bps)).ok_or_else(overflow)?;
        subtotal = subtotal.checked_add(amount).ok_or_else(overflow)?;
        tax = tax.checked_add(line_tax).ok_or_else(overflow)?;
        lines.push(InvoiceLine {
            line_no: i32::try_from(n + 1).map_err(|_| overflow())?,
            description: line.description.clone(),
            quantity: line.quantity,
            unit_amount_minor: line.unit_amount_minor,
            amount_minor: amount,
            tax_rate_bps: line.tax_rate_bps,
            tax_name: line.tax_name.clone(),
            tax_minor: line_tax,
        });
    }
    subtotal.checked_add(tax).ok_or_else(overflow)?;
    let due_at = DateTime::from_timestamp_millis(c.due_at)
        .ok_or_else(|| Malformed(format!("due_at {} is not a valid time", c.due_at)))?;
    Ok(Priced {
        invoice_id: parse("invoice_id", &c.invoice_id)?,
        organization_id: parse("metadata.organization_id", &c.metadata.organization_id)?,
        member_id: parse("member_id", &c.member_id)?,
        currency: parse("currency", &c.currency)?,
        lines,
        subtotal_minor: subtotal,
        tax_minor: tax,
        due_at,
    })
}

/// A new draft (the handler finalizes it when the command says so).
pub fn create(
    exists: bool,
    priced: Priced,
    at: DateTime<Utc>,
) -> Result<(Invoice, Vec<InvoiceLine>), Refusal> {
    if exists {
        return Err(Refusal::new("invoice_exists", format!("invoice {} already exists", priced.invoice_id)));
    }
    let invoice = Invoice {
        invoice_id: priced.invoice_id,
        organization_id: priced.organization_id,
        member_id: priced.member_id,
        number: None,
        currency: priced.currency,
        subtotal_minor: priced.subtotal_minor,
        tax_minor: priced.tax_minor,
        total_minor: priced.subtotal_minor + priced.tax_minor,
        amount_paid_minor: 0,
        status: "draft".into(),
        due_at: priced.due_at,
        created_at: at,
        updated_at: at,
        issued_at: None,
        paid_at: None,
        subscription_id: None,
        period_start: None,
        period_end: None,
        credit_applied_minor: 0,
        charge_on_number: false,
    };
    Ok((invoice, priced.lines))
}

/// Invoice numbers: a prefix and the organization's sequence, zero-padded.
pub fn number(sequence: i64) -> String {
    format!("INV-{sequence:06}")
}

/// Finalizes a draft: open from now on, and numbered once the organization's series gets to it.
pub fn finalize(i: &Invoice, at: DateTime<Utc>) -> Invoice {
    Invoice { status: "open".into(), issued_at: Some(at), updated_at: at, ..i.clone() }
}

/// The organization's series, asked for an invoice's number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Numbering {
    /// The next position, to record.
    Next(AssignedNumber),
    /// The invoice has this number already (asked again): told again, the series stays.
    Again(AssignedNumber),
}

/// The number an invoice gets, given what the series gave it already and the last position it
/// handed out.
pub fn take_number(already: Option<AssignedNumber>, last: i64) -> Numbering {
    match already {
        Some(assigned) => Numbering::Again(assigned),
        None => Numbering::Next(AssignedNumber { sequence: last + 1, number: number(last + 1) }),
    }
}

/// What waited for an invoice's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterNumber {
    /// Nothing: it is payable now (or no longer open).
    Nothing,
    /// A subscription invoice with nothing due (credits cover it) is paid.
    Paid,
    /// A subscription invoice is charged to the stored method.
    Charge,
}

/// An invoice with its number, and what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    pub invoice: Invoice,
    pub then: AfterNumber,
}

/// The series' number reached the invoice. `Ok(None)`: it has that number already (a repeat).
/// A void or uncollectible invoice keeps the number it was given (the series has no gaps), but
/// nothing is charged or paid.
pub fn assign(i: &Invoice, number: &str, at: DateTime<Utc>) -> Result<Option<Numbered>, Refusal> {
    match i.number.as_deref() {
        Some(n) if n == number => return Ok(None),
        Some(n) => {
            return Err(Refusal::new(
                "invoice_already_numbered",
                format!("invoice {} is {n}; it cannot become {number}", i.invoice_id),
            ));
        }
        None if i.status == "draft" => {
            return Err(Refusal::new(
                "invoice_not_finalized",
                format!("invoice {} is a draft; only finalized invoices are numbered", i.invoice_id),
            ));
        }
        None => {}
    }
    let mut invoice =
        Invoice { number: Some(number.to_owned()), updated_at: i.updated_at.max(at), ..i.clone() };
    let subscription_open = invoice.status == "open" && invoice.subscription_id.is_some();
    let then = if subscription_open && invoice.amount_due_minor() == 0 {
        invoice.status = "paid".into();
        invoice.paid_at = Some(invoice.issued_at.unwrap_or(at));
        AfterNumber::Paid
    } else if subscription_open && invoice.charge_on_number {
        AfterNumber::Charge
    } else {
        AfterNumber::Nothing
    };
    invoice.charge_on_number = false;
    Ok(Some(Numbered { invoice, then }))
}

pub fn validate_change(c: &ChangeInvoiceStatus) -> Result<(), Malformed> {
    check_filled(&[("invoice_id", &c.invoice_id), ("member_id", &c.member_id)])?;
    if !matches!(c.status.as_str(), "open" | "void" | "uncollectible") {
        return Err(Malformed(format!("status {:?} is not one of open, void, uncollectible", c.status)));
    }
    Ok(())
}

/// Which moves are allowed, as Stripe has them: a draft is finalized (open) or voided; an open
/// invoice is voided or marked uncollectible; an uncollectible one may still be voided. Paid and
/// void are final. `Ok(true)` means the move needs a number.
pub fn change(i: &Invoice, to: &str) -> Result<bool, Refusal> {
    match (i.status.as_str(), to) {
        ("draft", "open") => Ok(true),
        ("draft", "void") | ("open", "void") | ("open", "uncollectible") | ("uncollectible", "void") => {
            Ok(false)
        }
        (from, to) => Err(Refusal::new(
            "invalid_invoice_transition",
            format!("invoice {} is {from}; it cannot become {to}", i.invoice_id),
        )),
    }
}

/// The invoice a member's command names, if it is theirs in the organization.
fn members<'a>(
    given: Option<&'a Invoice>,
    invoice_id: &str,
    member_id: &str,
) -> Result<&'a Invoice, Refusal> {
    given.filter(|i| i.member_id == member_id).ok_or_else(|| {
        Refusal::new(
            "invoice_not_found",
            format!("invoice {invoice_id} does not exist for member {member_id}"),
        )
    })
}

/// What a status change does to the member's invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A draft is finalized: open, and numbered next.
    Finalize(Invoice),
    /// It moves to the new status (`InvoiceStatusChanged` from the old one).
    Status { from: String, invoice: Invoice },
}

/// `ChangeInvoiceStatus` of the member's invoice (the moves [`change`] allows).
pub fn decide_change(
    given: Option<&Invoice>,
    c: &ChangeInvoiceStatus,
    at: DateTime<Utc>,
) -> Result<Change, Refusal> {
    let invoice = members(given, &c.invoice_id, &c.member_id)?;
    Ok(if change(invoice, &c.status)? {
        Change::Finalize(finalize(invoice, at))
    } else {
        Change::Status {
            from: invoice.status.clone(),
            invoice: Invoice { status: c.status.clone(), updated_at: at, ..invoice.clone() },
        }
    })
}

/// `AssignInvoiceNumber` of the member's invoice (see [`assign`]).
pub fn decide_assign(
    given: Option<&Invoice>,
    c: &AssignInvoiceNumber,
    at: DateTime<Utc>,
) -> Result<Option<Numbered>, Refusal> {
    assign(members(given, &c.invoice_id, &c.member_id)?, &c.number, at)
}

/// A succeeded payment of the invoice; `true` when it is now paid in full (payments and credits
/// applied cover the total).
pub fn pay(i: &Invoice, amount_minor: i64, at: DateTime<Utc>) -> (Invoice, bool) {
    let paid = i.amount_paid_minor + amount_minor;
    let settled = paid + i.credit_applied_minor >= i.total_minor
        && matches!(i.status.as_str(), "open" | "uncollectible");
    let invoice = Invoice {
        amount_paid_minor: paid,
        status: if settled { "paid".into() } else { i.status.clone() },
        paid_at: if settled { Some(at) } else { i.paid_at },
        updated_at: at,
        ..i.clone()
    };
    (invoice, settled)
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::{EventMetadata, billing::InvoiceLine as Line};

    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + minute * 60, 0).expect("time")
    }

    fn command() -> CreateInvoice {
        CreateInvoice {
            metadata: EventMetadata::example(),
            invoice_id: "inv_1".into(),
            member_id: "mem_1".into(),
            currency: "EUR".into(),
            lines: vec![
                Line {
                    description: "Desk, March".into(),
                    quantity: 1,
                    unit_amount_minor: 10_050,
                    tax_rate_bps: 1900,
                    tax_name: Some("VAT".into()),
                },
                Line {
                    description: "Locker".into(),
                    quantity: 3,
                    unit_amount_minor: 333,
                    tax_rate_bps: 700,
                    tax_name: Some("VAT reduced".into()),
                },
            ],
            due_at: 1_767_225_600_000 + 14 * 86_400_000,
            finalize: true,
        }
    }

    #[test]
    fn given_lines_when_created_then_taxes_round_per_line_and_the_draft_has_no_number() {
        let priced = price(&command()).expect("well formed");
        let (invoice, lines) = create(false, priced, at(0)).expect("not refused");
        // 10 050 × 19 % = 1 909.5 → 1 910; 999 × 7 % = 69.93 → 70.
        assert_eq!(lines.iter().map(|l| l.tax_minor).collect::<Vec<_>>(), [1910, 70]);
        assert_eq!((invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor), (11_049, 1_980, 13_029));
        assert_eq!((invoice.status.as_str(), invoice.number.as_deref()), ("draft", None));
        let open = finalize(&invoice, at(1));
        assert_eq!((open.status.as_str(), open.number.as_deref()), ("open", None), "numbered afterwards");
        assert_eq!(open.issued_at, Some(at(1)));
    }

    #[test]
    fn bad_lines_and_existing_ids_are_refused() {
        let priced = price(&command()).expect("well formed");
        assert_eq!(create(true, priced, at(0)).map(|_| ()).map_err(|r| r.code), Err("invoice_exists"));
        let mut empty = command();
        empty.lines.clear();
        assert!(validate(&empty).is_err());
        for change in [
            |l: &mut Line| l.quantity = 0,
            |l: &mut Line| l.unit_amount_minor = -1,
            |l: &mut Line| l.tax_rate_bps = 10_001,
            |l: &mut Line| l.description = " ".into(),
        ] {
            let mut c = command();
            change(&mut c.lines[0]);
            assert!(validate(&c).is_err());
        }
        let mut huge = command();
        huge.lines[0].quantity = i64::MAX;
        assert!(price(&huge).is_err(), "overflow is malformed");
    }

    #[test]
    fn status_moves_follow_the_lifecycle() {
        let (draft, _) = create(false, price(&command()).expect("ok"), at(0)).expect("ok");
        assert_eq!(change(&draft, "open"), Ok(true));
        assert_eq!(change(&draft, "void"), Ok(false));
        assert_eq!(change(&draft, "uncollectible").map_err(|r| r.code), Err("invalid_invoice_transition"));
        let open = finalize(&draft, at(1));
        assert_eq!(change(&open, "uncollectible"), Ok(false));
        assert_eq!(change(&open, "open").map_err(|r| r.code), Err("invalid_invoice_transition"));
        for done in ["paid", "void"] {
            let i = Invoice { status: done.into(), ..open.clone() };
            for to in ["open", "void", "uncollectible"] {
                assert!(change(&i, to).is_err(), "{done} → {to}");
            }
        }
    }

    #[test]
    fn two_payments_pay_an_invoice_in_full() {
        let (draft, _) = create(false, price(&command()).expect("ok"), at(0)).expect("ok");
        let open = finalize(&draft, at(1));
        let (part, paid) = pay(&open, 10_000, at(2));
        assert_eq!((part.status.as_str(), paid, part.amount_paid_minor), ("open", false, 10_000));
        let (full, paid) = pay(&part, 3_029, at(3));
        assert_eq!((full.status.as_str(), paid, full.paid_at), ("paid", true, Some(at(3))));
    }

    fn draft() -> Invoice {
        create(false, price(&command()).expect("ok"), at(0)).expect("ok").0
    }

    /// A subscription's renewal, finalized at `at(1)`, with `credit` drawn on its 13 029 total.
    fn renewal(credit: i64, charge_on_number: bool) -> Invoice {
        Invoice {
            subscription_id: Some("sub_1".parse().unwrap()),
            credit_applied_minor: credit,
            charge_on_number,
            ..finalize(&draft(), at(1))
        }
    }

    fn assigned(sequence: i64) -> AssignedNumber {
        AssignedNumber { sequence, number: number(sequence) }
    }

    #[test]
    fn given_a_series_at_41_when_an_invoice_asks_then_it_gets_the_42nd_number() {
        assert_eq!(take_number(None, 41), Numbering::Next(assigned(42)));
        assert_eq!(
            take_number(None, 0),
            Numbering::Next(AssignedNumber { sequence: 1, number: "INV-000001".into() })
        );
    }

    #[test]
    fn given_an_invoice_the_series_numbered_when_it_asks_again_then_it_is_told_its_number_and_the_series_stays()
     {
        assert_eq!(take_number(Some(assigned(7)), 41), Numbering::Again(assigned(7)));
    }

    #[test]
    fn given_a_finalized_invoice_when_its_number_arrives_then_it_is_numbered_and_nothing_else_happens() {
        let open = finalize(&draft(), at(1));
        let numbered = assign(&open, "INV-000042", at(2)).expect("not refused").expect("new");
        assert_eq!(numbered.then, AfterNumber::Nothing);
        assert_eq!(
            (
                numbered.invoice.number.as_deref(),
                numbered.invoice.status.as_str(),
                numbered.invoice.updated_at
            ),
            (Some("INV-000042"), "open", at(2))
        );
        assert_eq!(numbered.invoice.issued_at, Some(at(1)), "issued when finalized, not when numbered");
    }

    #[test]
    fn given_a_subscription_invoice_waiting_for_its_charge_when_numbered_then_it_is_charged() {
        let numbered = assign(&renewal(0, true), "INV-000003", at(2)).expect("ok").expect("new");
        assert_eq!(numbered.then, AfterNumber::Charge);
        assert_eq!((numbered.invoice.status.as_str(), numbered.invoice.charge_on_number), ("open", false));
        let no_method = assign(&renewal(0, false), "INV-000003", at(2)).expect("ok").expect("new");
        assert_eq!(no_method.then, AfterNumber::Nothing, "no stored method: it waits for dunning");
    }

    #[test]
    fn given_a_subscription_invoice_its_credits_cover_when_numbered_then_it_is_paid_when_issued() {
        let numbered = assign(&renewal(13_029, true), "INV-000004", at(5)).expect("ok").expect("new");
        assert_eq!(numbered.then, AfterNumber::Paid);
        assert_eq!(
            (numbered.invoice.status.as_str(), numbered.invoice.paid_at, numbered.invoice.charge_on_number),
            ("paid", Some(at(1)), false)
        );
    }

    #[test]
    fn given_a_numbered_invoice_when_a_number_arrives_again_then_the_same_is_nothing_and_another_is_refused()
    {
        let numbered = assign(&renewal(0, true), "INV-000005", at(2)).expect("ok").expect("new").invoice;
        assert_eq!(assign(&numbered, "INV-000005", at(3)), Ok(None));
        assert_eq!(
            assign(&numbered, "INV-000006", at(3)).map_err(|r| r.code),
            Err("invoice_already_numbered")
        );
    }

    #[test]
    fn given_an_invoice_voided_before_its_number_when_numbered_then_it_keeps_the_number_and_nothing_is_charged()
     {
        let void = Invoice { status: "void".into(), ..renewal(0, true) };
        let numbered = assign(&void, "INV-000009", at(2)).expect("ok").expect("new");
        assert_eq!(
            (numbered.then, numbered.invoice.number.as_deref(), numbered.invoice.status.as_str()),
            (AfterNumber::Nothing, Some("INV-000009"), "void")
        );
    }

    #[test]
    fn given_a_draft_when_a_number_arrives_then_it_is_refused() {
        assert_eq!(assign(&draft(), "INV-000001", at(2)).map_err(|r| r.code), Err("invoice_not_finalized"));
    }

    // The refusals of commands naming an invoice, decided on what the handler loaded.

    fn change_to(status: &str, member: &str) -> ChangeInvoiceStatus {
        ChangeInvoiceStatus {
            metadata: EventMetadata::example(),
            invoice_id: "inv_1".into(),
            member_id: member.into(),
            status: status.into(),
        }
    }

    fn assign_number(member: &str) -> AssignInvoiceNumber {
        AssignInvoiceNumber {
            metadata: EventMetadata::example(),
            invoice_id: "inv_1".into(),
            member_id: member.into(),
            number: number(42),
            sequence: 42,
        }
    }

    #[test]
    fn given_no_invoice_or_another_members_when_commanded_then_invoice_not_found() {
        let open = finalize(&draft(), at(1));
        for (given, member) in [(None, "mem_1"), (Some(&open), "mem_2")] {
            let changed = decide_change(given, &change_to("void", member), at(2)).map_err(|r| r.code);
            assert_eq!(changed, Err("invoice_not_found"));
            let numbered = decide_assign(given, &assign_number(member), at(2)).map_err(|r| r.code);
            assert_eq!(numbered, Err("invoice_not_found"));
        }
    }

    #[test]
    fn given_the_members_invoice_when_its_status_changes_then_it_is_finalized_or_moved() {
        let draft = draft();
        assert_eq!(
            decide_change(Some(&draft), &change_to("open", "mem_1"), at(2)),
            Ok(Change::Finalize(finalize(&draft, at(2))))
        );
        let open = finalize(&draft, at(1));
        assert_eq!(
            decide_change(Some(&open), &change_to("void", "mem_1"), at(2)),
            Ok(Change::Status {
                from: "open".into(),
                invoice: Invoice { status: "void".into(), updated_at: at(2), ..open.clone() }
            })
        );
        let numbered =
            decide_assign(Some(&open), &assign_number("mem_1"), at(2)).expect("ok").expect("numbered");
        assert_eq!(numbered.invoice.number.as_deref(), Some("INV-000042"));
    }
}
