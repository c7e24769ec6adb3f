//! Billing's operations beyond creating a payment: process, confirm and refund payments, store
//! payment methods, issue and move invoices, and read them all, with the payments dashboard.
//! The gateway only checks shapes and who may ask; billing decides.

use std::collections::HashMap;

use axum::{Extension, Json, extract::State, response::Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use studyspot_billing_projection::{Payment, reads};
use studyspot_bus::TraceContext;
use studyspot_ids::{Currency, InvoiceId, MemberId, PaymentId, PaymentMethodId, PaymentMethodKind, RefundId};
use studyspot_schemas::billing;

use crate::{
    AppState, GatewayError,
    auth::Caller,
    commands::{Accept, CommandRequest, PathId, accept, answer, metadata, new_id, one_of, required},
    error::projection_missing,
    ledger::Idempotency,
    queries::{ListParams, Page, Params, member_scope, query_values, rows, visible},
};

/// The payment a command names, as the caller may see it (404 otherwise). Commands on a payment
/// are keyed by its member, whom the caller does not have to name.
async fn visible_payment(
    state: &AppState,
    caller: &Caller,
    payment_id: &str,
) -> Result<Payment, GatewayError> {
    crate::queries::payment_with(state, caller, payment_id).await
}

/// The id the caller chose (parsed already), or a new one with this prefix.
pub(crate) fn optional_id(id: Option<impl Into<String>>, prefix: &str) -> String {
    id.map_or_else(|| new_id(prefix), Into::into)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessPaymentRequest {
    /// Where the payer returns after a provider's redirect (3-D Secure, PayPal approval).
    pub(crate) return_url: Option<String>,
    /// Some providers require it of the payer (Razorpay's UPI).
    pub(crate) payer_email: Option<String>,
    /// With country code, e.g. +919000090000 (Razorpay's UPI).
    pub(crate) payer_phone: Option<String>,
    /// The payer scans a QR code instead of opening a UPI app on this device.
    #[serde(default)]
    pub(crate) scan_qr: bool,
}

/// The payer's client as the gateway saw it: its address (see `client_address`: a forwarded one
/// only from a trusted proxy) and `User-Agent`.
#[derive(Debug, Default, Clone)]
pub(crate) struct PayerClient {
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
}

impl PayerClient {
    pub(crate) fn of(
        proxies: &crate::client_address::TrustedProxies,
        peer: Option<std::net::IpAddr>,
        headers: &axum::http::HeaderMap,
    ) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let ip = proxies.client(peer, headers).map(|ip| ip.to_canonical().to_string());
        Self { ip, user_agent: text("user-agent").filter(|v| !v.is_empty()).map(str::to_owned) }
    }
}

#[utoipa::path(post, path = "/api/payments/{id}/process", tag = "billing", request_body = ProcessPaymentRequest,
    params(("id" = String, Path, description = "The payment id"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted: the payment goes to its provider", body = crate::openapi::Accepted),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such payment visible to this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn process_payment(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(payment_id): PathId<PaymentId>,
    crate::client_address::Peer(peer): crate::client_address::Peer,
    headers: axum::http::HeaderMap,
    request: CommandRequest<ProcessPaymentRequest>,
) -> Result<Response, GatewayError> {
    let client = PayerClient::of(&state.proxies, peer, &headers);
    let answered =
        process_payment_with(&state, &caller, &trace, request.idempotency, payment_id, request.body, client)
            .await?;
    Ok(answer(answered))
}

pub(crate) async fn process_payment_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    payment_id: PaymentId,
    body: ProcessPaymentRequest,
    client: PayerClient,
) -> Result<(Value, bool), GatewayError> {
    let payment = visible_payment(state, caller, payment_id.as_str()).await?;
    let command = billing::ProcessPayment {
        metadata: metadata(caller),
        payment_id: payment.payment_id.clone(),
        member_id: payment.member_id.clone(),
        return_url: body.return_url,
        payer_email: body.payer_email,
        payer_phone: body.payer_phone,
        payer_ip: client.ip,
        payer_user_agent: client.user_agent,
        scan_qr: body.scan_qr,
    };
    let how = accept_how(caller, trace, idempotency, ("payment_id", payment_id.into()), &payment.member_id);
    accept(state, command, how).await
}

fn accept_how<'a>(
    caller: &'a Caller,
    trace: &'a TraceContext,
    idempotency: Option<Idempotency>,
    aggregate: (&'static str, String),
    member_id: &'a str,
) -> Accept<'a> {
    Accept { caller, trace, idempotency, aggregate, member_id: Some(member_id) }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPaymentRequest {
    /// A receipt number or bank reference.
    pub(crate) reference: Option<String>,
}

#[utoipa::path(post, path = "/api/payments/{id}/confirm", tag = "billing", request_body = ConfirmPaymentRequest,
    params(("id" = String, Path, description = "A cash or bank-transfer payment waiting for staff")),
    responses(
        (status = 202, description = "Accepted", body = crate::openapi::Accepted),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services confirm payments", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such payment visible to this token", body = crate::openapi::ErrorBody),
    )
)]
pub async fn confirm_payment(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(payment_id): PathId<PaymentId>,
    request: CommandRequest<ConfirmPaymentRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(
        confirm_payment_with(&state, &caller, &trace, request.idempotency, payment_id, request.body).await?,
    ))
}

