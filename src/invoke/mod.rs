//! Invocation requests and results: raw bytes with a function-error flag, typed JSON
//! helpers, the errors an invoke can end with, and streamed responses ([`stream`]).

pub(crate) mod stream;

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;

use crate::error::BackendError;

/// Largest synchronous request or response payload: 6 MB (6,291,456 bytes), Lambda quotas.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Largest asynchronous (`Event`) request payload: 1 MB (Lambda quotas since 2025-10).
pub const MAX_ASYNC_PAYLOAD_BYTES: usize = 1024 * 1024;
/// How much of an invocation's log `LogType=Tail` returns: the last 4 KB.
pub const LOG_TAIL_BYTES: usize = 4 * 1024;

/// What to invoke a function with: the payload (`Payload`) and optional request context.
///
/// ```
/// use lambda_testkit::InvokeRequest;
///
/// let req = InvokeRequest::new(r#"{"name":"ada"}"#)
///     .client_context(r#"{"custom":{"tenant":"t1"}}"#);
/// assert_eq!(req.payload().as_ref(), br#"{"name":"ada"}"#);
/// ```
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub(crate) payload: Bytes,
    pub(crate) client_context: Option<String>,
    pub(crate) trace_id: Option<String>,
    /// Set for a streaming invoke: where the runtime's response frames go as they arrive.
    pub(crate) response_stream: Option<stream::StreamSink>,
    /// `Qualifier`: a version number, an alias name or `$LATEST` (the default).
    pub(crate) qualifier: Option<String>,
    /// `X-Amz-Durable-Execution-Name` (durable functions only).
    pub(crate) durable_execution_name: Option<String>,
    /// Set by the durable scheduler for its own invocations of a durable handler (the
    /// payload is the durable envelope): run it, do not start another execution.
    pub(crate) durable_replay: bool,
}

impl InvokeRequest {
    /// A request carrying `payload` (any bytes; Lambda runtimes expect JSON).
    pub fn new(payload: impl Into<Bytes>) -> Self {
        InvokeRequest {
            payload: payload.into(),
            ..Default::default()
        }
    }

    /// A request carrying `value` serialized as JSON.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Self, InvokeError> {
        let payload = serde_json::to_vec(value).map_err(InvokeError::Serialize)?;
        Ok(InvokeRequest::new(payload))
    }

    /// The client context as decoded JSON text (what `X-Amz-Client-Context` carries in
    /// base64); delivered to the runtime as `Lambda-Runtime-Client-Context`.
    pub fn client_context(mut self, json: impl Into<String>) -> Self {
        self.client_context = Some(json.into());
        self
    }

    /// An X-Ray trace header to pass as `Lambda-Runtime-Trace-Id` (one is generated
    /// otherwise).
    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    /// Invokes this version (`"1"`), alias (`"live"`) or `"$LATEST"` (the default), as
    /// `Invoke`'s `Qualifier` does.
    pub fn qualifier(mut self, qualifier: impl Into<String>) -> Self {
        self.qualifier = Some(qualifier.into());
        self
    }

    /// `X-Amz-Durable-Execution-Name` for a durable function (1-64 of `[a-zA-Z0-9-_]`):
    /// the same name with the same payload finds the execution already started; with
    /// another payload the invoke fails (`DurableExecutionAlreadyStartedException`).
    pub fn durable_execution_name(mut self, name: impl Into<String>) -> Self {
        self.durable_execution_name = Some(name.into());
        self
    }

    /// The payload bytes.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }
}

/// The result of one invocation, as `Invoke` (RequestResponse) returns it.
///
/// A function error is still a result here, as in Lambda's HTTP 200 with
/// `X-Amz-Function-Error`: [`InvokeOutput::function_error`] is then `Some("Unhandled")` and
/// the payload is the error JSON the runtime sent.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InvokeOutput {
    /// The response payload, or the error document when `function_error` is set.
    pub payload: Bytes,
    /// `X-Amz-Function-Error`: `Some("Unhandled")` when the function failed.
    pub function_error: Option<String>,
    /// The invocation's request id (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// `X-Amz-Executed-Version`.
    pub executed_version: String,
    /// This invocation's log: runtime output framed by `START`, `END` and `REPORT` lines
    /// (init output included on a cold start).
    pub log: String,
    /// Whether this invocation started a new execution environment.
    pub cold_start: bool,
    /// Time from delivery to the runtime until the response, as in `REPORT Duration`.
    pub duration: Duration,
    /// The execution environment that ran it (e.g. `greeter-env-1`); empty for an
    /// invoke of a durable function (its invocations are the execution's).
    pub environment_id: String,
    /// `X-Amz-Durable-Execution-Arn`: the durable execution this invoke started (or
    /// found by name), for a durable function.
    pub durable_execution_arn: Option<String>,
}

