//! One request to a function URL, end to end: CORS preflight, the body, the SigV4 check,
//! the 2.0 event, the invocation through the core, the response.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::response::Response;
use bytes::Bytes;

use super::event::{RequestInfo, event};
use super::{cors, response, sigv4};
use crate::invoke::stream::{ResponseStream, StreamEvent};
use crate::invoke::{InvokeRequest, MAX_PAYLOAD_BYTES};
use crate::service::Core;
use crate::urls::{AuthType, FunctionUrl, InvokeMode};

/// Most request body read: the event must fit in 6 MB; reading a little further lets the
/// client finish sending and get the 413.
const MAX_BODY_BYTES: usize = MAX_PAYLOAD_BYTES + 1024 * 1024;

/// What the URL's handler gets: the core (weak: a listener must not keep a dropped
/// emulator alive), which URL it serves, and its port.
#[derive(Clone)]
pub(super) struct UrlState {
    pub(super) core: Weak<Core>,
    pub(super) url_id: Arc<str>,
    pub(super) port: u16,
}

/// Every method and path goes to the function.
pub(super) fn router(state: UrlState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(
    State(state): State<UrlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let Some(core) = state.core.upgrade() else {
        return response::unavailable();
    };
    let Some(url) = core.urls.by_id(&state.url_id) else {
        return response::not_found();
    };
    let (parts, body) = request.into_parts();
    if let Some(cors) = &url.cors
        && cors::is_preflight(&parts.method, &parts.headers)
    {
        return cors::preflight(cors, &parts.headers);
    }
    let mut response = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => answer(&core, &url, &parts, &body, peer, state.port).await,
        Err(_) => response::too_large(MAX_PAYLOAD_BYTES),
    };
    if let Some(cors) = &url.cors {
        cors::decorate(cors, &parts.headers, response.headers_mut());
    }
    response
}

/// A new X-Ray trace header, `Root=1-<epoch seconds, hex>-<96 random bits, hex>`.
fn new_trace_id() -> String {
    let seconds = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{seconds:08x}-{}", &random[..24])
}

async fn answer(
    core: &Arc<Core>,
    url: &FunctionUrl,
    parts: &Parts,
    body: &Bytes,
    peer: SocketAddr,
    port: u16,
) -> Response {
    let caller = match url.auth_type {
        AuthType::AwsIam => {
            match sigv4::verify(parts, body, core.registry.region(), SystemTime::now()) {
                Ok(caller) => Some(caller),
                Err(refusal) => {
                    tracing::debug!(?refusal, url = %url.function_url, "refused an unsigned or badly signed request");
                    return response::forbidden();
                }
            }
        }
        _ => None,
    };
    let trace_id = parts
        .headers
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(new_trace_id);
    let request_id = uuid::Uuid::new_v4().to_string();
    let function_arn = core.registry.function_arn(&url.function_name);
    let account_id = function_arn.split(':').nth(4).unwrap_or_default();
    let info = RequestInfo {
        url,
        account_id,
        source_ip: peer.ip().to_string(),
        port,
        request_id: &request_id,
        trace_id: &trace_id,
        time: time::OffsetDateTime::now_utc(),
        caller: caller.as_ref(),
    };
    let payload = event(parts, body, &info).to_string();
    let mut request = InvokeRequest::new(payload).trace_id(trace_id.clone());
    if let Some(qualifier) = &url.qualifier {
        request = request.qualifier(qualifier.clone());
    }
    let (mut response, invocation_id) = match url.invoke_mode {
        InvokeMode::Buffered => match core.invoke(&url.function_name, request).await {
            Ok(output) if output.is_error() => (response::bad_gateway(), Some(output.request_id)),
            Ok(output) => (
                response::from_payload(output.payload),
                Some(output.request_id),
            ),
            Err(error) => (response::invoke_error(&error), None),
        },
        InvokeMode::ResponseStream => stream(core, &url.function_name, request).await,
    };
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(invocation_id.as_deref().unwrap_or(&request_id)) {
        headers.insert("x-amzn-requestid", id);
    }
    if let Ok(trace) = HeaderValue::from_str(&trace_id) {
        headers.insert("x-amzn-trace-id", trace);
    }
    response
}

/// A `RESPONSE_STREAM` invocation: the head once the prelude (or the first chunk)
/// arrives, then the body chunk by chunk as the handler flushes it. An error before the
/// first byte is a bad gateway; one after it cuts the connection, as Lambda's does.
async fn stream(
    core: &Arc<Core>,
    function: &str,
    request: InvokeRequest,
) -> (Response, Option<String>) {
    let mut stream = match core.invoke_stream(function, request).await {
        Ok(stream) => stream,
        Err(error) => return (response::invoke_error(&error), None),
    };
    let first = std::future::poll_fn(|cx| stream.poll_event(cx)).await;
    let request_id = stream.request_id().map(str::to_string);
    let (prelude, first) = match first {
        Some(StreamEvent::Prelude) => (stream.prelude().cloned(), None),
        Some(StreamEvent::Chunk(bytes)) => (None, Some(bytes)),
        None => {
            if stream.completion().is_some_and(|c| !c.is_ok()) {
                return (response::bad_gateway(), request_id);
            }
            (None, None)
        }
    };
    let body = Body::from_stream(UrlBody {
        stream,
        first,
        done: false,
    });
    let response = match prelude {
        Some(prelude) => response::from_prelude(&prelude, body),
        None => {
            let mut response = Response::new(body);
            response.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/octet-stream"),
            );
            response
        }
    };
    (response, request_id)
}

/// A streamed invocation's chunks as an HTTP body.
struct UrlBody {
    stream: ResponseStream,
    first: Option<Bytes>,
    done: bool,
}

impl futures::Stream for UrlBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        loop {
            return match std::task::ready!(this.stream.poll_event(cx)) {
                Some(StreamEvent::Chunk(bytes)) => Poll::Ready(Some(Ok(bytes))),
                Some(StreamEvent::Prelude) => continue,
                None => {
                    this.done = true;
                    let error = this.stream.completion().and_then(|c| c.error.as_ref());
                    // An error ends the body without its last chunk: the client sees a cut
                    // response.
                    Poll::Ready(error.map(|e| Err(std::io::Error::other(e.to_string()))))
                }
            };
        }
    }
}
