//! The Docker daemon restarted under a running emulator (README "Reliability"): the
//! in-flight invocation fails with `Runtime.ExitError` as soon as the stopping daemon
//! kills its container (dockerd gives containers 10 s), a cold start while it is down is
//! an `InvokeError::Launch` naming the Docker call, the pool recovers once the daemon is
//! back, and the emulator's drop leaves no container.
//!
//! It stops the machine's dockerd, so it must run alone: `#[ignore]`d, and run by
//! `scripts/test` after the rest of the suite with
//! `cargo nextest run --all-features --run-ignored only -E 'test(=the_docker_daemon_restarted_mid_invocation_fails_it_clearly_and_the_pool_recovers)'`.
//! Needs root and a dockerd that `scripts/docker-up` starts.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use lambda_testkit::BackendKind;

fn dockerd_running() -> bool {
    Command::new("pgrep")
        .args(["-x", "dockerd"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops dockerd (SIGTERM, as a service manager does) and waits for it to exit.
async fn stop_dockerd() {
    assert!(
        Command::new("pkill")
            .args(["-TERM", "-x", "dockerd"])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while dockerd_running() {
        assert!(Instant::now() < deadline, "dockerd did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start_dockerd() {
    let status = Command::new(support::repo().join("scripts/docker-up"))
        .status()
        .unwrap();
    assert!(status.success(), "scripts/docker-up failed");
}

#[tokio::test]
#[ignore = "restarts the Docker daemon: run alone (scripts/test does)"]
async fn the_docker_daemon_restarted_mid_invocation_fails_it_clearly_and_the_pool_recovers()
-> anyhow::Result<()> {
    let sleep = require!(support::rust_function("restart-busy", "sleep"));
    let echo = require!(support::rust_function("restart-echo", "echo"));
    let emu = require!(support::emulator(BackendKind::Docker).await);
    let sleep = emu.deploy(sleep.timeout(Duration::from_secs(60))).await?;
    let echo = emu.deploy(echo).await?;
    echo.invoke("{}").await?;
    let busy = tokio::spawn({
        let sleep = sleep.clone();
        async move { sleep.invoke(r#"{"ms": 45000}"#).await }
    });
    sleep
        .wait_for("the invocation to start", Duration::from_secs(30), |s| {
            s.running == 1
        })
        .await?;

    let stopped_at = Instant::now();
    stop_dockerd().await;
    let failed = tokio::time::timeout(Duration::from_secs(30), busy).await??;
    let ended_after = stopped_at.elapsed();
    // The runtime is gone with its container: an error naming that, long before the
    // handler's 45 s or the function's 60 s timeout.
    let text = match &failed {
        Ok(out) => {
            assert!(
                out.function_error.is_some(),
                "it cannot have succeeded: {}",
                out.log
            );
            String::from_utf8_lossy(&out.payload).into_owned()
        }
        Err(e) => e.to_string(),
    };
    eprintln!(
        "RESTART: the in-flight invoke ended {ended_after:?} after the daemon stopped: {text}"
    );
    assert!(
        text.contains("Runtime.ExitError") || text.contains("exited") || text.contains("Docker"),
        "{text}"
    );
    // While the daemon is down, a cold start is refused with the daemon's error.
    echo.evict_all();
    let down = echo.invoke("{}").await;
    eprintln!("RESTART: invoke with the daemon down: {down:?}");
    assert!(down.is_err() || down.as_ref().is_ok_and(|o| o.function_error.is_some()));

    start_dockerd();
    let back = echo.invoke(r#"{"back": true}"#).await?;
    assert!(back.function_error.is_none(), "{}", back.log);
    assert!(back.cold_start);
    let again = sleep.invoke(r#"{"ms": 1}"#).await?;
    assert!(again.function_error.is_none(), "{}", again.log);

    drop((sleep, echo));
    emu.shutdown().await;
    let mut ours = support::function_containers("restart-busy", false).await;
    ours.extend(support::function_containers("restart-echo", false).await);
    assert!(ours.is_empty(), "containers left: {ours:?}");
    Ok(())
}
