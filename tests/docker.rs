//! The Docker backend itself: labels, cleanup on drop (busy containers, panics,
//! current-thread runtimes), the reaper after a SIGKILL, a container killed mid-invocation,
//! per-invocation output through the attach stream, the host-gateway network mode, and
//! the error for an image that cannot be had.
//!
//! Skipped without a Docker daemon and the stand-in images (`scripts/docker-up`,
//! `images/build`); failed instead with `LAMBDA_TESTKIT_REQUIRE_ALL=1`.

mod support;

use std::collections::HashMap;
use std::io::BufRead;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListVolumesOptionsBuilder,
};
use lambda_testkit::docker::{
    DockerNetwork, LABEL_DEPLOY_ID, LABEL_ENVIRONMENT, LABEL_FUNCTION, LABEL_OWNER_HOST,
    LABEL_OWNER_PID, LABEL_SESSION,
};
use lambda_testkit::error::BackendError;
use lambda_testkit::{BackendKind, DeployError, Emulator, Function, Runtime};
use serde_json::{Value, json};

/// Containers (running or not) carrying every `key=value` label given.
async fn containers(
    docker: &Docker,
    labels: &[(&str, &str)],
) -> Vec<bollard::models::ContainerSummary> {
    let filter: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let filters = HashMap::from([("label", filter)]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .expect("list containers")
}

/// Execution environments' containers (not the short-lived code loaders) with the labels.
async fn environments(
    docker: &Docker,
    labels: &[(&str, &str)],
) -> Vec<bollard::models::ContainerSummary> {
    let mut found = containers(docker, labels).await;
    found.retain(|c| {
        c.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(LABEL_ENVIRONMENT))
    });
    found
}

/// Names of the volumes carrying every `key=value` label given.
async fn volumes(docker: &Docker, labels: &[(&str, &str)]) -> Vec<String> {
    let filter: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let filters = HashMap::from([("label", filter)]);
    let options = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let list = docker
        .list_volumes(Some(options))
        .await
        .expect("list volumes");
    list.volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect()
}

/// A label naming one test's containers only.
fn case_label() -> (String, String) {
    (
        "lambda-testkit.case".to_string(),
        uuid::Uuid::new_v4().simple().to_string(),
    )
}

#[tokio::test]
async fn every_container_carries_session_owner_function_and_deploy_labels_and_its_memory_limit()
-> anyhow::Result<()> {
    let echo = require!(support::rust_function("labelled", "echo"));
    let builder = require!(support::builder_for(BackendKind::Docker));
    let docker = support::docker_client().await.map_err(anyhow::Error::msg)?;
    let (key, case) = case_label();
    let emu = builder.docker_label(&key, &case).start().await?;
    let f = emu.deploy(echo.memory_mb(256)).await?;
    f.invoke("{}").await?;

    let found = environments(&docker, &[(&key, &case)]).await;
    assert_eq!(found.len(), 1, "one environment, one container");
    let labels = found[0].labels.clone().unwrap_or_default();
    assert_eq!(labels[LABEL_FUNCTION], "labelled");
    assert_eq!(labels[LABEL_OWNER_PID], std::process::id().to_string());
    assert_eq!(labels[LABEL_ENVIRONMENT], "labelled-env-1");
    assert!(labels[LABEL_SESSION].len() >= 32, "{labels:?}");
    assert!(
        !labels[LABEL_DEPLOY_ID].is_empty() && !labels[LABEL_OWNER_HOST].is_empty(),
        "{labels:?}"
    );
    assert_eq!(labels[support::TEST_RUN_LABEL], support::test_run());

    let id = found[0].id.clone().unwrap();
    let inspect = docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await?;
    assert_eq!(
        inspect.host_config.and_then(|h| h.memory),
        Some(256 << 20),
        "Memory Size is the container's limit"
    );

    drop(f);
    drop(emu);
    assert!(
        containers(&docker, &[(&key, &case)]).await.is_empty(),
        "dropping the emulator removed the container"
    );
    Ok(())
}

