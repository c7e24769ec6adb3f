//! Provider webhooks: verified by the provider's signature (no bearer token), then handed to
//! billing as a `ProviderNotified` command for the payment they are about. Billing asks the
//! provider for the truth with its own credentials; the webhook only says when to ask.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};
use studyspot_billing_projection::reads;
use studyspot_bus::TraceContext;
use studyspot_payment_connectors::{
    ProviderUpdate, RefundOutcome, UpdateOutcome, WebhookError, razorpay_webhook, stripe_webhook,
};
use studyspot_schemas::{EventMetadata, billing};

use crate::{
    AppState, GatewayError,
    auth::{Caller, Role},
    commands::{Accept, accept, answer},
    error::projection_missing,
    ledger::Idempotency,
};

/// The signing secrets of the providers whose webhooks are accepted (none configured: refused).
#[derive(Clone, Default)]
pub struct WebhookSecrets {
    pub stripe: Option<SecretString>,
    pub razorpay: Option<SecretString>,
}

impl WebhookSecrets {
    pub fn from_settings(billing: &studyspot_config::Billing) -> Self {
        let set = |s: &SecretString| (!s.expose_secret().is_empty()).then(|| s.clone());
        Self { stripe: set(&billing.stripe.webhook_secret), razorpay: set(&billing.razorpay.webhook_secret) }
    }
}