pub(crate) async fn confirm_payment_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    payment_id: PaymentId,
    body: ConfirmPaymentRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator_with_scope("confirming a payment", "billing:confirm")?;
    let payment = visible_payment(state, caller, payment_id.as_str()).await?;
    let command = billing::ConfirmManualPayment {
        metadata: metadata(caller),
        payment_id: payment.payment_id.clone(),
        member_id: payment.member_id.clone(),
        reference: body.reference,
    };
    let how = accept_how(caller, trace, idempotency, ("payment_id", payment_id.into()), &payment.member_id);
    accept(state, command, how).await
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Chosen by the caller (`re_…`) or by the gateway.
    #[schema(value_type = Option<String>)]
    pub(crate) refund_id: Option<RefundId>,
    /// Minor units; absent refunds everything not yet refunded.
    pub(crate) amount_minor: Option<i64>,
    pub(crate) reason: Option<String>,
}

#[utoipa::path(post, path = "/api/payments/{id}/refunds", tag = "billing", request_body = RefundRequest,
    params(("id" = String, Path, description = "A succeeded payment")),
    responses(
        (status = 202, description = "Accepted; billing checks the amount against what is left", body = crate::openapi::Accepted),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services refund", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such payment visible to this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn refund_payment(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(payment_id): PathId<PaymentId>,
    request: CommandRequest<RefundRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(
        refund_payment_with(&state, &caller, &trace, request.idempotency, payment_id, request.body).await?,
    ))
}

pub(crate) async fn refund_payment_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    payment_id: PaymentId,
    body: RefundRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator_with_scope("refunding a payment", "billing:refund")?;
    if body.amount_minor.is_some_and(|a| a <= 0) {
        return Err(GatewayError::invalid(
            "amount_minor",
            "amount_minor must be a positive number of minor units",
        ));
    }
    let refund_id = optional_id(body.refund_id, "re");
    let payment = visible_payment(state, caller, payment_id.as_str()).await?;
    let command = billing::RefundPayment {
        metadata: metadata(caller),
        refund_id: refund_id.clone(),
        payment_id: payment.payment_id.clone(),
        member_id: payment.member_id.clone(),
        amount_minor: body.amount_minor,
        reason: body.reason,
    };
    let how = accept_how(caller, trace, idempotency, ("refund_id", refund_id), &payment.member_id);
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPaymentMethodRequest {
    #[schema(value_type = Option<String>)]
    pub(crate) payment_method_id: Option<PaymentMethodId>,
    #[schema(value_type = String)]
    pub(crate) member_id: MemberId,
    /// card, bank_transfer, upi, wallet or cash.
    #[schema(value_type = String)]
    pub(crate) method: PaymentMethodKind,
    /// The provider's token for it (e.g. Stripe `pm_…`); never card numbers.
    pub(crate) provider_token: Option<String>,
    /// For people, e.g. "Visa •••• 4242".
    pub(crate) label: Option<String>,
    #[serde(default)]
    pub(crate) make_default: bool,
}