/// Busy and idle containers of several functions, a panicking test, an explicit shutdown
/// and a drop inside a current-thread runtime: afterwards no container of any is left.
#[test]
fn nothing_survives_drop_panic_or_shutdown() -> anyhow::Result<()> {
    let echo = require!(support::rust_function("echo", "echo"));
    let sleep = require!(support::rust_function("sleep", "sleep"));
    let builder = require!(support::builder_for(BackendKind::Docker));
    let (key, case) = case_label();
    let builder = builder.docker_label(&key, &case);

    // Dropped inside a current-thread runtime, one container busy mid-invocation.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let busy_at_drop = rt.block_on(async {
        let emu = builder.clone().start().await?;
        let a = emu.deploy(echo.clone()).await?;
        let b = emu.deploy(sleep.clone()).await?;
        a.invoke("{}").await?;
        let busy = tokio::spawn(async move { b.invoke(r#"{"ms": 10000}"#).await });
        tokio::time::sleep(Duration::from_millis(800)).await;
        let docker = support::docker_client().await.map_err(anyhow::Error::msg)?;
        let alive = environments(&docker, &[(&key, &case)]).await.len();
        busy.abort();
        drop(emu);
        anyhow::Ok(alive)
    })?;
    drop(rt);
    assert_eq!(
        busy_at_drop, 2,
        "an idle and a busy container existed at drop"
    );

    // A test that panics with the emulator alive, in a multi-thread runtime.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (b, e) = (builder.clone(), echo.clone());
        let task = tokio::spawn(async move {
            let emu = b.start().await.unwrap();
            let f = emu.deploy(e).await.unwrap();
            f.invoke("{}").await.unwrap();
            panic!("the test failed while the emulator was alive");
        });
        assert!(task.await.unwrap_err().is_panic());

        // An explicit shutdown while a handle is still held.
        let emu = builder.clone().start().await?;
        let f = emu.deploy(echo.clone()).await?;
        f.invoke("{}").await?;
        emu.shutdown().await;
        let docker = support::docker_client().await.map_err(anyhow::Error::msg)?;
        assert!(
            containers(&docker, &[(&key, &case)]).await.is_empty(),
            "shutdown waits until containers are gone"
        );
        assert!(f.invoke("{}").await.is_err());
        anyhow::Ok(())
    })?;

    let (left, left_volumes) = rt.block_on(async {
        let docker = support::docker_client().await.map_err(anyhow::Error::msg)?;
        let labels = [(key.as_str(), case.as_str())];
        anyhow::Ok((
            containers(&docker, &labels).await,
            volumes(&docker, &labels).await,
        ))
    })?;
    assert!(left.is_empty(), "containers left behind: {left:?}");
    assert!(
        left_volumes.is_empty(),
        "code volumes left behind: {left_volumes:?}"
    );
    Ok(())
}

