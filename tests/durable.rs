//! Durable functions end to end: Python handlers built on AWS's real durable execution
//! SDK (`aws-durable-execution-sdk-python`, its `@durable_execution` decorator, from the
//! layer scripts/setup installs) checkpoint to the emulator's REST API, and the test
//! drives and inspects the executions through the real aws-sdk-lambda and the Rust API.
//! Time is the emulator's clock: a one-hour wait costs nothing.

mod support;

use std::time::{Duration, SystemTime};

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    DurableConfig as SdkDurableConfig, ErrorObject as SdkErrorObject, ExecutionStatus as SdkStatus,
    FunctionCode, InvocationType, Runtime as SdkRuntime,
};
use lambda_testkit::durable::Clock;
use lambda_testkit::durable::model::{ExecutionStatus, OperationStatus, OperationType};
use lambda_testkit::{BackendKind, CodeZip, DurableConfig, Emulator, Function, Layer, Runtime};
use rstest::rstest;
use serde_json::{Value, json};

/// An emulator on `backend` whose clock stands still unless the test moves it, and the
/// layers a durable Python handler needs there: the durable SDK, plus boto3 where the
/// image has none (the Docker stand-ins).
async fn durable_emulator(backend: BackendKind) -> Result<(Emulator, Vec<Layer>), String> {
    let mut layers = vec![support::durable_sdk_layer()?];
    if backend == BackendKind::Docker {
        layers.push(support::boto3_layer()?);
    }
    support::python_emulator(backend).await?;
    let emu = support::builder_for(backend)?
        .clock(Clock::frozen_at(SystemTime::now()))
        .start()
        .await
        .map_err(|e| format!("{backend} emulator failed to start: {e}"))?;
    Ok((emu, layers))
}

/// A durable Python 3.11 function (the SDK needs Python >= 3.11) running `source`.
fn durable_function(name: &str, source: &str, layers: &[Layer]) -> Function {
    let mut f = Function::new(name, Runtime::Python311)
        .handler("app.handler")
        .source("app.py", source)
        .timeout(Duration::from_secs(30))
        .durable(DurableConfig::new(Duration::from_secs(86_400)));
    for layer in layers {
        f = f.layer(layer.clone());
    }
    f
}

const STEPS_AND_WAIT: &str = r#"
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration

@durable_execution
def handler(event, context: DurableContext):
    a = context.step(lambda _: event["n"] + 1, name="add")
    context.wait(Duration.from_hours(1), name="nap")
    b = context.step(lambda _: a * 10, name="times")
    return {"result": b}
