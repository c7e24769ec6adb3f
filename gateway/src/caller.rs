//! Who is calling, for which organization. Header-based until token auth lands; the rest of the
//! gateway only sees [`Caller`].

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::GatewayError;

pub struct Caller {
    pub organization_id: String,
    pub actor: String,
    pub correlation_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let organization_id =
            header("x-organization-id").ok_or(GatewayError::MissingHeader { header: "X-Organization-Id" })?;
        Ok(Self {
            organization_id,
            actor: header("x-actor").unwrap_or_else(|| "user:anonymous".into()),
            correlation_id: header("x-correlation-id"),
        })
    }
}
