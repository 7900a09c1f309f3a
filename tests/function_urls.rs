//! Function URLs end to end: real HTTP clients (reqwest, Python's urllib) against the URL
//! the emulator serves on loopback, real handlers behind it (awslambdaric, Node's
//! aws-lambda-ric, a `lambda_runtime` streaming binary) on both backends, and the control
//! plane through the Rust API, boto3 and aws-sdk-lambda.

mod support;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use lambda_testkit::urls::{
    AuthType, Cors, DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, FunctionUrl, FunctionUrlConfig,
    InvokeMode, UrlError,
};
use lambda_testkit::{BackendKind, Emulator, Function, FunctionHandle, Runtime};
use rstest::rstest;
use serde_json::{Value, json};

/// A Python handler that answers by path: the event itself (`/echo` and anything else),
/// a full HTTP result, a base64 result, a plain string, a plain dict, an exception.
const WEB_HANDLER: &str = r#"import base64

def handler(event, context):
    path = event["rawPath"]
    if path == "/created":
        return {
            "statusCode": 201,
            "headers": {"content-type": "text/plain", "x-made-by": "handler"},
            "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"],
            "body": "created",
        }
    if path == "/binary":
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/octet-stream"},
            "body": base64.b64encode(bytes([0, 1, 2, 255])).decode(),
            "isBase64Encoded": True,
        }
    if path == "/string":
        return "Hello, world!"
    if path == "/dict":
        return {"message": "hi"}
    if path == "/fail":
        raise ValueError("boom")
    return event
"#;

fn web_function() -> Function {
    Function::new("web", Runtime::Python311)
        .handler("app.handler")
        .source("app.py", WEB_HANDLER)
}

/// The emulator for `backend` with the web handler deployed and given a URL (a skip
/// reason when the backend cannot run Python).
async fn web(
    backend: BackendKind,
    config: FunctionUrlConfig,
) -> Result<(Emulator, FunctionHandle, FunctionUrl), String> {
    let emu = support::python_emulator(backend).await?;
    let f = emu
        .deploy(web_function())
        .await
        .expect("the web handler deploys");
    let url = f.create_url(config).await.expect("the URL is created");
    Ok((emu, f, url))
}

async fn json_of(response: reqwest::Response) -> anyhow::Result<Value> {
    Ok(serde_json::from_slice(&response.bytes().await?)?)
}

