//! Invoke (RequestResponse, Event, DryRun), InvokeWithResponseStream and the legacy
//! InvokeAsync.
//!
//! Headers read: `X-Amz-Invocation-Type`, `X-Amz-Log-Type` (`Tail` returns the last 4 KB
//! of the log, base64, in `X-Amz-Log-Result` / `InvokeComplete.LogResult`),
//! `X-Amz-Client-Context` (base64 JSON, handed to the runtime decoded, as
//! `Lambda-Runtime-Client-Context`) and `X-Amzn-Trace-Id`. A function error is HTTP 200
//! with `X-Amz-Function-Error: Unhandled` and the error document as the body.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use bytes::Bytes;

use super::eventstream::EventStreamBody;
use super::{Api, ApiError, QualifierQuery, qualified_function};
use crate::invoke::{InvokeOutput, InvokeRequest, MAX_PAYLOAD_BYTES};

/// Most request body read for an invoke. The core refuses anything over 6 MB with
/// `RequestTooLargeException`; reading further lets the client finish sending, so it gets
/// that 413 rather than a reset connection.
const MAX_INVOKE_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Largest `X-Amz-Client-Context` (base64), per the model's documentation.
const MAX_CLIENT_CONTEXT_BYTES: usize = 3583;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .route(
            "/2021-11-15/functions/{name}/response-streaming-invocations",
            post(invoke_with_response_stream),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async",
            post(invoke_async),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async/",
            post(invoke_async),
        )
}

/// What every invoke reads from the request.
struct Invocation {
    name: String,
    invocation_type: String,
    tail: bool,
    request: InvokeRequest,
}

async fn read(
    api: &Api,
    label: &str,
    query: QualifierQuery,
    request: Request,
) -> Result<Invocation, ApiError> {
    let core = api.core()?;
    let (name, qualifier) = qualified_function(&core, label, query.qualifier.as_deref())?;
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let invocation_type = header(headers, "x-amz-invocation-type")
        .unwrap_or("RequestResponse")
        .to_string();
    let tail = match header(headers, "x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid LogType: {other} (None or Tail)"
            )));
        }
    };
    let mut request = InvokeRequest::new(payload(headers, body).await?);
    if let Some(context) = header(headers, "x-amz-client-context") {
        request = request.client_context(client_context(context)?);
    }
    if let Some(trace) = header(headers, "x-amzn-trace-id") {
        request = request.trace_id(trace);
    }
    if let Some(qualifier) = qualifier {
        request = request.qualifier(qualifier);
    }
    if let Some(name) = header(headers, "x-amz-durable-execution-name") {
        request = request.durable_execution_name(name);
    }
    Ok(Invocation {
        name,
        invocation_type,
        tail,
        request,
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request body; an omitted `Payload` reaches the handler as `{}`, as in Lambda.
async fn payload(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let payload = axum::body::to_bytes(body, MAX_INVOKE_BODY_BYTES)
        .await
        .map_err(|_| {
            let size = header(headers, "content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(MAX_INVOKE_BODY_BYTES + 1);
            ApiError::request_too_large(size, MAX_PAYLOAD_BYTES)
        })?;
    Ok(if payload.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        payload
    })
}

/// `X-Amz-Client-Context`: base64 of a JSON object, at most 3,583 bytes encoded.
fn client_context(encoded: &str) -> Result<String, ApiError> {
    let invalid =
        || ApiError::invalid_content("Client context must be a valid Base64-encoded JSON object.");
    if encoded.len() > MAX_CLIENT_CONTEXT_BYTES {
        return Err(ApiError::invalid_parameter(format!(
            "Client context must be at most {MAX_CLIENT_CONTEXT_BYTES} bytes (base64); got {}",
            encoded.len()
        )));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if v.is_object() => Ok(text),
        _ => Err(invalid()),
    }
}

fn set(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

async fn invoke(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<QualifierQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let invocation = read(&api, &label, query, request).await?;
    let core = api.core()?;
    match invocation.invocation_type.as_str() {
        "RequestResponse" => {
            let output = core.invoke(&invocation.name, invocation.request).await?;
            Ok(request_response(output, invocation.tail))
        }
        "Event" => {
            let arn = core.invoke_event(&invocation.name, invocation.request)?;
            let mut response = StatusCode::ACCEPTED.into_response();
            if let Some(arn) = arn {
                set(&mut response, "x-amz-durable-execution-arn", &arn);
            }
            Ok(response)
        }
        "DryRun" => Ok(StatusCode::NO_CONTENT.into_response()),
        other => Err(ApiError::invalid_parameter(format!(
            "Invalid InvocationType: {other} (RequestResponse, Event or DryRun)"
        ))),
    }
}

fn request_response(output: InvokeOutput, tail: bool) -> Response {
    let log_result = tail.then(|| output.log_tail());
    let mut response = Response::new(Body::from(output.payload));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    set(
        &mut response,
        "x-amz-executed-version",
        &output.executed_version,
    );
    set(&mut response, "x-amzn-requestid", &output.request_id);
    if let Some(function_error) = &output.function_error {
        set(&mut response, "x-amz-function-error", function_error);
    }
    if let Some(log) = &log_result {
        set(&mut response, "x-amz-log-result", log);
    }
    if let Some(arn) = &output.durable_execution_arn {
        set(&mut response, "x-amz-durable-execution-arn", arn);
    }
    response
}

/// The response starts once the function's response does: errors that prevent the
/// invocation (unknown function, throttling, size) are still plain HTTP errors; after
/// that everything, function errors included, travels in the event stream.
async fn invoke_with_response_stream(
    State(api): State<Api>,
    Path(label): Path<String>,
    Query(query): Query<QualifierQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let invocation = read(&api, &label, query, request).await?;
    match invocation.invocation_type.as_str() {
        "RequestResponse" => {}
        "DryRun" => return Ok(StatusCode::NO_CONTENT.into_response()),
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid InvocationType: {other} (RequestResponse or DryRun for a streamed invoke)"
            )));
        }
    }
    let stream = api
        .core()?
        .invoke_stream(&invocation.name, invocation.request)
        .await?;
    let request_id = stream.request_id().map(str::to_string);
    let mut response = Response::new(Body::from_stream(EventStreamBody::new(
        stream,
        invocation.tail,
    )));
    if let Some(id) = request_id {
        set(&mut response, "x-amzn-requestid", &id);
    }
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    response.headers_mut().insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    Ok(response)
}

/// `InvokeAsync` (deprecated, still in the model): an `Event` invoke answering
/// `{"Status": 202}`.
async fn invoke_async(
    State(api): State<Api>,
    Path(label): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let mut invocation = read(&api, &label, QualifierQuery::default(), request).await?;
    invocation.invocation_type = "Event".to_string();
    api.core()?
        .invoke_event(&invocation.name, invocation.request)?;
    Ok((
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        r#"{"Status":202}"#,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_context_must_be_base64_of_a_json_object() {
        let ok = base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"a":"b"}}"#);
        assert_eq!(client_context(&ok).unwrap(), r#"{"custom":{"a":"b"}}"#);
        let not_json = base64::engine::general_purpose::STANDARD.encode("nope");
        assert_eq!(
            client_context(&not_json).unwrap_err().code(),
            "InvalidRequestContentException"
        );
        assert_eq!(
            client_context("%%%").unwrap_err().code(),
            "InvalidRequestContentException"
        );
        assert_eq!(
            client_context(&"A".repeat(4000)).unwrap_err().code(),
            "InvalidParameterValueException"
        );
    }
}
