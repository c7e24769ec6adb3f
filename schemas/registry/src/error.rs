use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// Confluent's error codes; the HTTP status is the code's first three digits.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    #[error("Version {0} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(i32),
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: {details:?}"
    )]
    Incompatible { subject: String, details: Vec<String> },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    #[error(
        "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
    )]
    InvalidCompatibility,
    #[error("Unprocessable entity: {0}")]
    Unprocessable(String),
    #[error("Error in the backend data store: {0}")]
    Store(#[from] sqlx::Error),
}

impl RegistryError {
    pub fn error_code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound(_) => 40402,
            Self::SchemaNotFound => 40403,
            Self::SubjectSoftDeleted(_) => 40404,
            Self::SubjectNotSoftDeleted(_) => 40405,
            Self::VersionNotSoftDeleted(_) => 40407,
            Self::SubjectCompatibilityNotConfigured(_) => 40408,
            Self::Incompatible { .. } => 409,
            Self::InvalidSchema(_) => 42201,
            Self::InvalidVersion(_) => 42202,
            Self::InvalidCompatibility => 42203,
            Self::Unprocessable(_) => 422,
            Self::Store(_) => 50001,
        }
    }
}

/// The one place registry errors become HTTP.
impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let code = self.error_code();
        let status_number = if code < 1000 { code } else { code / 100 };
        let status = StatusCode::from_u16(status_number as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Self::Store(e) = &self {
            tracing::error!(error = %e, "registry store error");
        }
        let body = Json(json!({ "error_code": code, "message": self.to_string() }));
        (status, [("content-type", crate::api::CONTENT_TYPE)], body).into_response()
    }
}
