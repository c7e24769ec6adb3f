#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn an_id_parses_unless_empty_after_trimming_and_keeps_its_text() {
    assert_eq!(MemberId::parse("mem_1").unwrap().as_str(), "mem_1");
    assert_eq!(" mem_1 ".parse::<MemberId>().unwrap().as_str(), " mem_1 ");
    assert_eq!(MemberId::parse(""), Err(ParseError::Empty));
    assert_eq!("  \t".parse::<PaymentId>(), Err(ParseError::Empty));
    assert_eq!(OrganizationId::try_from("org_a".to_owned()).unwrap().into_string(), "org_a");
}

#[test]
fn an_id_is_its_text() {
    let id = SeatId::parse("seat-7").unwrap();
    assert_eq!(id.to_string(), "seat-7");
    assert_eq!(id.as_ref(), "seat-7");
    assert_eq!(id, "seat-7");
    assert_eq!(String::from(id), "seat-7");
    let set: std::collections::HashSet<VenueId> = [VenueId::parse("v1").unwrap()].into();
    assert!(set.contains("v1"));
}

#[test]
fn an_id_is_a_json_string() {
    let id = InvoiceId::parse("inv_1").unwrap();
    assert_eq!(serde_json::to_string(&id).unwrap(), r#""inv_1""#);
    assert_eq!(serde_json::from_str::<InvoiceId>(r#""inv_1""#).unwrap(), id);
    let some: Option<InvoiceId> = serde_json::from_str("null").unwrap();
    assert_eq!(some, None);
}

#[test]
fn a_json_id_is_checked_and_the_error_reads_must() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Request {
        member_id: MemberId,
    }
    let error = serde_json::from_str::<Request>(r#"{"member_id": " "}"#).unwrap_err();
    assert!(error.to_string().starts_with("must not be empty"), "{error}");
    // A wrong type keeps serde's own message, as a String field had.
    let error = serde_json::from_str::<Request>(r#"{"member_id": 5}"#).unwrap_err();
    let plain = serde_json::from_str::<String>("5").unwrap_err();
    assert_eq!(error.to_string().split(" at ").next(), plain.to_string().split(" at ").next());
}

#[test]
fn an_id_is_an_avro_string() {
    let id = RefundId::parse("ref_1").unwrap();
    let value = apache_avro::to_value(&id).unwrap();
    assert_eq!(value, apache_avro::types::Value::String("ref_1".into()));
    assert_eq!(apache_avro::from_value::<RefundId>(&value).unwrap(), id);
}

#[test]
fn every_error_continues_a_sentence_starting_with_must() {
    for error in [ParseError::Empty, ParseError::Currency, ParseError::OneOf { allowed: Cycle::ALL }] {
        assert!(error.to_string().starts_with("must "), "{error}");
    }
    assert_eq!(ParseError::Empty.for_field("member_id"), "member_id must not be empty");
    assert_eq!(ParseError::Currency.for_field("currency"), "currency must be an ISO 4217 code such as EUR");
}

#[test]
fn a_currency_is_three_upper_case_letters() {
    assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
    for bad in ["eur", "EU", "EURO", "", "E1R", "ÉUR"] {
        assert_eq!(Currency::parse(bad), Err(ParseError::Currency), "{bad}");
    }
    let inr: Currency = serde_json::from_str(r#""INR""#).unwrap();
    assert_eq!(serde_json::to_string(&inr).unwrap(), r#""INR""#);
    assert!(serde_json::from_str::<Currency>(r#""inr""#).is_err());
}

#[test]
fn closed_values_parse_from_their_names_only() {
    assert_eq!(PlanTier::parse("premium"), Ok(PlanTier::Premium));
    assert_eq!(Cycle::parse("quarterly"), Ok(Cycle::Quarterly));
    assert_eq!(PaymentMethodKind::parse("bank_transfer"), Ok(PaymentMethodKind::BankTransfer));
    assert_eq!(
        PlanTier::parse("Premium").unwrap_err().for_field("tier"),
        "tier must be one of basic, premium, enterprise, custom"
    );
    assert_eq!(
        PaymentMethodKind::parse("cheque").unwrap_err().for_field("method"),
        "method must be one of card, bank_transfer, upi, wallet, cash"
    );
    assert_eq!(
        Cycle::parse("").unwrap_err().to_string(),
        "must be one of daily, weekly, monthly, quarterly, yearly"
    );
}

#[test]
fn closed_values_round_trip_through_json_and_avro() {
    for name in Cycle::ALL {
        let cycle = Cycle::parse(name).unwrap();
        assert_eq!(cycle.as_str(), *name);
        let json = serde_json::to_string(&cycle).unwrap();
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<Cycle>(&json).unwrap(), cycle);
        let avro = apache_avro::to_value(cycle).unwrap();
        assert_eq!(avro, apache_avro::types::Value::String((*name).into()));
        assert_eq!(apache_avro::from_value::<Cycle>(&avro).unwrap(), cycle);
    }
    for name in PlanTier::ALL.iter().chain(PaymentMethodKind::ALL) {
        let json = format!("\"{name}\"");
        let tier = serde_json::from_str::<PlanTier>(&json).map(|t| t.to_string());
        let method = serde_json::from_str::<PaymentMethodKind>(&json).map(|m| m.to_string());
        assert_eq!(tier.or(method).unwrap(), *name);
    }
}

#[cfg(feature = "avro")]
#[test]
fn a_record_deriving_avro_schema_sees_ids_and_values_as_strings() {
    use apache_avro::AvroSchema;
    #[derive(AvroSchema)]
    #[allow(dead_code)]
    struct Payment {
        payment_id: PaymentId,
        invoice_id: Option<InvoiceId>,
        currency: Currency,
        method: PaymentMethodKind,
    }
    #[derive(AvroSchema)]
    #[allow(dead_code)]
    struct Plain {
        payment_id: String,
        invoice_id: Option<String>,
        currency: String,
        method: String,
    }
    let typed = Payment::get_schema().canonical_form().replace("Payment", "Plain");
    assert_eq!(typed, Plain::get_schema().canonical_form());
}

#[cfg(feature = "openapi")]
#[test]
fn the_openapi_schema_is_a_string() {
    use utoipa::PartialSchema;
    let id = serde_json::to_value(MemberId::schema()).unwrap();
    assert_eq!(id, serde_json::to_value(String::schema()).unwrap());
    let cycle = serde_json::to_value(Cycle::schema()).unwrap();
    assert_eq!(cycle, serde_json::to_value(String::schema()).unwrap());
}

/// Through PostgreSQL `text` and `text[]` and back (`STUDYSPOT_TEST_DATABASE_URL`, or the local
/// stack's server on loopback).
#[cfg(feature = "sqlx")]
#[tokio::test]
async fn ids_and_values_are_postgres_text() {
    use sqlx::{Connection, PgConnection, Row};
    let url = std::env::var("STUDYSPOT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://studyspot:studyspot@127.0.0.1:5432/studyspot".into());
    let mut db = PgConnection::connect(&url).await.unwrap();
    let member = MemberId::parse("mem_1").unwrap();
    let seats = vec![SeatId::parse("s1").unwrap(), SeatId::parse("s2").unwrap()];
    let row = sqlx::query(
        "SELECT $1::text AS member, $2::text[] AS seats, $3::text AS currency, $4::text AS cycle, \
         $1 = 'mem_1' AS same, ' '::text AS blank, $5::text[] AS tiers",
    )
    .bind(&member)
    .bind(&seats)
    .bind(Currency::parse("EUR").unwrap())
    .bind(Cycle::Monthly)
    .bind([PlanTier::Basic, PlanTier::Custom])
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(row.get::<MemberId, _>("member"), member);
    assert_eq!(row.get::<Vec<SeatId>, _>("seats"), seats);
    assert_eq!(row.get::<Currency, _>("currency"), "EUR");
    assert_eq!(row.get::<Cycle, _>("cycle"), Cycle::Monthly);
    assert!(row.get::<bool, _>("same"));
    assert_eq!(row.get::<Vec<PlanTier>, _>("tiers"), [PlanTier::Basic, PlanTier::Custom]);
    // A stored id is read as it is (see the crate's docs); a closed value is checked.
    assert_eq!(row.get::<MemberId, _>("blank").as_str(), " ");
    assert!(row.try_get::<Currency, _>("blank").is_err());
    db.close().await.unwrap();
}
