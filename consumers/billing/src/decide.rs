//! Billing decisions: no I/O, no clock.

use studyspot_schemas::billing::CreatePayment;
use studyspot_schemas::first_blank;

pub use studyspot_schemas::billing::PAYMENT_METHODS as METHODS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreatePaymentDecision {
    Create,
    Rejected { code: &'static str, reason: String },
}

pub fn validate_create_payment(c: &CreatePayment) -> Result<(), Malformed> {
    if let Some(field) = first_blank(&[
        ("payment_id", &c.payment_id),
        ("member_id", &c.member_id),
        ("metadata.organization_id", &c.metadata.organization_id),
    ]) {
        return Err(Malformed(format!("{field} is empty")));
    }
    if c.amount_minor <= 0 {
        return Err(Malformed(format!("amount_minor must be positive, got {}", c.amount_minor)));
    }
    if c.currency.len() != 3 || !c.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Malformed(format!("currency {:?} is not an ISO 4217 code", c.currency)));
    }
    if !METHODS.contains(&c.method.as_str()) {
        return Err(Malformed(format!("method {:?} is not one of {}", c.method, METHODS.join(", "))));
    }
    Ok(())
}

/// `exists`: a payment with the command's id is already recorded.
pub fn decide_create_payment(exists: bool, c: &CreatePayment) -> CreatePaymentDecision {
    if exists {
        return CreatePaymentDecision::Rejected {
            code: "payment_exists",
            reason: format!("payment {} already exists", c.payment_id),
        };
    }
    CreatePaymentDecision::Create
}

#[cfg(test)]
mod tests {
    use studyspot_schemas::EventMetadata;

    use super::*;

    fn command() -> CreatePayment {
        CreatePayment {
            metadata: EventMetadata::example(),
            payment_id: "pay_1".into(),
            member_id: "mem_1".into(),
            amount_minor: 1500,
            currency: "EUR".into(),
            method: "card".into(),
            description: None,
        }
    }

    #[test]
    fn given_a_new_payment_when_created_then_it_is_recorded() {
        assert_eq!(validate_create_payment(&command()), Ok(()));
        assert_eq!(decide_create_payment(false, &command()), CreatePaymentDecision::Create);
    }

    #[test]
    fn given_the_payment_exists_when_created_again_then_it_is_refused() {
        assert!(matches!(
            decide_create_payment(true, &command()),
            CreatePaymentDecision::Rejected { code: "payment_exists", .. }
        ));
    }

    #[test]
    fn amounts_currencies_and_methods_are_checked() {
        let mut zero = command();
        zero.amount_minor = 0;
        assert!(validate_create_payment(&zero).is_err());
        for currency in ["eur", "EURO", "E1R", ""] {
            let mut c = command();
            c.currency = currency.into();
            assert!(validate_create_payment(&c).is_err(), "{currency}");
        }
        let mut bitcoin = command();
        bitcoin.method = "bitcoin".into();
        assert!(validate_create_payment(&bitcoin).is_err());
        let mut anonymous = command();
        anonymous.member_id = " ".into();
        assert!(validate_create_payment(&anonymous).is_err());
    }
}
