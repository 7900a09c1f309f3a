//! The REST API on the wire (plain HTTP, no SDK): status codes, headers and error bodies
//! as the Lambda API model defines them, and the Rust API and REST API sharing one core.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use lambda_testkit::{CodeZip, Emulator, Function, Runtime};
use rstest::{fixture, rstest};
use serde_json::{Value, json};

#[fixture]
async fn emu() -> Emulator {
    support::builder().start().await.expect("emulator starts")
}

struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn call(
    emu: &Emulator,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let tcp = tokio::net::TcpStream::connect(emu.endpoint_url().trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

fn create_body(name: &str, source: &str) -> String {
    let zip = CodeZip::new().source("app.py", source).build().unwrap();
    json!({
        "FunctionName": name,
        "Runtime": "python3.12",
        "Role": "arn:aws:iam::123456789012:role/test",
        "Handler": "app.handler",
        "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip.zip_bytes())},
    })
    .to_string()
}

#[rstest]
#[tokio::test]
async fn errors_carry_the_error_type_header_model_casing_and_a_request_id(#[future] emu: Emulator) {
    let emu = emu.await;
    let missing = call(&emu, "GET", "/2015-03-31/functions/nope", &[], "").await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("x-amzn-errortype"),
        Some("ResourceNotFoundException")
    );
    assert_eq!(
        missing.json(),
        json!({"Type": "User", "Message": "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope"})
    );
    assert!(
        missing
            .header("x-amzn-requestid")
            .is_some_and(|id| id.len() == 36)
    );

    let no_role = call(
        &emu,
        "POST",
        "/2015-03-31/functions",
        &[],
        r#"{"FunctionName":"f","Runtime":"provided.al2023","Code":{"ZipFile":""}}"#,
    )
    .await;
    assert_eq!(
        (no_role.status, no_role.header("x-amzn-errortype")),
        (400, Some("ValidationException")),
        "Role is required: {}",
        no_role.json()
    );
    assert!(
        no_role.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("'role'")),
        "{}",
        no_role.json()
    );

    let bad = call(
        &emu,
        "POST",
        "/2015-03-31/functions",
        &[],
        r#"{"FunctionName":"f","Role":"arn:aws:iam::123456789012:role/r","Code":{}}"#,
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.header("x-amzn-errortype"),
        Some("InvalidParameterValueException")
    );
    assert!(
        bad.json()["message"].is_string(),
        "lowercase message key: {}",
        bad.json()
    );

    let unknown = call(&emu, "GET", "/2015-03-31/event-source-mappings", &[], "").await;
    assert_eq!(
        (unknown.status, unknown.header("x-amzn-errortype")),
        (404, Some("UnknownOperationException"))
    );
    assert!(unknown.header("x-amzn-requestid").is_some());

    // A known path with a method it does not take (found by fuzz/fuzz_targets/rest.rs).
    let wrong_method = call(&emu, "PATCH", "/2015-03-31/functions", &[], "").await;
    assert_eq!(
        (wrong_method.status, wrong_method.header("x-amzn-errortype")),
        (404, Some("UnknownOperationException"))
    );
    assert!(
        wrong_method.json()["message"].is_string(),
        "{}",
        wrong_method.json()
    );
}

