use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// Every way a request can fail, each with a machine-readable code; `IntoResponse` below is the
/// one place they become HTTP.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{message}")]
    InvalidJson { message: String, field: Option<String> },
    #[error("{message}")]
    Validation { field: String, message: String },
    #[error("the {header} header is required")]
    MissingHeader { header: &'static str },
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the broker or schema registry is unavailable; retry later: {0}")]
    Unavailable(String),
    #[error("cannot start: {0}")]
    Startup(studyspot_bus::BusError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation { field: field.to_owned(), message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidJson { .. } => (StatusCode::BAD_REQUEST, "invalid_json"),
            Self::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::MissingHeader { .. } => (StatusCode::BAD_REQUEST, "missing_header"),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable"),
            Self::Startup(_) | Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let field = match &self {
            Self::InvalidJson { field, .. } => field.clone(),
            Self::Validation { field, .. } => Some(field.clone()),
            Self::MissingHeader { header } => Some((*header).to_owned()),
            _ => None,
        };
        let mut error = json!({ "code": code, "message": self.to_string() });
        if let Some(field) = field {
            error["field"] = json!(field);
        }
        (status, Json(json!({ "error": error }))).into_response()
    }
}