#[utoipa::path(post, path = "/api/payments/methods", tag = "billing", request_body = AddPaymentMethodRequest,
    responses(
        (status = 202, description = "Accepted", body = crate::openapi::Accepted),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not allowed for this token", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn add_payment_method(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<AddPaymentMethodRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(add_payment_method_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn add_payment_method_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: AddPaymentMethodRequest,
) -> Result<(Value, bool), GatewayError> {
    if body.provider_token.as_deref().is_some_and(|t| t.chars().filter(char::is_ascii_digit).count() >= 12) {
        return Err(GatewayError::invalid(
            "provider_token",
            "provider_token looks like a card number; store the provider's token instead",
        ));
    }
    caller.require_member_or_operator(body.member_id.as_str(), "adding a payment method")?;
    let id = optional_id(body.payment_method_id, "pm");
    let command = billing::AddPaymentMethod {
        metadata: metadata(caller),
        payment_method_id: id.clone(),
        member_id: body.member_id.to_string(),
        method: body.method.into(),
        provider_token: body.provider_token,
        label: body.label,
        make_default: body.make_default,
    };
    let how = accept_how(caller, trace, idempotency, ("payment_method_id", id), body.member_id.as_str());
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLineRequest {
    pub(crate) description: String,
    pub(crate) quantity: i64,
    pub(crate) unit_amount_minor: i64,
    /// Basis points: 1900 = 19 %.
    #[serde(default)]
    pub(crate) tax_rate_bps: i32,
    pub(crate) tax_name: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvoiceRequest {
    #[schema(value_type = Option<String>)]
    pub(crate) invoice_id: Option<InvoiceId>,
    #[schema(value_type = String)]
    pub(crate) member_id: MemberId,
    #[schema(value_type = String)]
    pub(crate) currency: Currency,
    pub(crate) lines: Vec<InvoiceLineRequest>,
    /// RFC 3339.
    pub(crate) due_at: DateTime<Utc>,
    /// Open it at once (default; its number follows within moments, in the organization's series);
    /// false keeps a draft.
    pub(crate) finalize: Option<bool>,
}

#[utoipa::path(post, path = "/api/payments/invoices", tag = "billing", request_body = CreateInvoiceRequest,
    responses(
        (status = 202, description = "Accepted", body = crate::openapi::Accepted),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services invoice", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn create_invoice(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    request: CommandRequest<CreateInvoiceRequest>,
) -> Result<Response, GatewayError> {
    Ok(answer(create_invoice_with(&state, &caller, &trace, request.idempotency, request.body).await?))
}

pub(crate) async fn create_invoice_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    body: CreateInvoiceRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("creating an invoice")?;
    if body.lines.is_empty() {
        return Err(GatewayError::invalid("lines", "an invoice needs at least one line"));
    }
    for (n, line) in body.lines.iter().enumerate() {
        let field = |name: &str| format!("lines[{n}].{name}");
        required(&field("description"), &line.description)?;
        if line.quantity <= 0 {
            return Err(GatewayError::invalid(&field("quantity"), "quantity must be positive"));
        }
        if line.unit_amount_minor < 0 {
            return Err(GatewayError::invalid(
                &field("unit_amount_minor"),
                "unit_amount_minor cannot be negative",
            ));
        }
        if !(0..=10_000).contains(&line.tax_rate_bps) {
            return Err(GatewayError::invalid(&field("tax_rate_bps"), "tax_rate_bps must be 0 to 10000"));
        }
    }
    let invoice_id = optional_id(body.invoice_id, "inv");
    let command = billing::CreateInvoice {
        metadata: metadata(caller),
        invoice_id: invoice_id.clone(),
        member_id: body.member_id.to_string(),
        currency: body.currency.into(),
        lines: body
            .lines
            .into_iter()
            .map(|l| billing::InvoiceLine {
                description: l.description,
                quantity: l.quantity,
                unit_amount_minor: l.unit_amount_minor,
                tax_rate_bps: l.tax_rate_bps,
                tax_name: l.tax_name,
            })
            .collect(),
        due_at: body.due_at.timestamp_millis(),
        finalize: body.finalize.unwrap_or(true),
    };
    let how = accept_how(caller, trace, idempotency, ("invoice_id", invoice_id), body.member_id.as_str());
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceStatusRequest {
    /// open (finalize a draft), void or uncollectible.
    pub(crate) status: String,
}

#[utoipa::path(post, path = "/api/payments/invoices/{id}/status", tag = "billing", request_body = InvoiceStatusRequest,
    params(("id" = String, Path, description = "The invoice id")),
    responses(
        (status = 202, description = "Accepted", body = crate::openapi::Accepted),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services move invoices", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such invoice in this organization", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::openapi::ErrorBody),
    )
)]
pub async fn change_invoice_status(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(invoice_id): PathId<InvoiceId>,
    request: CommandRequest<InvoiceStatusRequest>,
) -> Result<Response, GatewayError> {
    let answered =
        change_invoice_status_with(&state, &caller, &trace, request.idempotency, invoice_id, request.body)
            .await?;
    Ok(answer(answered))
}

