//! The Lambda Runtime API (2018-06-01) for one execution environment.
//!
//! Routes: `GET /runtime/invocation/next`, `POST /runtime/invocation/{id}/response`,
//! `POST /runtime/invocation/{id}/error`, `POST /runtime/init/error`.
//! Source: AWS "Using the Lambda runtime API for custom runtimes" (OpenAPI 1.0.3).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::lifecycle::Refusal;
use super::state::{EnvironmentState, Outcome};
use crate::invoke::{FunctionError, MAX_PAYLOAD_BYTES};

mod connection;
mod extensions;
mod streaming;

pub(super) use connection::Connections;

const ERROR_TYPE: &str = "lambda-runtime-function-error-type";

// The `/next` headers as `HeaderName` constants: a `&'static str` name is parsed and
// validated at every insert (`HdrName::from_static`, ~4% of the emulator's warm-path
// instructions under callgrind over `benches/pool.rs`'s load).
const REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
const DEADLINE_MS: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
const FUNCTION_ARN: HeaderName = HeaderName::from_static("lambda-runtime-invoked-function-arn");
const TRACE_ID: HeaderName = HeaderName::from_static("lambda-runtime-trace-id");
const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("lambda-runtime-client-context");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

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
    // The two routes of every warm invoke, `/next` and a buffered or streamed `/response`,
    // are matched here by their literal paths; the router (the same handlers, so the same
    // answers) serves the rest. Saves its route matching, the `Path` extractor's
    // percent-decoding and its layers of futures: 16% of the emulator's instructions in
    // `benches/pool.rs`'s load (callgrind, the same run: 4.33G -> 3.63G).
    let connections = env.connections.clone();
    let service = tower::service_fn(move |request: Request| {
        let (env, app) = (env.clone(), app.clone());
        async move {
            let response = match hot_route(&request) {
                Some(HotRoute::Next) => next(State(env)).await,
                Some(HotRoute::Response(id)) => response(State(env), Path(id), request).await,
                None => tower::ServiceExt::oneshot(app, request).await?,
            };
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let listener = connection::RuntimeListener {
        listener,
        connections,
    };
    let _ = axum::serve(listener, axum::ServiceExt::into_make_service(service)).await;
}

/// A request for one of the two routes every warm invoke takes.
#[derive(Debug, PartialEq)]
enum HotRoute {
    Next,
    /// `POST /2018-06-01/runtime/invocation/{id}/response`, with an id that needs no
    /// percent-decoding (any other goes through the router).
    Response(String),
}

fn hot_route(request: &Request) -> Option<HotRoute> {
    const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
    let rest = request.uri().path().strip_prefix(INVOCATION)?;
    match *request.method() {
        axum::http::Method::GET if rest == "next" => Some(HotRoute::Next),
        axum::http::Method::POST => {
            let id = rest.strip_suffix("/response")?;
            let plain = !id.is_empty() && !id.bytes().any(|b| b == b'/' || b == b'%');
            plain.then(|| HotRoute::Response(id.to_string()))
        }
        _ => None,
    }
}

async fn next(State(env): State<Arc<EnvironmentState>>) -> Response {
    let delivery = match env.next().await {
        Ok(d) => d,
        Err(refusal) => return refused(refusal),
    };
    let mut headers = HeaderMap::with_capacity(6);
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put(REQUEST_ID, &delivery.request_id);
    put(FUNCTION_ARN, &delivery.function_arn);
    put(TRACE_ID, &delivery.trace_id);
    if let Some(cc) = &delivery.client_context {
        put(CLIENT_CONTEXT, cc);
    }
    headers.insert(DEADLINE_MS, HeaderValue::from(delivery.deadline_ms as u64));
    headers.insert(CONTENT_TYPE, JSON);
    // The map becomes the response's own: `(StatusCode, HeaderMap, Body).into_response()`
    // would re-insert every header into a new map (~2% of the emulator's instructions in
    // `benches/pool.rs`'s load, callgrind).
    let mut response = Response::new(Body::from(delivery.payload));
    *response.headers_mut() = headers;
    response
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
        // The body broke off (the runtime's connection went away mid-body): that is no
        // answer; the runtime's exit, or the deadline, ends the invocation (as for a
        // stream cut short). It was once taken for an oversized response.
        Err(e) if !e.is::<LengthLimitError>() => broken(),
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
    let Some(body) = read_small(body).await else {
        return broken();
    };
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
    let Some(body) = read_small(body).await else {
        return broken();
    };
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

/// A small body (an error document, a registration, a subscription); one over the
/// payload limit reads as empty. `None`: it broke off before its end (the caller's
/// connection went away), so the request must change nothing.
async fn read_small(body: Body) -> Option<Bytes> {
    match Limited::new(body, MAX_PAYLOAD_BYTES).collect().await {
        Ok(collected) => Some(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Some(Bytes::new()),
        Err(_) => None,
    }
}

/// The answer to a request whose body broke off. Nobody is left to read it.
fn broken() -> Response {
    refused(Refusal::Gone)
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
        [(CONTENT_TYPE, JSON)],
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

#[cfg(test)]
mod tests {
    //! The Runtime API over its real listener, the test playing the runtime
    //! (`without_runtimes`: the environment starts no process).

    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use crate::{Emulator, Function, Runtime};

    /// Sends `request` on a new connection (`close`: then shuts the write side) and returns
    /// the answer's head and body.
    async fn exchange(addr: SocketAddr, request: &[u8], close: bool) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        if close {
            stream.shutdown().await.unwrap();
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[test]
    fn only_the_two_hot_routes_with_plain_ids_skip_the_router() {
        use super::{HotRoute, hot_route};
        let route = |method: &str, path: &str| {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .body(axum::body::Body::empty())
                .unwrap();
            hot_route(&request)
        };
        let base = "/2018-06-01/runtime/invocation";
        assert_eq!(route("GET", &format!("{base}/next")), Some(HotRoute::Next));
        assert_eq!(
            route("POST", &format!("{base}/8476a536-e9f4/response")),
            Some(HotRoute::Response("8476a536-e9f4".into()))
        );
        // Everything else is the router's: other methods, routes, and ids to decode.
        for (method, path) in [
            ("POST", format!("{base}/next")),
            ("GET", format!("{base}/r1/response")),
            ("POST", format!("{base}/r1/error")),
            ("POST", format!("{base}//response")),
            ("POST", format!("{base}/a%2Fb/response")),
            ("POST", format!("{base}/a/b/response")),
            ("POST", "/2018-06-01/runtime/init/error".to_string()),
            ("GET", format!("{base}/next/")),
        ] {
            assert_eq!(route(method, &path), None, "{method} {path}");
        }
    }

    fn post(path: &str, length: usize, body: &str) -> Vec<u8> {
        format!(
            "POST /2018-06-01/runtime/{path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\ncontent-length: {length}\r\n\r\n{body}"
        )
        .into_bytes()
    }

    /// Found by `fuzz/fuzz_targets/runtime_api.rs`: a body cut short by the runtime's
    /// connection closing was answered as `Function.ResponseSizeTooLarge` (413), and the
    /// invocation ended with that error.
    #[tokio::test]
    async fn a_body_cut_short_answers_nothing_and_the_invocation_waits_for_its_answer() {
        let (builder, mut apis) = Emulator::builder().without_runtimes();
        let emu = builder.start().await.unwrap();
        let f = emu
            .deploy(
                Function::new("f", Runtime::ProvidedAl2023).executable("bootstrap", "#!/bin/sh\n"),
            )
            .await
            .unwrap();
        let invoke = tokio::spawn(async move { f.invoke("{}").await });
        let addr = apis.next(Duration::from_secs(5)).await.unwrap();
        let next = exchange(
            addr,
            b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
            false,
        )
        .await;
        let id = next
            .lines()
            .find_map(|l| l.strip_prefix("lambda-runtime-aws-request-id: "))
            .unwrap()
            .to_string();
        for path in [
            format!("invocation/{id}/response"),
            format!("invocation/{id}/error"),
        ] {
            let cut = exchange(addr, &post(&path, 10, "abc"), true).await;
            assert!(
                !cut.contains(" 413 ") && !cut.contains(" 202 "),
                "{path}: {cut}"
            );
        }
        let answer = exchange(
            addr,
            &post(&format!("invocation/{id}/response"), 2, "ok"),
            false,
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 202 "), "{answer}");
        let out = invoke.await.unwrap().unwrap();
        assert_eq!((out.function_error, &out.payload[..]), (None, &b"ok"[..]));
    }
}
