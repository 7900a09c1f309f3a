//! Python handlers through the real `awslambdaric`, for every Python runtime Lambda names
//! (`python3.9` ... `python3.13`), on both backends: a local process (the Python 3.X venv
//! scripts/setup provisions) and a container of the stand-in image
//! `lambda-testkit/python:3.X` (`images/build`). Tests that read the version assert that a
//! Python 3.X ran.

mod support;

use std::time::Duration;

use lambda_testkit::{BackendKind, Function, InvokeError, Layer};
use rstest::rstest;
use serde_json::{Value, json};

#[rstest]
#[tokio::test]
async fn inline_handler_answers_typed_json(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let f = emu
        .deploy(
            Function::new("greeter", support::python_runtime(minor))
                .handler("app.handler")
                .source(
                    "app.py",
                    "import sys\ndef handler(event, ctx):\n    return {'hi': event['name'], 'python': '%d.%d' % sys.version_info[:2]}\n",
                ),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({"name": "ada"})).await?;
    assert_eq!(
        out,
        json!({"hi": "ada", "python": format!("3.{minor}")}),
        "python3.{minor} runs a Python 3.{minor}"
    );
    assert_eq!(f.stats().cold_starts, 1);
    let config = f.config().expect("deployed");
    match backend {
        BackendKind::Process => {
            let runs = config.runtime_version.expect("the interpreter is reported");
            assert!(runs.version.starts_with(&format!("3.{minor}.")), "{runs}");
            assert!(!runs.fallback && runs.program.is_absolute(), "{runs}");
        }
        _ => assert_eq!(config.runtime_version, None, "the image decides"),
    }
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Order {
    id: u32,
    items: Vec<String>,
    note: Option<String>,
}

#[rstest]
#[tokio::test]
async fn typed_round_trip_preserves_the_struct(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let f = emu
        .deploy(support::python_function_on("echo", minor, "echo"))
        .await?;
    let order = Order {
        id: 7,
        items: vec!["tea".into(), "scone".into()],
        note: None,
    };
    let back: Order = f.invoke_json(&order).await?;
    assert_eq!(back, order);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn exception_is_a_function_error_with_type_message_and_stack(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let f = emu
        .deploy(support::python_function_on("fail", minor, "fail"))
        .await?;
    let raw = f.invoke(r#"{"message":"kaput"}"#).await?;
    assert_eq!(raw.function_error.as_deref(), Some("Unhandled"));
    let doc: Value = serde_json::from_slice(&raw.payload)?;
    assert_eq!(doc["errorType"], "ValueError");
    assert_eq!(
        doc["requestId"],
        raw.request_id.as_str(),
        "awslambdaric's document is passed through unchanged"
    );

    let err = f
        .invoke_json::<_, Value>(&json!({"message": "kaput"}))
        .await
        .unwrap_err();
    let e = err.function_error().expect("a function error");
    assert_eq!(
        (e.error_type.as_str(), e.error_message.as_str()),
        ("ValueError", "kaput")
    );
    assert!(
        e.stack_trace.iter().any(|l| l.contains("fail.py")),
        "{:?}",
        e.stack_trace
    );
    assert_eq!(f.stats().errors, 2);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn timeout_ends_with_sandbox_timedout_and_replaces_the_environment(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let f = emu
        .deploy(support::python_function_on("slow", minor, "sleep").timeout(Duration::from_secs(1)))
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
async fn os_exit_mid_invocation_is_runtime_exit_error(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let f = emu
        .deploy(support::python_function_on("crash", minor, "crash"))
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

#[rstest]
#[tokio::test]
async fn import_error_is_reported_with_the_runtime_error_type_and_retried_fresh(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let f = emu
        .deploy(support::python_function_on("broken", minor, "import_error"))
        .await?;
    for _ in 0..2 {
        let e = f.invoke("{}").await?.error().expect("init failed");
        assert_eq!(e.error_type, "Runtime.ImportModuleError");
        assert!(
            e.error_message.contains("module_that_does_not_exist"),
            "{}",
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
async fn handler_sees_lambda_variables_and_context(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let f = emu
        .deploy(
            support::python_function_on("ctx", minor, "context")
                .env("STAGE", "test")
                .memory_mb(256)
                .timeout(Duration::from_secs(5)),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({})).await?;
    assert_eq!(out["function_name"], "ctx");
    assert_eq!(
        out["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:ctx"
    );
    assert_eq!(out["memory_limit_in_mb"], "256");
    assert_eq!(out["function_version"], "$LATEST");
    assert_eq!(out["log_group_name"], "/aws/lambda/ctx");
    let remaining = out["remaining_ms"].as_i64().unwrap();
    assert!(
        (4000..=5000).contains(&remaining),
        "remaining {remaining} ms of a 5 s timeout"
    );
    let env = &out["env"];
    assert_eq!(env["STAGE"], "test");
    assert_eq!(env["_HANDLER"], "context.handler");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(
        env["AWS_EXECUTION_ENV"],
        format!("AWS_Lambda_python3.{minor}")
    );
    assert_eq!(out["python_version"], format!("3.{minor}"));
    assert_eq!(env["TZ"], ":UTC");
    let api = env["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap();
    assert!(
        api.starts_with("127.0.0.1:") && !api.contains("http"),
        "bare host:port, got {api}"
    );
    for key in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "AWS_LAMBDA_LOG_STREAM_NAME",
    ] {
        assert!(env[key].is_string(), "{key} missing");
    }
    Ok(())
}

#[rstest]
#[tokio::test]
async fn client_context_reaches_the_handler(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let f = emu
        .deploy(
            Function::new("cc", support::python_runtime(minor))
                .handler("app.handler")
                .source(
                    "app.py",
                    "def handler(event, ctx):\n    return ctx.client_context.custom\n",
                ),
        )
        .await?;
    let req =
        lambda_testkit::InvokeRequest::new("{}").client_context(r#"{"custom":{"tenant":"t1"}}"#);
    let out: Value = f.invoke_request(req).await?.json()?;
    assert_eq!(out, json!({"tenant": "t1"}));
    Ok(())
}

#[rstest]
#[tokio::test]
async fn python_package_in_a_layer_is_importable(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let layer = emu
        .publish_layer(Layer::new("greeting").code(support::python_layer_zip()))
        .await?;
    assert_eq!(layer.version, 1);
    let f = emu
        .deploy(support::python_function_on("uses-layer", minor, "uses_layer").layer(&layer))
        .await?;
    let out: Value = f.invoke_json(&json!({"name": "ada"})).await?;
    assert_eq!(out["greeting"], "hello, ada");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn layer_site_packages_of_the_runtimes_version_are_importable(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let f = emu
        .deploy(
            Function::new("site", support::python_runtime(minor))
                .handler("app.handler")
                .source(
                    "app.py",
                    "import sys, sitegreeting\ndef handler(event, ctx):\n    return [sitegreeting.WHERE, '%d.%d' % sys.version_info[:2]]\n",
                )
                .layer(Layer::new("site").source(
                    format!("python/lib/python3.{minor}/site-packages/sitegreeting.py"),
                    format!("WHERE = 'python/lib/python3.{minor}/site-packages'\n"),
                )),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({})).await?;
    assert_eq!(
        out,
        json!([
            format!("python/lib/python3.{minor}/site-packages"),
            format!("3.{minor}")
        ])
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn later_layers_overwrite_earlier_ones_in_attach_order(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let module = |word: &str| format!("WORD = '{word}'\n");
    let f = emu
        .deploy(
            Function::new("layered", support::python_runtime(minor))
                .handler("app.handler")
                .source(
                    "app.py",
                    "import word\ndef handler(event, ctx):\n    return word.WORD\n",
                )
                .layer(Layer::new("first").source("python/word.py", module("first")))
                .layer(Layer::new("second").source("python/word.py", module("second"))),
        )
        .await?;
    let out: String = f.invoke_json(&json!({})).await?;
    assert_eq!(out, "second");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn serial_invokes_reuse_one_warm_environment(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let f = emu
        .deploy(support::python_function_on("warm", minor, "echo"))
        .await?;
    let mut envs = std::collections::HashSet::new();
    for i in 0..5 {
        let out = f.invoke(format!("{{\"i\":{i}}}")).await?;
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
async fn logs_frame_handler_output_with_start_end_report(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let f = emu
        .deploy(support::python_function_on("logs", minor, "logs"))
        .await?;
    let out = f.invoke(r#"{"lines": 2}"#).await?;
    let id = &out.request_id;
    let log = &out.log;
    let start = log
        .find(&format!("START RequestId: {id} Version: $LATEST\n"))
        .expect(log);
    let line1 = log.find("stdout line 1\n").expect(log);
    let line2 = log.find("stderr line 2\n").expect(log);
    let end = log.find(&format!("END RequestId: {id}\n")).expect(log);
    let report = log
        .find(&format!("REPORT RequestId: {id}\tDuration: "))
        .expect(log);
    assert!(
        start < line1 && line1 < line2 && line2 < end && end < report,
        "{log}"
    );
    assert!(
        log.contains("\tInit Duration: "),
        "cold start reports init: {log}"
    );
    assert!(log.contains("\tMemory Size: 128 MB\t"), "{log}");

    let warm = f.invoke(r#"{"lines": 1}"#).await?;
    assert!(!warm.log.contains("Init Duration"), "{}", warm.log);
    assert!(
        !warm.log.contains("stdout line 2"),
        "only this invocation's output: {}",
        warm.log
    );
    let tail = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, warm.log_tail())?;
    assert_eq!(tail, warm.log.as_bytes());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn payload_over_6_mb_is_rejected_before_reaching_the_function(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator(backend).await);
    let f = emu.deploy(support::python_function("big", "echo")).await?;
    let payload = format!("\"{}\"", "x".repeat(6 * 1024 * 1024));
    let err = f.invoke(payload).await.unwrap_err();
    assert!(
        matches!(err, InvokeError::RequestTooLarge { size, .. } if size == 6 * 1024 * 1024 + 2),
        "{err}"
    );
    assert_eq!(f.stats().invocations, 0);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn response_over_6_mb_is_a_function_error_not_a_crash(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    let source = "def handler(event, ctx):\n    return 'x' * (7 * 1024 * 1024) if event.get('big') else 'small'\n";
    let f = emu
        .deploy(
            Function::new("huge", support::python_runtime(minor))
                .handler("app.handler")
                .source("app.py", source),
        )
        .await?;
    let e = f
        .invoke(r#"{"big": true}"#)
        .await?
        .error()
        .expect("too large");
    assert_eq!(e.error_type, "Function.ResponseSizeTooLarge");
    // The Runtime API answered the runtime 413; the function keeps working afterwards.
    let ok: String = f.invoke_json(&json!({})).await?;
    assert_eq!(ok, "small");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn runtime_api_refuses_unknown_and_already_answered_request_ids(
    #[values(9, 10, 11, 12, 13)] minor: u32,
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(backend, minor).await);
    // The handler calls its own environment's Runtime API, as a confused runtime would.
    let source = r#"
import os, urllib.request, urllib.error

def post(path):
    api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    req = urllib.request.Request(f"http://{api}/2018-06-01/runtime/{path}", data=b'{"x":1}', method="POST")
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code

def handler(event, ctx):
    return {
        "unknown_response": post("invocation/not-a-request-id/response"),
        "unknown_error": post("invocation/not-a-request-id/error"),
        "earlier_response": post(f"invocation/{event['earlier']}/response") if event.get("earlier") else None,
        "init_error_after_init": post("init/error"),
    }
"#;
    let f = emu
        .deploy(
            Function::new("confused", support::python_runtime(minor))
                .handler("app.handler")
                .source("app.py", source),
        )
        .await?;
    let first = f.invoke("{}").await?;
    let v: Value = first.json()?;
    assert_eq!(
        (v["unknown_response"].as_u64(), v["unknown_error"].as_u64()),
        (Some(400), Some(400))
    );
    // The Runtime API answers `/init/error` with 202, 403 or 500 (OpenAPI 1.0.3): after
    // init it is a forbidden state transition.
    assert_eq!(v["init_error_after_init"], 403);
    let second: Value = f.invoke_json(&json!({"earlier": first.request_id})).await?;
    assert_eq!(
        second["earlier_response"], 400,
        "an answered invocation cannot be answered again"
    );
    f.assert_cold_starts(1);
    Ok(())
}

/// Run only as the child of `nearest_version_fallback_is_opt_in_and_reported`, in an
/// environment where no Python 3.9 can be found and LAMBDA_TESTKIT_PYTHON_3_10 names one.
#[test]
#[ignore = "helper process for nearest_version_fallback_is_opt_in_and_reported"]
fn deploy_python39_with_only_python310_available() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let function = || {
            Function::new("old", lambda_testkit::Runtime::Python39)
                .handler("app.handler")
                .source(
                    "app.py",
                    "import sys\ndef handler(event, ctx):\n    return '%d.%d' % sys.version_info[:2]\n",
                )
        };
        let exact = lambda_testkit::Emulator::builder().start().await.unwrap();
        let refused = exact.deploy(function()).await.unwrap_err().to_string();
        assert!(
            refused.starts_with("python3.9 cannot run: no Python 3.9 interpreter"),
            "{refused}"
        );

        let emu = lambda_testkit::Emulator::builder()
            .python_fallback(true)
            .start()
            .await
            .unwrap();
        let f = emu.deploy(function()).await.unwrap();
        let runs = f.config().unwrap().runtime_version.unwrap();
        assert!(runs.fallback && runs.version.starts_with("3.10."), "{runs}");
        assert_eq!(runs.found_by, "LAMBDA_TESTKIT_PYTHON_3_10");
        let out = f.invoke("{}").await.unwrap();
        assert_eq!(out.json::<String>().unwrap(), "3.10");
        assert!(
            out.log
                .starts_with("lambda-testkit: python3.9 is running on Python 3.10."),
            "the cold start's log says which version runs: {}",
            out.log
        );
        let warm = f.invoke("{}").await.unwrap();
        assert!(!warm.log.contains("lambda-testkit:"), "{}", warm.log);
        let stats = f.stats().runtime_fallback.unwrap();
        assert!(stats.starts_with("python3.9 on Python 3.10."), "{stats}");
        assert!(
            f.timeline_text().contains("nearest-version fallback"),
            "{}",
            f.timeline_text()
        );
        println!("FALLBACK_OK");
    });
}

#[test]
fn nearest_version_fallback_is_opt_in_and_reported() -> anyhow::Result<()> {
    let python310 = require!(support::python_for(10));
    let mut child = std::process::Command::new(std::env::current_exe()?);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LAMBDA_TESTKIT_PYTHON") {
            child.env_remove(name);
        }
    }
    // Nothing that could be a Python 3.9: a PATH without one, no pyenv or uv.
    let out = child
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("PYENV_ROOT", "/nonexistent")
        .env("UV_PYTHON_INSTALL_DIR", "/nonexistent")
        .env("LAMBDA_TESTKIT_PYTHON_3_10", python310)
        .args([
            "deploy_python39_with_only_python310_available",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("FALLBACK_OK"),
        "helper failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