pub(crate) async fn change_invoice_status_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    invoice_id: InvoiceId,
    body: InvoiceStatusRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator("changing an invoice")?;
    one_of("status", &body.status, &["open", "void", "uncollectible"])?;
    let (invoice, _) = visible_invoice(state, caller, invoice_id.as_str()).await?;
    let command = billing::ChangeInvoiceStatus {
        metadata: metadata(caller),
        invoice_id: invoice.invoice_id.clone(),
        member_id: invoice.member_id.clone(),
        status: body.status,
    };
    let how = accept_how(caller, trace, idempotency, ("invoice_id", invoice_id.into()), &invoice.member_id);
    accept(state, command, how).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoicePaymentRequest {
    /// Chosen by the caller (`pay_…`) or by the gateway.
    #[schema(value_type = Option<String>)]
    pub(crate) payment_id: Option<PaymentId>,
    /// cash or bank_transfer: what staff received.
    pub(crate) method: String,
    /// Minor units; absent pays everything outstanding on the invoice.
    pub(crate) amount_minor: Option<i64>,
    /// A receipt number or bank reference.
    pub(crate) reference: Option<String>,
}

#[utoipa::path(post, path = "/api/payments/invoices/{id}/payments", tag = "billing", request_body = InvoicePaymentRequest,
    params(("id" = String, Path, description = "An open invoice"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key gets the first answer")),
    responses(
        (status = 202, description = "Accepted: staff received cash or a bank transfer; billing records the payment as succeeded and pays the invoice with it (a subscription waiting for it stays or becomes active) in one step", body = crate::openapi::Accepted),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services with billing:confirm record payments received", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such invoice in this organization", body = crate::openapi::ErrorBody),
        (status = 422, description = "A field is invalid (named in `field`), or nothing is outstanding", body = crate::openapi::ErrorBody),
    )
)]
pub async fn record_invoice_payment(
    State(state): State<AppState>,
    caller: Caller,
    Extension(trace): Extension<TraceContext>,
    PathId(invoice_id): PathId<InvoiceId>,
    request: CommandRequest<InvoicePaymentRequest>,
) -> Result<Response, GatewayError> {
    let answered =
        record_invoice_payment_with(&state, &caller, &trace, request.idempotency, invoice_id, request.body)
            .await?;
    Ok(answer(answered))
}

pub(crate) async fn record_invoice_payment_with(
    state: &AppState,
    caller: &Caller,
    trace: &TraceContext,
    idempotency: Option<Idempotency>,
    invoice_id: InvoiceId,
    body: InvoicePaymentRequest,
) -> Result<(Value, bool), GatewayError> {
    caller.require_operator_with_scope("recording a payment received", "billing:confirm")?;
    one_of("method", &body.method, &["cash", "bank_transfer"])?;
    if let Some(reference) = &body.reference {
        required("reference", reference)?;
    }
    let (invoice, _) = visible_invoice(state, caller, invoice_id.as_str()).await?;
    let outstanding = invoice.amount_due_minor();
    let amount_minor = body.amount_minor.unwrap_or(outstanding);
    if amount_minor <= 0 {
        let message = if body.amount_minor.is_some() {
            "amount_minor must be positive".to_owned()
        } else {
            format!("invoice {invoice_id} has nothing outstanding")
        };
        return Err(GatewayError::invalid("amount_minor", message));
    }
    let payment_id = optional_id(body.payment_id, "pay");
    let command = billing::RecordManualPayment {
        metadata: metadata(caller),
        payment_id: payment_id.clone(),
        member_id: invoice.member_id.clone(),
        invoice_id: invoice.invoice_id.clone(),
        amount_minor,
        currency: invoice.currency.clone(),
        method: body.method,
        reference: body.reference,
    };
    // Billing checks the invoice again in log order (still open, numbered, the amount outstanding).
    let how = accept_how(caller, trace, idempotency, ("payment_id", payment_id), &invoice.member_id);
    accept(state, command, how).await
}

