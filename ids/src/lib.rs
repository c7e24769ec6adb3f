//! Typed ids and values, parsed once at the edge.
//!
//! Every id the system passes around (`MemberId`, `PaymentId`, `OrganizationId`, …) is a newtype
//! over the `String` it always was, and every value the gateway checks against a list or a shape
//! (`Currency`, `PlanTier`, `Cycle`, `PaymentMethodKind`) is a type of its own. They are parsed
//! where a request enters (the gateway's JSON and gRPC requests) and stay typed inside; on the wire
//! they are the same strings as before: serde writes an id or a value as a JSON / Avro string, and
//! the `sqlx` feature stores it as PostgreSQL `text`.
//!
//! Parsing checks what the gateway checked before the types existed, nothing stricter:
//! - an id must not be empty after trimming (its text is kept as given, untrimmed);
//! - a currency is an ISO 4217 code's shape, three upper-case ASCII letters;
//! - a tier, cycle or payment method is one of its allowed names.
//!
//! A [`ParseError`]'s text is the rest of a sentence about the field, and always starts with
//! `must ` ("must not be empty", "must be one of …"): `error.for_field("member_id")` is the
//! gateway's message `member_id must not be empty`, and a serde error for a typed field reads
//! `<path>: must …`, which the gateway recognises as a field's validation failure.
//!
//! Reading from the database (`sqlx::Decode`) does not check an id's shape: the database holds what
//! was accepted once, and a read should not fail over a row written before a rule existed. Values
//! with a closed list (`PlanTier`, …) are checked on every read, since anything else is unusable.
//!
//! Features: `sqlx` (PostgreSQL `Type`/`Encode`/`Decode`), `openapi` (`utoipa::ToSchema` as a
//! string), `avro` (`apache_avro::AvroSchemaComponent` as a string, for records deriving
//! `AvroSchema`). Without features the crate needs only serde.

use std::{borrow::Borrow, fmt, str::FromStr};

/// Why a string is not a valid id or value. Its `Display` continues a sentence about the field
/// and always starts with `must `.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("must not be empty")]
    Empty,
    #[error("must be an ISO 4217 code such as EUR")]
    Currency,
    #[error("must be one of {}", allowed.join(", "))]
    OneOf { allowed: &'static [&'static str] },
}

impl ParseError {
    /// The whole sentence for a field: `for_field("currency")` is
    /// `currency must be an ISO 4217 code such as EUR`.
    pub fn for_field(&self, field: &str) -> String {
        format!("{field} {self}")
    }
}

/// Not empty after trimming: what the gateway's `required` checked.
fn non_empty(value: &str) -> Result<(), ParseError> {
    if value.trim().is_empty() { Err(ParseError::Empty) } else { Ok(()) }
}

/// An id's or value's schema in the OpenAPI document and in Avro records: a plain string, as it
/// travels. Shared by [`ids!`] and [`values!`].
macro_rules! described_as_string {
    ($name:ident) => {
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                <String as utoipa::PartialSchema>::schema()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        #[cfg(feature = "avro")]
        impl apache_avro::AvroSchemaComponent for $name {
            fn get_schema_in_ctxt(
                named_schemas: &mut std::collections::HashSet<apache_avro::schema::Name>,
                enclosing_namespace: apache_avro::schema::NamespaceRef,
            ) -> apache_avro::Schema {
                <String as apache_avro::AvroSchemaComponent>::get_schema_in_ctxt(
                    named_schemas,
                    enclosing_namespace,
                )
            }

            fn get_record_fields_in_ctxt(
                _: &mut std::collections::HashSet<apache_avro::schema::Name>,
                _: apache_avro::schema::NamespaceRef,
            ) -> Option<Vec<apache_avro::schema::RecordField>> {
                None
            }
        }
    };
}

/// Defines id newtypes: a `String` inside, parsed by [`FromStr`] (not empty after trimming), a
/// string in JSON, Avro and PostgreSQL.
macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses an id: it must not be empty after trimming; the text is kept as given.
            pub fn parse(value: impl Into<String>) -> Result<Self, ParseError> {
                let value = value.into();
                non_empty(&value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = ParseError;

            fn from_str(value: &str) -> Result<Self, ParseError> {
                Self::parse(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;

            fn try_from(value: String) -> Result<Self, ParseError> {
                Self::parse(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ParseError;

            fn try_from(value: &str) -> Result<Self, ParseError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::parse(value).map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::postgres::PgHasArrayType>::array_type_info()
            }

            fn array_compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::postgres::PgHasArrayType>::array_compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.0.as_str(), buf)
            }
        }

        /// Not checked: the database holds what was accepted once (see the crate's docs).
        #[cfg(feature = "sqlx")]
        impl sqlx::Decode<'_, sqlx::Postgres> for $name {
            fn decode(value: sqlx::postgres::PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(Self(<String as sqlx::Decode<sqlx::Postgres>>::decode(value)?))
            }
        }

        described_as_string!($name);
    )+};
}

