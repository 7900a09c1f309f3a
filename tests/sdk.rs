//! The REST API driven by the real `aws-sdk-lambda` client (feature `sdk`): what an
//! application under test sees when it talks to "Lambda" through the SDK.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Environment, FunctionCode, InvocationType, InvokeWithResponseStreamResponseEvent, LogType,
    PackageType, Runtime, State, ThrottleReason,
};
use base64::Engine;
use lambda_testkit::{CodeZip, Emulator};
use rstest::{fixture, rstest};
use serde_json::{Value, json};

#[fixture]
async fn emu() -> Emulator {
    support::builder().start().await.expect("emulator starts")
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

fn zip(path: &str, source: &str) -> Blob {
    Blob::new(
        CodeZip::new()
            .source(path, source)
            .build()
            .unwrap()
            .zip_bytes()
            .to_vec(),
    )
}

fn bootstrap_zip(fixture: &str) -> Result<Blob, String> {
    let binary = support::rust_fixture(fixture)?;
    Ok(Blob::new(
        CodeZip::new()
            .executable("bootstrap", binary)
            .build()
            .unwrap()
            .zip_bytes()
            .to_vec(),
    ))
}

async fn create_python(
    client: &Client,
    name: &str,
    source: &str,
) -> aws_sdk_lambda::operation::create_function::CreateFunctionOutput {
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::Python312)
        .role("arn:aws:iam::123456789012:role/test")
        .handler("app.handler")
        .code(
            FunctionCode::builder()
                .zip_file(zip("app.py", source))
                .build(),
        )
        .send()
        .await
        .expect("CreateFunction")
}

