//! Billing decisions: no I/O, no clock. Each takes the state the handler loaded (billing's own
//! types, with typed ids; `handler/state.rs` maps the projection's rows to them) and the command,
//! parsed once where the handler decoded it, and returns what happened or a [`Refusal`]: the
//! catalogue and subscriptions return their events in order (with the subscription as it is
//! now), payments, refunds and invoices the state the handler writes and announces. Every refusal
//! is decided here.

pub mod catalog;
pub mod invoices;
pub mod payments;
pub mod periods;
pub mod refunds;
pub mod subscriptions;

pub use studyspot_schemas::billing::PAYMENT_METHODS as METHODS;

pub use studyspot_consumer_runtime::{Malformed, Refusal, filled as check_filled};
use studyspot_ids::ParseError;

/// A command's field as its typed id or value (parsed once, where the command is decoded), or
/// malformed naming the field.
pub fn parse<T: std::str::FromStr<Err = ParseError>>(field: &str, value: &str) -> Result<T, Malformed> {
    value.parse().map_err(|e: ParseError| Malformed(e.for_field(field)))
}

/// An optional field as its typed id or value.
pub fn parse_opt<T: std::str::FromStr<Err = ParseError>>(
    field: &str,
    value: Option<&str>,
) -> Result<Option<T>, Malformed> {
    value.map(|v| parse(field, v)).transpose()
}

/// An id the core derives from another (an invoice's from its subscription's, …): never empty.
pub(crate) fn derived<T: std::str::FromStr<Err = ParseError>>(text: String) -> T {
    match text.parse() {
        Ok(id) => id,
        Err(_) => unreachable!("a derived id has a prefix, so it is never empty: {text:?}"),
    }
}

pub(crate) fn check_currency(currency: &str) -> Result<(), Malformed> {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Malformed(format!("currency {currency:?} is not an ISO 4217 code")));
    }
    Ok(())
}

pub(crate) fn check_method(method: &str) -> Result<(), Malformed> {
    if !METHODS.contains(&method) {
        return Err(Malformed(format!("method {method:?} is not one of {}", METHODS.join(", "))));
    }
    Ok(())
}

/// `amount × bps / 10 000`, rounded half up, in i128 so no product overflows.
pub fn basis_points(amount_minor: i64, bps: i64) -> Option<i64> {
    let product = i128::from(amount_minor) * i128::from(bps);
    i64::try_from((product + 5_000).div_euclid(10_000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_points_round_half_up_without_overflow() {
        assert_eq!(basis_points(1000, 290), Some(29));
        assert_eq!(basis_points(1050, 1900), Some(200)); // 199.5 → 200
        assert_eq!(basis_points(1049, 1900), Some(199)); // 199.31 → 199
        assert_eq!(basis_points(i64::MAX, 10_000), Some(i64::MAX));
        assert_eq!(basis_points(i64::MAX, 20_000), None);
    }
}