fn refused(e: WebhookError) -> GatewayError {
    match e {
        WebhookError::InvalidPayload(message) => GatewayError::InvalidJson { message, field: None },
        other => GatewayError::Unauthenticated { code: "invalid_signature", message: other.to_string() },
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, GatewayError> {
    headers
        .get(name)
        .ok_or(GatewayError::MissingHeader { header: name })?
        .to_str()
        .map_err(|_| GatewayError::InvalidHeader { header: name.into(), message: "not visible ASCII".into() })
}

#[utoipa::path(post, path = "/api/webhooks/{provider}", tag = "billing",
    params(
        ("provider" = String, Path, description = "stripe or razorpay"),
        ("Stripe-Signature" = Option<String>, Header, description = "Stripe's signature (t=…,v1=…)"),
        ("X-Razorpay-Signature" = Option<String>, Header, description = "Razorpay's HMAC-SHA256 of the body"),
        ("X-Razorpay-Event-Id" = Option<String>, Header, description = "Razorpay's event id (unsigned, so not trusted: a delivery is known by its signed body, and a redelivery is answered like the first)"),
    ),
    request_body(content = String, description = "The provider's event, exactly as signed", content_type = "application/json"),
    security(()),
    responses(
        (status = 202, description = "Verified; billing asks the provider about the payment", body = crate::openapi::Accepted),
        (status = 200, description = "Verified, but not about anything billing tracks"),
        (status = 401, description = "Signature missing, wrong or too old", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such provider configured, or the payment is not known (yet): the provider retries", body = crate::openapi::ErrorBody),
        (status = 503, description = "Broker or database unavailable: the provider retries", body = crate::openapi::ErrorBody),
    )
)]
pub async fn provider_webhook(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let not_configured = || GatewayError::NotFound(format!("webhooks of provider {provider}"));
    let (update, event_id) = match provider.as_str() {
        "stripe" => {
            let secret = state.webhooks.stripe.as_ref().ok_or_else(not_configured)?;
            let now = chrono::Utc::now().timestamp();
            let signature = header(&headers, "stripe-signature")?;
            let update = stripe_webhook::verify(
                &body,
                signature,
                secret.expose_secret(),
                now,
                stripe_webhook::DEFAULT_TOLERANCE_SECS,
            )
            .map_err(refused)?;
            let event_id = update.as_ref().and_then(|u| u.event_id.clone());
            (update, event_id)
        }
        "razorpay" => {
            let secret = state.webhooks.razorpay.as_ref().ok_or_else(not_configured)?;
            let signature = header(&headers, "x-razorpay-signature")?;
            let update =
                razorpay_webhook::verify(&body, signature, secret.expose_secret()).map_err(refused)?;
            // Razorpay signs the body, not its X-Razorpay-Event-Id header: whoever saw one delivery
            // could send it again under a fresh header as a new event (a command, a ledger row and
            // a provider fetch each time). So the event is named by what is signed: its body, the
            // same bytes when Razorpay delivers it again.
            let event_id = Some(format!("body-sha256-{:x}", Sha256::digest(&body)));
            (update, event_id)
        }
        _ => return Err(not_configured()),
    };
    let Some(update) = update else {
        return Ok((StatusCode::OK, Json(json!({ "ignored": true }))).into_response());
    };
    Ok(answer(notify(&state, &trace, &provider, update, event_id, &body).await?))
}

async fn notify(
    state: &AppState,
    trace: &TraceContext,
    provider: &str,
    update: ProviderUpdate,
    event_id: Option<String>,
    body: &[u8],
) -> Result<(serde_json::Value, bool), GatewayError> {
    // Found in whichever organization; the command then acts in the found row's organization.
    let found = match reads::find_payment_for_provider(
        &state.readonly,
        update.payment_id.as_deref(),
        update.organization_id.as_deref(),
        provider,
        &update.provider_payment_id,
    )
    .await
    {
        Err(e) if projection_missing(&e) => None,
        other => other?,
    };
    let payment = found.ok_or_else(|| {
        GatewayError::NotFound(format!(
            "payment {}",
            update.payment_id.as_deref().unwrap_or(&update.provider_payment_id)
        ))
    })?;
    // The provider's event id names the command, so a redelivered webhook is the same command.
    let command_id = match &event_id {
        Some(id) => uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{provider}/{id}").as_bytes()),
        None => uuid::Uuid::now_v7(),
    }
    .to_string();
    let organization_id =
        studyspot_ids::OrganizationId::parse(payment.organization_id.as_str()).map_err(|e| {
            GatewayError::Internal(format!("payment {}: organization_id {e}", payment.payment_id))
        })?;
    let caller = Caller {
        organization_id,
        actor: format!("provider:{provider}"),
        roles: vec![Role::Service],
        member_id: None,
        correlation_id: None,
        scopes: Vec::new(),
    };
    let refund = match &update.outcome {
        UpdateOutcome::Refund { refund_id, outcome } => Some(refund_news(refund_id.clone(), outcome)),
        _ => None,
    };
    let (refund_id, provider_refund_id, refund_outcome, refund_code, refund_message) =
        refund.unwrap_or_default();
    let command = billing::ProviderNotified {
        metadata: EventMetadata {
            correlation_id: command_id.clone(),
            event_id: command_id,
            occurred_at: chrono::Utc::now().timestamp_millis(),
            causation_id: None,
            organization_id: payment.organization_id.clone(),
            actor: caller.actor.clone(),
        },
        payment_id: payment.payment_id.clone(),
        member_id: payment.member_id.clone(),
        connector: provider.to_owned(),
        event_type: update.event_type,
        provider_event_id: event_id.clone(),
        provider_payment_id: update.provider_payment_id,
        refund_id,
        provider_refund_id,
        refund_outcome,
        refund_code,
        refund_message,
    };
    let idempotency = event_id.map(|id| Idempotency {
        key: format!("{provider}:{id}"),
        request_hash: Sha256::digest(body).to_vec(),
    });
    let how = Accept {
        caller: &caller,
        trace,
        idempotency,
        aggregate: ("payment_id", payment.payment_id.clone()),
        member_id: Some(&payment.member_id),
    };
    accept(state, command, how).await
}

type RefundNews = (Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);

/// A refund event's fields on `ProviderNotified`.
fn refund_news(refund_id: Option<String>, outcome: &RefundOutcome) -> RefundNews {
    match outcome.clone() {
        RefundOutcome::Succeeded { provider_refund_id } => {
            (refund_id, Some(provider_refund_id), Some("succeeded".into()), None, None)
        }
        RefundOutcome::Pending { provider_refund_id } => {
            (refund_id, Some(provider_refund_id), Some("pending".into()), None, None)
        }
        RefundOutcome::Failed { provider_refund_id, code, message } => {
            (refund_id, provider_refund_id, Some("failed".into()), Some(code), Some(message))
        }
    }
}