/// The child half of the reaper test: with `LAMBDA_TESTKIT_REAPER_CHILD` set, starts
/// containers, says so, and waits to be killed. A no-op otherwise.
#[tokio::test]
async fn reaper_child() -> anyhow::Result<()> {
    if std::env::var_os("LAMBDA_TESTKIT_REAPER_CHILD").is_none() {
        return Ok(());
    }
    let emu = support::builder_for(BackendKind::Docker)
        .map_err(anyhow::Error::msg)?
        .start()
        .await?;
    let echo = emu
        .deploy(support::rust_function("orphan-idle", "echo").map_err(anyhow::Error::msg)?)
        .await?;
    let sleep = emu
        .deploy(support::rust_function("orphan-busy", "sleep").map_err(anyhow::Error::msg)?)
        .await?;
    echo.invoke("{}").await?;
    tokio::spawn(async move { sleep.invoke(r#"{"ms": 60000}"#).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("READY {}", std::process::id());
    tokio::time::sleep(Duration::from_secs(120)).await;
    Ok(())
}

#[tokio::test]
async fn a_new_emulator_reaps_the_containers_of_a_sigkilled_test_process() -> anyhow::Result<()> {
    require!(support::rust_fixture("echo"));
    require!(support::docker_ready());
    let docker = support::docker_client().await.map_err(anyhow::Error::msg)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["reaper_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("LAMBDA_TESTKIT_REAPER_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()?;
    let pid = child.id().to_string();
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("READY "))
    });
    let ready = tokio::time::timeout(Duration::from_secs(60), ready).await;
    assert!(
        matches!(ready, Ok(Ok(true))),
        "the child started its containers"
    );
    assert!(
        !volumes(&docker, &[(LABEL_OWNER_PID, &pid)])
            .await
            .is_empty(),
        "and its code volumes"
    );
    assert_eq!(
        environments(&docker, &[(LABEL_OWNER_PID, &pid)])
            .await
            .len(),
        2,
        "an idle and a busy container"
    );

    child.kill()?; // SIGKILL: no drop, no cleanup
    child.wait()?;

    let emu = support::emulator(BackendKind::Docker)
        .await
        .map_err(anyhow::Error::msg)?;
    let left = containers(&docker, &[(LABEL_OWNER_PID, &pid)]).await;
    assert!(
        left.is_empty(),
        "starting an emulator reaped them: {left:?}"
    );
    let left = volumes(&docker, &[(LABEL_OWNER_PID, &pid)]).await;
    assert!(left.is_empty(), "and their code volumes: {left:?}");
    drop(emu);
    Ok(())
}

#[tokio::test]
async fn a_container_killed_mid_invocation_is_runtime_exit_error_then_a_new_container_serves()
-> anyhow::Result<()> {
    let sleep = require!(support::rust_function("killed", "sleep"));
    let builder = require!(support::builder_for(BackendKind::Docker));
    let docker = support::docker_client().await.map_err(anyhow::Error::msg)?;
    let (key, case) = case_label();
    let emu = builder.docker_label(&key, &case).start().await?;
    let f = emu.deploy(sleep.timeout(Duration::from_secs(30))).await?;
    f.invoke(r#"{"ms": 1}"#).await?;

    let g = f.clone();
    let busy = tokio::spawn(async move { g.invoke(r#"{"ms": 20000}"#).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let found = environments(&docker, &[(&key, &case)]).await;
    assert_eq!(found.len(), 1);
    let options = KillContainerOptionsBuilder::default()
        .signal("SIGKILL")
        .build();
    docker
        .kill_container(found[0].id.as_deref().unwrap(), Some(options))
        .await?;

    let out = tokio::time::timeout(Duration::from_secs(10), busy).await???;
    let e = out.error().expect("the invocation failed");
    assert_eq!(e.error_type, "Runtime.ExitError");
    assert!(
        e.error_message
            .ends_with("Runtime exited with error: signal: killed"),
        "{}",
        e.error_message
    );
    assert!(
        out.log.contains("sleeping 20000"),
        "output before the kill is in the log: {}",
        out.log
    );

    let next = f.invoke(r#"{"ms": 1}"#).await?;
    assert!(next.function_error.is_none(), "{:?}", next.payload);
    assert!(
        next.cold_start && next.environment_id != out.environment_id,
        "a new container serves"
    );
    let s = f.stats();
    assert_eq!(
        (s.invocations, s.errors, s.cold_starts),
        (3, 1, 2),
        "{}",
        f.timeline_text()
    );
    Ok(())
}

#[tokio::test]
async fn output_written_before_the_response_is_always_in_that_invocations_log() -> anyhow::Result<()>
{
    let logs = require!(support::rust_function("fenced", "logs"));
    let emu = require!(support::emulator(BackendKind::Docker).await);
    let f = emu.deploy(logs).await?;
    for i in 0..60u64 {
        let lines = i % 4;
        let out = f.invoke(json!({ "lines": lines }).to_string()).await?;
        let log = &out.log;
        let body = log
            .split_once(&format!(
                "START RequestId: {} Version: $LATEST\n",
                out.request_id
            ))
            .and_then(|(_, rest)| rest.split_once(&format!("END RequestId: {}\n", out.request_id)))
            .map(|(body, _)| body)
            .unwrap_or_else(|| panic!("START … END framing: {log}"));
        let expected: String = (1..=lines)
            .map(|n| format!("stdout line {n}\nstderr line {n}\n"))
            .collect::<Vec<_>>()
            .join("");
        assert_eq!(
            body, expected,
            "invocation {i}: exactly its own output, in order\n{log}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn code_and_layers_are_read_only_as_in_lambda_and_tmp_is_writable() -> anyhow::Result<()> {
    let emu = require!(support::emulator(BackendKind::Docker).await);
    let source = r#"
def handler(event, ctx):
    out = {}
    for path in ["/var/task/new.txt", "/opt/new.txt", "/tmp/new.txt"]:
        try:
            with open(path, "w") as f:
                f.write("x")
            out[path] = "written"
        except OSError as e:
            out[path] = e.strerror
    return out
"#;
    let f = emu
        .deploy(
            Function::new("read-only", Runtime::Python311)
                .handler("app.handler")
                .source("app.py", source),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({})).await?;
    assert_eq!(out["/var/task/new.txt"], "Read-only file system");
    assert_eq!(out["/opt/new.txt"], "Read-only file system");
    assert_eq!(out["/tmp/new.txt"], "written");
    Ok(())
}

#[tokio::test]
async fn host_gateway_mode_reaches_the_runtime_api_through_host_docker_internal()
-> anyhow::Result<()> {
    let context = require!(support::rust_function("gateway", "context"));
    let builder = require!(support::builder_for(BackendKind::Docker));
    let emu = builder
        .docker_network(DockerNetwork::HostGateway)
        .start()
        .await?;
    let f = emu.deploy(context).await?;
    let out = f.invoke("{}").await?;
    assert!(
        out.function_error.is_none(),
        "{}\n{}",
        String::from_utf8_lossy(&out.payload),
        out.log
    );
    let v: Value = out.json()?;
    let api = v["env"]["AWS_LAMBDA_RUNTIME_API"]
        .as_str()
        .unwrap_or_default();
    assert!(api.starts_with("host.docker.internal:"), "{api}");
    assert_eq!(v["env"]["LAMBDA_TASK_ROOT"], "/var/task");
    Ok(())
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_named_with_how_to_override_it() -> anyhow::Result<()> {
    let builder = require!(support::builder_for(BackendKind::Docker));
    // A registry on a closed loopback port: the pull fails at once, without leaving the host.
    let missing = "127.0.0.1:1/lambda-testkit/missing:0";
    let emu: Emulator = builder.image(Runtime::Python312, missing).start().await?;
    let err = emu
        .deploy(
            Function::new("nope", Runtime::Python312)
                .handler("app.handler")
                .source("app.py", ""),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeployError::Backend(BackendError::ImageUnavailable { .. })
        ),
        "{err}"
    );
    let text = err.to_string();
    for part in [
        missing,
        "EmulatorBuilder::image(Runtime::Python312",
        "LAMBDA_TESTKIT_IMAGE_PYTHON3_12=name:tag",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    Ok(())
}

/// One switch runs every runtime without an image of its own in the local stand-ins, so
/// a machine with no registry needs no per-runtime variables.
#[tokio::test]
async fn the_standin_switch_picks_the_local_images_for_every_runtime() -> anyhow::Result<()> {
    require!(support::docker_ready());
    let emu = support::builder()
        .docker()
        .standin_images(true)
        .docker_label(support::TEST_RUN_LABEL, support::test_run())
        .start()
        .await?;
    let rust = emu
        .deploy(require!(support::rust_function("standin-rust", "echo")))
        .await?;
    assert_eq!(
        rust.invoke_json::<_, Value>(&json!({"a": 1})).await?["a"],
        1
    );
    let python = emu
        .deploy(
            Function::new("standin-python", Runtime::Python311)
                .handler("app.handler")
                .source(
                    "app.py",
                    "import sys\ndef handler(e, c):\n    return sys.version_info[1]\n",
                ),
        )
        .await?;
    assert_eq!(python.invoke_json::<_, u32>(&json!({})).await?, 11);
    let docker = require!(support::docker_client().await);
    let images: Vec<String> = containers(&docker, &[(LABEL_FUNCTION, "standin-python")])
        .await
        .iter()
        .filter_map(|c| c.image.clone())
        .collect();
    assert_eq!(images, ["lambda-testkit/python:3.11"]);
    Ok(())
}
