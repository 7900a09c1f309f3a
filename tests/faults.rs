//! Fault injection (README "Reliability"): a runtime stopped from outside mid-invocation,
//! and a work directory that is full or read-only during extraction. (A SIGKILLed test
//! process is in `lifecycle.rs` and `docker.rs`; a Docker daemon restart in
//! `docker_restart.rs`.)

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lambda_testkit::{BackendKind, CodeZip, DeployError, Function, Runtime};
use rstest::rstest;
use serde_json::Value;

/// Stops the environment's runtime from outside: SIGSTOP of the process (process backend),
/// or `docker pause` of its container.
async fn stop_from_outside(backend: BackendKind, f: &lambda_testkit::FunctionHandle) {
    match backend {
        BackendKind::Process => {
            let pid = f.environment_pids()[0];
            // SAFETY: signals the environment's runtime, a live child of this process.
            assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) }, 0);
        }
        _ => {
            let docker = support::docker_client().await.unwrap();
            let id = support::environment_container(f.name()).await;
            docker.pause_container(&id).await.unwrap();
        }
    }
}

#[rstest]
#[tokio::test]
async fn a_runtime_stopped_mid_invocation_times_out_at_its_deadline_and_is_replaced(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("stopped", "record"));
    let emu = require!(support::emulator(backend).await);
    let record = tempfile::NamedTempFile::new()?;
    let f = emu
        .deploy(
            f.timeout(Duration::from_secs(1))
                .env("RECORD_FILE", record_path(backend, record.path())),
        )
        .await?;
    f.invoke("{}").await?;

    let started = Instant::now();
    let stuck = tokio::spawn({
        let f = f.clone();
        async move { f.invoke(r#"{"ms": 300}"#).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_from_outside(backend, &f).await;
    let out = stuck.await??;
    let took = started.elapsed();
    assert!(out.function_error.is_some(), "{}", out.log);
    let error: Value = serde_json::from_slice(&out.payload)?;
    assert!(
        error["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("Task timed out after 1.00 seconds")),
        "{error}"
    );
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(5),
        "at its deadline, not before nor long after: {took:?}"
    );

    let next = f.invoke("{}").await?;
    assert!(next.function_error.is_none(), "{}", next.log);
    assert!(next.cold_start, "the stopped environment is replaced");
    if backend == BackendKind::Process {
        // Each invocation ran once: no retry of the stuck one elsewhere.
        let lines = std::fs::read_to_string(record.path())?;
        let ids: Vec<&str> = lines.lines().collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert_eq!(ids.iter().filter(|id| **id == out.request_id).count(), 1);
    }
    drop(f);
    emu.shutdown().await;
    Ok(())
}

/// Where the runtime writes its record: the host file, or nowhere visible to the test on
/// Docker (a path inside the container; the count is checked on the process backend).
fn record_path(backend: BackendKind, host: &Path) -> String {
    match backend {
        BackendKind::Process => host.display().to_string(),
        _ => "/tmp/record".to_string(),
    }
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(options: &str) -> Result<Tmpfs, String> {
        let dir = std::env::temp_dir().join(format!(
            "lambda-testkit-faults-{}-{options}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&dir)
            .status()
            .map_err(|e| format!("mount: {e}"))?;
        if !status.success() {
            let _ = std::fs::remove_dir(&dir);
            return Err(format!("cannot mount a tmpfs ({options}): needs root"));
        }
        Ok(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// What is left under `dir`, recursively (names relative to it).
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            found.push(
                entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string(),
            );
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    found
}

#[tokio::test]
async fn a_full_disk_during_extraction_is_a_clear_deploy_error_and_leaves_nothing()
-> anyhow::Result<()> {
    let fs = require!(Tmpfs::mount("size=256k"));
    let emu = support::builder().workdir(&fs.0).start().await?;
    // 1 MiB of incompressible bytes: the zip is small enough, the tmpfs is not.
    let mut noise = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let f = Function::new("full", Runtime::Python311)
        .handler("app.handler")
        .code(
            CodeZip::new()
                .source("app.py", "def handler(e, c):\n    return 1\n")
                .bytes("blob.bin", noise),
        );
    let err = emu.deploy(f).await.expect_err("the disk is full");
    assert!(matches!(err, DeployError::Package(_)), "{err:?}");
    // Says what failed, where, and why.
    let text = format!(
        "{err} ({})",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    eprintln!("{text}");
    assert!(text.contains("blob.bin"), "{text}");
    // Nothing half written: no extracted file is left (the empty work directory and its
    // lock may stay until the emulator drops).
    let left: Vec<String> = tree(&fs.0)
        .into_iter()
        .filter(|p| p.matches('/').count() >= 1 && !p.ends_with(".owner.lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A small function still deploys there.
    let small = emu
        .deploy(
            Function::new("small", Runtime::ProvidedAl2023)
                .source("bootstrap", "#!/bin/sh\n")
                .handler("x"),
        )
        .await;
    assert!(small.is_ok(), "{small:?}");
    drop(small);
    emu.shutdown().await;
    assert!(tree(&fs.0).is_empty(), "{:?}", tree(&fs.0));
    Ok(())
}

#[tokio::test]
async fn a_read_only_work_directory_is_a_clear_deploy_error() -> anyhow::Result<()> {
    let fs = require!(Tmpfs::mount("ro"));
    let emu = support::builder().workdir(&fs.0).start().await?;
    let f = Function::new("ro", Runtime::ProvidedAl2023)
        .source("bootstrap", "#!/bin/sh\n")
        .handler("x");
    let err = emu
        .deploy(f)
        .await
        .expect_err("the work directory is read-only");
    let text = err.to_string();
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(tree(&fs.0).is_empty());
    Ok(())
}
