//! Invoice numbers in log order. A finalized invoice asks its organization's series for a number
//! (`shell::ask_number`: `NumberInvoice`, on the catalog command topic, where the organization has
//! one partition); the series is advanced only there, in that partition's order, so the live
//! process and a rebuild from the log hand out the same numbers. The number comes back on the
//! invoice's own partition (`AssignInvoiceNumber`, keyed by member), so each table is written by
//! records of one partition and the order partitions interleave in never matters.

use sqlx::PgConnection;
use studyspot_billing_projection::invoices;
use studyspot_consumer_runtime::{HandleError, Out, malformed};
use studyspot_schemas::billing::{AssignInvoiceNumber, InvoiceIssued, InvoicePaid, NumberInvoice};

use super::subscriptions;
use crate::{
    decide::{
        self,
        invoices::{self as rules, AfterNumber, Numbering},
    },
    shell::Refuse,
};

/// The organization's series gives the invoice the next number (or the one it gave it before).
pub(super) async fn number_invoice(tx: &mut PgConnection, out: &mut Out<'_>) -> Result<(), HandleError> {
    let c: NumberInvoice = out.message.record()?;
    decide::check_filled(&[
        ("invoice_id", &c.invoice_id),
        ("member_id", &c.member_id),
        ("metadata.organization_id", &c.metadata.organization_id),
    ])
    .map_err(malformed::<NumberInvoice>)?;
    let at = out.message.occurred_at()?;
    let org = &c.metadata.organization_id;
    let already = invoices::number_of(tx, org, &c.invoice_id).await?.map(Into::into);
    let last = invoices::last_number(tx, org).await?;
    let assigned = match rules::take_number(already, last) {
        Numbering::Next(assigned) => {
            let row = assigned.clone().into();
            invoices::record_number(tx, org, &c.invoice_id, &c.member_id, &row, at).await?;
            assigned
        }
        Numbering::Again(assigned) => assigned,
    };
    out.emit(|metadata| AssignInvoiceNumber {
        metadata,
        invoice_id: c.invoice_id.clone(),
        member_id: c.member_id.clone(),
        number: assigned.number,
        sequence: assigned.sequence,
    });
    Ok(())
}

/// The invoice takes its number; `InvoiceIssued` tells it, and what waited for it goes ahead.
pub(super) async fn assign_invoice_number(
    tx: &mut PgConnection,
    out: &mut Out<'_>,
) -> Result<(), HandleError> {
    let c: AssignInvoiceNumber = out.message.record()?;
    decide::check_filled(&[
        ("invoice_id", &c.invoice_id),
        ("member_id", &c.member_id),
        ("number", &c.number),
    ])
    .map_err(malformed::<AssignInvoiceNumber>)?;
    let at = out.message.occurred_at()?;
    let given = invoices::load(tx, &c.metadata.organization_id, &c.invoice_id).await?;
    let given: Option<rules::Invoice> = given.map(TryInto::try_into).transpose()?;
    let numbered = match rules::decide_assign(given.as_ref(), &c, at) {
        Ok(Some(numbered)) => numbered,
        // Told again: it has this number.
        Ok(None) => return Ok(()),
        Err(refusal) => {
            out.refuse::<AssignInvoiceNumber>(&c.member_id, refusal);
            return Ok(());
        }
    };
    let invoice = studyspot_billing_projection::Invoice::from(numbered.invoice);
    invoices::save(tx, &invoice).await?;
    out.emit(|metadata| InvoiceIssued {
        metadata,
        invoice_id: invoice.invoice_id.clone(),
        member_id: invoice.member_id.clone(),
        number: c.number.clone(),
        currency: invoice.currency.clone(),
        total_minor: invoice.total_minor,
        due_at: invoice.due_at.timestamp_millis(),
    });
    match numbered.then {
        AfterNumber::Nothing => {}
        AfterNumber::Paid => out.emit(|metadata| InvoicePaid {
            metadata,
            invoice_id: invoice.invoice_id.clone(),
            member_id: invoice.member_id.clone(),
            number: c.number.clone(),
            currency: invoice.currency.clone(),
            amount_paid_minor: invoice.amount_paid_minor,
        }),
        AfterNumber::Charge => subscriptions::charge_numbered(tx, out, &invoice).await?,
    }
    Ok(())
}
