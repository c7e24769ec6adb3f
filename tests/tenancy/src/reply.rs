//! Answers of both protocols, reduced to what a tenancy case asserts: the status, the error's
//! machine-readable code, the command an acceptance names, and the whole answer as text (to look
//! for another organization's records in it).

use serde_json::Value;
use tonic::Code;
use tonic_types::StatusExt;

#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// JSON bodies parsed (Null otherwise).
    pub body: Value,
    pub text: String,
}

impl HttpReply {
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self { status, body, text }
    }

    /// The error's code (`{"error": {"code": …}}`).
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    pub fn command_id(&self) -> Option<&str> {
        self.body["command_id"].as_str()
    }
}

#[derive(Debug)]
pub struct GrpcReply {
    pub code: Code,
    /// google.rpc.ErrorInfo's reason: the HTTP API's error code.
    pub reason: Option<String>,
    /// The answer as JSON (every generated message serializes), or the status's message.
    pub text: String,
    pub command_id: Option<String>,
}

impl GrpcReply {
    pub fn of<T: serde::Serialize>(result: Result<tonic::Response<T>, tonic::Status>) -> Self {
        match result {
            Ok(response) => {
                let value = serde_json::to_value(response.into_inner()).expect("a message serializes");
                Self {
                    code: Code::Ok,
                    reason: None,
                    command_id: value["command_id"].as_str().map(str::to_owned),
                    text: value.to_string(),
                }
            }
            Err(status) => Self {
                code: status.code(),
                reason: status.get_error_details().error_info().map(|i| i.reason.clone()),
                text: status.message().to_owned(),
                command_id: None,
            },
        }
    }
}

/// The gRPC status the gateway gives an error of this HTTP status (its one error mapping).
pub fn grpc_code(http_status: u16) -> Code {
    match http_status {
        400 | 413 | 415 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        429 => Code::ResourceExhausted,
        410 => Code::OutOfRange,
        503 => Code::Unavailable,
        _ => Code::Internal,
    }
}