async fn visible_invoice(
    state: &AppState,
    caller: &Caller,
    invoice_id: &str,
) -> Result<
    (studyspot_billing_projection::Invoice, Vec<studyspot_billing_projection::InvoiceLine>),
    GatewayError,
> {
    let found = reads::find_invoice(&state.readonly, caller.organization_id.as_str(), invoice_id).await;
    visible(caller, found, |(i, _)| &i.member_id, || format!("invoice {invoice_id}"))
}

#[utoipa::path(get, path = "/api/payments/refunds", tag = "billing",
    params(
        ("member_id" = Option<String>, Query, description = "Only this member's refunds"),
        ("payment_id" = Option<String>, Query, description = "Only this payment's refunds"),
        ("status" = Option<String>, Query, description = "pending, succeeded or failed"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<studyspot_billing_projection::Refund>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn refunds(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(refunds_with(&state, &caller, query_values(params)?).await?.json())
}

pub(crate) async fn refunds_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<studyspot_billing_projection::Refund>, GatewayError> {
    let params = ListParams::parse(values, &["member_id", "payment_id", "status"])?;
    let filter = reads::OwnedFilter {
        organization_id: caller.organization_id.as_str(),
        member_id: member_scope(caller, params.get("member_id"))?,
        status: params.get("status"),
        payment_id: params.get("payment_id"),
    };
    let rows =
        rows(reads::list_refunds(&state.readonly, &filter, params.after(), params.fetch_limit()).await)?;
    Ok(params.page(rows, |r| (r.created_at, r.refund_id.as_str())))
}

#[utoipa::path(get, path = "/api/payments/refunds/{id}", tag = "billing",
    params(("id" = String, Path, description = "The refund id")),
    responses(
        (status = 200, description = "The refund", body = studyspot_billing_projection::Refund),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such refund visible to this token", body = crate::openapi::ErrorBody),
    )
)]
pub async fn refund(
    State(state): State<AppState>,
    caller: Caller,
    PathId(refund_id): PathId<RefundId>,
) -> Result<Json<Value>, GatewayError> {
    let found =
        reads::find_refund(&state.readonly, caller.organization_id.as_str(), refund_id.as_str()).await;
    let refund = visible(&caller, found, |r| &r.member_id, || format!("refund {refund_id}"))?;
    Ok(Json(json!(refund)))
}

#[utoipa::path(get, path = "/api/payments/methods", tag = "billing",
    params(
        ("member_id" = Option<String>, Query, description = "Only this member's methods"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<studyspot_billing_projection::PaymentMethod>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn payment_methods(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(payment_methods_with(&state, &caller, query_values(params)?).await?.json())
}

pub(crate) async fn payment_methods_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<studyspot_billing_projection::PaymentMethod>, GatewayError> {
    let params = ListParams::parse(values, &["member_id"])?;
    let filter = reads::OwnedFilter {
        organization_id: caller.organization_id.as_str(),
        member_id: member_scope(caller, params.get("member_id"))?,
        ..Default::default()
    };
    let rows = rows(
        reads::list_payment_methods(&state.readonly, &filter, params.after(), params.fetch_limit()).await,
    )?;
    Ok(params.page(rows, |m| (m.created_at, m.payment_method_id.as_str())))
}

#[utoipa::path(get, path = "/api/payments/methods/{id}", tag = "billing",
    params(("id" = String, Path, description = "The payment method id")),
    responses(
        (status = 200, description = "The payment method", body = studyspot_billing_projection::PaymentMethod),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such payment method visible to this token", body = crate::openapi::ErrorBody),
    )
)]
pub async fn payment_method(
    State(state): State<AppState>,
    caller: Caller,
    PathId(id): PathId<PaymentMethodId>,
) -> Result<Json<Value>, GatewayError> {
    let found =
        reads::find_payment_method(&state.readonly, caller.organization_id.as_str(), id.as_str()).await;
    let method = visible(&caller, found, |m| &m.member_id, || format!("payment method {id}"))?;
    Ok(Json(json!(method)))
}