async fn create_rust(client: &Client, name: &str, fixture: &str) -> Result<(), String> {
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .role("arn:aws:iam::123456789012:role/test")
        .handler("bootstrap")
        .code(
            FunctionCode::builder()
                .zip_file(bootstrap_zip(fixture)?)
                .build(),
        )
        .send()
        .await
        .expect("CreateFunction");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn create_wait_invoke_and_read_back_a_python_function(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    let client = emu.lambda_client();
    let created = create_python(
        &client,
        "greeter",
        "def handler(event, ctx):\n    print('hi from the log')\n    return {'hi': event['name']}\n",
    )
    .await;
    assert_eq!(created.state(), Some(&State::Active));
    assert_eq!(created.package_type(), Some(&PackageType::Zip));
    assert_eq!(
        created.code_sha256().map(|s| b64(s).len()),
        Some(32),
        "CodeSha256 is base64 of a SHA-256"
    );
    client
        .wait_until_function_active_v2()
        .function_name("greeter")
        .wait(Duration::from_secs(5))
        .await?;

    let out = client
        .invoke()
        .function_name("greeter")
        .payload(Blob::new(r#"{"name":"ada"}"#))
        .log_type(LogType::Tail)
        .send()
        .await?;
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.executed_version(), Some("$LATEST"));
    assert_eq!(
        serde_json::from_slice::<Value>(out.payload().unwrap().as_ref())?,
        json!({"hi": "ada"})
    );
    let log = String::from_utf8(b64(out.log_result().expect("LogType Tail")))?;
    assert!(
        log.contains("hi from the log") && log.contains("REPORT RequestId:"),
        "{log}"
    );

    // The same function through the Rust API: one core, two front doors.
    let handle = emu.function("greeter").expect("visible to the Rust API");
    assert_eq!(handle.stats().invocations, 1);

    let config = client
        .get_function_configuration()
        .function_name("greeter")
        .send()
        .await?;
    assert_eq!(config.runtime(), Some(&Runtime::Python312));
    assert_eq!(config.handler(), Some("app.handler"));
    let function = client
        .get_function()
        .function_name("greeter")
        .send()
        .await?;
    assert_eq!(
        function.configuration().unwrap().function_name(),
        Some("greeter")
    );
    let listed = client.list_functions().send().await?;
    assert_eq!(listed.functions().len(), 1);

    client
        .delete_function()
        .function_name("greeter")
        .send()
        .await?;
    assert!(emu.function("greeter").is_none());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn errors_are_typed_sdk_errors(#[future] emu: Emulator) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    let client = emu.lambda_client();

    let err = client
        .get_function()
        .function_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    assert!(err.to_string().contains("Function not found"), "{err}");
    let err = client
        .invoke()
        .function_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");

    create_python(&client, "f", "def handler(e, c):\n    return 1\n").await;
    let duplicate = client
        .create_function()
        .function_name("f")
        .runtime(Runtime::Python312)
        .role("arn:aws:iam::123456789012:role/test")
        .handler("app.handler")
        .code(FunctionCode::builder().zip_file(zip("app.py", "")).build())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(duplicate.is_resource_conflict_exception(), "{duplicate:?}");

    let err = client
        .update_function_configuration()
        .function_name("f")
        .memory_size(64)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.into_service_error()
            .is_invalid_parameter_value_exception()
    );
    let err = client
        .update_function_code()
        .function_name("f")
        .zip_file(Blob::new("not a zip"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "{err:?}");
    let err = client
        .create_function()
        .function_name("image")
        .package_type(PackageType::Image)
        .role("arn:aws:iam::123456789012:role/test")
        .code(
            FunctionCode::builder()
                .image_uri("public.ecr.aws/lambda/python:3.12")
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        err.is_invalid_parameter_value_exception() && err.to_string().contains("Docker backend"),
        "{err}"
    );

    // A qualifier other than $LATEST names a version or alias that does not exist.
    let err = client
        .invoke()
        .function_name("f:prod")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let ok = client.invoke().function_name("f:$LATEST").send().await?;
    assert_eq!(ok.payload().unwrap().as_ref(), b"1");

    let err = client
        .invoke()
        .function_name("f")
        .payload(Blob::new(vec![b' '; 6 * 1024 * 1024 + 1]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_request_too_large_exception(), "{err:?}");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn function_errors_are_200_with_x_amz_function_error(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    let client = emu.lambda_client();
    create_python(
        &client,
        "fails",
        "def handler(e, c):\n    raise ValueError('kaput')\n",
    )
    .await;
    let out = client.invoke().function_name("fails").send().await?;
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.function_error(), Some("Unhandled"));
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref())?;
    assert_eq!(
        (body["errorType"].as_str(), body["errorMessage"].as_str()),
        (Some("ValueError"), Some("kaput"))
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn reserved_concurrency_throttles_with_429_when_retries_are_off(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let emu = emu.await;
    let client = Client::from_conf(
        emu.lambda_config()
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    require!(create_rust(&client, "sleepy", "sleep").await);
    let put = client
        .put_function_concurrency()
        .function_name("sleepy")
        .reserved_concurrent_executions(1)
        .send()
        .await?;
    assert_eq!(put.reserved_concurrent_executions(), Some(1));
    let got = client
        .get_function_concurrency()
        .function_name("sleepy")
        .send()
        .await?;
    assert_eq!(got.reserved_concurrent_executions(), Some(1));

    let busy = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .invoke()
                .function_name("sleepy")
                .payload(Blob::new(r#"{"ms":1500}"#))
                .send()
                .await
        })
    };
    // Wait until the first invocation holds the one reserved slot.
    let handle = emu.function("sleepy").unwrap();
    let started = Instant::now();
    while handle.stats().invocations == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = client
        .invoke()
        .function_name("sleepy")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
    let err = err.into_service_error();
    match &err {
        aws_sdk_lambda::operation::invoke::InvokeError::TooManyRequestsException(e) => {
            assert_eq!(
                e.reason(),
                Some(&ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
            );
        }
        other => panic!("expected TooManyRequestsException, got {other:?}"),
    }
    assert_eq!(busy.await??.status_code(), 200);
    assert_eq!(handle.stats().throttles, 1, "{}", handle.timeline_text());

    client
        .delete_function_concurrency()
        .function_name("sleepy")
        .send()
        .await?;
    let got = client
        .get_function_concurrency()
        .function_name("sleepy")
        .send()
        .await?;
    assert_eq!(got.reserved_concurrent_executions(), None);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn layers_are_published_listed_used_and_deleted(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    let client = emu.lambda_client();
    let content = support::python_layer_zip().build()?;
    let published = client
        .publish_layer_version()
        .layer_name("greeting")
        .description("says hello")
        .compatible_runtimes(Runtime::Python312)
        .content(
            aws_sdk_lambda::types::LayerVersionContentInput::builder()
                .zip_file(Blob::new(content.zip_bytes().to_vec()))
                .build(),
        )
        .send()
        .await?;
    assert_eq!(published.version(), 1);
    let arn = published.layer_version_arn().unwrap().to_string();
    assert_eq!(
        published.content().unwrap().code_sha256(),
        Some(content.code_sha256())
    );

    let by_arn = client.get_layer_version_by_arn().arn(&arn).send().await?;
    assert_eq!(by_arn.description(), Some("says hello"));
    let got = client
        .get_layer_version()
        .layer_name("greeting")
        .version_number(1)
        .send()
        .await?;
    assert_eq!(got.layer_version_arn(), Some(arn.as_str()));
    let listed = client
        .list_layer_versions()
        .layer_name("greeting")
        .send()
        .await?;
    assert_eq!(listed.layer_versions().len(), 1);

    let source = std::fs::read_to_string(support::repo().join("fixtures/python/uses_layer.py"))?;
    client
        .create_function()
        .function_name("uses-layer")
        .runtime(Runtime::Python312)
        .role("arn:aws:iam::123456789012:role/test")
        .handler("uses_layer.handler")
        .layers(&arn)
        .code(
            FunctionCode::builder()
                .zip_file(zip("uses_layer.py", &source))
                .build(),
        )
        .send()
        .await?;
    let out = client
        .invoke()
        .function_name("uses-layer")
        .payload(Blob::new(r#"{"name":"ada"}"#))
        .send()
        .await?;
    assert_eq!(
        serde_json::from_slice::<Value>(out.payload().unwrap().as_ref())?,
        json!({"greeting": "hello, ada"})
    );

    client
        .delete_layer_version()
        .layer_name("greeting")
        .version_number(1)
        .send()
        .await?;
    let err = client
        .get_layer_version()
        .layer_name("greeting")
        .version_number(1)
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    // The function keeps the deleted version, as in Lambda, even across a config update.
    client
        .update_function_configuration()
        .function_name("uses-layer")
        .timeout(5)
        .send()
        .await?;
    let out = client
        .invoke()
        .function_name("uses-layer")
        .payload(Blob::new(r#"{"name":"bo"}"#))
        .send()
        .await?;
    assert_eq!(
        serde_json::from_slice::<Value>(out.payload().unwrap().as_ref())?,
        json!({"greeting": "hello, bo"})
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn updates_change_code_and_configuration(#[future] emu: Emulator) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    let client = emu.lambda_client();
    let created = create_python(
        &client,
        "f",
        "import os\ndef handler(e, c):\n    return os.environ.get('GREETING', 'v1')\n",
    )
    .await;
    let updated = client
        .update_function_configuration()
        .function_name("f")
        .timeout(7)
        .memory_size(256)
        .description("tuned")
        .environment(
            Environment::builder()
                .variables("GREETING", "configured")
                .build(),
        )
        .send()
        .await?;
    assert_eq!(
        (updated.timeout(), updated.memory_size()),
        (Some(7), Some(256))
    );
    assert_ne!(updated.revision_id(), created.revision_id());
    client
        .wait_until_function_updated_v2()
        .function_name("f")
        .wait(Duration::from_secs(5))
        .await?;
    let out = client.invoke().function_name("f").send().await?;
    assert_eq!(out.payload().unwrap().as_ref(), br#""configured""#);

    let stale = client
        .update_function_code()
        .function_name("f")
        .zip_file(zip("app.py", "def handler(e, c):\n    return 'v2'\n"))
        .revision_id(created.revision_id().unwrap())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(stale.is_precondition_failed_exception(), "{stale:?}");
    let new_code = client
        .update_function_code()
        .function_name("f")
        .zip_file(zip("app.py", "def handler(e, c):\n    return 'v2'\n"))
        .send()
        .await?;
    assert_ne!(new_code.code_sha256(), created.code_sha256());
    let out = client.invoke().function_name("f").send().await?;
    assert_eq!(out.payload().unwrap().as_ref(), br#""v2""#);
    assert_eq!(
        emu.function("f").unwrap().config().unwrap().description,
        "tuned"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn event_and_dry_run_invocations(#[future] emu: Emulator) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    let client = emu.lambda_client();
    create_python(&client, "f", "def handler(e, c):\n    return e\n").await;
    let dry = client
        .invoke()
        .function_name("f")
        .invocation_type(InvocationType::DryRun)
        .send()
        .await?;
    assert_eq!(dry.status_code(), 204);
    let event = client
        .invoke()
        .function_name("f")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new("{}"))
        .send()
        .await?;
    assert_eq!(event.status_code(), 202);
    let handle = emu.function("f").unwrap();
    let started = Instant::now();
    while handle.stats().invocations < 1 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        handle.stats().invocations,
        1,
        "the Event invocation ran in the background"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn client_context_reaches_the_handler(#[future] emu: Emulator) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    let client = emu.lambda_client();
    create_python(
        &client,
        "ctx",
        "def handler(e, c):\n    return c.client_context.custom\n",
    )
    .await;
    let context = base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"tenant":"t1"}}"#);
    let out = client
        .invoke()
        .function_name("ctx")
        .client_context(context)
        .send()
        .await?;
    assert_eq!(
        serde_json::from_slice::<Value>(out.payload().unwrap().as_ref())?,
        json!({"tenant": "t1"})
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn streamed_invoke_is_read_chunk_by_chunk_through_the_event_receiver(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let emu = emu.await;
    let client = emu.lambda_client();
    require!(create_rust(&client, "streamer", "stream").await);
    let mut out = client
        .invoke_with_response_stream()
        .function_name("streamer")
        .payload(Blob::new(r#"{"chunks": 3, "delay_ms": 150}"#))
        .log_type(LogType::Tail)
        .send()
        .await?;
    assert_eq!(out.executed_version(), Some("$LATEST"));
    let mut chunks = Vec::new();
    let mut complete = None;
    while let Some(event) = out.event_stream.recv().await? {
        match event {
            InvokeWithResponseStreamResponseEvent::PayloadChunk(chunk) => {
                chunks.push((chunk.payload().unwrap().as_ref().to_vec(), Instant::now()));
            }
            InvokeWithResponseStreamResponseEvent::InvokeComplete(done) => {
                complete = Some((done, Instant::now()))
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    // As Lambda does, the HTTP-integration prelude comes through as the first chunk.
    let (prelude, _) = &chunks[0];
    assert!(
        prelude.starts_with(b"{\"statusCode\":200") && prelude.ends_with(&[0; 8]),
        "{prelude:?}"
    );
    let texts: Vec<_> = chunks[1..]
        .iter()
        .map(|(c, _)| String::from_utf8_lossy(c).into_owned())
        .collect();
    assert_eq!(texts, ["chunk-0\n", "chunk-1\n", "chunk-2\n"]);
    let (complete, completed_at) = complete.expect("InvokeComplete");
    assert_eq!(complete.error_code(), None);
    let log = String::from_utf8(b64(complete.log_result().expect("LogResult")))?;
    assert!(log.contains("REPORT RequestId:"), "{log}");
    let first_chunk_at = chunks[1].1;
    assert!(
        completed_at - first_chunk_at >= Duration::from_millis(250),
        "chunk-0 arrived {:?} before the end; the handler kept going 300 ms after it",
        completed_at - first_chunk_at
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn streamed_invoke_reports_a_mid_stream_error_in_invoke_complete(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let emu = emu.await;
    let client = emu.lambda_client();
    require!(create_rust(&client, "streamer", "stream").await);
    let mut out = client
        .invoke_with_response_stream()
        .function_name("streamer")
        .payload(Blob::new(r#"{"chunks": 3, "fail_after": 1}"#))
        .send()
        .await?;
    let mut chunks = 0;
    let mut complete = None;
    while let Some(event) = out.event_stream.recv().await? {
        match event {
            InvokeWithResponseStreamResponseEvent::PayloadChunk(_) => chunks += 1,
            InvokeWithResponseStreamResponseEvent::InvokeComplete(done) => complete = Some(done),
            _ => {}
        }
    }
    assert_eq!(chunks, 2, "the prelude and chunk-0");
    let complete = complete.expect("InvokeComplete");
    assert_eq!(complete.error_code(), Some("Runtime.StreamError"));
    assert!(
        complete
            .error_details()
            .unwrap_or_default()
            .contains("stream failed after 1 chunks")
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn streamed_invoke_of_a_missing_function_is_resource_not_found(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let emu = emu.await;
    let client = emu.lambda_client();
    let err = client
        .invoke_with_response_stream()
        .function_name("nope")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn versions_and_aliases_through_the_sdk(#[future] emu: Emulator) -> anyhow::Result<()> {
    require!(support::python());
    let emu = emu.await;
    let client = emu.lambda_client();
    let created = create_python(
        &client,
        "v",
        "import os\ndef handler(e, c):\n    return [os.environ.get('GEN', 'one'), c.function_version, c.invoked_function_arn]\n",
    )
    .await;
    let stale = client
        .publish_version()
        .function_name("v")
        .code_sha256("not-the-code")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(stale.is_invalid_parameter_value_exception(), "{stale:?}");
    let v1 = client
        .publish_version()
        .function_name("v")
        .code_sha256(created.code_sha256().unwrap())
        .description("first")
        .send()
        .await?;
    assert_eq!(v1.version(), Some("1"));
    assert_eq!(v1.description(), Some("first"));
    assert!(v1.function_arn().unwrap().ends_with(":function:v:1"));
    client
        .update_function_configuration()
        .function_name("v")
        .environment(Environment::builder().variables("GEN", "two").build())
        .send()
        .await?;
    let v2 = client.publish_version().function_name("v").send().await?;
    assert_eq!(v2.version(), Some("2"));
    let versions = client
        .list_versions_by_function()
        .function_name("v")
        .send()
        .await?;
    let listed: Vec<_> = versions
        .versions()
        .iter()
        .filter_map(|c| c.version())
        .collect();
    assert_eq!(listed, ["$LATEST", "1", "2"]);

    let alias = client
        .create_alias()
        .function_name("v")
        .name("live")
        .function_version("1")
        .routing_config(
            aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
                .additional_version_weights("2", 0.0)
                .build(),
        )
        .send()
        .await?;
    assert!(alias.alias_arn().unwrap().ends_with(":function:v:live"));
    let out = client
        .invoke()
        .function_name("v")
        .qualifier("live")
        .send()
        .await?;
    assert_eq!(out.executed_version(), Some("1"));
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref())?;
    assert_eq!(body[0], "one");
    assert_eq!(body[1], "1");
    assert_eq!(body[2], alias.alias_arn().unwrap());
    let updated = client
        .update_alias()
        .function_name("v")
        .name("live")
        .function_version("2")
        .routing_config(aws_sdk_lambda::types::AliasRoutingConfiguration::builder().build())
        .send()
        .await?;
    assert_eq!(updated.function_version(), Some("2"));
    assert_ne!(updated.revision_id(), alias.revision_id());
    let got = client
        .get_alias()
        .function_name("v")
        .name("live")
        .send()
        .await?;
    assert_eq!(got.function_version(), Some("2"));
    let out = client.invoke().function_name("v:live").send().await?;
    assert_eq!(out.executed_version(), Some("2"));
    let aliases = client.list_aliases().function_name("v").send().await?;
    assert_eq!(aliases.aliases().len(), 1);
    let config = client
        .get_function_configuration()
        .function_name("v")
        .qualifier("1")
        .send()
        .await?;
    assert_eq!(config.version(), Some("1"));

    // Lambda's refusals, typed.
    let missing = client
        .invoke()
        .function_name("v")
        .qualifier("9")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");
    let referenced = client
        .delete_function()
        .function_name("v")
        .qualifier("2")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        referenced.is_invalid_parameter_value_exception(),
        "{referenced:?}"
    );
    let taken = client
        .create_alias()
        .function_name("v")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(taken.is_resource_conflict_exception(), "{taken:?}");
    client
        .delete_alias()
        .function_name("v")
        .name("live")
        .send()
        .await?;
    client
        .delete_function()
        .function_name("v")
        .qualifier("2")
        .send()
        .await?;
    let gone = client
        .get_function()
        .function_name("v")
        .qualifier("2")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(gone.is_resource_not_found_exception(), "{gone:?}");
    Ok(())
}
