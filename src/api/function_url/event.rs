//! An HTTP request as the event a function URL invokes its function with: API Gateway's
//! payload format version 2.0 (AWS "Invoking Lambda function URLs", request payload).
//!
//! - `headers`: names lowercased, repeated headers joined with `,`; Lambda's front end
//!   adds `x-amzn-trace-id`, `x-forwarded-for`, `x-forwarded-proto` and
//!   `x-forwarded-port` (here `http` and the listener's port).
//! - `cookies`: every `cookie` header split at `;` (the header itself stays in `headers`,
//!   as Lambda sends it); absent without cookies.
//! - `queryStringParameters`: decoded, repeated keys joined with `,`; absent without a
//!   query. `rawQueryString` is the query as sent, without `?`.
//! - `body`: text for `text/*`, `application/json`, `application/javascript` and
//!   `application/xml` (the content types Lambda passes as text), base64 with
//!   `isBase64Encoded: true` for anything else (`application/x-www-form-urlencoded` and a
//!   missing `content-type` included); absent when empty.
//! - `requestContext.accountId` is `anonymous` for an `AuthType: NONE` URL, the owner's
//!   account for `AWS_IAM`, where `authorizer.iam` names the caller.

use axum::http::request::Parts;
use base64::Engine;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::sigv4::Caller;
use crate::urls::{AuthType, FunctionUrl};

/// What the event needs besides the request itself.
pub(super) struct RequestInfo<'a> {
    pub(super) url: &'a FunctionUrl,
    /// The account owning the function.
    pub(super) account_id: &'a str,
    /// The peer's address (`requestContext.http.sourceIp`).
    pub(super) source_ip: String,
    /// The listener's port (`x-forwarded-port`).
    pub(super) port: u16,
    pub(super) request_id: &'a str,
    /// The `x-amzn-trace-id` the invocation carries.
    pub(super) trace_id: &'a str,
    pub(super) time: OffsetDateTime,
    /// The verified signer of an `AWS_IAM` request.
    pub(super) caller: Option<&'a Caller>,
}

/// Whether Lambda passes a body of this content type as text.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("text/")
        || matches!(
            mime.as_str(),
            "application/json" | "application/javascript" | "application/xml"
        )
}

