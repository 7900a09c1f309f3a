//! Rust handlers built with the real `lambda_runtime` crate (`fixtures/rust`), run as
//! `provided.al2023` bootstraps on both backends: a local process, and a container of the
//! stand-in provided image (`images/build`).

mod support;

use std::time::Duration;

use lambda_testkit::{BackendKind, Function, Layer, Runtime};
use rstest::rstest;
use serde_json::{Value, json};

#[rstest]
#[tokio::test]
async fn echo_round_trips_typed_json(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("echo", "echo"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f).await?;
    let event = json!({"nested": {"list": [1, 2, 3]}, "unicode": "λ"});
    let out: Value = f.invoke_json(&event).await?;
    assert_eq!(out, event);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn handler_error_carries_the_runtime_error_type(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("fail", "fail"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f).await?;
    let err = f
        .invoke_json::<_, Value>(&json!({"message": "kaput"}))
        .await
        .unwrap_err();
    let e = err.function_error().expect("function error");
    assert_eq!(
        (e.error_type.as_str(), e.error_message.as_str()),
        ("FixtureError", "kaput")
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn process_exit_mid_invocation_is_runtime_exit_error_then_recovers(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("crash", "crash"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f).await?;
    let e = f.invoke(r#"{"code": 5}"#).await?.error().expect("crashed");
    assert_eq!(e.error_type, "Runtime.ExitError");
    assert!(
        e.error_message.ends_with("exit status 5"),
        "{}",
        e.error_message
    );
    assert_eq!(
        f.stats().environments,
        0,
        "the dead environment is gone\n{}",
        f.timeline_text()
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn exit_during_init_is_runtime_exit_error(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("init-exit", "init_exit"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f).await?;
    let out = f.invoke("{}").await?;
    let e = out.error().expect("init failed");
    assert_eq!(e.error_type, "Runtime.ExitError");
    assert!(
        e.error_message.contains("exit status 2"),
        "{}",
        e.error_message
    );
    assert!(
        out.log.contains("init failed"),
        "init output is in the log: {}",
        out.log
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn timeout_kills_the_environment_and_the_next_invoke_gets_a_new_one(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("sleepy", "sleep"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f.timeout(Duration::from_secs(1))).await?;
    let slow = f.invoke(r#"{"ms": 3000}"#).await?;
    assert_eq!(slow.error().unwrap().error_type, "Sandbox.Timedout");
    let pid_gone = f.environment_pids().is_empty();
    assert!(pid_gone, "timed-out environment terminated");
    let fast = f.invoke(r#"{"ms": 1}"#).await?;
    assert!(fast.cold_start && fast.environment_id != slow.environment_id);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn context_has_deadline_arn_and_configuration(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("rust-ctx", "context"));
    let emu = require!(support::builder_for(backend))
        .region("eu-west-1")
        .account_id("111122223333")
        .start()
        .await?;
    let f = emu
        .deploy(
            f.memory_mb(512)
                .timeout(Duration::from_secs(10))
                .env("FEATURE", "on"),
        )
        .await?;
    let out = f
        .invoke_request(lambda_testkit::InvokeRequest::new("{}"))
        .await?;
    let v: Value = out.json()?;
    assert_eq!(v["function_name"], "rust-ctx");
    assert_eq!(
        v["invoked_function_arn"],
        "arn:aws:lambda:eu-west-1:111122223333:function:rust-ctx"
    );
    assert_eq!(v["request_id"], out.request_id.as_str());
    assert_eq!(v["memory_mb"], 512);
    let remaining = v["remaining_ms"].as_i64().unwrap();
    assert!(
        (9000..=10_000).contains(&remaining),
        "remaining {remaining}"
    );
    assert_eq!(v["env"]["FEATURE"], "on");
    assert_eq!(v["env"]["AWS_EXECUTION_ENV"], "AWS_Lambda_provided.al2023");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn bootstrap_from_a_layer_runs_when_the_code_has_none(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let binary = require!(support::rust_fixture("echo"));
    let emu = require!(support::emulator(backend).await);
    let f = emu
        .deploy(
            Function::new("layer-runtime", Runtime::ProvidedAl2023)
                .source("README", "code without a bootstrap")
                .layer(Layer::new("runtime").executable("bootstrap", binary)),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({"from": "opt"})).await?;
    assert_eq!(out["from"], "opt");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn missing_bootstrap_deploys_and_every_invoke_is_runtime_invalid_entrypoint(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::emulator(backend).await);
    let f = emu
        .deploy(
            Function::new("no-bootstrap", Runtime::ProvidedAl2).source("main.go", "package main"),
        )
        .await?;
    for _ in 0..2 {
        let out = f.invoke("{}").await?;
        assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
        let error = out.error().expect("a function error");
        assert_eq!(error.error_type, "Runtime.InvalidEntrypoint");
        assert_eq!(
            error.error_message,
            format!(
                "RequestId: {} Error: Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]",
                out.request_id
            )
        );
    }
    let s = f.stats();
    assert_eq!((s.invocations, s.errors), (2, 2));
    Ok(())
}

#[rstest]
#[tokio::test]
async fn warm_environment_serves_many_invokes(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("warm", "echo"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f).await?;
    for i in 0..50 {
        let out: Value = f.invoke_json(&json!({"i": i})).await?;
        assert_eq!(out["i"], i);
    }
    let s = f.stats();
    assert_eq!((s.invocations, s.cold_starts, s.environments), (50, 1, 1));
    Ok(())
}

/// Your own crate as a handler: built by cargo at deploy (here the fixtures crate, already
/// built by scripts/setup, so this reuses that build), found from cargo's own messages.
#[tokio::test]
async fn a_cargo_package_s_binary_is_built_and_deployed_as_the_bootstrap() -> anyhow::Result<()> {
    require!(support::rust_fixture("echo"));
    let emu = require!(support::emulator(BackendKind::Process).await);
    let f = emu
        .deploy(
            Function::new("own-crate", Runtime::ProvidedAl2023)
                .cargo_bin(support::repo().join("fixtures/rust"), "echo"),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({"from": "cargo"})).await?;
    assert_eq!(out["from"], "cargo");
    Ok(())
}

#[tokio::test]
async fn a_cargo_package_that_does_not_build_is_a_deploy_error_with_cargo_s_output()
-> anyhow::Result<()> {
    let emu = require!(support::emulator(BackendKind::Process).await);
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    )?;
    std::fs::create_dir(dir.path().join("src"))?;
    std::fs::write(
        dir.path().join("src/main.rs"),
        "fn main() { let x: u8 = \"no\"; }\n",
    )?;
    let err = emu
        .deploy(Function::new("broken", Runtime::ProvidedAl2023).cargo_bin(dir.path(), "broken"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("could not build `broken`"), "{text}");
    assert!(text.contains("mismatched types"), "cargo's output: {text}");

    let err = emu
        .deploy(
            Function::new("none", Runtime::ProvidedAl2023).cargo_bin(dir.path().join("nope"), "x"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no Cargo.toml there"), "{err}");
    Ok(())
}