impl InvokeOutput {
    /// True when the function failed (`X-Amz-Function-Error` is set).
    pub fn is_error(&self) -> bool {
        self.function_error.is_some()
    }

    /// The function error, parsed from the payload, when there was one.
    pub fn error(&self) -> Option<FunctionError> {
        self.function_error
            .as_ref()
            .map(|_| FunctionError::from_body(&self.payload, &self.request_id))
    }

    /// The last 4 KB of this invocation's log, base64-encoded, as `X-Amz-Log-Result` for
    /// `LogType=Tail`.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Parses the payload as JSON into `T`, or returns the function error.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, InvokeError> {
        if let Some(error) = self.error() {
            return Err(InvokeError::Function(Box::new(error)));
        }
        serde_json::from_slice(&self.payload).map_err(|source| InvokeError::Deserialize {
            source,
            payload: String::from_utf8_lossy(&self.payload).into_owned(),
        })
    }
}

/// Base64 of the last 4 KB of `log` (`X-Amz-Log-Result`).
pub(crate) fn log_tail(log: &str) -> String {
    let bytes = log.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(LOG_TAIL_BYTES)..];
    base64::engine::general_purpose::STANDARD.encode(tail)
}

/// A function error exactly as the runtime reported it: `errorType`, `errorMessage`,
/// `stackTrace` (Node's `trace` is read too), plus the raw document.
///
/// Platform errors use Lambda's own types: `Sandbox.Timedout`, `Runtime.ExitError`,
/// `Function.ResponseSizeTooLarge`, and the runtime's init error types
/// (e.g. `Runtime.ImportModuleError`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FunctionError {
    /// `errorType`, e.g. `ValueError` or `Sandbox.Timedout`.
    pub error_type: String,
    /// `errorMessage`.
    pub error_message: String,
    /// `stackTrace` lines (empty when the runtime sent none).
    pub stack_trace: Vec<String>,
    /// The request id of the failed invocation.
    pub request_id: String,
    /// The error document as returned to callers (the invoke response body).
    pub body: Bytes,
}

#[derive(Deserialize)]
struct ErrorDocument {
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(rename = "errorMessage", default)]
    error_message: Option<serde_json::Value>,
    #[serde(rename = "stackTrace", alias = "trace", default)]
    stack_trace: Option<serde_json::Value>,
}

impl FunctionError {
    /// Parses an error document; a body that is not JSON becomes the message.
    pub(crate) fn from_body(body: &Bytes, request_id: &str) -> FunctionError {
        let doc: Option<ErrorDocument> = serde_json::from_slice(body).ok();
        let (error_type, error_message, stack_trace) = match doc {
            Some(d) => (
                d.error_type.unwrap_or_default(),
                match d.error_message {
                    Some(serde_json::Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => String::new(),
                },
                match d.stack_trace {
                    Some(serde_json::Value::Array(lines)) => lines
                        .into_iter()
                        .map(|l| match l {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        })
                        .collect(),
                    _ => Vec::new(),
                },
            ),
            None => (
                String::new(),
                String::from_utf8_lossy(body).into_owned(),
                Vec::new(),
            ),
        };
        FunctionError {
            error_type,
            error_message,
            stack_trace,
            request_id: request_id.to_string(),
            body: body.clone(),
        }
    }

    /// The error a runtime reported (`/error`, `/init/error`, a stream's error trailers):
    /// its JSON error document unchanged, `errorType` defaulting to `error_type` (the
    /// `Lambda-Runtime-Function-Error-Type` header); a body that is not a JSON object
    /// becomes the message of an error of that type, as Lambda does when the payload "is
    /// not provided or can not be read" (Runtime API 2018-06-01).
    pub(crate) fn from_runtime(error_type: &str, body: Bytes, request_id: &str) -> FunctionError {
        let is_document =
            serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v.is_object());
        if !is_document {
            return FunctionError::platform(
                error_type,
                String::from_utf8_lossy(&body).into_owned(),
                request_id,
            );
        }
        let mut error = FunctionError::from_body(&body, request_id);
        if error.error_type.is_empty() {
            error.error_type = error_type.to_string();
        }
        error
    }

    /// The same error, for the invocation `request_id` (an init error is served to every
    /// invocation of the environment).
    pub(crate) fn for_request(&self, request_id: &str) -> FunctionError {
        FunctionError {
            request_id: request_id.to_string(),
            ..self.clone()
        }
    }

    /// An error raised by the platform itself (timeout, exit, size), as Lambda words it.
    pub(crate) fn platform(
        error_type: &str,
        error_message: String,
        request_id: &str,
    ) -> FunctionError {
        let body = serde_json::json!({ "errorType": error_type, "errorMessage": error_message });
        FunctionError {
            error_type: error_type.to_string(),
            error_message,
            stack_trace: Vec::new(),
            request_id: request_id.to_string(),
            body: Bytes::from(body.to_string()),
        }
    }
}

