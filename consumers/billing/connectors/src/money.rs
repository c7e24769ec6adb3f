//! Integer minor units ↔ the providers' money formats. No floats anywhere.
//!
//! Our amounts are ISO 4217 minor units (exponent from the `iso_currency` crate: JPY 0, USD 2,
//! KWD 3). Providers mostly agree; where one does not, its table is here:
//! - Stripe treats ISK as a two-decimal currency although ISO gives it 0 (amounts must end in 00).
//! - PayPal does not accept decimals for HUF, JPY and TWD although ISO gives HUF and TWD 2.

use iso_currency::Currency;

/// The ISO 4217 exponent of `code` (upper case), or `None` for an unknown code or one without
/// minor units defined (funds, metals).
pub fn iso_exponent(code: &str) -> Option<u32> {
    Currency::from_code(code).and_then(Currency::exponent).map(u32::from)
}

/// `amount_minor` (ISO minor units) as a decimal string with `exponent` decimals:
/// `(1050, 2)` → `"10.50"`, `(500, 0)` → `"500"`, `(-5, 3)` → `"-0.005"`.
pub fn minor_to_decimal(amount_minor: i64, exponent: u32) -> String {
    let negative = amount_minor < 0;
    let abs = amount_minor.unsigned_abs();
    let sign = if negative { "-" } else { "" };
    if exponent == 0 {
        return format!("{sign}{abs}");
    }
    let scale = 10u64.pow(exponent);
    let width = usize::try_from(exponent).unwrap_or(usize::MAX);
    format!("{sign}{}.{:0width$}", abs / scale, abs % scale)
}

/// Parses a decimal string (`"10.5"`, `"3"`, `"0.005"`) into minor units with `exponent`
/// decimals. Fails on more decimals than the exponent allows, on anything that is not a plain
/// decimal number, and on overflow.
pub fn decimal_to_minor(value: &str, exponent: u32) -> Option<i64> {
    let value = value.trim();
    let (negative, digits) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, f),
        None => (digits, ""),
    };
    let exp = usize::try_from(exponent).ok()?;
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > exp
    {
        return None;
    }
    let scale = 10i64.checked_pow(exponent)?;
    let whole: i64 = whole.parse().ok()?;
    let mut frac: i64 = if fraction.is_empty() { 0 } else { fraction.parse().ok()? };
    for _ in fraction.len()..exp {
        frac = frac.checked_mul(10)?;
    }
    let minor = whole.checked_mul(scale)?.checked_add(frac)?;
    Some(if negative { -minor } else { minor })
}

/// Stripe's amount for ISO minor units of `currency`: Stripe counts ISK in hundredths although
/// ISO 4217 gives it no minor unit; every other currency Stripe supports matches ISO.
pub fn to_stripe_amount(amount_minor: i64, currency: &str) -> Option<i64> {
    match currency {
        "ISK" => amount_minor.checked_mul(100),
        _ => Some(amount_minor),
    }
}

/// The inverse of [`to_stripe_amount`] (for fees and refunded totals Stripe reports).
pub fn from_stripe_amount(amount: i64, currency: &str) -> i64 {
    match currency {
        "ISK" => amount / 100,
        _ => amount,
    }
}

/// The number of decimals PayPal accepts for `currency`: ISO's, except HUF, JPY and TWD,
/// which PayPal takes in whole units only.
pub fn paypal_exponent(currency: &str) -> Option<u32> {
    match currency {
        "HUF" | "JPY" | "TWD" => Some(0),
        _ => iso_exponent(currency),
    }
}

/// PayPal's `value` for ISO minor units of `currency`. `None` for an unknown currency or an
/// amount PayPal cannot express (e.g. 1050 HUF minor units = 10.50 HUF: PayPal takes whole forints).
pub fn to_paypal_value(amount_minor: i64, currency: &str) -> Option<String> {
    let iso = iso_exponent(currency)?;
    let paypal = paypal_exponent(currency)?;
    let drop = iso.checked_sub(paypal)?;
    let divisor = 10i64.pow(drop);
    if amount_minor % divisor != 0 {
        return None;
    }
    Some(minor_to_decimal(amount_minor / divisor, paypal))
}

/// ISO minor units of a PayPal `value` in `currency`.
pub fn from_paypal_value(value: &str, currency: &str) -> Option<i64> {
    let iso = iso_exponent(currency)?;
    let paypal = paypal_exponent(currency)?;
    let minor_paypal = decimal_to_minor(value, paypal)?;
    minor_paypal.checked_mul(10i64.pow(iso.checked_sub(paypal)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_come_from_iso_4217() {
        assert_eq!(iso_exponent("USD"), Some(2));
        assert_eq!(iso_exponent("JPY"), Some(0));
        assert_eq!(iso_exponent("KWD"), Some(3));
        assert_eq!(iso_exponent("INR"), Some(2));
        assert_eq!(iso_exponent("XXX"), None);
        assert_eq!(iso_exponent("usd"), None, "codes are upper case");
    }

    #[test]
    fn minor_units_format_as_decimals() {
        assert_eq!(minor_to_decimal(1050, 2), "10.50");
        assert_eq!(minor_to_decimal(5, 2), "0.05");
        assert_eq!(minor_to_decimal(500, 0), "500");
        assert_eq!(minor_to_decimal(1234, 3), "1.234");
        assert_eq!(minor_to_decimal(-5, 3), "-0.005");
        assert_eq!(minor_to_decimal(i64::MIN, 2), "-92233720368547758.08");
    }

    #[test]
    fn decimals_parse_back_to_minor_units() {
        assert_eq!(decimal_to_minor("10.50", 2), Some(1050));
        assert_eq!(decimal_to_minor("10.5", 2), Some(1050));
        assert_eq!(decimal_to_minor("10", 2), Some(1000));
        assert_eq!(decimal_to_minor("0.005", 3), Some(5));
        assert_eq!(decimal_to_minor("-1.25", 2), Some(-125));
        assert_eq!(decimal_to_minor("1.234", 2), None, "too many decimals");
        assert_eq!(decimal_to_minor("1e3", 2), None);
        assert_eq!(decimal_to_minor(".5", 2), None);
        assert_eq!(decimal_to_minor("99999999999999999999", 2), None, "overflow");
    }

    #[test]
    fn paypal_values_follow_paypal_decimals() {
        assert_eq!(to_paypal_value(1050, "USD").as_deref(), Some("10.50"));
        assert_eq!(to_paypal_value(1500, "JPY").as_deref(), Some("1500"));
        assert_eq!(to_paypal_value(1234, "KWD").as_deref(), Some("1.234"));
        assert_eq!(to_paypal_value(150_000, "HUF").as_deref(), Some("1500"));
        assert_eq!(to_paypal_value(150_050, "HUF"), None, "PayPal takes whole forints");
        assert_eq!(to_paypal_value(100, "ZZZ"), None);
        assert_eq!(from_paypal_value("1500", "HUF"), Some(150_000));
        assert_eq!(from_paypal_value("0.59", "USD"), Some(59));
        assert_eq!(from_paypal_value("12", "JPY"), Some(12));
    }

    #[test]
    fn stripe_amounts_count_isk_in_hundredths() {
        assert_eq!(to_stripe_amount(1000, "USD"), Some(1000));
        assert_eq!(to_stripe_amount(1000, "JPY"), Some(1000));
        assert_eq!(to_stripe_amount(1000, "ISK"), Some(100_000));
        assert_eq!(from_stripe_amount(100_000, "ISK"), 1000);
    }
}
