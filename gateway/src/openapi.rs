//! The OpenAPI 3.1 document at `/openapi.json`, generated from the handlers' annotations; the
//! router is built from the same annotated handlers, so a route cannot exist undocumented.
//! `gateway/openapi.json` is the committed copy a test keeps equal to what is served.

use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "StudySpot API",
        description = "Commands are accepted with 202 and decided by the domain consumers; follow their \
                       status at status_url. Every request needs a bearer token (JWT) and acts within \
                       the token's organization."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "billing"),
        (name = "subscriptions", description = "Plans, coupons, subscriptions, usage and credit notes"),
        (name = "notifications"), (name = "attendance"), (name = "monitoring"),
        (name = "commands", description = "What became of a command"),
        (name = "events", description = "Follow-on events, live")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

/// The answer to an accepted command (202), also to a replayed `Idempotency-Key`. It also names
/// the aggregate the command concerns (`payment_id`, `session_id`, …).
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub command_id: uuid::Uuid,
    /// Where the command's outcome can be read (`?wait=5s` to wait for it).
    pub status_url: String,
}

/// Every error: a machine-readable code, a message, and the failing field or header when there is one.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// e.g. `validation_failed`, `invalid_json`, `invalid_token`, `forbidden`, `rate_limited`,
    /// `idempotency_key_reused`.
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

/// A command's status.
#[derive(Serialize, ToSchema)]
pub struct CommandStatus {
    pub command_id: uuid::Uuid,
    pub command_type: String,
    /// `accepted` (not decided yet), `applied`, `rejected` or `failed`.
    pub status: String,
    pub accepted_at: chrono::DateTime<chrono::Utc>,
    pub decided_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Ids of the follow-on events the command caused.
    pub events: Option<Vec<String>>,
    /// The domain's refusal (`code`, `reason`), when rejected.
    pub rejection: Option<serde_json::Value>,
    /// Why it could not be handled at all, when failed.
    pub error: Option<serde_json::Value>,
}

/// One page of a list, newest first; pass `next_cursor` as `cursor` for the next page.
#[derive(Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A whole list, not paginated (`{"items": […]}`): what an organization defines (rules,
/// dashboards, …) or what is current (active alerts) is short.
#[derive(Serialize, ToSchema)]
pub struct Items<T: ToSchema> {
    pub items: Vec<T>,
}

/// An invoice with its lines (`lines` added to the invoice's fields).
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes a response shape for the OpenAPI document")]
pub struct InvoiceWithLines {
    #[schema(inline)]
    invoice: studyspot_billing_projection::Invoice,
    lines: Vec<studyspot_billing_projection::InvoiceLine>,
}

/// A plan's current version with every version, latest first (`versions` added to its fields).
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes a response shape for the OpenAPI document")]
pub struct PlanWithVersions {
    #[serde(flatten)]
    plan: studyspot_billing_projection::subscription_reads::Plan,
    versions: Vec<studyspot_billing_projection::subscription_reads::Plan>,
}