#[rstest]
#[tokio::test]
async fn a_get_reaches_the_handler_as_the_payload_2_0_event(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (_emu, _f, url) = require!(web(backend, FunctionUrlConfig::new()).await);
    let response = reqwest::Client::new()
        .get(format!("{}orders/42?size=L&tag=a&tag=b%20c", url.url()))
        .header("x-custom", "one")
        .header("x-custom", "two")
        .header("cookie", "session=abc; theme=dark")
        .header("user-agent", "function-urls-test")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let event = json_of(response).await?;
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "$default");
    assert_eq!(event["rawPath"], "/orders/42");
    assert_eq!(event["rawQueryString"], "size=L&tag=a&tag=b%20c");
    assert_eq!(
        event["queryStringParameters"],
        json!({"size": "L", "tag": "a,b c"})
    );
    assert_eq!(event["cookies"], json!(["session=abc", "theme=dark"]));
    let headers = &event["headers"];
    assert_eq!(headers["x-custom"], "one,two", "repeated headers joined");
    assert_eq!(headers["user-agent"], "function-urls-test");
    assert_eq!(
        headers["host"],
        url.url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
    );
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert!(
        headers["x-amzn-trace-id"]
            .as_str()
            .unwrap()
            .starts_with("Root=1-")
    );
    let context = &event["requestContext"];
    assert_eq!(context["accountId"], "anonymous");
    assert_eq!(context["apiId"], url.url_id.as_str());
    assert_eq!(context["domainPrefix"], url.url_id.as_str());
    assert_eq!(
        context["domainName"],
        format!("{}.lambda-url.us-east-1.on.aws", url.url_id)
    );
    assert_eq!(
        context["http"],
        json!({
            "method": "GET",
            "path": "/orders/42",
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "function-urls-test",
        })
    );
    assert_eq!(context["routeKey"], "$default");
    assert_eq!(context["stage"], "$default");
    assert!(
        context["requestId"]
            .as_str()
            .is_some_and(|id| id.len() == 36)
    );
    assert!(context["time"].as_str().unwrap().ends_with(" +0000"));
    assert!(context["timeEpoch"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(event.get("body").is_none(), "no body on a GET");
    assert_eq!(event["isBase64Encoded"], false);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_binary_body_arrives_base64_and_a_json_body_as_text(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (_emu, _f, url) = require!(web(backend, FunctionUrlConfig::new()).await);
    let client = reqwest::Client::new();
    let binary = client
        .post(format!("{}upload", url.url()))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 1, 2, 255])
        .send()
        .await?;
    let event = json_of(binary).await?;
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
    assert_eq!(event["body"], "AAEC/w==");
    assert_eq!(event["isBase64Encoded"], true);
    let text = client
        .post(format!("{}upload", url.url()))
        .header("content-type", "application/json")
        .body(r#"{"name":"ada"}"#)
        .send()
        .await?;
    let event = json_of(text).await?;
    assert_eq!(event["body"], r#"{"name":"ada"}"#);
    assert_eq!(event["isBase64Encoded"], false);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_result_with_status_code_is_the_http_response(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (_emu, _f, url) = require!(web(backend, FunctionUrlConfig::new()).await);
    let response = reqwest::get(format!("{}created", url.url())).await?;
    assert_eq!(response.status(), 201);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["x-made-by"], "handler");
    let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["session=abc; Path=/; HttpOnly", "theme=dark"]);
    assert_eq!(response.text().await?, "created");

    let binary = reqwest::get(format!("{}binary", url.url())).await?;
    assert_eq!(binary.headers()["content-type"], "application/octet-stream");
    assert_eq!(&binary.bytes().await?[..], [0, 1, 2, 255], "base64 decoded");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_plain_result_is_200_application_json(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (_emu, _f, url) = require!(web(backend, FunctionUrlConfig::new()).await);
    let string = reqwest::get(format!("{}string", url.url())).await?;
    assert_eq!(string.status(), 200);
    assert_eq!(string.headers()["content-type"], "application/json");
    assert_eq!(string.text().await?, r#""Hello, world!""#);
    let dict = reqwest::get(format!("{}dict", url.url())).await?;
    assert_eq!(dict.status(), 200);
    assert_eq!(dict.headers()["content-type"], "application/json");
    assert_eq!(json_of(dict).await?, json!({"message": "hi"}));
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_function_error_is_502(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (_emu, f, url) = require!(web(backend, FunctionUrlConfig::new()).await);
    let response = reqwest::get(format!("{}fail", url.url())).await?;
    assert_eq!(response.status(), 502);
    assert_eq!(response.text().await?, "Internal Server Error");
    assert_eq!(f.stats().errors, 1, "{}", f.timeline_text());
    Ok(())
}

/// Reads a response chunk by chunk: the chunks and when each arrived.
async fn chunks(mut response: reqwest::Response) -> anyhow::Result<Vec<(Instant, String)>> {
    let mut chunks = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        chunks.push((Instant::now(), String::from_utf8_lossy(&chunk).into_owned()));
    }
    Ok(chunks)
}

#[rstest]
#[tokio::test]
async fn a_streaming_url_sends_lambda_runtime_chunks_as_they_are_flushed(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::emulator(backend).await);
    // The URL event has no `chunks` / `delay_ms`: 3 chunks, 50 ms apart.
    let f = emu
        .deploy(require!(support::rust_function("streamer", "stream")))
        .await?;
    let url = f
        .create_url(FunctionUrlConfig::new().invoke_mode(InvokeMode::ResponseStream))
        .await?;
    let response = reqwest::get(url.url()).await?;
    assert_eq!(response.status(), 200, "lambda_runtime's prelude");
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let chunks = chunks(response).await?;
    let body: String = chunks.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(body, "chunk-0\nchunk-1\nchunk-2\n");
    assert_eq!(chunks[0].1, "chunk-0\n", "the first chunk came on its own");
    let spread = chunks.last().unwrap().0 - chunks[0].0;
    assert!(
        spread >= Duration::from_millis(80),
        "the first chunk came only {spread:?} before the last; the handler slept 2 x 50 ms"
    );
    Ok(())
}

const NODE_HTTP_STREAM: &str = r#"export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const http = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: { "content-type": "text/plain", "x-stream": "yes" },
    cookies: ["session=abc"],
  });
  http.write("first ");
  await new Promise((resolve) => setTimeout(resolve, 300));
  http.write("second");
  http.end();
});
"#;