impl std::fmt::Display for FunctionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)?;
        for line in &self.stack_trace {
            write!(f, "\n{}", line.trim_end())?;
        }
        Ok(())
    }
}

impl std::error::Error for FunctionError {}

/// Why an invoke did not produce a payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvokeError {
    /// The function failed; carries the runtime's error exactly as sent.
    #[error("function error (request {id}): {0}", id = .0.request_id)]
    Function(Box<FunctionError>),
    /// No function has this name (`ResourceNotFoundException`).
    #[error("function not found: {0}")]
    FunctionNotFound(String),
    /// Reserved concurrency reached (`TooManyRequestsException`, Reason
    /// `ReservedFunctionConcurrentInvocationLimitExceeded`).
    #[error("rate exceeded: function `{function}` is at its reserved concurrency of {limit}")]
    Throttled {
        /// The throttled function.
        function: String,
        /// Its reserved concurrency.
        limit: u32,
    },
    /// The request payload is over 6 MB, or 1 MB for an `Event` invoke
    /// (`RequestTooLargeException`).
    #[error(
        "request payload is {size} bytes; Lambda accepts at most {limit} for this invocation type"
    )]
    RequestTooLarge {
        /// The rejected payload's size in bytes.
        size: usize,
        /// The limit that applied.
        limit: usize,
    },
    /// Starting an execution environment failed.
    #[error("could not start an execution environment for `{function}`: {source}")]
    Launch {
        /// The function.
        function: String,
        /// What the backend reported.
        #[source]
        source: Box<BackendError>,
    },
    /// The request could not be serialized to JSON.
    #[error("could not serialize the request as JSON: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The response was not the JSON the caller asked for.
    #[error("could not parse the response as the requested type: {source}; payload: {payload}")]
    Deserialize {
        /// The parse error.
        source: serde_json::Error,
        /// The payload, lossily decoded.
        payload: String,
    },
    /// The emulator was shut down.
    #[error("the emulator has been shut down")]
    ShutDown,
    /// A durable function's execution could not start (an execution name reused with
    /// another input: `DurableExecutionAlreadyStartedException`, an invalid name).
    #[error(transparent)]
    Durable(#[from] crate::durable::DurableError),
}

impl InvokeError {
    /// The function error, when this is one.
    pub fn function_error(&self) -> Option<&FunctionError> {
        match self {
            InvokeError::Function(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_error_document_is_parsed_with_its_stack_trace() {
        let body = Bytes::from_static(
            br#"{"errorMessage":"bad","errorType":"ValueError","requestId":"r","stackTrace":["  File \"/var/task/app.py\", line 2\n"]}"#,
        );
        let e = FunctionError::from_body(&body, "r");
        assert_eq!(
            (e.error_type.as_str(), e.error_message.as_str()),
            ("ValueError", "bad")
        );
        assert_eq!(e.stack_trace.len(), 1);
        assert_eq!(e.body, body);
    }

    #[test]
    fn node_trace_key_and_non_json_bodies_are_tolerated() {
        let e = FunctionError::from_body(
            &Bytes::from_static(br#"{"errorType":"Error","errorMessage":"x","trace":["a"]}"#),
            "r",
        );
        assert_eq!(e.stack_trace, vec!["a"]);
        let e = FunctionError::from_body(&Bytes::from_static(b"plain text"), "r");
        assert_eq!(e.error_message, "plain text");
    }

    #[test]
    fn runtime_errors_keep_their_document_or_are_built_from_the_header() {
        let doc = Bytes::from_static(br#"{"errorMessage":"bad","errorType":"TypeError"}"#);
        let e = FunctionError::from_runtime("Unhandled", doc.clone(), "r");
        assert_eq!((e.error_type.as_str(), &e.body), ("TypeError", &doc));
        let e = FunctionError::from_runtime(
            "Unhandled",
            Bytes::from_static(br#"{"errorMessage":"m"}"#),
            "r",
        );
        assert_eq!(e.error_type, "Unhandled", "type from the header");
        let e =
            FunctionError::from_runtime("Runtime.StreamError", Bytes::from_static(b"boom"), "r");
        assert_eq!(
            (e.error_type.as_str(), e.error_message.as_str()),
            ("Runtime.StreamError", "boom")
        );
        let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(
            body["errorType"], "Runtime.StreamError",
            "callers get a JSON document"
        );
    }

    #[test]
    fn log_tail_is_the_last_4_kb_in_base64() {
        let log = format!("{}{}", "a".repeat(5000), "b".repeat(10));
        let tail = base64::engine::general_purpose::STANDARD
            .decode(log_tail(&log))
            .unwrap();
        assert_eq!(tail.len(), LOG_TAIL_BYTES);
        assert!(tail.ends_with(b"bbbbbbbbbb"));
    }
}
