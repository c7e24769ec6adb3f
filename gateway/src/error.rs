use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
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
    /// A string holding a NUL character (U+0000), which nothing stores (see `nul.rs`).
    #[error("{field} holds a NUL character (U+0000), which is not allowed")]
    InvalidCharacter { field: String },
    /// A template part past one of the rendering limits; `code` names the limit
    /// (`template_too_costly`, `template_output_too_large`, `template_too_large`).
    #[error("{message}")]
    TemplateLimit { field: String, code: &'static str, message: String },
    #[error("the {header} header is required")]
    MissingHeader { header: &'static str },
    #[error("the {header} header is invalid: {message}")]
    InvalidHeader { header: String, message: String },
    #[error("the body must be JSON: send Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("this token may not act for organization {0}")]
    OrganizationMismatch(String),
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still in progress; retry shortly")]
    IdempotencyKeyInUse,
    #[error("{0} not found")]
    NotFound(String),
    #[error(
        "this stream cannot resume {behind} records back (at most {window}): reconnect without \
         Last-Event-ID and read what was missed from the lists"
    )]
    ResumeTooOld { behind: i64, window: i64 },
    #[error("this organization has {limit} event streams open, the most it may; close one first")]
    TooManyStreams { limit: usize },
    /// A tracking link's token that does not verify (bad signature, unknown key, expired, wrong kind).
    #[error("{message}")]
    InvalidLink { message: String },
    #[error("a dependency is unavailable; retry later: {0}")]
    Unavailable(String),
    #[error("cannot start: {0}")]
    Startup(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation { field: field.to_owned(), message: message.into() }
    }

    /// What the client is told. A server-side failure's detail (a database's error text, a host
    /// name, a constraint) is logged, not returned: it tells an outsider about our insides and
    /// nothing they can act on.
    pub fn public_message(&self) -> String {
        match self {
            Self::Unavailable(_) => "a dependency is unavailable; retry later".into(),
            Self::Startup(_) | Self::Internal(_) => "internal error".into(),
            other => other.to_string(),
        }
    }

    /// The machine-readable code clients branch on.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::InvalidJson { .. } => (StatusCode::BAD_REQUEST, "invalid_json"),
            Self::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::InvalidCharacter { .. } => (StatusCode::BAD_REQUEST, "invalid_character"),
            Self::TemplateLimit { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::MissingHeader { .. } => (StatusCode::BAD_REQUEST, "missing_header"),
            Self::InvalidHeader { .. } => (StatusCode::BAD_REQUEST, "invalid_header"),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Unauthenticated { code, .. } => (StatusCode::UNAUTHORIZED, code),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::OrganizationMismatch(_) => (StatusCode::FORBIDDEN, "organization_mismatch"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::ResumeTooOld { .. } => (StatusCode::GONE, "resume_too_old"),
            Self::TooManyStreams { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_streams"),
            Self::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            Self::IdempotencyKeyInUse => (StatusCode::CONFLICT, "idempotency_key_in_use"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::InvalidLink { .. } => (StatusCode::BAD_REQUEST, "invalid_link"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable"),
            Self::Startup(_) | Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn field(&self) -> Option<String> {
        match self {
            Self::InvalidJson { field, .. } => field.clone(),
            Self::Validation { field, .. }
            | Self::InvalidCharacter { field }
            | Self::TemplateLimit { field, .. } => Some(field.clone()),
            Self::MissingHeader { header } => Some((*header).to_owned()),
            Self::InvalidHeader { header, .. } => Some(header.clone()),
            Self::UnsupportedMediaType => Some("Content-Type".into()),
            Self::OrganizationMismatch(_) => Some("X-Organization-Id".into()),
            Self::IdempotencyKeyReused | Self::IdempotencyKeyInUse => Some("Idempotency-Key".into()),
            Self::Unauthenticated { .. } => Some("Authorization".into()),
            Self::InvalidLink { .. } => Some("token".into()),
            _ => None,
        }
    }
}

impl From<GatewayError> for tonic::Status {
    /// The gRPC face of the same error: a status code matching the HTTP status, ErrorInfo whose
    /// reason is the HTTP API's code, and BadRequest naming the field when there is one.
    fn from(e: GatewayError) -> Self {
        use tonic::Code;
        use tonic_types::{ErrorDetails, StatusExt};
        let (status, code) = e.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        let grpc = match status {
            StatusCode::BAD_REQUEST
            | StatusCode::UNPROCESSABLE_ENTITY
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::InvalidArgument,
            StatusCode::UNAUTHORIZED => Code::Unauthenticated,
            StatusCode::FORBIDDEN => Code::PermissionDenied,
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::CONFLICT => Code::Aborted,
            StatusCode::TOO_MANY_REQUESTS => Code::ResourceExhausted,
            StatusCode::GONE => Code::OutOfRange,
            StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
            _ => Code::Internal,
        };
        let mut details = ErrorDetails::new();
        let mut metadata = std::collections::HashMap::new();
        if let GatewayError::RateLimited { retry_after_secs } = &e {
            metadata.insert("retry_after_secs".to_owned(), retry_after_secs.to_string());
        }
        details.set_error_info(code, "studyspot", metadata);
        if let Some(field) = e.field() {
            details.add_bad_request_violation(field, e.to_string());
        }
        tonic::Status::with_error_details(grpc, e.public_message(), details)
    }
}

/// The table or schema is not there yet: its consumer has not started once, so nothing has been
/// projected (an empty answer, not an outage).
pub(crate) fn projection_missing(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("42P01" | "3F000")))
}

impl From<sqlx::Error> for GatewayError {
    fn from(e: sqlx::Error) -> Self {
        // The ledger's statements are fixed: a failure is the database being away, not the request.
        Self::Unavailable(format!("database: {e}"))
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut error = json!({ "code": code, "message": self.public_message() });
        if let Some(field) = self.field() {
            error["field"] = json!(field);
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Unauthenticated { code, .. } => {
                let value = if *code == "unauthenticated" {
                    "Bearer".to_owned()
                } else {
                    format!("Bearer error=\"invalid_token\", error_description=\"{code}\"")
                };
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Self::Unavailable(_) | Self::IdempotencyKeyInUse => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_side_failure_tells_the_client_its_code_not_its_detail() {
        let detail = "database: error returned from database: password authentication failed for user \"studyspot_gateway\" at 10.0.0.7";
        let response = GatewayError::Unavailable(detail.into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["error"]["code"], "dependency_unavailable");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(!message.contains("password") && !message.contains("10.0.0.7"), "{message}");

        let status = tonic::Status::from(GatewayError::Internal("panicked at src/x.rs:12".into()));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("src/x.rs"), "{}", status.message());
        // A client's own mistake keeps its detail.
        let invalid = GatewayError::invalid("venue_id", "venue_id must not be empty");
        assert_eq!(invalid.public_message(), "venue_id must not be empty");
    }
}