#[rstest]
#[tokio::test]
async fn a_streaming_url_takes_its_head_from_node_http_response_stream(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, 22).await);
    let f = emu
        .deploy(
            Function::new("node-stream", Runtime::Nodejs22)
                .handler("index.handler")
                .source("index.mjs", NODE_HTTP_STREAM),
        )
        .await?;
    let url = f
        .create_url(FunctionUrlConfig::new().invoke_mode(InvokeMode::ResponseStream))
        .await?;
    let response = reqwest::get(format!("{}page", url.url())).await?;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.headers()["x-stream"], "yes");
    assert_eq!(response.headers()["set-cookie"], "session=abc");
    let chunks = chunks(response).await?;
    let texts: Vec<&str> = chunks.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(texts, ["first ", "second"]);
    let gap = chunks[1].0 - chunks[0].0;
    assert!(
        gap >= Duration::from_millis(250),
        "the chunks came {gap:?} apart; the handler waited 300 ms between them"
    );
    Ok(())
}

#[tokio::test]
async fn a_stream_that_fails_midway_is_cut() -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(BackendKind::Process, 22).await);
    let f = emu
        .deploy(support::node_function(
            "node-fail",
            22,
            "streaming.mjs",
            "failMidway",
        ))
        .await?;
    let url = f
        .create_url(FunctionUrlConfig::new().invoke_mode(InvokeMode::ResponseStream))
        .await?;
    let mut response = reqwest::get(url.url()).await?;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await?.expect("the chunk before the error");
    assert_eq!(&first[..], b"partial ");
    let mut rest = Vec::new();
    let ended = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => rest.push(chunk),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        ended.is_err(),
        "the body ended cleanly after {rest:?}; Lambda cuts it"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn cors_preflight_is_answered_by_the_url_and_responses_carry_cors_headers(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let cors = Cors::new()
        .allow_origins(["https://app.example.com"])
        .allow_methods(["GET", "POST"])
        .allow_headers(["content-type", "x-custom"])
        .expose_headers(["x-made-by"])
        .allow_credentials(true)
        .max_age(300);
    let (_emu, f, url) = require!(web(backend, FunctionUrlConfig::new().cors(cors)).await);
    let client = reqwest::Client::new();
    let preflight = client
        .request(reqwest::Method::OPTIONS, format!("{}created", url.url()))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await?;
    assert_eq!(preflight.status(), 200);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-methods"], "GET,POST");
    assert_eq!(h["access-control-allow-headers"], "content-type,x-custom");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-max-age"], "300");
    assert_eq!(f.stats().invocations, 0, "the URL answered the preflight");

    let response = client
        .get(format!("{}created", url.url()))
        .header("origin", "https://app.example.com")
        .send()
        .await?;
    assert_eq!(response.status(), 201);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-expose-headers"], "x-made-by");
    let other = client
        .get(format!("{}created", url.url()))
        .header("origin", "https://other.example.com")
        .send()
        .await?;
    assert!(
        !other.headers().contains_key("access-control-allow-origin"),
        "an origin that is not allowed gets no CORS headers"
    );
    Ok(())
}

/// Signs `request` with SigV4 for service `lambda` in us-east-1, as an AWS SDK would.
fn sign(request: &mut reqwest::Request, key: &str, secret: &str) {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
    let identity = Credentials::new(key, secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("lambda")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let body = request
        .body()
        .and_then(|b| b.as_bytes())
        .unwrap_or_default();
    let signable = SignableRequest::new(
        request.method().as_str(),
        request.url().as_str(),
        request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().expect("ASCII header"))),
        SignableBody::Bytes(body),
    )
    .expect("signable request");
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .expect("signed")
        .into_parts();
    for (name, value) in instructions.headers() {
        request.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
}

