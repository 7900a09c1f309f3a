//! Node.js handlers through the real npm `aws-lambda-ric`, for every Node major Lambda runs
//! (`nodejs20.x`, `nodejs22.x`, `nodejs24.x`) on both backends: a local process (the Node
//! and client scripts/setup provisions) and a container of the stand-in image
//! `lambda-testkit/nodejs:<major>` (`images/build`).

mod support;

use std::time::Duration;

use lambda_testkit::{BackendKind, Function, Layer};
use rstest::rstest;
use serde_json::{Value, json};

fn fixture(path: &str) -> String {
    std::fs::read_to_string(support::repo().join("fixtures/node").join(path))
        .expect("fixture source")
}

#[rstest]
#[tokio::test]
async fn esm_handler_answers_with_the_event(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(
            Function::new("esm", support::node_runtime(major))
                .handler("index.handler")
                .source("index.mjs", fixture("esm/index.mjs")),
        )
        .await?;
    let event = json!({"name": "ada", "n": [1, 2, 3]});
    let out: Value = f.invoke_json(&event).await?;
    assert_eq!(out, event);
    assert_eq!(f.stats().cold_starts, 1);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn commonjs_handler_returning_a_promise_answers(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(
            Function::new("cjs", support::node_runtime(major))
                .handler("index.handler")
                .source("index.js", fixture("cjs/index.js")),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({"id": 7})).await?;
    assert_eq!(out, json!({"echoed": {"id": 7}, "module": "object"}));
    Ok(())
}

#[rstest]
#[tokio::test]
async fn callback_handlers_run_up_to_node_22_and_are_refused_from_node_24(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function(
            "callback",
            major,
            "callback.js",
            "handler",
        ))
        .await?;
    let out = f.invoke(r#"{"name":"ada"}"#).await?;
    if major < 24 {
        assert_eq!(
            out.json::<Value>()?,
            json!({"via": "callback", "name": "ada"})
        );
    } else {
        let e = out.error().expect("Node.js 24 refuses callback handlers");
        assert_eq!(e.error_type, "Runtime.CallbackHandlerDeprecated");
        assert!(
            e.error_message.contains("starting with Node.js 24"),
            "{}",
            e.error_message
        );
    }
    Ok(())
}

#[rstest]
#[tokio::test]
async fn thrown_error_is_a_function_error_with_type_message_and_trace(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function("fail", major, "fail.mjs", "handler"))
        .await?;
    let raw = f.invoke(r#"{"message":"out of stock"}"#).await?;
    assert_eq!(raw.function_error.as_deref(), Some("Unhandled"));
    let doc: Value = serde_json::from_slice(&raw.payload)?;
    assert_eq!(doc["errorType"], "OrderRejected");
    assert_eq!(doc["errorMessage"], "out of stock");
    let trace = doc["trace"]
        .as_array()
        .expect("Node's document has `trace`");
    assert!(
        trace
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.contains("fail.mjs"))),
        "{trace:?}"
    );
    let e = raw.error().expect("parsed");
    assert_eq!(
        (e.error_type.as_str(), e.error_message.as_str()),
        ("OrderRejected", "out of stock")
    );
    assert!(
        e.stack_trace.iter().any(|l| l.contains("fail.mjs")),
        "{:?}",
        e.stack_trace
    );
    // The environment survives a handled error.
    let again = f.invoke(r#"{"message":"again"}"#).await?;
    assert!(again.is_error() && !again.cold_start);
    assert_eq!(f.stats().errors, 2);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn timeout_ends_with_sandbox_timedout_and_replaces_the_environment(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(
            support::node_function("slow", major, "sleep.mjs", "handler")
                .timeout(Duration::from_secs(1)),
        )
        .await?;
    let out = f.invoke(r#"{"ms": 5000}"#).await?;
    let e = out.error().expect("timed out");
    assert_eq!(e.error_type, "Sandbox.Timedout");
    assert_eq!(
        e.error_message,
        format!(
            "RequestId: {} Error: Task timed out after 1.00 seconds",
            out.request_id
        )
    );
    assert!(
        out.duration < Duration::from_millis(1500),
        "{:?}",
        out.duration
    );
    assert!(
        out.log.contains("Task timed out after 1.00 seconds"),
        "{}",
        out.log
    );
    let again: Value = f.invoke_json(&json!({"ms": 1})).await?;
    assert_eq!(again["slept"], 1);
    let stats = f.stats();
    assert_eq!(
        (stats.timeouts, stats.cold_starts),
        (1, 2),
        "{}",
        f.timeline_text()
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn process_exit_mid_invocation_is_runtime_exit_error(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function(
            "crash",
            major,
            "crash.mjs",
            "handler",
        ))
        .await?;
    let out = f.invoke(r#"{"code": 7}"#).await?;
    let e = out.error().expect("crashed");
    assert_eq!(e.error_type, "Runtime.ExitError");
    assert!(
        e.error_message
            .ends_with("Runtime exited with error: exit status 7"),
        "{}",
        e.error_message
    );
    assert!(out.log.contains("crashing"), "{}", out.log);
    Ok(())
}

/// Init failures as the client reports them: each invoke gets the init error, from a fresh
/// environment.
async fn assert_init_error(
    f: &lambda_testkit::FunctionHandle,
    error_type: &str,
    message_part: &str,
) -> anyhow::Result<()> {
    for _ in 0..2 {
        let out = f.invoke("{}").await?;
        assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
        let e = out.error().expect("init failed");
        assert_eq!(
            e.error_type,
            error_type,
            "{}",
            String::from_utf8_lossy(&e.body)
        );
        assert!(
            e.error_message.contains(message_part),
            "{:?} lacks {message_part:?}",
            e.error_message
        );
    }
    assert_eq!(
        f.stats().cold_starts,
        2,
        "each invoke tries a fresh environment\n{}",
        f.timeline_text()
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn throw_at_import_fails_init_with_the_errors_own_type(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function(
            "init-throws",
            major,
            "init_error.mjs",
            "handler",
        ))
        .await?;
    assert_init_error(&f, "Error", "configuration missing at init").await
}

#[rstest]
#[tokio::test]
async fn missing_package_is_runtime_import_module_error(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function(
            "import-error",
            major,
            "import_error.js",
            "handler",
        ))
        .await?;
    assert_init_error(
        &f,
        "Runtime.ImportModuleError",
        "package-that-does-not-exist",
    )
    .await
}

#[rstest]
#[tokio::test]
async fn missing_handler_module_is_runtime_import_module_error(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(
            support::node_function("no-module", major, "sleep.mjs", "handler")
                .handler("nothere.handler"),
        )
        .await?;
    assert_init_error(&f, "Runtime.ImportModuleError", "nothere").await
}

#[rstest]
#[tokio::test]
async fn syntax_error_is_runtime_user_code_syntax_error(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function(
            "syntax",
            major,
            "syntax_error.mjs",
            "handler",
        ))
        .await?;
    assert_init_error(&f, "Runtime.UserCodeSyntaxError", "SyntaxError").await
}

#[rstest]
#[tokio::test]
async fn unexported_handler_is_runtime_handler_not_found(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function(
            "no-handler",
            major,
            "no_handler.mjs",
            "handler",
        ))
        .await?;
    assert_init_error(
        &f,
        "Runtime.HandlerNotFound",
        "no_handler.handler is undefined or not exported",
    )
    .await
}

#[rstest]
#[tokio::test]
async fn handler_sees_its_context_and_the_lambda_variables(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(
            support::node_function("ctx", major, "context.mjs", "handler")
                .env("STAGE", "test")
                .memory_mb(256)
                .timeout(Duration::from_secs(5)),
        )
        .await?;
    let raw = f.invoke("{}").await?;
    let out: Value = raw.json()?;
    assert_eq!(out["functionName"], "ctx");
    assert_eq!(out["functionVersion"], "$LATEST");
    assert_eq!(out["awsRequestId"], raw.request_id.as_str());
    assert_eq!(
        out["invokedFunctionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:ctx"
    );
    assert_eq!(out["memoryLimitInMB"], "256");
    assert_eq!(out["logGroupName"], "/aws/lambda/ctx");
    assert!(
        out["logStreamName"]
            .as_str()
            .is_some_and(|s| s.contains("[$LATEST]"))
    );
    let remaining = out["remainingMs"].as_i64().expect("a number");
    assert!(
        (4000..=5000).contains(&remaining),
        "remaining {remaining} ms of a 5 s timeout"
    );
    let version = out["nodeVersion"].as_str().unwrap();
    assert!(
        version.starts_with(&format!("v{major}.")),
        "nodejs{major}.x ran Node.js {version}"
    );
    let env = &out["env"];
    assert_eq!(env["STAGE"], "test");
    assert_eq!(env["_HANDLER"], "context.handler");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(
        env["AWS_EXECUTION_ENV"],
        format!("AWS_Lambda_nodejs{major}.x")
    );
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["TZ"], ":UTC");
    let api = env["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap();
    assert!(
        api.starts_with("127.0.0.1:") && !api.contains("http"),
        "bare host:port, got {api}"
    );
    let task = env["LAMBDA_TASK_ROOT"].as_str().unwrap();
    assert_eq!(out["cwd"], task, "the runtime starts in the task root");
    let node_path: Vec<&str> = env["NODE_PATH"].as_str().unwrap().split(':').collect();
    assert_eq!(node_path.len(), 5, "{node_path:?}");
    assert!(node_path[0].ends_with(&format!("/nodejs/node{major}/node_modules")));
    assert!(node_path[1].ends_with("/nodejs/node_modules"));
    assert!(node_path[2].ends_with("/node_modules"));
    assert_eq!(node_path[4], task);
    if backend == BackendKind::Docker {
        assert_eq!(
            node_path,
            [
                format!("/opt/nodejs/node{major}/node_modules").as_str(),
                "/opt/nodejs/node_modules",
                "/var/runtime/node_modules",
                "/var/runtime",
                "/var/task"
            ]
        );
    }
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_node_path_the_function_sets_is_kept(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(
            support::node_function("own-node-path", major, "context.mjs", "handler")
                .env("NODE_PATH", "/custom/node_modules"),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({})).await?;
    assert_eq!(out["env"]["NODE_PATH"], "/custom/node_modules");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn package_in_a_layers_nodejs_node_modules_is_requirable(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let layer = emu
        .publish_layer(Layer::new("greeting").code(support::node_layer_zip()))
        .await?;
    let f = emu
        .deploy(
            support::node_function("uses-layer", major, "uses_layer.js", "handler").layer(&layer),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({"name": "ada"})).await?;
    assert_eq!(
        out,
        json!({"greeting": "hello, ada", "from": "nodejs/node_modules"})
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_layers_node_major_directory_comes_before_its_shared_node_modules(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let module =
        |from: &str| format!("exports.hello = (n) => `hi ${{n}}`;\nexports.from = {from:?};\n");
    let f = emu
        .deploy(
            support::node_function("per-major", major, "uses_layer.js", "handler")
                .layer(
                    Layer::new("shared")
                        .source("nodejs/node_modules/greeting/index.js", module("shared")),
                )
                .layer(Layer::new("specific").source(
                    format!("nodejs/node{major}/node_modules/greeting/index.js"),
                    module(&format!("node{major}")),
                )),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({"name": "ada"})).await?;
    assert_eq!(
        out,
        json!({"greeting": "hi ada", "from": format!("node{major}")})
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn console_output_is_framed_by_start_end_report(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function("logs", major, "logs.mjs", "handler"))
        .await?;
    let out = f.invoke(r#"{"lines": 2}"#).await?;
    let id = &out.request_id;
    let log = &out.log;
    let start = log
        .find(&format!("START RequestId: {id} Version: $LATEST\n"))
        .expect(log);
    // The client prefixes each console line with a timestamp, the request id and the level.
    let line1 = log
        .find(&format!("\t{id}\tINFO\tstdout line 1\n"))
        .expect(log);
    let line2 = log
        .find(&format!("\t{id}\tERROR\tstderr line 2\n"))
        .expect(log);
    let end = log.find(&format!("END RequestId: {id}\n")).expect(log);
    let report = log
        .find(&format!("REPORT RequestId: {id}\tDuration: "))
        .expect(log);
    assert!(
        start < line1 && line1 < line2 && line2 < end && end < report,
        "{log}"
    );
    assert!(log.contains("\tInit Duration: "), "{log}");

    let warm = f.invoke(r#"{"lines": 1}"#).await?;
    assert!(
        !warm.cold_start && !warm.log.contains("Init Duration"),
        "{}",
        warm.log
    );
    assert!(!warm.log.contains("stderr line 2"), "{}", warm.log);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn serial_invokes_reuse_one_warm_environment(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(
            Function::new("warm", support::node_runtime(major))
                .handler("index.handler")
                .source("index.mjs", fixture("esm/index.mjs")),
        )
        .await?;
    let mut envs = std::collections::HashSet::new();
    for i in 0..5 {
        let out = f.invoke(format!("{{\"i\":{i}}}")).await?;
        assert_eq!(out.json::<Value>()?, json!({"i": i}));
        assert_eq!(out.cold_start, i == 0);
        envs.insert(out.environment_id);
    }
    let stats = f.stats();
    assert_eq!(
        (stats.invocations, stats.cold_starts, stats.warm_starts),
        (5, 1, 4)
    );
    assert_eq!(envs.len(), 1);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn streamed_chunks_arrive_with_their_boundaries(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function(
            "chunks",
            major,
            "streaming.mjs",
            "chunks",
        ))
        .await?;
    let collected = f
        .invoke_stream(r#"{"chunks": ["one ", "two ", "three"], "gapMs": 60}"#)
        .await?
        .collect_all()
        .await;
    assert!(
        collected.completion.is_ok(),
        "{:?}",
        collected.completion.error
    );
    assert_eq!(collected.chunk_texts(), ["one ", "two ", "three"]);
    assert!(collected.prelude.is_none());
    assert!(collected.first_chunk_before_finish(), "{collected:?}");

    // A plain invoke of a streaming handler gets the whole body at once.
    let out = f.invoke(r#"{"chunks": ["a", "b"], "gapMs": 1}"#).await?;
    assert!(!out.is_error(), "{:?}", out.error());
    assert_eq!(&out.payload[..], b"ab");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn http_response_stream_prelude_is_parsed_and_stripped(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function(
            "http",
            major,
            "streaming.mjs",
            "http",
        ))
        .await?;
    let collected = f.invoke_stream("{}").await?.collect_all().await;
    assert!(
        collected.completion.is_ok(),
        "{:?}",
        collected.completion.error
    );
    let prelude = collected.prelude.as_ref().expect("a prelude");
    assert_eq!(prelude.status_code, 201);
    assert_eq!(prelude.headers["content-type"], "text/plain");
    assert_eq!(prelude.headers["x-stream"], "yes");
    assert_eq!(prelude.cookies, ["session=abc"]);
    assert_eq!(collected.chunk_texts(), ["hello ", "world"]);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn mid_stream_throw_arrives_as_trailers_after_the_chunks_sent_before_it(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function(
            "fail-midway",
            major,
            "streaming.mjs",
            "failMidway",
        ))
        .await?;
    let collected = f.invoke_stream("{}").await?.collect_all().await;
    assert_eq!(collected.chunk_texts(), ["partial "]);
    let error = collected
        .completion
        .error
        .as_ref()
        .expect("the stream failed");
    assert_eq!(error.error_type, "TypeError");
    assert_eq!(error.error_message, "stream broke midway");
    assert!(
        error
            .stack_trace
            .iter()
            .any(|l| l.contains("streaming.mjs")),
        "{:?}",
        error.stack_trace
    );
    assert_eq!(f.stats().errors, 1);
    Ok(())
}

/// The pinned versions of `fixtures/node/runtime/versions` for `major`: (Node.js,
/// aws-lambda-ric), the ones scripts/setup provisions and images/build puts in the images.
fn pinned_versions(major: u32) -> (String, String) {
    let versions = fixture("runtime/versions");
    let line = versions
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&major.to_string().as_str()))
        .unwrap_or_else(|| panic!("no Node.js {major} in fixtures/node/runtime/versions"));
    (line[1].to_string(), line[3].to_string())
}

#[rstest]
#[tokio::test]
async fn the_pinned_node_and_client_of_that_major_run_the_function(
    #[values(20, 22, 24)] major: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(backend, major).await);
    let f = emu
        .deploy(support::node_function(
            "versions",
            major,
            "versions.mjs",
            "handler",
        ))
        .await?;
    let out: Value = f.invoke_json(&json!({})).await?;
    let (node, client) = pinned_versions(major);
    assert_eq!(
        out,
        json!({
            "node": node,
            "client": client,
            "executionEnv": format!("AWS_Lambda_nodejs{major}.x"),
        })
    );
    Ok(())
}