#[utoipa::path(get, path = "/api/payments/invoices", tag = "billing",
    params(
        ("member_id" = Option<String>, Query, description = "Only this member's invoices"),
        ("status" = Option<String>, Query, description = "draft, open, paid, void or uncollectible"),
        ("limit" = Option<i64>, Query, description = "1 to 200, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = crate::openapi::Page<studyspot_billing_projection::Invoice>),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn invoices(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(invoices_with(&state, &caller, query_values(params)?).await?.json())
}

pub(crate) async fn invoices_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<Page<studyspot_billing_projection::Invoice>, GatewayError> {
    let params = ListParams::parse(values, &["member_id", "status"])?;
    let filter = reads::OwnedFilter {
        organization_id: caller.organization_id.as_str(),
        member_id: member_scope(caller, params.get("member_id"))?,
        status: params.get("status"),
        payment_id: None,
    };
    let rows =
        rows(reads::list_invoices(&state.readonly, &filter, params.after(), params.fetch_limit()).await)?;
    Ok(params.page(rows, |i| (i.created_at, i.invoice_id.as_str())))
}

#[utoipa::path(get, path = "/api/payments/invoices/{id}", tag = "billing",
    params(("id" = String, Path, description = "The invoice id")),
    responses(
        (status = 200, description = "The invoice with its lines", body = crate::openapi::InvoiceWithLines),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such invoice visible to this token", body = crate::openapi::ErrorBody),
    )
)]
pub async fn invoice(
    State(state): State<AppState>,
    caller: Caller,
    PathId(invoice_id): PathId<InvoiceId>,
) -> Result<Json<Value>, GatewayError> {
    let (invoice, lines) = visible_invoice(&state, &caller, invoice_id.as_str()).await?;
    let mut body = json!(invoice);
    body["lines"] = json!(lines);
    Ok(Json(body))
}

#[utoipa::path(get, path = "/api/payments/analytics/dashboard", tag = "billing",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339, inclusive; default 30 days before `to`"),
        ("to" = Option<String>, Query, description = "RFC 3339, exclusive; default now"),
    ),
    responses(
        (status = 200, description = "Per currency: revenue by day, method and connector, success and failure rates, refunds, fees", body = reads::PaymentsDashboard),
        (status = 401, description = "Missing, invalid or expired token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Only owners, staff and services see analytics", body = crate::openapi::ErrorBody),
        (status = 422, description = "An unknown or invalid parameter", body = crate::openapi::ErrorBody),
    )
)]
pub async fn payments_dashboard(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<Value>, GatewayError> {
    Ok(Json(json!(payments_dashboard_with(&state, &caller, query_values(params)?).await?)))
}

/// The dashboard for `from`..`to` (RFC 3339; default the 30 days before now).
pub(crate) async fn payments_dashboard_with(
    state: &AppState,
    caller: &Caller,
    values: HashMap<String, String>,
) -> Result<reads::PaymentsDashboard, GatewayError> {
    caller.require_operator("payment analytics")?;
    let (from, to) = crate::queries::analytics_range(&values)?;
    match reads::payments_dashboard(&state.readonly, caller.organization_id.as_str(), from, to).await {
        Err(e) if projection_missing(&e) => Ok(reads::PaymentsDashboard {
            from,
            to,
            totals: Vec::new(),
            revenue_by_day: Vec::new(),
            revenue_by_method: Vec::new(),
            revenue_by_connector: Vec::new(),
        }),
        other => Ok(other?),
    }
}
