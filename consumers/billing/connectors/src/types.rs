//! The provider-neutral vocabulary every connector speaks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which payment provider a payment goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorName {
    /// Stripe (cards, via PaymentIntents).
    Stripe,
    /// PayPal (Orders v2).
    PayPal,
    /// Razorpay (UPI intent / QR).
    Razorpay,
    /// Cash or bank transfer confirmed by staff; no network.
    Manual,
}

impl ConnectorName {
    /// Every connector, in a stable order.
    pub const ALL: [ConnectorName; 4] =
        [ConnectorName::Stripe, ConnectorName::PayPal, ConnectorName::Razorpay, ConnectorName::Manual];

    /// The name used in events, configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorName::Stripe => "stripe",
            ConnectorName::PayPal => "paypal",
            ConnectorName::Razorpay => "razorpay",
            ConnectorName::Manual => "manual",
        }
    }
}

impl fmt::Display for ConnectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string did not name a connector.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown payment connector {0:?} (expected stripe, paypal, razorpay or manual)")]
pub struct UnknownConnector(pub String);

impl FromStr for ConnectorName {
    type Err = UnknownConnector;

    /// Case-insensitive: `"stripe"`, `"PayPal"`, `"razorpay"`, `"manual"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "stripe" => Ok(ConnectorName::Stripe),
            "paypal" => Ok(ConnectorName::PayPal),
            "razorpay" => Ok(ConnectorName::Razorpay),
            "manual" => Ok(ConnectorName::Manual),
            _ => Err(UnknownConnector(s.to_owned())),
        }
    }
}

/// Who pays, as far as a provider needs to know. Every field is optional; a provider that
/// requires one (Razorpay's server-to-server UPI API wants `email`, `phone`, `ip` and
/// `user_agent`) rejects the request without it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    /// The payer's e-mail address.
    pub email: Option<String>,
    /// The payer's phone number, with country code (e.g. `+919000090000`).
    pub phone: Option<String>,
    /// The payer's client IP address, as seen by the gateway.
    pub ip: Option<String>,
    /// The payer's client `User-Agent`, as seen by the gateway.
    pub user_agent: Option<String>,
    /// The payer's customer id at the provider (Stripe `cus_…`): needed to charge a
    /// payment method saved to that customer.
    pub provider_customer_id: Option<String>,
    /// The payer is on a device without UPI apps (a desktop) and will scan a QR code:
    /// UPI charges answer `NextAction { kind: "upi_qr" }` instead of `"upi_intent"`.
    pub scan_qr: bool,
}

/// One attempt to take money for one of our payments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequest {
    /// Sent to the provider on every call for this charge (see each connector for how), so a
    /// retried or replayed request never charges twice.
    pub idempotency_key: String,
    /// Our payment id (`pay_…`); stored at the provider (metadata / reference / receipt) so
    /// the payment can be found without the provider's id.
    pub payment_id: String,
    /// The organization the payment belongs to.
    pub organization_id: String,
    /// The member who pays.
    pub member_id: String,
    /// Amount in ISO 4217 minor units of `currency` (cents, paise; yen for JPY).
    pub amount_minor: i64,
    /// ISO 4217 code, upper case (`"USD"`, `"INR"`).
    pub currency: String,
    /// `card` | `bank_transfer` | `upi` | `wallet` | `cash`.
    pub method: String,
    /// A provider token for the payment method (Stripe `pm_…`, PayPal vault id).
    pub payment_method_token: Option<String>,
    /// Shown to the payer where the provider supports it.
    pub description: Option<String>,
    /// Where the provider sends the payer back after a redirect.
    pub return_url: Option<String>,
    /// Details about the payer some providers need (Razorpay UPI).
    pub payer: Option<Payer>,
}

/// What the payer (or staff) must do before the payment can complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextAction {
    /// One of [`NextAction::REDIRECT`], [`NextAction::UPI_INTENT`], [`NextAction::UPI_QR`],
    /// [`NextAction::STAFF_CONFIRMATION`], [`NextAction::CLIENT_SDK`].
    pub kind: String,
    /// The page to send the payer to (`redirect`), the `upi://pay?…` link to open (`upi_intent`)
    /// or to show as a QR code (`upi_qr`); `None` for `staff_confirmation` and `client_sdk`.
    pub url: Option<String>,
}