/// `requestContext.time`: `12/Mar/2020:19:03:58 +0000`.
fn clf_time(time: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    time.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

fn text(value: &axum::http::HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

/// The payload format 2.0 event for the request `parts` with `body`.
pub(super) fn event(parts: &Parts, body: &[u8], info: &RequestInfo<'_>) -> Value {
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let joined: Vec<String> = parts.headers.get_all(name).iter().map(text).collect();
        headers.insert(name.as_str().to_string(), joined.join(",").into());
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(Value::as_str) {
        Some(earlier) => format!("{earlier}, {}", info.source_ip),
        None => info.source_ip.clone(),
    };
    headers.insert("x-forwarded-for".into(), forwarded_for.into());
    headers.insert("x-forwarded-proto".into(), "http".into());
    headers.insert("x-forwarded-port".into(), info.port.to_string().into());
    headers.insert("x-amzn-trace-id".into(), info.trace_id.into());

    let cookies: Vec<String> = parts
        .headers
        .get_all("cookie")
        .iter()
        .flat_map(|v| {
            text(v)
                .split(';')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();

    let raw_query = parts.uri.query().unwrap_or_default();
    let mut query = Map::new();
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        match query.get_mut(key.as_ref()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                query.insert(key.into_owned(), value.into_owned().into());
            }
        }
    }

    let url = info.url;
    let user_agent = parts
        .headers
        .get("user-agent")
        .map(text)
        .unwrap_or_default();
    let mut context = json!({
        "accountId": match url.auth_type {
            AuthType::AwsIam => info.account_id,
            AuthType::None => "anonymous",
        },
        "apiId": url.url_id,
        "domainName": url.domain_name,
        "domainPrefix": url.url_id,
        "http": {
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "protocol": format!("{:?}", parts.version),
            "sourceIp": info.source_ip,
            "userAgent": user_agent,
        },
        "requestId": info.request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": clf_time(info.time),
        "timeEpoch": (info.time.unix_timestamp_nanos() / 1_000_000) as i64,
    });
    if let Some(caller) = info.caller {
        context["authorizer"] = json!({
            "iam": {
                "accessKey": caller.access_key,
                "accountId": info.account_id,
                "callerId": caller.user_id(),
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": caller.user_arn(info.account_id),
                "userId": caller.user_id(),
            }
        });
    }

    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": false,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !body.is_empty() {
        let content_type = parts.headers.get("content-type").map(text);
        match std::str::from_utf8(body) {
            Ok(text) if is_text(content_type.as_deref()) => event["body"] = text.into(),
            _ => {
                event["body"] = base64::engine::general_purpose::STANDARD
                    .encode(body)
                    .into();
                event["isBase64Encoded"] = true.into();
            }
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::urls::InvokeMode;

    fn url(auth_type: AuthType) -> FunctionUrl {
        FunctionUrl {
            function_url: "http://127.0.0.1:9/".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            function_name: "f".into(),
            qualifier: None,
            url_id: "abcdefghijklmnopqrstuvwxyz012345".into(),
            domain_name: "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws".into(),
            auth_type,
            cors: None,
            invoke_mode: InvokeMode::Buffered,
            creation_time: String::new(),
            last_modified_time: String::new(),
        }
    }

    fn build(request: axum::http::Request<()>, body: &[u8], url: &FunctionUrl) -> Value {
        let (parts, ()) = request.into_parts();
        let info = RequestInfo {
            url,
            account_id: "123456789012",
            source_ip: "127.0.0.1".into(),
            port: 9,
            request_id: "req-1",
            trace_id: "Root=1-00000000-000000000000000000000000",
            time: OffsetDateTime::from_unix_timestamp(1_583_348_638).unwrap()
                + time::Duration::milliseconds(390),
            caller: None,
        };
        event(&parts, body, &info)
    }

    #[test]
    fn a_get_becomes_the_documented_2_0_event() {
        let request = axum::http::Request::get(
            "/my/path?parameter1=value1&parameter1=value2&parameter2=a%20b",
        )
        .header("Header2", "value1")
        .header("header2", "value2")
        .header("cookie", "cookie1=a; cookie2=b")
        .header("user-agent", "agent")
        .body(())
        .unwrap();
        let e = build(request, b"", &url(AuthType::None));
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "$default");
        assert_eq!(e["rawPath"], "/my/path");
        assert_eq!(
            e["rawQueryString"],
            "parameter1=value1&parameter1=value2&parameter2=a%20b"
        );
        assert_eq!(e["cookies"], json!(["cookie1=a", "cookie2=b"]));
        assert_eq!(e["headers"]["header2"], "value1,value2");
        assert_eq!(
            e["queryStringParameters"],
            json!({"parameter1": "value1,value2", "parameter2": "a b"})
        );
        let c = &e["requestContext"];
        assert_eq!(c["accountId"], "anonymous");
        assert_eq!(c["apiId"], "abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(c["domainPrefix"], c["apiId"]);
        assert_eq!(
            c["http"],
            json!({"method": "GET", "path": "/my/path", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "agent"})
        );
        assert_eq!(c["stage"], "$default");
        assert_eq!(c["time"], "04/Mar/2020:19:03:58 +0000");
        assert_eq!(c["timeEpoch"], 1_583_348_638_390_i64);
        assert!(e.get("body").is_none());
        assert_eq!(e["isBase64Encoded"], false);
        assert!(c.get("authorizer").is_none());
    }

    #[test]
    fn no_query_and_no_cookies_leave_their_members_out() {
        let request = axum::http::Request::get("/").body(()).unwrap();
        let e = build(request, b"", &url(AuthType::None));
        assert!(e.get("queryStringParameters").is_none());
        assert!(e.get("cookies").is_none());
        assert_eq!(e["rawQueryString"], "");
    }

    #[test]
    fn text_bodies_stay_text_and_others_are_base64() {
        for (content_type, text) in [
            (Some("application/json; charset=utf-8"), true),
            (Some("text/plain"), true),
            (Some("application/xml"), true),
            (Some("application/x-www-form-urlencoded"), false),
            (Some("application/octet-stream"), false),
            (None, false),
        ] {
            let mut request = axum::http::Request::post("/");
            if let Some(ct) = content_type {
                request = request.header("content-type", ct);
            }
            let e = build(request.body(()).unwrap(), b"a=1", &url(AuthType::None));
            assert_eq!(e["isBase64Encoded"], !text, "{content_type:?}");
            assert_eq!(e["body"], if text { "a=1" } else { "YT0x" });
        }
        let request = axum::http::Request::post("/")
            .header("content-type", "text/plain")
            .body(())
            .unwrap();
        let e = build(request, &[0xff, 0xfe], &url(AuthType::None));
        assert_eq!(e["isBase64Encoded"], true, "text that is not UTF-8");
    }
}
