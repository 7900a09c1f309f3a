//! CORS as a function URL applies its `Cors` config (AWS "Creating and managing Lambda
//! function URLs", CORS): a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) is answered by the URL without invoking the function;
//! every other response to a request with an allowed `Origin` carries
//! `Access-Control-Allow-Origin`, `-Expose-Headers` and `-Allow-Credentials`, which take
//! precedence over the same headers set by the handler. An origin that is not allowed
//! gets no CORS headers (the browser then refuses the response).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

use crate::urls::Cors;

/// Whether a request is a CORS preflight.
pub(super) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key("origin")
        && headers.contains_key("access-control-request-method")
}

/// The `Access-Control-Allow-Origin` value for `origin`, if it is allowed.
fn allowed_origin(cors: &Cors, origin: &str) -> Option<String> {
    if cors.allow_origins.iter().any(|o| o == "*") {
        Some("*".to_string())
    } else {
        cors.allow_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| origin.to_string())
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn set_list(headers: &mut HeaderMap, name: &'static str, values: &[String]) {
    if !values.is_empty() {
        set(headers, name, &values.join(","));
    }
}

/// The headers every CORS answer to `origin` carries; false when it is not allowed.
fn origin_headers(cors: &Cors, request: &HeaderMap, headers: &mut HeaderMap) -> bool {
    let Some(origin) = request.get("origin").and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let Some(allowed) = allowed_origin(cors, origin) else {
        return false;
    };
    if allowed != "*" {
        headers.append("vary", HeaderValue::from_static("Origin"));
    }
    set(headers, "access-control-allow-origin", &allowed);
    if cors.allow_credentials == Some(true) {
        set(headers, "access-control-allow-credentials", "true");
    }
    true
}

/// The URL's own answer to a preflight: 200, with the allowed methods, headers and max
/// age for an allowed origin.
pub(super) fn preflight(cors: &Cors, request: &HeaderMap) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    if origin_headers(cors, request, headers) {
        set_list(headers, "access-control-allow-methods", &cors.allow_methods);
        set_list(headers, "access-control-allow-headers", &cors.allow_headers);
        set_list(
            headers,
            "access-control-expose-headers",
            &cors.expose_headers,
        );
        if let Some(age) = cors.max_age {
            set(headers, "access-control-max-age", &age.to_string());
        }
    }
    response
}

/// Adds the CORS headers to the response to a request with `request` headers.
pub(super) fn decorate(cors: &Cors, request: &HeaderMap, response: &mut HeaderMap) {
    if origin_headers(cors, request, response) {
        set_list(
            response,
            "access-control-expose-headers",
            &cors.expose_headers,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("origin", HeaderValue::from_str(origin).unwrap());
        h.insert(
            "access-control-request-method",
            HeaderValue::from_static("PUT"),
        );
        h
    }

    #[test]
    fn preflight_lists_what_the_config_allows_for_an_allowed_origin() {
        let cors = Cors::new()
            .allow_origins(["https://app.example.com"])
            .allow_methods(["GET", "PUT"])
            .allow_headers(["content-type", "x-custom"])
            .allow_credentials(true)
            .max_age(300);
        let response = preflight(&cors, &request("https://app.example.com"));
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(h["access-control-allow-methods"], "GET,PUT");
        assert_eq!(h["access-control-allow-headers"], "content-type,x-custom");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(h["access-control-max-age"], "300");
        assert_eq!(h["vary"], "Origin");
        let refused = preflight(&cors, &request("https://evil.example.com"));
        assert!(
            !refused
                .headers()
                .contains_key("access-control-allow-origin")
        );
        assert_eq!(refused.status(), StatusCode::OK);
    }

    #[test]
    fn responses_get_the_origin_and_the_config_wins_over_the_handler() {
        let cors = Cors::new().allow_origins(["*"]).expose_headers(["x-id"]);
        let mut response = HeaderMap::new();
        response.insert(
            "access-control-allow-origin",
            HeaderValue::from_static("https://h"),
        );
        decorate(&cors, &request("https://any.example.com"), &mut response);
        assert_eq!(response["access-control-allow-origin"], "*");
        assert_eq!(response["access-control-expose-headers"], "x-id");
        let mut untouched = HeaderMap::new();
        decorate(&cors, &HeaderMap::new(), &mut untouched);
        assert!(untouched.is_empty(), "no Origin, no CORS headers");
    }
}