#[rstest]
#[tokio::test]
async fn status_codes_follow_the_model(#[future] emu: Emulator) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    let created = call(
        &emu,
        "POST",
        "/2015-03-31/functions",
        &[],
        create_body("f", "def handler(e, c):\n    return e\n"),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.json()["LastUpdateStatus"], "Successful");

    let concurrency = call(
        &emu,
        "PUT",
        "/2017-10-31/functions/f/concurrency",
        &[],
        r#"{"ReservedConcurrentExecutions":3}"#,
    )
    .await;
    assert_eq!(
        (concurrency.status, concurrency.json()),
        (200, json!({"ReservedConcurrentExecutions": 3}))
    );
    let function = call(&emu, "GET", "/2015-03-31/functions/f", &[], "").await;
    assert_eq!(
        function.json()["Concurrency"],
        json!({"ReservedConcurrentExecutions": 3})
    );
    let removed = call(
        &emu,
        "DELETE",
        "/2017-10-31/functions/f/concurrency",
        &[],
        "",
    )
    .await;
    assert_eq!(removed.status, 204);
    assert_eq!(
        call(&emu, "GET", "/2019-09-30/functions/f/concurrency", &[], "")
            .await
            .json(),
        json!({})
    );

    // Code.Location serves the deployed zip itself.
    let location = function.json()["Code"]["Location"]
        .as_str()
        .unwrap()
        .to_string();
    let path = location.trim_start_matches(emu.endpoint_url());
    let zip = call(&emu, "GET", path, &[], "").await;
    let sha = base64::engine::general_purpose::STANDARD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(&zip.body));
    assert_eq!(function.json()["Configuration"]["CodeSha256"], sha);

    let event = call(
        &emu,
        "POST",
        "/2015-03-31/functions/f/invocations",
        &[("x-amz-invocation-type", "Event")],
        "{}",
    )
    .await;
    assert_eq!(event.status, 202);
    let dry = call(
        &emu,
        "POST",
        "/2015-03-31/functions/f/invocations",
        &[("x-amz-invocation-type", "DryRun")],
        "",
    )
    .await;
    assert_eq!(dry.status, 204);
    let deleted = call(&emu, "DELETE", "/2015-03-31/functions/f", &[], "").await;
    assert_eq!(deleted.status, 200);
    assert!(emu.function("f").is_none());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn path_labels_are_split_before_percent_decoding(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    call(
        &emu,
        "POST",
        "/2015-03-31/functions",
        &[],
        create_body("my-fn", "def handler(e, c):\n    return 'ok'\n"),
    )
    .await;
    let latest = call(
        &emu,
        "POST",
        "/2015-03-31/functions/my-fn%3A%24LATEST/invocations",
        &[],
        "{}",
    )
    .await;
    assert_eq!((latest.status, &latest.body[..]), (200, &br#""ok""#[..]));
    let arn = "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn";
    let by_arn = call(
        &emu,
        "POST",
        &format!("/2015-03-31/functions/{arn}/invocations"),
        &[],
        "{}",
    )
    .await;
    assert_eq!(by_arn.status, 200);
    let alias = call(
        &emu,
        "POST",
        "/2015-03-31/functions/my-fn%3Aprod/invocations",
        &[],
        "{}",
    )
    .await;
    assert_eq!(alias.status, 404);
    assert!(
        alias.json()["Message"]
            .as_str()
            .unwrap()
            .ends_with("function:my-fn:prod"),
        "{}",
        alias.json()
    );
    let conflict = call(
        &emu,
        "POST",
        "/2015-03-31/functions/my-fn%3A%24LATEST/invocations?Qualifier=prod",
        &[],
        "{}",
    )
    .await;
    assert_eq!(conflict.status, 400);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn invoke_headers_tell_the_request_id_version_and_log_tail(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    call(
        &emu,
        "POST",
        "/2015-03-31/functions",
        &[],
        create_body(
            "f",
            "def handler(e, c):\n    print('in the log')\n    return 1\n",
        ),
    )
    .await;
    let out = call(
        &emu,
        "POST",
        "/2015-03-31/functions/f/invocations",
        &[("x-amz-log-type", "Tail")],
        "{}",
    )
    .await;
    assert_eq!(out.status, 200);
    assert_eq!(out.header("x-amz-executed-version"), Some("$LATEST"));
    assert!(out.header("x-amz-function-error").is_none());
    let log = base64::engine::general_purpose::STANDARD
        .decode(out.header("x-amz-log-result").unwrap())
        .unwrap();
    let log = String::from_utf8(log).unwrap();
    let request_id = out.header("x-amzn-requestid").unwrap();
    assert!(
        log.contains(&format!("START RequestId: {request_id}")),
        "the invocation's own id: {log}"
    );
    assert!(log.contains("in the log"));
    Ok(())
}

#[rstest]
#[tokio::test]
async fn streamed_invoke_is_an_event_stream(#[future] emu: Emulator) {
    let emu = emu.await;
    let Ok(f) = support::rust_function("streamer", "stream") else {
        return support::skip("stream fixture");
    };
    emu.deploy(f).await.unwrap();
    let out = call(
        &emu,
        "POST",
        "/2021-11-15/functions/streamer/response-streaming-invocations",
        &[("x-amz-log-type", "Tail")],
        r#"{"chunks":2,"delay_ms":1}"#,
    )
    .await;
    assert_eq!(out.status, 200);
    assert_eq!(
        out.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    let mut body = out.body.clone();
    let mut events = Vec::new();
    while !body.is_empty() {
        let len = u32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
        let frame = body.split_to(len);
        let headers_len = u32::from_be_bytes(frame[4..8].try_into().unwrap()) as usize;
        let payload = &frame[12 + headers_len..len - 4];
        let headers = String::from_utf8_lossy(&frame[12..12 + headers_len]).into_owned();
        let kind = if headers.contains("PayloadChunk") {
            "chunk"
        } else {
            "complete"
        };
        events.push((kind, String::from_utf8_lossy(payload).into_owned()));
    }
    let kinds: Vec<_> = events.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, ["chunk", "chunk", "chunk", "complete"]);
    assert_eq!(
        (events[1].1.as_str(), events[2].1.as_str()),
        ("chunk-0\n", "chunk-1\n")
    );
    let complete: Value = serde_json::from_str(&events[3].1).unwrap();
    assert!(complete.get("ErrorCode").is_none(), "{complete}");
    let log = base64::engine::general_purpose::STANDARD
        .decode(complete["LogResult"].as_str().unwrap())
        .unwrap();
    let request_id = out.header("x-amzn-requestid").unwrap();
    assert!(
        String::from_utf8(log)
            .unwrap()
            .contains(&format!("START RequestId: {request_id}")),
        "the invocation's id"
    );
}

#[rstest]
#[tokio::test]
async fn rest_and_rust_api_share_functions_updates_and_stats(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    let f = emu
        .deploy(
            Function::new("shared", Runtime::Python312)
                .handler("app.handler")
                .source(
                    "app.py",
                    "import os\ndef handler(e, c):\n    return os.environ.get('MODE', 'none')\n",
                ),
        )
        .await?;
    let config = f
        .update(|f| f.env("MODE", "updated").description("via rust"))
        .await?;
    assert_eq!(config.description, "via rust");
    let rest = call(
        &emu,
        "GET",
        "/2015-03-31/functions/shared/configuration",
        &[],
        "",
    )
    .await;
    assert_eq!(
        rest.json()["Environment"],
        json!({"Variables": {"MODE": "updated"}})
    );
    assert_eq!(rest.json()["Description"], "via rust");
    let out = call(
        &emu,
        "POST",
        "/2015-03-31/functions/shared/invocations",
        &[],
        "{}",
    )
    .await;
    assert_eq!(&out.body[..], br#""updated""#);

    f.invoke_event("{}")?;
    let started = Instant::now();
    while f.stats().invocations < 2 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(f.stats().invocations, 2, "{}", f.timeline_text());
    let too_big = f.invoke_event(vec![b' '; 1024 * 1024 + 1]).unwrap_err();
    assert!(
        matches!(too_big, lambda_testkit::InvokeError::RequestTooLarge { limit, .. } if limit == 1024 * 1024)
    );
    Ok(())
}
