//! Lambda's scaling semantics: warm reuse, the environment cap, reserved concurrency,
//! eviction — asserted through stats and the timeline.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use lambda_testkit::stats::EvictionReason;
use lambda_testkit::{BackendKind, Emulator, FunctionHandle, InvokeError};
use rstest::{fixture, rstest};
use serde_json::{Value, json};

#[fixture]
async fn emu() -> Emulator {
    support::builder().start().await.expect("emulator starts")
}

async fn concurrently(
    f: &FunctionHandle,
    n: usize,
    event: Value,
) -> Vec<Result<lambda_testkit::InvokeOutput, InvokeError>> {
    join_all((0..n).map(|_| f.invoke(event.to_string()))).await
}

#[rstest]
#[tokio::test]
async fn eight_concurrent_invokes_with_cap_one_share_one_environment(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("cap1", "sleep"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f.max_environments(1)).await?;
    let outs = concurrently(&f, 8, json!({"ms": 20})).await;
    assert!(
        outs.iter().all(|o| o.as_ref().is_ok_and(|o| !o.is_error())),
        "all 8 answered"
    );
    f.assert_invocations(8);
    f.assert_peak_concurrency_at_most(1);
    f.assert_cold_starts(1);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn cap_four_scales_out_to_at_most_four_environments(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("cap4", "sleep"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f.max_environments(4)).await?;
    let outs = concurrently(&f, 8, json!({"ms": 150})).await;
    let envs: std::collections::HashSet<_> = outs
        .into_iter()
        .map(|o| o.unwrap().environment_id)
        .collect();
    let s = f.stats();
    assert!(
        (2..=4).contains(&envs.len()),
        "{} environments\n{}",
        envs.len(),
        f.timeline_text()
    );
    assert!(s.peak_concurrency > 1 && s.peak_concurrency <= 4, "{s:?}");
    assert_eq!(s.environments_launched, envs.len() as u64);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn reserved_concurrency_two_throttles_the_third_concurrent_invoke(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("reserved", "sleep"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f.reserved_concurrency(2)).await?;
    let outs = concurrently(&f, 3, json!({"ms": 300})).await;
    let throttled: Vec<_> = outs
        .iter()
        .filter(|o| matches!(o, Err(InvokeError::Throttled { limit: 2, .. })))
        .collect();
    assert_eq!(throttled.len(), 1, "{outs:?}");
    assert_eq!(outs.iter().filter(|o| o.is_ok()).count(), 2);
    f.assert_throttles(1);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn reserved_concurrency_zero_throttles_every_invoke(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("zero", "echo"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f.reserved_concurrency(0)).await?;
    for _ in 0..3 {
        assert!(matches!(
            f.invoke("{}").await,
            Err(InvokeError::Throttled { limit: 0, .. })
        ));
    }
    f.assert_throttles(3);
    f.assert_invocations(0);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn idle_environment_is_evicted_after_the_ttl(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("ttl", "echo"));
    let emu = require!(support::builder_for(backend))
        .idle_ttl(Duration::from_millis(50))
        .start()
        .await?;
    let f = emu.deploy(f).await?;
    assert!(f.invoke("{}").await?.cold_start);
    f.wait_for("an idle-TTL eviction", Duration::from_secs(5), |s| {
        s.evictions_for(EvictionReason::IdleTimeout) == 1
    })
    .await?;
    assert_eq!(f.stats().environments, 0);
    assert!(
        f.invoke("{}").await?.cold_start,
        "after eviction the next invoke is cold"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn code_update_retires_the_old_environment_without_breaking_the_call_in_flight(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let v1 = require!(support::rust_function("update", "context"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(v1.clone().env("VERSION", "v1")).await?;
    f.invoke("{}").await?;
    // A second environment is busy with a slow call while the update lands.
    let sleeper = emu
        .deploy(require!(support::rust_function("update-slow", "sleep")))
        .await?;
    let in_flight = tokio::spawn({
        let sleeper = sleeper.clone();
        async move { sleeper.invoke(r#"{"ms": 400}"#).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    emu.deploy(require!(support::rust_function("update-slow", "sleep")).env("VERSION", "v2"))
        .await?;
    let old = in_flight.await??;
    assert!(
        !old.is_error(),
        "the in-flight call finished on the old deploy: {:?}",
        old.error()
    );
    sleeper
        .wait_for(
            "the stale environment retired",
            Duration::from_secs(5),
            |s| s.evictions_for(EvictionReason::StaleDeploy) == 1,
        )
        .await?;

    emu.deploy(v1.env("VERSION", "v2")).await?;
    f.assert_evictions(EvictionReason::StaleDeploy, 1);
    let out = f.invoke("{}").await?;
    assert!(out.cold_start, "the update runs on a fresh environment");
    assert_eq!(out.json::<Value>()?["env"]["VERSION"], "v2");
    Ok(())
}

/// A deploy of what already runs (the same bytes, rebuilt) keeps the warm environment;
/// other bytes under the same name replace it. The deploy id names the package, not a
/// digest of it, so this is decided by comparing bytes.
#[rstest]
#[tokio::test]
async fn redeploying_equal_code_keeps_the_environment_and_new_code_replaces_it(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let emu = emu.await;
    let f = require!(support::rust_function("same", "context"));
    let handle = emu.deploy(f.clone()).await?;
    assert!(handle.invoke("{}").await?.cold_start);
    emu.deploy(f.clone()).await?;
    assert!(
        !handle.invoke("{}").await?.cold_start,
        "equal code and settings: the environment stays warm"
    );
    handle.assert_evictions(EvictionReason::StaleDeploy, 0);
    emu.deploy(f.source("extra.txt", "new bytes")).await?;
    assert!(
        handle.invoke("{}").await?.cold_start,
        "new code, new environment"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn dead_environment_fails_over_without_running_a_handler_twice(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("failover", "record"));
    let dir = tempfile::tempdir()?;
    let record = dir.path().join("ids");
    let f = emu
        .await
        .deploy(f.env("RECORD_FILE", record.display().to_string()))
        .await?;
    let first = f.invoke("{}").await?;
    let pid = f.environment_pids()[0];
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    let dead = || {
        f.timeline().iter().any(|e| {
            matches!(
                e.kind,
                lambda_testkit::stats::EventKind::EnvironmentDead { .. }
            )
        })
    };
    f.wait_for(
        "the killed environment seen dead",
        Duration::from_secs(5),
        |_| dead(),
    )
    .await?;
    let second = f.invoke("{}").await?;
    assert!(!second.is_error(), "{:?}", second.error());
    assert!(second.cold_start && second.environment_id != first.environment_id);
    let ids = std::fs::read_to_string(&record)?;
    assert_eq!(
        ids.lines().collect::<Vec<_>>(),
        vec![first.request_id.as_str(), second.request_id.as_str()]
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn explicit_evict_all_makes_the_next_invoke_cold(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("evict", "echo"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f).await?;
    f.invoke("{}").await?;
    assert_eq!(f.evict_all(), 1);
    assert!(f.invoke("{}").await?.cold_start);
    f.assert_evictions(EvictionReason::Explicit, 1);
    f.assert_cold_starts(2);
    Ok(())
}

#[rstest]
#[tokio::test]
async fn deleting_a_function_terminates_only_its_own_environments(
    #[future] emu: Emulator,
) -> anyhow::Result<()> {
    let make = || support::rust_function("deleted", "echo");
    require!(make());
    let emu = emu.await;
    let old = emu.deploy(make().unwrap()).await?;
    old.invoke("{}").await?;
    let old_pids = old.environment_pids();
    emu.delete_function("deleted")?;
    let new = emu.deploy(make().unwrap()).await?;
    new.invoke("{}").await?;
    let new_pids = new.environment_pids();
    assert_eq!(support::wait_gone(&old_pids).await, Vec::<u32>::new());
    assert!(
        new_pids.iter().all(|p| !support::process_gone(*p)),
        "the re-created function keeps its environment"
    );
    assert!(new.invoke("{}").await.is_ok());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn wait_until_idle_returns_once_every_invocation_ended(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("idle", "sleep"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f).await?;
    let calls = tokio::spawn({
        let f = f.clone();
        async move { join_all((0..3).map(|_| f.invoke(r#"{"ms": 100}"#))).await }
    });
    f.wait_for("three invocations started", Duration::from_secs(5), |s| {
        s.invocations == 3
    })
    .await?;
    f.wait_until_idle(Duration::from_secs(5)).await?;
    assert_eq!(f.stats().running, 0);
    assert!(calls.await?.iter().all(|r| r.is_ok()));
    Ok(())
}

#[rstest]
#[tokio::test]
async fn failed_assertion_prints_the_timeline(#[future] emu: Emulator) -> anyhow::Result<()> {
    let f = require!(support::rust_function("assert", "echo"));
    let f = emu.await.deploy(f).await?;
    f.invoke("{}").await?;
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.assert_cold_starts(2)))
        .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("expected exactly 2 cold starts"),
        "{message}"
    );
    assert!(message.contains("assert-env-1 launched"), "{message}");
    assert!(message.contains("(cold)"), "{message}");
    Ok(())
}

#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_invokes_at_concurrency_32_with_cap_8_run_each_request_exactly_once()
-> anyhow::Result<()> {
    let f = require!(support::rust_function("load", "record"));
    let emu = support::builder().start().await?;
    let dir = tempfile::tempdir()?;
    let record = dir.path().join("ids");
    let f = emu
        .deploy(
            f.max_environments(8)
                .env("RECORD_FILE", record.display().to_string()),
        )
        .await?;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = (0..32).map(|_| {
        let (f, next) = (f.clone(), next.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 1000 {
                let out = f.invoke("{}").await.expect("invoke");
                assert!(!out.is_error(), "{:?}", out.error());
                ids.push(out.request_id);
            }
            ids
        })
    });
    let answered: Vec<String> = join_all(workers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    assert_eq!(answered.len(), 1000);
    let mut executed: HashMap<String, usize> = HashMap::new();
    for id in std::fs::read_to_string(&record)?.lines() {
        *executed.entry(id.to_string()).or_default() += 1;
    }
    assert_eq!(executed.len(), 1000, "every request id executed");
    assert!(
        executed.values().all(|n| *n == 1),
        "no request id executed twice"
    );
    assert!(answered.iter().all(|id| executed.contains_key(id)));
    f.assert_peak_concurrency_at_most(8);
    f.assert_invocations(1000);
    let s = f.stats();
    assert!(s.environments <= 8 && s.environments_launched <= 8, "{s:?}");
    let pids = emu.environment_pids();
    assert_eq!(pids.len() as u64, s.environments);
    drop(f);
    emu.shutdown().await;
    assert_eq!(
        support::wait_gone(&pids).await,
        Vec::<u32>::new(),
        "no environment leaked"
    );
    Ok(())
}
