//! The Lambda Runtime API (2018-06-01) for one execution environment.
//!
//! Routes: `GET /runtime/invocation/next`, `POST /runtime/invocation/{id}/response`,
//! `POST /runtime/invocation/{id}/error`, `POST /runtime/init/error`.
//! Source: AWS "Using the Lambda runtime API for custom runtimes" (OpenAPI 1.0.3).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use super::lifecycle::Refusal;
use super::state::{EnvironmentState, Outcome};
use crate::invoke::{FunctionError, MAX_PAYLOAD_BYTES};

mod connection;
mod extensions;
mod streaming;

pub(super) use connection::Connections;

const ERROR_TYPE: &str = "lambda-runtime-function-error-type";

/// Serves the Runtime API for `env` on `listener` until the task is aborted.
pub(crate) async fn serve(listener: tokio::net::TcpListener, env: Arc<EnvironmentState>) {
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .merge(extensions::routes())
        .with_state(env.clone());
    let listener = connection::RuntimeListener {
        listener,
        connections: env.connections.clone(),
    };
    let _ = axum::serve(listener, app).await;
}

async fn next(State(env): State<Arc<EnvironmentState>>) -> Response {
    let delivery = match env.next().await {
        Ok(d) => d,
        Err(refusal) => return refused(refusal),
    };
    let mut headers = HeaderMap::with_capacity(6);
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", &delivery.request_id);
    put(
        "lambda-runtime-deadline-ms",
        &delivery.deadline_ms.to_string(),
    );
    put(
        "lambda-runtime-invoked-function-arn",
        &delivery.function_arn,
    );
    put("lambda-runtime-trace-id", &delivery.trace_id);
    put("content-type", "application/json");
    if let Some(cc) = &delivery.client_context {
        put("lambda-runtime-client-context", cc);
    }
    (StatusCode::OK, headers, Body::from(delivery.payload)).into_response()
}

async fn response(
    State(env): State<Arc<EnvironmentState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    if let Err(refusal) = env.check(&id) {
        return refused(refusal);
    }
    let (parts, body) = request.into_parts();
    if streaming::is_streaming(&parts.headers) {
        return streaming::receive(env, id, &parts.headers, body).await;
    }
    match Limited::new(body, MAX_PAYLOAD_BYTES).collect().await {
        Ok(collected) => answer(&env, &id, Outcome::Response(collected.to_bytes())),
        Err(_) => {
            // Over the limit is an error for this invocation, not for the runtime.
            let error = FunctionError::platform(
                "Function.ResponseSizeTooLarge",
                format!(
                    "Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."
                ),
                &id,
            );
            let _ = env.complete(&id, Outcome::Error(error));
            status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ResponseSizeTooLarge",
                "response payload too large",
            )
        }
    }
}

async fn error(
    State(env): State<Arc<EnvironmentState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(refusal) = env.check(&id) {
        return refused(refusal);
    }
    let body = read_small(body).await;
    answer(
        &env,
        &id,
        Outcome::Error(error_document(runtime_error_type(&headers), body, &id)),
    )
}

async fn init_error(
    State(env): State<Arc<EnvironmentState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_small(body).await;
    match env.init_error(error_document(runtime_error_type(&headers), body, "")) {
        Ok(()) => accepted(),
        Err(refusal) => refused(refusal),
    }
}

/// `Lambda-Runtime-Function-Error-Type`, else `Unhandled`.
fn runtime_error_type(headers: &HeaderMap) -> &str {
    headers
        .get(ERROR_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unhandled")
}

/// The error as the runtime (or an extension) reported it, type defaulting to
/// `header_type`.
fn error_document(header_type: &str, body: Bytes, request_id: &str) -> FunctionError {
    FunctionError::from_runtime(header_type, body, request_id)
}

async fn read_small(body: Body) -> Bytes {
    Limited::new(body, MAX_PAYLOAD_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}

fn answer(env: &EnvironmentState, id: &str, outcome: Outcome) -> Response {
    match env.complete(id, outcome) {
        Ok(()) => accepted(),
        Err(refusal) => refused(refusal),
    }
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::UnknownRequest => status(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "unknown request id",
        ),
        Refusal::AlreadyAnswered => status(
            StatusCode::BAD_REQUEST,
            "InvalidStateTransition",
            "this invocation has already been answered",
        ),
        Refusal::InvalidState => status(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "this call is not allowed in the environment's current state",
        ),
        Refusal::Gone => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Runtime.Shutdown",
            "Non-recoverable state. Runtime should exit promptly.",
        ),
    }
}

fn status(code: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string();
    (code, [("content-type", "application/json")], body).into_response()
}
