//! REST errors as Lambda sends them, defined once: status code from the API model, header
//! `x-amzn-ErrorType: <Exception>`, and a JSON body `{"Type": "User"|"Service",
//! "message"|"Message": …}` with the message key cased as the model has it for that
//! exception (both SDKs read either, but matching the model is what Lambda does).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::deploy::{DeployError, VersionError};
use crate::durable::DurableError;
use crate::error::BackendError;
use crate::invoke::InvokeError;
use crate::package::PackageError;

/// Exceptions whose message member is `Message` in the model; all others use `message`.
const CAPITAL_MESSAGE: &[&str] = &[
    "ResourceNotFoundException",
    "DurableExecutionAlreadyStartedException",
    "ServiceException",
    "InvalidZipFileException",
    "InvalidRuntimeException",
    "CallbackTimeoutException",
];

/// Why a REST request failed, as the response Lambda would send.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `TooManyRequestsException.Reason`.
    reason: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            reason: None,
        }
    }

    /// `InvalidParameterValueException` (400).
    pub(crate) fn invalid_parameter(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    /// `InvalidRequestContentException` (400): the body or a header could not be read.
    pub(crate) fn invalid_content(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            message,
        )
    }

    /// `ResourceNotFoundException` (404).
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }

    /// `ServiceException` (500).
    pub(crate) fn service(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            message,
        )
    }

    /// `RequestTooLargeException` (413).
    pub(crate) fn request_too_large(size: usize, limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!(
                "Request must be smaller than {limit} bytes for the InvokeFunction operation (got {size} bytes)"
            ),
        )
    }

    /// The error code (`x-amzn-ErrorType`).
    #[cfg(test)]
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let key = if CAPITAL_MESSAGE.contains(&self.code) {
            "Message"
        } else {
            "message"
        };
        let kind = if self.status.is_server_error() {
            "Service"
        } else {
            "User"
        };
        let mut body = serde_json::Map::new();
        body.insert("Type".into(), kind.into());
        body.insert(key.into(), self.message.into());
        if let Some(reason) = self.reason {
            body.insert("Reason".into(), reason.into());
        }
        let mut response =
            (self.status, serde_json::Value::Object(body).to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        response
    }
}

impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> ApiError {
        let message = error.to_string();
        match error {
            DeployError::FunctionNotFound(name) => {
                ApiError::not_found(format!("Function not found: {name}"))
            }
            DeployError::FunctionExists(name) => ApiError::new(
                StatusCode::CONFLICT,
                "ResourceConflictException",
                format!("Function already exist: {name}"),
            ),
            DeployError::RevisionMismatch { .. } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailedException",
                format!(
                    "The Revision Id provided does not match the latest Revision Id. {message}"
                ),
            ),
            DeployError::Version(
                VersionError::UnknownVersion(_) | VersionError::UnknownAlias(_),
            ) => ApiError::not_found(message),
            DeployError::Version(VersionError::AliasExists(_)) => {
                ApiError::new(StatusCode::CONFLICT, "ResourceConflictException", message)
            }
            DeployError::Version(_) | DeployError::Invalid(_) => {
                ApiError::invalid_parameter(message)
            }
            DeployError::ProvisionedConcurrencyNotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "ProvisionedConcurrencyConfigNotFoundException",
                message,
            ),
            DeployError::LayerNotFound(arn) => {
                ApiError::invalid_parameter(format!("Layer version {arn} does not exist."))
            }
            DeployError::Package(PackageError::TooLarge { limit, actual }) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                format!(
                    "Request must be smaller than {limit} bytes for the CreateFunction operation (got {actual})"
                ),
            ),
            DeployError::Package(PackageError::MalformedZip { reason }) => {
                ApiError::invalid_parameter(format!(
                    "Could not unzip uploaded file. Please check your file, then try to upload again. ({reason})"
                ))
            }
            DeployError::Package(PackageError::UnzippedTooLarge { limit, .. }) => {
                ApiError::invalid_parameter(format!(
                    "Unzipped size must be smaller than {limit} bytes"
                ))
            }
            DeployError::Package(_)
            | DeployError::UnknownRuntime(_)
            | DeployError::MissingHandler { .. }
            | DeployError::InvalidFunctionName(_)
            | DeployError::InvalidLayerName(_)
            | DeployError::TooManyLayers(_)
            | DeployError::EnvironmentTooLarge(_)
            | DeployError::InvalidEnvironmentKey(_)
            | DeployError::ReservedEnvironmentKey(_)
            | DeployError::TimeoutOutOfRange(_)
            | DeployError::MemoryOutOfRange(_)
            | DeployError::DescriptionTooLong(_)
            | DeployError::InvalidImageUri(_)
            | DeployError::LayersOnImage { .. }
            | DeployError::InvalidDurableConfig(_)
            | DeployError::NotDurable(_)
            | DeployError::ImageConfigOnZip { .. } => ApiError::invalid_parameter(message),
            // What the backend lacks (e.g. awslambdaric) is the emulator's problem, not the
            // caller's request.
            DeployError::Backend(
                BackendError::NoBootstrap { .. }
                | BackendError::ImagesUnsupported { .. }
                | BackendError::FunctionImageUnavailable { .. },
            ) => ApiError::invalid_parameter(message),
            DeployError::Backend(_) | DeployError::Io(_) | DeployError::ShutDown => {
                ApiError::service(message)
            }
        }
    }
}

