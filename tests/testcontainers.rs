//! The emulator as a testcontainers module: `LambdaTestkit` starts the `lambda-testkit
//! serve` image through testcontainers, waits for serve's ready line, and a client on the
//! host deploys and invokes functions (a Rust `lambda_runtime` binary and a Python
//! handler, both on the process backend inside the container) over the mapped port.
//!
//! The image is built by `scripts/serve-image` from the binary cargo built for this test
//! (cached by its inputs' hash), FROM the local stand-in `lambda-testkit/python:3.11`.
//! Skipped without Docker, the stand-in or the Rust fixtures; failed instead with
//! `LAMBDA_TESTKIT_REQUIRE_ALL=1`.

mod support;

use std::time::Instant;

use base64::Engine;
use lambda_testkit::CodeZip;
use lambda_testkit::testcontainers::{IMAGE_NAME, LambdaTestkit, endpoint_url};
use serde_json::{Value, json};
use testcontainers::ImageExt;
use testcontainers::runners::AsyncRunner;

/// POSTs `body` as JSON to the emulator's `path`; the status and the body.
async fn post(url: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let response = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body)?)
        .send()
        .await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    Ok((status, serde_json::from_slice(&bytes)?))
}

fn zip_file(code: CodeZip) -> anyhow::Result<String> {
    let package = code.build()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(package.zip_bytes()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_serve_container_started_by_testcontainers_runs_rust_and_python_functions()
-> anyhow::Result<()> {
    let tag = require!(support::serve_image(env!("CARGO_BIN_EXE_lambda-testkit")));
    let echo = require!(support::rust_fixture("echo"));
    let (_, hash) = tag.split_once(':').expect("repo:tag");
    let started = Instant::now();
    let lambda = LambdaTestkit::default()
        .with_region("eu-west-1")
        .with_tag(hash)
        .with_label(support::TEST_RUN_LABEL, support::test_run())
        .start()
        .await?;
    eprintln!("{IMAGE_NAME}:{hash} ready in {:?}", started.elapsed());
    let url = endpoint_url(&lambda).await?;
    assert!(url.starts_with("http://"), "{url}");

    let (status, created) = post(
        &url,
        "/2015-03-31/functions",
        &json!({
            "FunctionName": "echo",
            "Runtime": "provided.al2023",
            "Role": "arn:aws:iam::123456789012:role/lambda",
            "Handler": "echo.handler",
            "Code": {"ZipFile": zip_file(CodeZip::new().executable("bootstrap", echo))?},
        }),
    )
    .await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["FunctionArn"],
        "arn:aws:lambda:eu-west-1:123456789012:function:echo"
    );
    let (status, out) = post(
        &url,
        "/2015-03-31/functions/echo/invocations",
        &json!({"hi": "container"}),
    )
    .await?;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["hi"], "container", "{out}");

    let (status, created) = post(
        &url,
        "/2015-03-31/functions",
        &json!({
            "FunctionName": "greeter",
            "Runtime": "python3.11",
            "Role": "arn:aws:iam::123456789012:role/lambda",
            "Handler": "app.handler",
            "Code": {"ZipFile": zip_file(CodeZip::new().source(
                "app.py",
                "import sys\n\ndef handler(event, context):\n    return {'hi': event['name'], 'python': '%d.%d' % sys.version_info[:2], 'fn': context.function_name}\n",
            ))?},
        }),
    )
    .await?;
    assert_eq!(status, 201, "{created}");
    let (status, out) = post(
        &url,
        "/2015-03-31/functions/greeter/invocations",
        &json!({"name": "ada"}),
    )
    .await?;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out, json!({"hi": "ada", "python": "3.11", "fn": "greeter"}));
    Ok(())
}