impl NextAction {
    /// Send the payer to `url` (3-D Secure page, PayPal approval page).
    pub const REDIRECT: &'static str = "redirect";
    /// Open `url` (a `upi://pay?…` link) on the payer's phone, which launches a UPI app.
    pub const UPI_INTENT: &'static str = "upi_intent";
    /// Show `url` (a `upi://pay?…` link) as a QR code for the payer to scan.
    pub const UPI_QR: &'static str = "upi_qr";
    /// A staff member confirms that the cash or bank transfer arrived.
    pub const STAFF_CONFIRMATION: &'static str = "staff_confirmation";
    /// The provider wants its client SDK to finish the payment (Stripe `use_stripe_sdk`):
    /// the app confirms it with the provider's library; there is no URL.
    pub const CLIENT_SDK: &'static str = "client_sdk";

    pub(crate) fn new(kind: &str, url: Option<String>) -> Self {
        NextAction { kind: kind.to_owned(), url }
    }
}

/// The provider's answer to a charge (or its current view of it, from `fetch`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargeOutcome {
    /// The money was taken.
    Succeeded {
        /// The provider's id to refund against (Stripe `pi_…`, PayPal capture id, Razorpay `pay_…`).
        provider_payment_id: String,
        /// The provider's fee in minor units of the payment's currency, when it says.
        provider_fee_minor: Option<i64>,
    },
    /// The provider refused the payment (a decline): not an error, a final answer.
    Failed {
        /// The provider's id of the failed attempt, when one was created.
        provider_payment_id: Option<String>,
        /// The provider's decline code, e.g. `card_declined`, `insufficient_funds`.
        code: String,
        /// The provider's human-readable reason.
        message: String,
    },
    /// The payer (or staff) must act; see [`NextAction`].
    RequiresAction {
        /// The provider's id of the pending payment (Stripe `pi_…`, PayPal order id, Razorpay `pay_…`).
        provider_payment_id: String,
        /// What must happen next.
        action: NextAction,
    },
    /// The provider has not decided yet; `fetch` later or wait for a webhook.
    Processing {
        /// The provider's id of the pending payment.
        provider_payment_id: String,
    },
}

impl ChargeOutcome {
    /// The provider's id, when there is one.
    pub fn provider_payment_id(&self) -> Option<&str> {
        match self {
            ChargeOutcome::Succeeded { provider_payment_id, .. }
            | ChargeOutcome::RequiresAction { provider_payment_id, .. }
            | ChargeOutcome::Processing { provider_payment_id } => Some(provider_payment_id),
            ChargeOutcome::Failed { provider_payment_id, .. } => provider_payment_id.as_deref(),
        }
    }

    /// Succeeded or Failed: the provider will not change its mind.
    pub fn is_final(&self) -> bool {
        matches!(self, ChargeOutcome::Succeeded { .. } | ChargeOutcome::Failed { .. })
    }
}

/// Give (part of) a succeeded payment back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    /// Sent to the provider so a retried refund never refunds twice.
    pub idempotency_key: String,
    /// Our refund id (`ref_…`), stored at the provider.
    pub refund_id: String,
    /// Our payment id.
    pub payment_id: String,
    /// The `provider_payment_id` of the succeeded charge.
    pub provider_payment_id: String,
    /// Amount to refund in ISO 4217 minor units: the whole payment or part of it.
    pub amount_minor: i64,
    /// ISO 4217 code, upper case; the payment's currency.
    pub currency: String,
    /// Why, in words; providers with a fixed list of reasons get the matching one when it
    /// matches (Stripe: `duplicate`, `fraudulent`, `requested_by_customer`).
    pub reason: Option<String>,
}

/// The provider's answer to a refund.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundOutcome {
    /// The money is on its way back.
    Succeeded {
        /// The provider's refund id.
        provider_refund_id: String,
    },
    /// Accepted, not settled yet; a webhook or a later look tells the end.
    Pending {
        /// The provider's refund id.
        provider_refund_id: String,
    },
    /// The provider refused or could not complete the refund.
    Failed {
        /// The provider's refund id, when one was created.
        provider_refund_id: Option<String>,
        /// The provider's code.
        code: String,
        /// The provider's reason.
        message: String,
    },
}