ids! {
    /// A tenant: every record and request belongs to one.
    OrganizationId;
    /// A member of an organization (who books, pays, checks in).
    MemberId;
    VenueId;
    ZoneId;
    SeatId;
    BookingId;
    /// An attendance session: a check-in until its check-out.
    SessionId;
    PassId;
    PlanId;
    SubscriptionId;
    InvoiceId;
    CreditNoteId;
    PaymentId;
    /// A member's stored payment method (a card, a mandate).
    PaymentMethodId;
    RefundId;
    CouponId;
    /// A usage record of a subscription's metered allowance.
    UsageId;
    NotificationId;
    TemplateId;
    CampaignId;
    /// Whom a notification goes to (a member, usually).
    RecipientId;
    /// Groups notifications that can be cancelled together while they wait.
    TransactionId;
    DigestId;
    /// An alert rule.
    RuleId;
    InhibitRuleId;
    /// An alert route (which receivers get which alerts).
    RouteId;
    SilenceId;
    AlertId;
    DashboardId;
    WidgetId;
    ReportId;
    HealthCheckId;
    /// A command the gateway accepted (its event id).
    CommandId;
    /// An event's id.
    EventId;
}

/// An ISO 4217 code's shape: three upper-case ASCII letters (`EUR`, `INR`). Whether the code is
/// assigned is the payment provider's concern, as it was before.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse(value: impl Into<String>) -> Result<Self, ParseError> {
        let value = value.into();
        if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(value))
        } else {
            Err(ParseError::Currency)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for Currency {
    type Err = ParseError;

    fn from_str(value: &str) -> Result<Self, ParseError> {
        Self::parse(value)
    }
}

impl TryFrom<String> for Currency {
    type Error = ParseError;

    fn try_from(value: String) -> Result<Self, ParseError> {
        Self::parse(value)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Currency {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Currency {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Currency {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<'de> serde::Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::parse(value).map_err(serde::de::Error::custom)
    }
}

/// Checked on read too: a currency is only ever stored after it was parsed.
#[cfg(feature = "sqlx")]
impl sqlx::Type<sqlx::Postgres> for Currency {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

#[cfg(feature = "sqlx")]
impl sqlx::postgres::PgHasArrayType for Currency {
    fn array_type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::postgres::PgHasArrayType>::array_type_info()
    }

    fn array_compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <String as sqlx::postgres::PgHasArrayType>::array_compatible(ty)
    }
}

#[cfg(feature = "sqlx")]
impl sqlx::Encode<'_, sqlx::Postgres> for Currency {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.0.as_str(), buf)
    }
}

#[cfg(feature = "sqlx")]
impl sqlx::Decode<'_, sqlx::Postgres> for Currency {
    fn decode(value: sqlx::postgres::PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <String as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(Self::parse(text)?)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <String as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Currency {}

#[cfg(feature = "avro")]
impl apache_avro::AvroSchemaComponent for Currency {
    fn get_schema_in_ctxt(
        named_schemas: &mut std::collections::HashSet<apache_avro::schema::Name>,
        enclosing_namespace: apache_avro::schema::NamespaceRef,
    ) -> apache_avro::Schema {
        <String as apache_avro::AvroSchemaComponent>::get_schema_in_ctxt(named_schemas, enclosing_namespace)
    }

    fn get_record_fields_in_ctxt(
        _: &mut std::collections::HashSet<apache_avro::schema::Name>,
        _: apache_avro::schema::NamespaceRef,
    ) -> Option<Vec<apache_avro::schema::RecordField>> {
        None
    }
}

/// Defines a closed set of names: a fieldless enum written as its name (a JSON / Avro string,
/// PostgreSQL `text`), parsed from exactly one of `ALL`.
macro_rules! values {
    ($($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? })+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every name, in the order the API lists them.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            pub fn parse(value: &str) -> Result<Self, ParseError> {
                match value {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(ParseError::OneOf { allowed: Self::ALL }),
                }
            }

            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = ParseError;

            fn from_str(value: &str) -> Result<Self, ParseError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::parse(&value).map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::postgres::PgHasArrayType>::array_type_info()
            }

            fn array_compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::postgres::PgHasArrayType>::array_compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::Decode<'_, sqlx::Postgres> for $name {
            fn decode(value: sqlx::postgres::PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(Self::parse(text)?)
            }
        }

        described_as_string!($name);
    )+};
}

values! {
    /// A plan's tier (`studyspot_schemas::billing::PLAN_TIERS`).
    PlanTier { Basic => "basic", Premium => "premium", Enterprise => "enterprise", Custom => "custom" }
    /// A plan's billing cycle (`studyspot_schemas::billing::CYCLES`).
    Cycle {
        Daily => "daily",
        Weekly => "weekly",
        Monthly => "monthly",
        Quarterly => "quarterly",
        Yearly => "yearly",
    }
    /// How a payment is made (`studyspot_schemas::billing::PAYMENT_METHODS`).
    PaymentMethodKind {
        Card => "card",
        BankTransfer => "bank_transfer",
        Upi => "upi",
        Wallet => "wallet",
        Cash => "cash",
    }
}

#[cfg(test)]
mod tests;