"#;

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_and_a_one_hour_wait_complete_when_the_clock_is_advanced(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (emu, layers) = require!(durable_emulator(backend).await);
    emu.deploy(durable_function("steps", STEPS_AND_WAIT, &layers))
        .await?;
    let client = emu.lambda_client();

    let invoked = client
        .invoke()
        .function_name("steps")
        .invocation_type(InvocationType::Event)
        .durable_execution_name("order-1")
        .payload(Blob::new(r#"{"n": 4}"#))
        .send()
        .await?;
    assert_eq!(invoked.status_code(), 202);
    let arn = invoked
        .durable_execution_arn()
        .expect("X-Amz-Durable-Execution-Arn")
        .to_string();
    assert!(
        arn.contains(":function:steps:$LATEST/durable-execution/order-1/"),
        "{arn}"
    );
    let execution = emu.durable_execution(&arn).expect("the execution exists");

    // The handler ran the first step and suspended in the wait: PENDING, nothing due.
    let wait = execution
        .wait_for_operation(|op| op.kind == OperationType::Wait)
        .await?;
    assert_eq!(wait.status, OperationStatus::Started);
    assert_eq!(execution.status()?, ExecutionStatus::Running);

    emu.clock().advance(Duration::from_secs(3600));
    let done = execution.wait().await?;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let result: Value = serde_json::from_str(done.result.as_deref().unwrap())?;
    assert_eq!(result, json!({"result": 50}));
    assert_eq!(
        done.invocations, 2,
        "the first run and one replay after the wait"
    );

    // The same state through the SDK.
    let described = client
        .get_durable_execution()
        .durable_execution_arn(&arn)
        .send()
        .await?;
    assert_eq!(described.status(), &SdkStatus::Succeeded);
    assert_eq!(described.durable_execution_name(), "order-1");
    assert_eq!(described.input_payload(), Some(r#"{"n": 4}"#));
    let history = client
        .get_durable_execution_history()
        .durable_execution_arn(&arn)
        .send()
        .await?;
    let types: Vec<_> = history
        .events()
        .iter()
        .filter_map(|e| e.event_type().map(|t| t.as_str().to_string()))
        .collect();
    for expected in [
        "ExecutionStarted",
        "StepSucceeded",
        "WaitStarted",
        "WaitSucceeded",
        "InvocationCompleted",
        "ExecutionSucceeded",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} in {types:?}"
        );
    }
    let wait_started = history
        .events()
        .iter()
        .find(|e| e.event_type().is_some_and(|t| t.as_str() == "WaitStarted"))
        .unwrap();
    assert_eq!(
        wait_started.wait_started_details().unwrap().duration(),
        3600
    );

    // The same name and input is the same execution; another input is refused (409).
    let again = client
        .invoke()
        .function_name("steps")
        .invocation_type(InvocationType::Event)
        .durable_execution_name("order-1")
        .payload(Blob::new(r#"{"n": 4}"#))
        .send()
        .await?;
    assert_eq!(again.durable_execution_arn(), Some(arn.as_str()));
    let conflict = client
        .invoke()
        .function_name("steps")
        .invocation_type(InvocationType::Event)
        .durable_execution_name("order-1")
        .payload(Blob::new(r#"{"n": 5}"#))
        .send()
        .await
        .unwrap_err();
    assert!(
        conflict
            .as_service_error()
            .is_some_and(|e| e.is_durable_execution_already_started_exception()),
        "{conflict:?}"
    );
    let listed = client
        .list_durable_executions_by_function()
        .function_name("steps")
        .send()
        .await?;
    assert_eq!(listed.durable_executions().len(), 1);
    Ok(())
}

const RETRIES: &str = r#"
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy, RetryStrategyConfig, create_retry_strategy,
)

def always_fails(_):
    raise ValueError("the payment service is down")

@durable_execution
def handler(event, context: DurableContext):
    retry = create_retry_strategy(RetryStrategyConfig(
        max_attempts=3, initial_delay=Duration.from_seconds(30),
        jitter_strategy=JitterStrategy.NONE,
    ))
    return context.step(always_fails, name="charge", config=StepConfig(retry_strategy=retry))
"#;

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_is_retried_then_the_execution_fails(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (emu, layers) = require!(durable_emulator(backend).await);
    // Skip time: each retry delay passes the moment it is waited for.
    emu.clock().auto_advance(true);
    let started = emu.clock().now();
    let f = emu
        .deploy(durable_function("charge", RETRIES, &layers))
        .await?;
    let execution = f.start_execution(r#"{}"#)?;
    let done = execution.wait().await?;
    assert_eq!(done.status, ExecutionStatus::Failed, "{done:?}");
    let error = done.error.expect("the step's error");
    assert!(
        error
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("the payment service is down")),
        "{error:?}"
    );
    let step = execution
        .operations()?
        .into_iter()
        .find(|op| op.kind == OperationType::Step)
        .unwrap();
    assert_eq!(step.status, OperationStatus::Failed);
    assert_eq!(
        step.step_details.unwrap().attempt,
        2,
        "two retries after the first attempt"
    );
    assert_eq!(done.invocations, 3, "one invocation per attempt");
    let waited = emu.clock().now().duration_since(started)?;
    assert!(
        waited >= Duration::from_secs(30 + 60),
        "backoff 30 s then 60 s: {waited:?}"
    );
    Ok(())
}

const CALLBACK: &str = r#"
from aws_durable_execution_sdk_python import DurableContext, durable_execution

@durable_execution
def handler(event, context: DurableContext):
    callback = context.create_callback(name="approval")
    return {"approved_by": callback.result()}
"#;

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_completed_through_the_sdk_resumes_the_execution(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (emu, layers) = require!(durable_emulator(backend).await);
    let f = emu
        .deploy(durable_function("approve", CALLBACK, &layers))
        .await?;
    let execution = f.start_execution("{}")?;
    let callback_id = execution.wait_for_callback(Some("approval")).await?;

    let client = emu.lambda_client();
    client
        .send_durable_execution_callback_success()
        .callback_id(&callback_id)
        .result(Blob::new(r#""ada""#))
        .send()
        .await?;
    let done = execution.wait().await?;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let result: Value = serde_json::from_str(done.result.as_deref().unwrap())?;
    assert_eq!(
        result["approved_by"], "\"ada\"",
        "the payload as sent (no serdes)"
    );

    // A second result for the same callback is refused.
    let again = client
        .send_durable_execution_callback_success()
        .callback_id(&callback_id)
        .send()
        .await;
    assert!(again.is_err());
    let unknown = client
        .send_durable_execution_callback_success()
        .callback_id("bm8tc3VjaC1jYWxsYmFjaw==")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        unknown.as_service_error().and_then(|e| e.code()),
        Some("ResourceNotFoundException"),
        "{unknown:?}"
    );
    Ok(())
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_durable_execution_ends_a_waiting_execution_stopped(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (emu, layers) = require!(durable_emulator(backend).await);
    let f = emu
        .deploy(durable_function("stoppable", STEPS_AND_WAIT, &layers))
        .await?;
    let execution = f.start_execution(r#"{"n": 1}"#)?;
    execution
        .wait_for_operation(|op| op.kind == OperationType::Wait)
        .await?;
    let client = emu.lambda_client();
    let stopped = client
        .stop_durable_execution()
        .durable_execution_arn(execution.arn())
        .error(
            SdkErrorObject::builder()
                .error_type("Cancelled")
                .error_message("order cancelled")
                .build(),
        )
        .send()
        .await?;
    assert!(stopped.stop_timestamp().secs() > 0);
    let info = execution.wait().await?;
    assert_eq!(info.status, ExecutionStatus::Stopped);
    assert_eq!(
        info.error.unwrap().error_message.as_deref(),
        Some("order cancelled")
    );
    // Time passing no longer wakes it.
    emu.clock().advance(Duration::from_secs(7200));
    assert_eq!(execution.status()?, ExecutionStatus::Stopped);
    assert_eq!(execution.info()?.invocations, 1);
    let described = client
        .get_durable_execution()
        .durable_execution_arn(execution.arn())
        .send()
        .await?;
    assert_eq!(described.status(), &SdkStatus::Stopped);
    Ok(())
}

const PARENT: &str = r#"
from aws_durable_execution_sdk_python import DurableContext, durable_execution

@durable_execution
def handler(event, context: DurableContext):
    doubled = context.invoke("child", {"x": event["x"]}, name="call-child")
    return {"child_said": doubled}
"#;

const CHILD: &str = r#"
from aws_durable_execution_sdk_python import DurableContext, durable_execution

@durable_execution
def handler(event, context: DurableContext):
    return context.step(lambda _: event["x"] * 2, name="double")
"#;

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_invoke_runs_the_target_function_and_resumes_with_its_result(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (emu, layers) = require!(durable_emulator(backend).await);
    emu.deploy(durable_function("child", CHILD, &layers))
        .await?;
    let parent = emu
        .deploy(durable_function("parent", PARENT, &layers))
        .await?;
    let execution = parent.start_execution(r#"{"x": 21}"#)?;
    let done = execution.wait().await?;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let result: Value = serde_json::from_str(done.result.as_deref().unwrap())?;
    assert_eq!(result, json!({"child_said": 42}));
    let invoke = execution
        .operations()?
        .into_iter()
        .find(|op| op.kind == OperationType::ChainedInvoke)
        .unwrap();
    assert_eq!(invoke.status, OperationStatus::Succeeded);
    // The target ran as a durable execution of its own.
    let child = emu.function("child").unwrap().durable_executions();
    assert_eq!(child.len(), 1);
    assert_eq!(child[0].status, ExecutionStatus::Succeeded);
    Ok(())
}

#[tokio::test]
async fn durable_config_is_echoed_and_unknown_executions_are_not_found() -> anyhow::Result<()> {
    let emu = support::builder().start().await?;
    let client = emu.lambda_client();
    let zip = CodeZip::new()
        .source("app.py", "def handler(e, c):\n    return e\n")
        .build()?
        .zip_bytes()
        .to_vec();
    // CreateFunction of a Python echo handler named `name`, to be completed and sent.
    let create = |name: &str| {
        client
            .create_function()
            .function_name(name)
            .runtime(SdkRuntime::Python311)
            .role("arn:aws:iam::123456789012:role/test")
            .handler("app.handler")
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(zip.clone()))
                    .build(),
            )
    };
    let created = create("durable-echo")
        .durable_config(
            SdkDurableConfig::builder()
                .execution_timeout(3600)
                .retention_period_in_days(7)
                .build(),
        )
        .send()
        .await?;
    let config = created.durable_config().expect("DurableConfig echoed");
    assert_eq!(config.execution_timeout(), Some(3600));
    assert_eq!(config.retention_period_in_days(), Some(7));

    let updated = client
        .update_function_configuration()
        .function_name("durable-echo")
        .durable_config(SdkDurableConfig::builder().execution_timeout(60).build())
        .send()
        .await?;
    let config = updated.durable_config().unwrap();
    assert_eq!(config.execution_timeout(), Some(60));
    assert_eq!(config.retention_period_in_days(), Some(7), "kept");
    let got = client
        .get_function()
        .function_name("durable-echo")
        .send()
        .await?;
    assert_eq!(
        got.configuration()
            .unwrap()
            .durable_config()
            .unwrap()
            .execution_timeout(),
        Some(60)
    );

    // Lambda enables durable execution only at CreateFunction.
    create("plain").send().await?;
    let refused = client
        .update_function_configuration()
        .function_name("plain")
        .durable_config(SdkDurableConfig::builder().execution_timeout(60).build())
        .send()
        .await
        .unwrap_err();
    assert!(
        refused
            .as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_value_exception()),
        "{refused:?}"
    );

    let out_of_range = create("too-long")
        .durable_config(
            SdkDurableConfig::builder()
                .execution_timeout(31_622_401)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(
        out_of_range
            .as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_value_exception()),
        "{out_of_range:?}"
    );

    let unknown = "arn:aws:lambda:us-east-1:123456789012:function:durable-echo:$LATEST/durable-execution/nope/0000";
    let err = client
        .get_durable_execution()
        .durable_execution_arn(unknown)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    let err = client
        .get_durable_execution_history()
        .durable_execution_arn(unknown)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    Ok(())
}

/// `target/testkit/durable-testing`: AWS's `aws-durable-execution-sdk-python-testing`.
fn durable_test_driver() -> Result<std::path::PathBuf, String> {
    let dir = support::repo().join("target/testkit/durable-testing");
    if dir
        .join("aws_durable_execution_sdk_python_testing")
        .is_dir()
    {
        Ok(dir)
    } else {
        Err(format!(
            "no durable test driver at {} (run scripts/setup)",
            dir.display()
        ))
    }
}

/// AWS's own driver: `DurableFunctionCloudTestRunner.run` invokes (RequestResponse), reads
/// `DurableExecutionArn`, polls GetDurableExecution and rebuilds the operations from
/// GetDurableExecutionHistory — every shape through boto3 and the testing library's
/// parsers.
const CLOUD_TEST_RUNNER: &str = r#"
import json, os
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionCloudTestRunner

runner = DurableFunctionCloudTestRunner(
    function_name="steps", region=os.environ["AWS_REGION"],
    lambda_endpoint=os.environ["ENDPOINT"], poll_interval=0.05,
)
result = runner.run(input={"n": 4}, timeout=30)
print(json.dumps({
    "status": result.status.name,
    "result": result.result,
    "add": result.get_step("add").result,
    "times": result.get_step("times").result,
    "operations": [op.name for op in result.operations],
    "nap": type(result.get_operation_by_name("nap")).__name__,
}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_durable_function_cloud_test_runner_drives_an_execution_end_to_end()
-> anyhow::Result<()> {
    let driver = require!(durable_test_driver());
    let python = require!(support::python());
    let (emu, layers) = require!(durable_emulator(BackendKind::Process).await);
    emu.clock().auto_advance(true); // the one-hour wait passes at once
    emu.deploy(durable_function("steps", STEPS_AND_WAIT, &layers))
        .await?;
    let sdk = support::repo().join("target/testkit/durable-layer/python");
    let output = tokio::process::Command::new(python)
        .arg("-c")
        .arg(CLOUD_TEST_RUNNER)
        .env("ENDPOINT", emu.endpoint_url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "lambda-testkit")
        .env("AWS_SECRET_ACCESS_KEY", "lambda-testkit")
        .env(
            "PYTHONPATH",
            format!("{}:{}", driver.display(), sdk.display()),
        )
        .output()
        .await?;
    assert!(
        output.status.success(),
        "driver failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(report["status"], "SUCCEEDED", "{report}");
    assert_eq!(report["result"], r#"{"result": 50}"#);
    assert_eq!(report["add"], "5");
    assert_eq!(report["times"], "50");
    assert_eq!(report["operations"], json!(["add", "nap", "times"]));
    assert_eq!(report["nap"], "WaitOperation");
    Ok(())
}

const CRASHES_ONCE: &str = r#"
import os
from aws_durable_execution_sdk_python import DurableContext, durable_execution

RAN = []

def charge(_):
    RAN.append(True)
    print("CHARGING", flush=True)
    return "charged"

@durable_execution
def handler(event, context: DurableContext):
    charged = context.step(charge, name="charge")
    if RAN:
        # The step ran in this environment (it was not replayed from its checkpoint):
        # the runtime dies right after the step's checkpoint.
        os._exit(1)
    shipped = context.step(lambda _: "shipped", name="ship")
    return f"{charged}, {shipped}"
"#;

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_continues_from_its_checkpoints_after_the_runtime_dies(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (emu, layers) = require!(durable_emulator(backend).await);
    let f = emu
        .deploy(durable_function("crashy", CRASHES_ONCE, &layers))
        .await?;
    let execution = f.start_execution("{}")?;
    let done = execution.wait().await?;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    assert_eq!(done.result.as_deref(), Some(r#""charged, shipped""#));
    // The crashed invocation and its replay (plus, on a loaded machine, any invocation
    // whose environment failed to start: replayed too). Had a replay run the step again,
    // it would have crashed again (and again: FAILED).
    let history = execution.history()?;
    let failed = history
        .iter()
        .filter(|e| e.event_type == "InvocationCompleted" && e.details.get("Error").is_some())
        .count() as u32;
    assert!(failed >= 1, "the crash is in the history");
    execution.assert_invocations(1 + failed);
    execution.assert_operations(
        OperationType::Step,
        &[
            ("charge", OperationStatus::Succeeded),
            ("ship", OperationStatus::Succeeded),
        ],
    );
    f.telemetry()
        .wait_for(
            |r| r.record_type == "function" && r.line().is_some_and(|l| l.contains("CHARGING")),
            Duration::from_secs(5),
        )
        .await?;
    let charges = f
        .telemetry()
        .records()
        .iter()
        .filter(|r| r.record_type == "function" && r.line().is_some_and(|l| l.contains("CHARGING")))
        .count();
    assert_eq!(charges, 1, "the checkpointed step did not run again");
    let charged = history
        .iter()
        .position(|e| e.event_type == "StepSucceeded" && e.name.as_deref() == Some("charge"))
        .unwrap();
    let crashed = history[charged..]
        .iter()
        .find(|e| e.event_type == "InvocationCompleted")
        .unwrap();
    assert!(
        crashed.details.get("Error").is_some(),
        "the invocation that ran the step crashed: {crashed:?}"
    );
    Ok(())
}

const COUNTER: &str = r#"
from aws_durable_execution_sdk_python import DurableContext, durable_execution

@durable_execution
def handler(event, context: DurableContext):
    doubled = context.step(lambda _: event["i"] * 2, name="double")
    return context.step(lambda _: doubled + 1, name="inc")
"#;

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_executions_each_get_their_own_result(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let (emu, layers) = require!(durable_emulator(backend).await);
    let f = emu
        .deploy(durable_function("counter", COUNTER, &layers))
        .await?;
    let executions: Vec<_> = (0..100)
        .map(|i| f.start_execution(format!(r#"{{"i": {i}}}"#)))
        .collect::<Result<_, _>>()?;
    let results = futures::future::try_join_all(executions.iter().map(|e| e.wait())).await?;
    for (i, done) in results.iter().enumerate() {
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        assert_eq!(
            done.result.as_deref(),
            Some((i * 2 + 1).to_string().as_str())
        );
    }
    assert_eq!(f.durable_executions().len(), 100);
    for execution in &executions {
        // Both steps run in one invocation; one that failed outside the durable protocol
        // (on a loaded machine, an environment that did not start in time) is replayed.
        let failed: Vec<_> = execution
            .history()?
            .into_iter()
            .filter(|e| e.event_type == "InvocationCompleted" && e.details.get("Error").is_some())
            .collect();
        for event in &failed {
            eprintln!("replayed after {}", event.details["Error"]);
        }
        execution.assert_invocations(1 + failed.len() as u32);
    }
    Ok(())
}

const WAIT_THEN_CALLBACK: &str = r#"
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import CallbackConfig, Duration

@durable_execution
def handler(event, context: DurableContext):
    context.wait(Duration.from_hours(12), name="overnight")
    callback = context.create_callback(
        name="sign-off", config=CallbackConfig(timeout=Duration.from_hours(1)),
    )
    return callback.result()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_advance_skips_waits_but_not_the_time_a_callback_is_given() -> anyhow::Result<()> {
    let (emu, layers) = require!(durable_emulator(BackendKind::Process).await);
    emu.clock().auto_advance(true);
    let started = emu.clock().now();
    let f = emu
        .deploy(durable_function("sign-off", WAIT_THEN_CALLBACK, &layers))
        .await?;
    let execution = f.start_execution("{}")?;
    let callback_id = execution.wait_for_callback(Some("sign-off")).await?;
    let skipped = emu.clock().now().duration_since(started)?;
    assert!(
        skipped >= Duration::from_secs(43_200),
        "the night passed at once: {skipped:?}"
    );
    assert_eq!(
        execution.status()?,
        ExecutionStatus::Running,
        "the callback's hour did not"
    );
    execution.send_callback_success(&callback_id, "\"done\"")?;
    let done = execution.wait().await?;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    assert_eq!(done.result.as_deref(), Some(r#""\"done\"""#));
    Ok(())
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_handler_on_durable_lambda_closure_checkpoints_each_step(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    // fixtures/rust/src/bin/durable_steps.rs: ten steps summing 0..10.
    let function = require!(support::rust_function("durable-rust", "durable_steps"));
    let emu = require!(support::emulator(backend).await);
    let f = emu
        .deploy(function.durable(DurableConfig::new(Duration::from_secs(60))))
        .await?;
    let execution = f.start_execution("{}")?;
    let done = execution.wait().await?;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    assert_eq!(done.result.as_deref(), Some("45"));
    let steps: Vec<_> = execution
        .operations()?
        .into_iter()
        .filter(|op| op.kind == OperationType::Step)
        .collect();
    assert_eq!(steps.len(), 10);
    assert!(steps.iter().all(|s| s.status == OperationStatus::Succeeded));
    assert_eq!(steps[9].name.as_deref(), Some("step-9"));
    Ok(())
}

const EVERY_KIND: &str = r#"
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration

@durable_execution
def handler(event, context: DurableContext):
    a = context.step(lambda _: event["n"] + 1, name="add")
    b = context.run_in_child_context(
        lambda child: child.step(lambda _: a * 2, name="double"), name="group",
    )
    context.wait(Duration.from_hours(1), name="nap")
    who = context.create_callback(name="approval").result()
    doubled = context.invoke("child", {"x": b}, name="call-child")
    return {"who": who, "doubled": doubled}
"#;

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_reports_each_operation_type_and_the_invocations_an_execution_took(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    use OperationStatus::{Started, Succeeded};
    let (emu, layers) = require!(durable_emulator(backend).await);
    emu.deploy(durable_function("child", CHILD, &layers))
        .await?;
    let f = emu
        .deploy(durable_function("every-kind", EVERY_KIND, &layers))
        .await?;
    let execution = f.start_execution(r#"{"n": 4}"#)?;

    // First invocation: a step, a child context with a step, then the wait suspends it.
    execution
        .wait_for_operation(|op| op.name.as_deref() == Some("nap"))
        .await?;
    execution.assert_operations(
        OperationType::Step,
        &[("add", Succeeded), ("double", Succeeded)],
    );
    execution.assert_operations(OperationType::Context, &[("group", Succeeded)]);
    execution.assert_operations(OperationType::Wait, &[("nap", Started)]);
    assert_eq!(execution.operation("add")?.unwrap().result(), Some("5"));
    let group = execution.operation("group")?.unwrap();
    assert_eq!(group.result(), Some("10"));
    let double = execution.operation("double")?.unwrap();
    assert_eq!(double.parent_id.as_deref(), Some(group.id.as_str()));
    assert!(execution.operation("never")?.is_none());

    // The hour passes: a replay creates the callback and suspends again.
    emu.clock().advance(Duration::from_secs(3600));
    let callback_id = execution.wait_for_callback(Some("approval")).await?;
    execution.assert_operations(OperationType::Wait, &[("nap", Succeeded)]);
    execution.assert_operations(OperationType::Callback, &[("approval", Started)]);
    execution.send_callback_success(&callback_id, r#""ada""#)?;

    let done = execution.wait().await?;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let result: Value = serde_json::from_str(done.result.as_deref().unwrap())?;
    assert_eq!(result, json!({"who": "\"ada\"", "doubled": 20}));
    execution.assert_operations(OperationType::Callback, &[("approval", Succeeded)]);
    execution.assert_operations(OperationType::ChainedInvoke, &[("call-child", Succeeded)]);
    assert_eq!(
        execution.operation("call-child")?.unwrap().result(),
        Some("20")
    );
    assert_eq!(
        execution.operation_summary(OperationType::Execution)?.len(),
        1
    );
    // Invoked four times: the first run, then after the wait, the callback and the
    // chained invoke — and the function's own counters saw the same invocations.
    execution.assert_invocations(4);
    assert_eq!(execution.replays()?, 3);
    assert_eq!(f.stats().invocations, 4);

    // The assertions fail, and say why.
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        execution.assert_operations(OperationType::Step, &[("add", Succeeded)])
    }))
    .expect_err("two steps are not one");
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("STEP") && message.contains("double") && message.contains("history:"),
        "{message}"
    );
    assert!(
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || execution.assert_invocations(3)
        ))
        .is_err()
    );
    Ok(())
}

/// A durable function without an SDK: it records the envelope it got (its
/// `CheckpointToken`) and returns PENDING, so the test checkpoints by hand.
const RECORDS_ENVELOPE: &str = r#"
import json, os

def handler(event, context):
    with open(os.path.join(os.environ["OUT"], "envelope.json"), "w") as f:
        json.dump(event, f)
    return {"Status": "PENDING"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_retried_with_its_client_token_is_applied_once() -> anyhow::Result<()> {
    use aws_sdk_lambda::types::{OperationAction, OperationType as SdkType, OperationUpdate};
    let (emu, _layers) = require!(durable_emulator(BackendKind::Process).await);
    let out = tempfile::tempdir()?;
    let f = emu
        .deploy(
            durable_function("by-hand", RECORDS_ENVELOPE, &[])
                .env("OUT", out.path().display().to_string()),
        )
        .await?;
    let execution = f.start_execution("{}")?;
    // Its first invocation has ended (so the envelope is written). Not `wait_until_idle`
    // after the execution counts an invocation: that could hold before the invoke was
    // admitted, with nothing written yet (seen flaky).
    f.wait_for("the first invocation's end", Duration::from_secs(10), |s| {
        s.invocations == 1 && s.running == 0
    })
    .await?;
    let envelope: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("envelope.json"))?)?;
    let token = envelope["CheckpointToken"].as_str().unwrap();

    let client = emu.lambda_client();
    let charge = |payload: &str| {
        OperationUpdate::builder()
            .id("c4ca4238a0b92382")
            .name("charge")
            .r#type(SdkType::Step)
            .action(OperationAction::Succeed)
            .payload(payload)
            .build()
            .unwrap()
    };
    let checkpoint = |client_token: Option<&str>, payload: &str| {
        client
            .checkpoint_durable_execution()
            .durable_execution_arn(execution.arn())
            .checkpoint_token(token)
            .set_client_token(client_token.map(str::to_string))
            .updates(charge(payload))
            .send()
    };
    let first = checkpoint(Some("charge-attempt-1"), "42").await?;
    // The SDK lost the answer and retries the call: same ClientToken, same request.
    let retried = checkpoint(Some("charge-attempt-1"), "42").await?;
    assert_eq!(retried.checkpoint_token(), first.checkpoint_token());
    assert!(first.checkpoint_token().is_some_and(|t| t != token));
    let ops = |r: &aws_sdk_lambda::operation::checkpoint_durable_execution::CheckpointDurableExecutionOutput| {
        r.new_execution_state()
            .map(|s| s.operations().len())
            .unwrap_or_default()
    };
    assert_eq!(ops(&retried), ops(&first));
    // Applied once: one step, one StepSucceeded.
    execution.assert_operations(
        OperationType::Step,
        &[("charge", OperationStatus::Succeeded)],
    );
    let succeeded = execution
        .history()?
        .iter()
        .filter(|e| e.event_type == "StepSucceeded")
        .count();
    assert_eq!(succeeded, 1);

    // The same ClientToken with another request is refused; so is the stale
    // CheckpointToken under a new ClientToken (the SDK fills one in when none is given).
    for (client_token, payload) in [(Some("charge-attempt-1"), "43"), (None, "42")] {
        let err = checkpoint(client_token, payload).await.unwrap_err();
        assert!(
            err.as_service_error()
                .is_some_and(|e| e.is_invalid_parameter_value_exception()),
            "{err:?}"
        );
    }
    // The token the first call answered is the current one.
    client
        .checkpoint_durable_execution()
        .durable_execution_arn(execution.arn())
        .checkpoint_token(first.checkpoint_token().unwrap())
        .send()
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_execution_is_gone_once_its_retention_has_passed_on_the_clock()
-> anyhow::Result<()> {
    let (emu, layers) = require!(durable_emulator(BackendKind::Process).await);
    let f = emu
        .deploy(
            durable_function("short-memory", COUNTER, &layers)
                .durable(DurableConfig::new(Duration::from_secs(3600)).retention_days(1)),
        )
        .await?;
    let execution = f.start_execution(r#"{"i": 1}"#)?;
    let done = execution.wait().await?;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    let client = emu.lambda_client();
    let describe = || {
        client
            .get_durable_execution()
            .durable_execution_arn(execution.arn())
            .send()
    };
    let listed = || async {
        client
            .list_durable_executions_by_function()
            .function_name("short-memory")
            .send()
            .await
            .map(|l| l.durable_executions().len())
    };

    emu.clock().advance(Duration::from_secs(86_400 - 60));
    assert_eq!(
        describe().await?.status(),
        &SdkStatus::Succeeded,
        "kept a day"
    );
    assert_eq!(listed().await?, 1);

    emu.clock().advance(Duration::from_secs(60));
    let err = describe().await.unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    assert_eq!(listed().await?, 0);
    assert!(emu.durable_execution(execution.arn()).is_none());
    assert!(f.durable_executions().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_made_durable_by_an_update_checkpoints_to_the_emulator() -> anyhow::Result<()> {
    let (emu, layers) = require!(durable_emulator(BackendKind::Process).await);
    // Deployed as an ordinary function: nothing has started the REST listener yet.
    let mut plain = durable_function("late-durable", COUNTER, &layers).not_durable();
    plain = plain.env("KEPT", "yes");
    let f = emu.deploy(plain).await?;
    f.update(|f| f.durable(DurableConfig::new(Duration::from_secs(60))))
        .await?;
    let execution = f.start_execution(r#"{"i": 20}"#)?;
    let done = execution.wait().await?;
    assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
    assert_eq!(done.result.as_deref(), Some("41"));
    execution.assert_operations(
        OperationType::Step,
        &[
            ("double", OperationStatus::Succeeded),
            ("inc", OperationStatus::Succeeded),
        ],
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_function_refuses_a_streamed_invoke() -> anyhow::Result<()> {
    let (emu, layers) = require!(durable_emulator(BackendKind::Process).await);
    let f = emu
        .deploy(durable_function("no-stream", COUNTER, &layers))
        .await?;
    let err = f.invoke_stream(r#"{"i": 1}"#).await.unwrap_err();
    assert!(
        matches!(&err, lambda_testkit::InvokeError::Durable(e) if e.to_string().contains("InvokeWithResponseStream")),
        "{err:?}"
    );
    let err = emu
        .lambda_client()
        .invoke_with_response_stream()
        .function_name("no-stream")
        .payload(Blob::new(r#"{"i": 1}"#))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_value_exception()),
        "{err:?}"
    );
    assert!(f.durable_executions().is_empty(), "nothing was started");
    Ok(())
}