#[rstest]
#[tokio::test]
async fn aws_iam_refuses_unsigned_requests_and_accepts_the_dummy_credentials(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (_emu, f, url) =
        require!(web(backend, FunctionUrlConfig::new().auth(AuthType::AwsIam)).await);
    let client = reqwest::Client::new();
    let unsigned = client.get(format!("{}echo", url.url())).send().await?;
    assert_eq!(unsigned.status(), 403);
    assert_eq!(json_of(unsigned).await?, json!({"Message": "Forbidden"}));

    let mut request = client
        .post(format!("{}echo?signed=yes", url.url()))
        .header("content-type", "application/json")
        .body(r#"{"a":1}"#)
        .build()?;
    sign(&mut request, DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY);
    let signed = client.execute(request).await?;
    assert_eq!(signed.status(), 200);
    let event = json_of(signed).await?;
    assert_eq!(event["body"], r#"{"a":1}"#);
    let iam = &event["requestContext"]["authorizer"]["iam"];
    assert_eq!(iam["accessKey"], DUMMY_ACCESS_KEY_ID);
    assert_eq!(iam["accountId"], "123456789012");
    assert_eq!(event["requestContext"]["accountId"], "123456789012");

    let mut forged = client.get(format!("{}echo", url.url())).build()?;
    sign(&mut forged, DUMMY_ACCESS_KEY_ID, "not-the-secret");
    assert_eq!(client.execute(forged).await?.status(), 403);
    assert_eq!(f.stats().invocations, 1, "only the signed request ran");
    Ok(())
}

#[tokio::test]
async fn url_configs_follow_lambdas_rules_through_the_rust_api() -> anyhow::Result<()> {
    let emu = require!(support::python_emulator(BackendKind::Process).await);
    let f = emu.deploy(web_function()).await?;
    assert!(f.url().is_none());
    let url = f.create_url(FunctionUrlConfig::new()).await?;
    assert!(url.url().starts_with("http://127.0.0.1:"), "{}", url.url());
    assert!(url.url().ends_with('/'));
    assert_eq!(
        url.function_arn,
        "arn:aws:lambda:us-east-1:123456789012:function:web"
    );
    assert_eq!(
        (url.auth_type, url.invoke_mode),
        (AuthType::None, InvokeMode::Buffered)
    );
    assert_eq!(f.url().as_ref(), Some(&url));
    assert!(matches!(
        f.create_url(FunctionUrlConfig::new()).await,
        Err(UrlError::Exists(_))
    ));
    for refused in ["1", "$LATEST"] {
        assert!(matches!(
            f.create_url(FunctionUrlConfig::new().qualifier(refused))
                .await,
            Err(UrlError::Validation(_))
        ));
    }
    assert!(matches!(
        f.create_url(FunctionUrlConfig::new().qualifier("live"))
            .await,
        Err(UrlError::FunctionNotFound(_))
    ));

    let updated = f.update_url(FunctionUrlConfig::new().auth(AuthType::AwsIam))?;
    assert_eq!(updated.url(), url.url(), "an update keeps the address");
    assert_eq!(updated.creation_time, url.creation_time);
    let response = reqwest::get(format!("{}echo", url.url())).await?;
    assert_eq!(response.status(), 403, "the new auth type applies at once");

    f.delete_url(None)?;
    assert!(f.url().is_none());
    assert!(matches!(f.delete_url(None), Err(UrlError::NotFound(_))));
    let gone = reqwest::get(url.url()).await;
    assert!(
        gone.as_ref().is_err() || gone.as_ref().is_ok_and(|r| r.status() == 404),
        "{gone:?}"
    );

    let again = f.create_url(FunctionUrlConfig::new()).await?;
    assert_ne!(again.url_id, url.url_id, "a new URL has a new id");
    emu.delete_function("web")?;
    assert!(
        f.urls().is_empty(),
        "deleting the function deletes its URLs"
    );
    assert!(reqwest::get(again.url()).await.is_err());
    Ok(())
}

#[tokio::test]
async fn reserved_concurrency_zero_turns_a_url_off_with_429() -> anyhow::Result<()> {
    let (_emu, f, url) = require!(web(BackendKind::Process, FunctionUrlConfig::new()).await);
    f.update(|f| f.reserved_concurrency(0)).await?;
    let response = reqwest::get(format!("{}echo", url.url())).await?;
    assert_eq!(
        response.status(),
        429,
        "AWS: throttled function URLs answer 429"
    );
    f.update(|f| f.reserved_concurrency(5)).await?;
    assert_eq!(
        reqwest::get(format!("{}echo", url.url())).await?.status(),
        200
    );
    Ok(())
}

/// Runs a boto3 script against the emulator's REST endpoint (from a blocking thread: the
/// emulator keeps serving on the test's runtime); panics with its output on failure.
async fn boto3(endpoint: &str, script: &'static str) -> Result<Value, String> {
    let python = support::python()?;
    let endpoint = endpoint.to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg("-c")
            .arg(script)
            .env("LAMBDA_ENDPOINT", endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("python runs")
    })
    .await
    .expect("the script's thread");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "boto3 script failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_str(stdout.trim()).expect("the script prints JSON"))
}

const BOTO3_URLS: &str = r#"
import json, os, urllib.request, urllib.error
import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

client = boto3.client("lambda", endpoint_url=os.environ["LAMBDA_ENDPOINT"], region_name="us-east-1")

def error(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        return [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
    return None

out = {}
created = client.create_function_url_config(
    FunctionName="web", AuthType="NONE",
    Cors={"AllowOrigins": ["*"], "AllowMethods": ["GET"], "MaxAge": 60},
)
out["created_status"] = created["ResponseMetadata"]["HTTPStatusCode"]
out["created"] = {k: created.get(k) for k in ("FunctionUrl", "FunctionArn", "AuthType", "Cors", "InvokeMode", "CreationTime")}
url = created["FunctionUrl"]
with urllib.request.urlopen(url + "echo?via=boto3") as r:
    out["event"] = json.loads(r.read())

out["duplicate"] = error(client.create_function_url_config, FunctionName="web", AuthType="NONE")
out["version"] = error(client.create_function_url_config, FunctionName="web", AuthType="NONE", Qualifier="1")
out["missing_alias"] = error(client.create_function_url_config, FunctionName="web", AuthType="NONE", Qualifier="live")
out["missing_function"] = error(client.get_function_url_config, FunctionName="nope")
out["bad_auth"] = error(client.create_function_url_config, FunctionName="web", AuthType="SOMETIMES")

updated = client.update_function_url_config(FunctionName="web", AuthType="AWS_IAM")
out["updated"] = {k: updated.get(k) for k in ("FunctionUrl", "AuthType", "Cors", "InvokeMode", "LastModifiedTime")}
got = client.get_function_url_config(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:web")
out["got"] = {k: got.get(k) for k in ("FunctionUrl", "AuthType", "CreationTime", "LastModifiedTime")}
listed = client.list_function_url_configs(FunctionName="web")
out["listed"] = [c["FunctionUrl"] for c in listed["FunctionUrlConfigs"]]

try:
    urllib.request.urlopen(url + "echo")
    out["unsigned"] = None
except urllib.error.HTTPError as e:
    out["unsigned"] = [e.code, json.loads(e.read())]

signed = AWSRequest(method="GET", url=url + "echo?signed=botocore")
SigV4Auth(Credentials("ASIAEMULATOREXAMPLE", "lambda-testkit-dummy-secret"), "lambda", "us-east-1").add_auth(signed)
with urllib.request.urlopen(urllib.request.Request(url + "echo?signed=botocore", headers=dict(signed.headers))) as r:
    event = json.loads(r.read())
    out["signed"] = [r.status, event["requestContext"]["authorizer"]["iam"]["accessKey"]]

client.delete_function_url_config(FunctionName="web")
out["after_delete"] = error(client.get_function_url_config, FunctionName="web")
out["listed_after_delete"] = client.list_function_url_configs(FunctionName="web")["FunctionUrlConfigs"]
print(json.dumps(out))
"#;

#[tokio::test]
async fn boto3_manages_a_url_and_calls_what_it_returns() -> anyhow::Result<()> {
    let emu = require!(support::python_emulator(BackendKind::Process).await);
    emu.deploy(web_function()).await?;
    let out = require!(boto3(emu.endpoint_url(), BOTO3_URLS).await);
    assert_eq!(out["created_status"], 201);
    let created = &out["created"];
    let url = created["FunctionUrl"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(
        created["FunctionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:web"
    );
    assert_eq!(created["AuthType"], "NONE");
    assert_eq!(created["InvokeMode"], "BUFFERED");
    assert_eq!(
        created["Cors"],
        json!({"AllowOrigins": ["*"], "AllowMethods": ["GET"], "MaxAge": 60})
    );
    assert!(created["CreationTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        out["event"]["queryStringParameters"],
        json!({"via": "boto3"})
    );
    assert_eq!(out["duplicate"], json!(["ResourceConflictException", 409]));
    assert_eq!(out["version"], json!(["ValidationException", 400]));
    assert_eq!(
        out["missing_alias"],
        json!(["ResourceNotFoundException", 404])
    );
    assert_eq!(
        out["missing_function"],
        json!(["ResourceNotFoundException", 404])
    );
    assert_eq!(out["bad_auth"], json!(["ValidationException", 400]));
    assert_eq!(out["updated"]["AuthType"], "AWS_IAM");
    assert_eq!(out["updated"]["FunctionUrl"], url, "the address stays");
    assert_eq!(
        out["updated"]["Cors"]["AllowOrigins"],
        json!(["*"]),
        "members not given stay"
    );
    assert_eq!(out["got"]["AuthType"], "AWS_IAM");
    assert_eq!(out["listed"], json!([url]));
    assert_eq!(out["unsigned"], json!([403, {"Message": "Forbidden"}]));
    assert_eq!(out["signed"], json!([200, DUMMY_ACCESS_KEY_ID]));
    assert_eq!(
        out["after_delete"],
        json!(["ResourceNotFoundException", 404])
    );
    assert_eq!(out["listed_after_delete"], json!([]));
    Ok(())
}

#[cfg(feature = "sdk")]
#[tokio::test]
async fn aws_sdk_lambda_manages_a_url_with_the_models_shapes() -> anyhow::Result<()> {
    use aws_sdk_lambda::types::{FunctionUrlAuthType, InvokeMode as SdkInvokeMode};
    let emu = require!(support::python_emulator(BackendKind::Process).await);
    emu.deploy(web_function()).await?;
    let client = emu.lambda_client();
    let created = client
        .create_function_url_config()
        .function_name("web")
        .auth_type(FunctionUrlAuthType::None)
        .cors(
            aws_sdk_lambda::types::Cors::builder()
                .allow_origins("https://app.example.com")
                .allow_credentials(true)
                .max_age(30)
                .build(),
        )
        .invoke_mode(SdkInvokeMode::Buffered)
        .send()
        .await?;
    let url = created.function_url().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(created.auth_type(), &FunctionUrlAuthType::None);
    let cors = created.cors().expect("Cors");
    assert_eq!(cors.allow_origins(), ["https://app.example.com"]);
    assert_eq!(
        (cors.allow_credentials(), cors.max_age()),
        (Some(true), Some(30))
    );
    let response = reqwest::get(format!("{url}dict")).await?;
    assert_eq!(json_of(response).await?, json!({"message": "hi"}));

    let duplicate = client
        .create_function_url_config()
        .function_name("web")
        .auth_type(FunctionUrlAuthType::None)
        .send()
        .await
        .expect_err("a second URL for the function");
    assert!(
        duplicate
            .into_service_error()
            .is_resource_conflict_exception()
    );

    let updated = client
        .update_function_url_config()
        .function_name("web")
        .invoke_mode(SdkInvokeMode::ResponseStream)
        .send()
        .await?;
    assert_eq!(updated.invoke_mode(), Some(&SdkInvokeMode::ResponseStream));
    assert_eq!(updated.function_url(), url);
    let got = client
        .get_function_url_config()
        .function_name("web")
        .send()
        .await?;
    assert_eq!(got.invoke_mode(), Some(&SdkInvokeMode::ResponseStream));
    assert!(!got.last_modified_time().is_empty());
    let listed = client
        .list_function_url_configs()
        .function_name("web")
        .send()
        .await?;
    assert_eq!(listed.function_url_configs().len(), 1);
    assert_eq!(listed.function_url_configs()[0].function_url(), url);

    client
        .delete_function_url_config()
        .function_name("web")
        .send()
        .await?;
    let missing = client
        .get_function_url_config()
        .function_name("web")
        .send()
        .await
        .expect_err("deleted");
    assert!(
        missing
            .into_service_error()
            .is_resource_not_found_exception()
    );
    Ok(())
}
