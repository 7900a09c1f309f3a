//! The Extensions API (2020-01-01) on the environment's Runtime API listener.
//!
//! Routes: `POST /2020-01-01/extension/register`, `GET /2020-01-01/extension/event/next`,
//! `POST /2020-01-01/extension/init/error`, `POST /2020-01-01/extension/exit/error`, and
//! the subscriptions `PUT /2022-07-01/telemetry` (Telemetry API) and `PUT
//! /2020-08-15/logs` (Logs API), whose delivery is [`crate::execution::telemetry`].
//! Source: AWS "Lambda Extensions API" (headers, bodies) and the Runtime Interface
//! Emulator (the `403` error types, `Lambda-Extension-Event-Identifier`).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use super::{accepted, broken, error_document, read_small, status};
use crate::execution::lifecycle::extensions::ExtensionRefusal;
use crate::execution::state::EnvironmentState;
use crate::execution::telemetry::Api;

const NAME: &str = "lambda-extension-name";
const IDENTIFIER: &str = "lambda-extension-identifier";
const ACCEPT_FEATURE: &str = "lambda-extension-accept-feature";
const ERROR_TYPE: &str = "lambda-extension-function-error-type";

/// The Extensions API routes.
pub(super) fn routes() -> Router<Arc<EnvironmentState>> {
    Router::new()
        .route("/2020-01-01/extension/register", post(register))
        .route("/2020-01-01/extension/event/next", get(next))
        .route("/2020-01-01/extension/init/error", post(init_error))
        .route("/2020-01-01/extension/exit/error", post(exit_error))
        .route("/2022-07-01/telemetry", put(subscribe_telemetry))
        .route("/2020-08-15/logs", put(subscribe_logs))
}

async fn subscribe_telemetry(
    State(env): State<Arc<EnvironmentState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    subscribe(&env, Api::Telemetry, &headers, body).await
}

async fn subscribe_logs(
    State(env): State<Arc<EnvironmentState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    subscribe(&env, Api::Logs, &headers, body).await
}

/// `PUT /2022-07-01/telemetry`, `PUT /2020-08-15/logs`: 200 `"OK"`, else the refusal.
async fn subscribe(env: &EnvironmentState, api: Api, headers: &HeaderMap, body: Body) -> Response {
    let Some(id) = identifier(headers).map(str::to_string) else {
        return missing_identifier();
    };
    let Some(body) = read_small(body).await else {
        return broken();
    };
    match env.subscribe(api, &id, &body) {
        Ok(()) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "\"OK\"",
        )
            .into_response(),
        Err((code, error_type, message)) => status(
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
            error_type,
            &message,
        ),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn register(
    State(env): State<Arc<EnvironmentState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    #[derive(serde::Deserialize)]
    struct Register {
        events: Vec<String>,
    }
    let Some(body) = read_small(body).await else {
        return broken();
    };
    let Ok(request) = serde_json::from_slice::<Register>(&body) else {
        return status(
            StatusCode::FORBIDDEN,
            "InvalidRequestFormat",
            "the body must be {\"events\": [\"INVOKE\" | \"SHUTDOWN\", ...]}",
        );
    };
    let name = header(&headers, NAME).unwrap_or_default();
    let account_id = header(&headers, ACCEPT_FEATURE)
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "accountId"));
    match env.register_extension(name, &request.events, account_id) {
        Ok((id, body)) => (
            StatusCode::OK,
            [
                (IDENTIFIER, id.as_str()),
                ("content-type", "application/json"),
            ],
            body,
        )
            .into_response(),
        Err(refusal) => refused(refusal, name),
    }
}

/// The identifier header.
fn identifier(headers: &HeaderMap) -> Option<&str> {
    header(headers, IDENTIFIER).filter(|v| !v.is_empty())
}

fn missing_identifier() -> Response {
    status(
        StatusCode::FORBIDDEN,
        "Extension.MissingExtensionIdentifier",
        "Missing Lambda-Extension-Identifier header",
    )
}

async fn next(State(env): State<Arc<EnvironmentState>>, headers: HeaderMap) -> Response {
    let Some(id) = identifier(&headers).map(str::to_string) else {
        return missing_identifier();
    };
    match env.extension_next(&id).await {
        Ok(event) => (
            StatusCode::OK,
            [
                (
                    "lambda-extension-event-identifier",
                    uuid::Uuid::new_v4().to_string(),
                ),
                ("content-type", "application/json".to_string()),
            ],
            event,
        )
            .into_response(),
        Err(refusal) => refused(refusal, &id),
    }
}

async fn init_error(
    State(env): State<Arc<EnvironmentState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    report_error(&env, &headers, body, true).await
}

async fn exit_error(
    State(env): State<Arc<EnvironmentState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    report_error(&env, &headers, body, false).await
}

/// `init/error` fails init with the extension's error; `exit/error` is recorded.
async fn report_error(
    env: &EnvironmentState,
    headers: &HeaderMap,
    body: Body,
    init: bool,
) -> Response {
    let Some(id) = identifier(headers).map(str::to_string) else {
        return missing_identifier();
    };
    let Some(error_type) = header(headers, ERROR_TYPE).map(str::to_string) else {
        return status(
            StatusCode::FORBIDDEN,
            "Extension.MissingHeader",
            "Missing Lambda-Extension-Function-Error-Type header",
        );
    };
    let Some(body) = read_small(body).await else {
        return broken();
    };
    let result = if init {
        let mut error = error_document(&error_type, body, "");
        // The type the extension named wins over one in its (optional) body.
        error.error_type = error_type;
        env.extension_init_error(&id, error)
    } else {
        env.extension_exit_error(&id, &error_type)
    };
    match result {
        Ok(()) => accepted(),
        Err(refusal) => refused(refusal, &id),
    }
}

fn refused(refusal: ExtensionRefusal, subject: &str) -> Response {
    let message = match refusal {
        ExtensionRefusal::InvalidName => "Empty extension name".to_string(),
        ExtensionRefusal::RegistrationClosed => "Extension registration closed already".to_string(),
        ExtensionRefusal::TooMany => format!(
            "Too many extensions registered (at most {})",
            crate::execution::lifecycle::extensions::MAX_EXTENSIONS
        ),
        ExtensionRefusal::InvalidEventType => {
            format!("{subject}: unknown event type, or SHUTDOWN for an internal extension")
        }
        ExtensionRefusal::Unknown => format!("Unknown extension {subject}"),
        ExtensionRefusal::InvalidState => {
            format!("Extension {subject} may not make this call in its current state")
        }
        ExtensionRefusal::Gone => {
            "Non-recoverable state. Extension should exit promptly.".to_string()
        }
    };
    let code = match refusal {
        ExtensionRefusal::Gone => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::FORBIDDEN,
    };
    status(code, refusal.error_type(), &message)
}
