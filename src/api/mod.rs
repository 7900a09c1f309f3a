//! The Lambda REST API: a second front door, for aws-sdk-lambda, boto3 and the AWS CLI.
//!
//! An axum server on `127.0.0.1` speaking restJson1 as the Lambda API model
//! (lambda-service-2015-03-31) defines it: each operation at its own version prefix, the
//! model's status codes, errors as `x-amzn-ErrorType` plus a JSON body, and
//! `x-amzn-RequestId` on every response. Every operation calls the same [`Core`] methods
//! as the Rust API; nothing here deploys or invokes by itself.
//!
//! Requests are not authenticated (clients sign with any credentials). Path labels are
//! matched on the raw path, split on `/` before percent-decoding, so `my-fn%3Aprod` is one
//! label (`my-fn:prod`).

mod durable;
mod error;
pub(crate) mod eventstream;
pub(crate) mod function_url;
mod functions;
mod invoke;
mod layers;
mod shapes;
mod urls;
mod versions;

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, Uri};
use axum::response::Response;
use axum::serve::ListenerExt;
use bytes::Bytes;
use tokio::task::JoinHandle;

pub(crate) use error::ApiError;

use crate::deploy::arn;
use crate::service::Core;

/// Largest JSON request body: a 50 MB zip, base64-encoded, plus the rest of the request.
const MAX_JSON_BODY_BYTES: usize = 72 * 1024 * 1024;

/// What every handler gets: the core (weak: the server must not keep a dropped emulator
/// alive) and the endpoint URL (for code download locations).
#[derive(Clone)]
pub(crate) struct Api {
    core: Weak<Core>,
    url: Arc<str>,
}

impl Api {
    /// The core, or `ServiceException` once the emulator is gone.
    fn core(&self) -> Result<Arc<Core>, ApiError> {
        self.core
            .upgrade()
            .ok_or_else(|| ApiError::service("the emulator has been shut down"))
    }
}

/// The running REST listener; stops when dropped.
pub(crate) struct ApiServer {
    url: String,
    task: JoinHandle<()>,
}

impl ApiServer {
    /// Binds `addr` (port 0 = any free port) and serves `core`.
    pub(crate) fn start(core: Weak<Core>, addr: SocketAddr) -> std::io::Result<ApiServer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let mut local = listener.local_addr()?;
        // Bound on every address (`serve --host 0.0.0.0` in a container): loopback is one.
        if local.ip().is_unspecified() {
            local.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let url = format!("http://{local}");
        if let Some(core) = core.upgrade() {
            core.set_lambda_endpoint(&url);
        }
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = router(Api {
            core,
            url: url.as_str().into(),
        });
        // Streamed invokes write small event frames that must not wait for an ACK.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ApiServer { url, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(api: Api) -> Router {
    Router::new()
        .merge(functions::routes())
        .merge(layers::routes())
        .merge(invoke::routes())
        .merge(versions::routes())
        .merge(urls::routes())
        .merge(durable::routes())
        .fallback(unknown_operation)
        // A known path with a method it does not take is no operation either: the same
        // error document, not axum's bare 405 (found by fuzz/fuzz_targets/rest.rs).
        .method_not_allowed_fallback(unknown_operation)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
        .layer(axum::middleware::map_response(request_id))
        .with_state(api)
}

/// Every response carries `x-amzn-RequestId`; invokes set the invocation's own.
async fn request_id(mut response: Response) -> Response {
    if !response.headers().contains_key("x-amzn-requestid") {
        let id = uuid::Uuid::new_v4().to_string();
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-amzn-requestid", value);
        }
    }
    response
}

async fn unknown_operation(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "UnknownOperationException",
        format!("lambda-testkit does not implement {method} {}", uri.path()),
    )
}

/// A JSON response.
fn json(status: axum::http::StatusCode, value: serde_json::Value) -> Response {
    use axum::response::IntoResponse;
    (
        status,
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// Parses a JSON request body (an empty body is `{}`), whatever its `Content-Type`: the
/// CLI, boto3 and the Rust SDK do not all send the same one.
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_content(format!("Could not parse request body into json: {e}"))
    })
}

/// A `{FunctionName}` label of an operation that takes no version (updates, concurrency):
/// the function's name, once it is known to exist; `$LATEST` is the only qualifier
/// accepted.
fn function_name(
    core: &Core,
    label: &str,
    query_qualifier: Option<&str>,
) -> Result<String, ApiError> {
    match qualified_function(core, label, query_qualifier)? {
        (name, None) => Ok(name),
        (name, Some(q)) if q == crate::deploy::LATEST => Ok(name),
        (name, Some(q)) => Err(ApiError::invalid_parameter(format!(
            "This operation does not take a qualifier: {name}:{q}"
        ))),
    }
}

/// A `{FunctionName}` label (name, partial or full ARN, optionally `:qualifier`) with the
/// `Qualifier` query: the function's name and the qualifier (a version number, an alias,
/// `$LATEST`), once both are known to exist.
fn qualified_function(
    core: &Core,
    label: &str,
    query_qualifier: Option<&str>,
) -> Result<(String, Option<String>), ApiError> {
    let (name, label_qualifier) = arn::split_function_name(label);
    if let (Some(a), Some(b)) = (label_qualifier, query_qualifier)
        && a != b
    {
        return Err(ApiError::invalid_parameter(
            "The derived qualifier from the function name does not match the specified qualifier.",
        ));
    }
    let qualifier = label_qualifier
        .or(query_qualifier)
        .filter(|q| !q.is_empty());
    let exists = core.config_of(name, qualifier).is_ok();
    match qualifier {
        _ if exists => Ok((name.to_string(), qualifier.map(str::to_string))),
        _ => {
            let mut arn = core.registry.function_arn(name);
            if let Some(q) = qualifier {
                arn = format!("{arn}:{q}");
            }
            Err(ApiError::not_found(format!("Function not found: {arn}")))
        }
    }
}

/// `?Qualifier=` on function operations.
#[derive(Debug, Default, serde::Deserialize)]
struct QualifierQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}