impl From<InvokeError> for ApiError {
    fn from(error: InvokeError) -> ApiError {
        match error {
            InvokeError::FunctionNotFound(name) => {
                ApiError::not_found(format!("Function not found: {name}"))
            }
            InvokeError::Throttled { .. } => ApiError {
                reason: Some("ReservedFunctionConcurrentInvocationLimitExceeded"),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    "Rate Exceeded.",
                )
            },
            InvokeError::RequestTooLarge { size, limit } => {
                ApiError::request_too_large(size, limit)
            }
            InvokeError::Durable(e) => e.into(),
            other => ApiError::service(other.to_string()),
        }
    }
}

impl From<DurableError> for ApiError {
    fn from(error: DurableError) -> ApiError {
        let message = error.to_string();
        match error {
            DurableError::ExecutionNotFound(_) | DurableError::CallbackNotFound(_) => {
                ApiError::not_found(message)
            }
            DurableError::CallbackTimedOut(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "CallbackTimeoutException", message)
            }
            DurableError::AlreadyStarted { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "DurableExecutionAlreadyStartedException",
                message,
            ),
            _ => ApiError::invalid_parameter(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn parts(error: ApiError) -> (StatusCode, String, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let code = response.headers()["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, code, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn not_found_uses_the_capitalised_message_key() {
        let (status, code, body) = parts(DeployError::FunctionNotFound("f".into()).into()).await;
        assert_eq!(
            (status.as_u16(), code.as_str()),
            (404, "ResourceNotFoundException")
        );
        assert_eq!(
            body,
            serde_json::json!({"Type": "User", "Message": "Function not found: f"})
        );
    }

    #[tokio::test]
    async fn throttle_is_429_with_its_reason_and_lowercase_message() {
        let error = InvokeError::Throttled {
            function: "f".into(),
            limit: 1,
        };
        let (status, code, body) = parts(error.into()).await;
        assert_eq!(
            (status.as_u16(), code.as_str()),
            (429, "TooManyRequestsException")
        );
        assert_eq!(
            body["Reason"],
            "ReservedFunctionConcurrentInvocationLimitExceeded"
        );
        assert_eq!(body["message"], "Rate Exceeded.");
    }

    #[tokio::test]
    async fn oversized_request_is_413() {
        let error = InvokeError::RequestTooLarge { size: 7, limit: 6 };
        let (status, code, _) = parts(error.into()).await;
        assert_eq!(
            (status.as_u16(), code.as_str()),
            (413, "RequestTooLargeException")
        );
    }

    #[test]
    fn validation_failures_are_invalid_parameter_values() {
        let error = ApiError::from(DeployError::MemoryOutOfRange(1));
        assert_eq!(error.code(), "InvalidParameterValueException");
    }
}
