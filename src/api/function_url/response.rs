//! The handler's result as the HTTP response a function URL sends (AWS "Invoking Lambda
//! function URLs", response payload), and the URL's own error answers.
//!
//! A result object with `statusCode` is the response: `headers` (values that are not
//! strings rendered as JSON), `cookies` (each a `set-cookie` header), `body` (decoded
//! from base64 when `isBase64Encoded`). Any other JSON — a string, a number, an object
//! without `statusCode` — is "inferred": status 200, `content-type: application/json`,
//! the result itself as the body. A result that is not JSON, or a `statusCode` that is
//! not an HTTP status, is a bad gateway, as is a function error.
//!
//! A streaming handler's HTTP-integration prelude (status, headers, cookies, then 8 NUL
//! bytes) is the response head both when the URL streams and when it buffers.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use crate::invoke::InvokeError;
use crate::invoke::stream::HttpPrelude;

fn json_message(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({ "Message": message }).to_string(),
    )
        .into_response()
}

/// `502 Bad Gateway`, `Internal Server Error`: a function error, a timeout, a result that
/// cannot be mapped.
pub(super) fn bad_gateway() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [("content-type", "application/json")],
        "Internal Server Error",
    )
        .into_response()
}

/// `403 {"Message":"Forbidden"}`: an `AWS_IAM` URL without a valid signature.
pub(super) fn forbidden() -> Response {
    json_message(StatusCode::FORBIDDEN, "Forbidden")
}

/// `404`: the URL was deleted (a kept-alive connection may still reach its port).
pub(super) fn not_found() -> Response {
    json_message(StatusCode::NOT_FOUND, "Not Found")
}

/// `413`: the event would be over Lambda's 6 MB request payload limit.
pub(super) fn too_large(limit: usize) -> Response {
    json_message(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("Request must be smaller than {limit} bytes for the InvokeFunction operation"),
    )
}

/// `503`: the emulator is gone or shut down.
pub(super) fn unavailable() -> Response {
    json_message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
}

/// An invoke that did not run (or failed in the platform), as the URL answers it:
/// throttling is 429 (AWS: "your function URL returns an HTTP 429 status code").
pub(super) fn invoke_error(error: &InvokeError) -> Response {
    match error {
        InvokeError::Throttled { .. } => {
            json_message(StatusCode::TOO_MANY_REQUESTS, "Rate Exceeded.")
        }
        InvokeError::RequestTooLarge { limit, .. } => too_large(*limit),
        InvokeError::FunctionNotFound(_) => not_found(),
        InvokeError::ShutDown => unavailable(),
        _ => bad_gateway(),
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string())
}

fn append(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.append(name, value);
    }
}

/// A response with `status`, `headers` and one `set-cookie` per cookie.
fn head<'a>(
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, String)>,
    cookies: impl IntoIterator<Item = String>,
    body: Body,
) -> Option<Response> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).ok()?;
    let map = response.headers_mut();
    for (name, value) in headers {
        append(map, name, &value);
    }
    for cookie in cookies {
        append(map, "set-cookie", &cookie);
    }
    Some(response)
}

/// The response head a streaming handler's prelude asks for, around `body`.
pub(super) fn from_prelude(prelude: &HttpPrelude, body: Body) -> Response {
    head(
        prelude.status_code,
        prelude.headers.iter().map(|(k, v)| (k.as_str(), v.clone())),
        prelude.cookies.iter().cloned(),
        body,
    )
    .unwrap_or_else(bad_gateway)
}

/// The response for a buffered invocation's successful `payload`.
pub(super) fn from_payload(payload: Bytes) -> Response {
    if let Some((prelude, body)) = HttpPrelude::split(&payload) {
        return from_prelude(&prelude, Body::from(body));
    }
    let Ok(value) = serde_json::from_slice::<Value>(&payload) else {
        return bad_gateway();
    };
    let Some(result) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            payload,
        )
            .into_response();
    };
    let Some(status) = result["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
    else {
        return bad_gateway();
    };
    let body = match result.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(body) if result.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            match base64::engine::general_purpose::STANDARD.decode(text(body)) {
                Ok(bytes) => Bytes::from(bytes),
                Err(_) => return bad_gateway(),
            }
        }
        Some(body) => Bytes::from(text(body)),
    };
    let headers = result
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.as_str(), text(v)));
    let cookies = result
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(text);
    head(status, headers, cookies, Body::from(body)).unwrap_or_else(bad_gateway)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn parts(response: Response) -> (u16, HeaderMap, Bytes) {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body)
    }

    #[tokio::test]
    async fn a_result_with_status_code_is_the_response() {
        let payload = br#"{"statusCode":201,"headers":{"Content-Type":"text/plain","X-Count":3},"cookies":["a=1; Max-Age=60","b=2"],"body":"made"}"#;
        let (status, headers, body) = parts(from_payload(Bytes::from_static(payload))).await;
        assert_eq!(status, 201);
        assert_eq!(headers["content-type"], "text/plain");
        assert_eq!(headers["x-count"], "3");
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Max-Age=60", "b=2"]);
        assert_eq!(&body[..], b"made");
    }

    #[tokio::test]
    async fn base64_bodies_are_decoded() {
        let payload = br#"{"statusCode":200,"body":"AAEC","isBase64Encoded":true}"#;
        let (_, _, body) = parts(from_payload(Bytes::from_static(payload))).await;
        assert_eq!(&body[..], [0, 1, 2]);
    }

    #[tokio::test]
    async fn other_json_is_inferred_as_200_application_json() {
        for payload in [&br#""Hello, world!""#[..], br#"{"message":"hi"}"#, b"42"] {
            let (status, headers, body) = parts(from_payload(Bytes::from(payload))).await;
            assert_eq!(status, 200);
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(&body[..], payload);
        }
    }

    #[tokio::test]
    async fn results_that_cannot_be_mapped_are_a_bad_gateway() {
        for payload in [
            &b"not json"[..],
            br#"{"statusCode":"x"}"#,
            br#"{"statusCode":1000}"#,
        ] {
            let (status, _, body) = parts(from_payload(Bytes::from(payload))).await;
            assert_eq!(status, 502, "{}", String::from_utf8_lossy(payload));
            assert_eq!(&body[..], b"Internal Server Error");
        }
    }

    #[tokio::test]
    async fn a_buffered_prelude_is_the_head() {
        let payload = b"{\"statusCode\":202,\"headers\":{\"x\":\"y\"},\"cookies\":[\"c=1\"]}\0\0\0\0\0\0\0\0body";
        let (status, headers, body) = parts(from_payload(Bytes::from_static(payload))).await;
        assert_eq!((status, &body[..]), (202, &b"body"[..]));
        assert_eq!(headers["x"], "y");
        assert_eq!(headers["set-cookie"], "c=1");
    }
}
