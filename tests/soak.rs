//! Soak (README "Reliability"): 10,000 invokes on the process backend and 2,000 on
//! Docker, 32 concurrent callers on a function capped at 8 environments, mixing
//! successes, function errors, timeouts and runtime crashes. Every request is answered
//! exactly once (request ids checked against what the handlers saw), peak concurrency
//! stays at the cap, the emulator's memory is flat from the 1,000th invoke to the last, no
//! file descriptor is left, and no runtime outlives the emulator.
//!
//! The emulator keeps a bounded history (`EmulatorBuilder::history_limit`); by default
//! that is 100,000 timeline events (~300 bytes each), which a soak this long would grow
//! into. Each test prints its figures (`SOAK …` on stderr; `--no-capture` shows them).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lambda_testkit::{BackendKind, InvokeOutput};
use rstest::rstest;
use serde_json::{Value, json};

const CALLERS: usize = 32;
const CAP: usize = 8;

/// What invocation `i` asks of the `record` fixture.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Success,
    FunctionError,
    Timeout,
    Crash,
}

fn kind(i: usize) -> Kind {
    match i {
        _ if i % 1000 == 21 => Kind::Timeout,
        _ if i % 500 == 13 => Kind::Crash,
        _ if i % 100 == 7 => Kind::FunctionError,
        _ => Kind::Success,
    }
}

fn payload(kind: Kind) -> Value {
    match kind {
        Kind::Success => json!({}),
        Kind::FunctionError => json!({"fail": true}),
        Kind::Timeout => json!({"ms": 1500}),
        Kind::Crash => json!({"exit": true}),
    }
}

/// This process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Checks one answer against what was asked; returns the runtime's pid when it said.
fn check(i: usize, out: &InvokeOutput) -> Option<u64> {
    let seen = format!("record {}", out.request_id);
    let body: Value = serde_json::from_slice(&out.payload).unwrap_or(Value::Null);
    match kind(i) {
        Kind::Success => {
            assert!(out.function_error.is_none(), "#{i}: {}", out.log);
            assert_eq!(body["request_id"], out.request_id.as_str(), "#{i}");
            assert!(out.log.contains(&seen), "#{i}: {}", out.log);
            return body["pid"].as_u64();
        }
        Kind::FunctionError => {
            assert!(out.function_error.is_some(), "#{i}");
            let message = body["errorMessage"].as_str().unwrap_or_default();
            assert!(message.contains(&out.request_id), "#{i}: {body}");
        }
        Kind::Timeout => {
            assert!(out.function_error.is_some(), "#{i}");
            let message = body["errorMessage"].as_str().unwrap_or_default();
            assert!(message.contains("Task timed out"), "#{i}: {body}");
        }
        Kind::Crash => {
            assert!(out.function_error.is_some(), "#{i}");
            assert_eq!(body["errorType"], "Runtime.ExitError", "#{i}: {body}");
        }
    }
    assert!(
        out.log.contains(&seen),
        "#{i} was seen by its handler: {}",
        out.log
    );
    None
}

#[rstest]
#[case::process(BackendKind::Process, 10_000)]
#[case::docker(BackendKind::Docker, 2_000)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_of_mixed_invocations_answers_each_once_within_the_cap_and_leaks_nothing(
    #[case] backend: BackendKind,
    #[case] invokes: usize,
) -> anyhow::Result<()> {
    let f = require!(support::rust_function("soak", "record"));
    // A bounded history (timeline and telemetry feed), so that the memory measured is the
    // emulator's own, not the record of 10,000 invocations it keeps for assertions.
    let builder = require!(support::builder_for(backend));
    let emu = builder.history_limit(2_000).start().await?;
    let record = tempfile::NamedTempFile::new()?;
    let record_file = match backend {
        BackendKind::Process => record.path().display().to_string(),
        _ => "/tmp/record".to_string(),
    };
    let f = emu
        .deploy(
            f.timeout(Duration::from_secs(1))
                .max_environments(CAP)
                .env("RECORD_FILE", record_file),
        )
        .await?;
    let fds_before = open_fds();

    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let at_1000 = Arc::new(Mutex::new(None));
    let answers = Arc::new(Mutex::new(Vec::with_capacity(invokes)));
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (f, next, done) = (f.clone(), next.clone(), done.clone());
            let (at_1000, answers) = (at_1000.clone(), answers.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= invokes {
                        return;
                    }
                    let out = f.invoke(payload(kind(i)).to_string()).await;
                    let out = out.unwrap_or_else(|e| panic!("#{i}: {e}"));
                    let pid = check(i, &out);
                    answers.lock().unwrap().push((i, out.request_id, pid));
                    if done.fetch_add(1, Ordering::Relaxed) + 1 == 1000 {
                        *at_1000.lock().unwrap() = Some(rss_kib());
                    }
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await?;
    }
    let took = started.elapsed();
    let rss_end = rss_kib();
    let rss_1000 = at_1000.lock().unwrap().expect("a 1,000th invoke");

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    assert_eq!(answers.len(), invokes);
    let mut ids = HashSet::new();
    let mut pids = HashSet::new();
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for (i, id, pid) in answers {
        assert!(ids.insert(id), "#{i}: request id reused");
        pids.extend(pid);
        *kinds.entry(format!("{:?}", kind(i))).or_default() += 1;
    }
    if backend == BackendKind::Process {
        // Exactly once: every request id a handler saw, once, and no other.
        let lines = std::fs::read_to_string(record.path())?;
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for line in lines.lines() {
            *seen.entry(line).or_default() += 1;
        }
        assert_eq!(seen.len(), invokes, "handlers saw {} ids", seen.len());
        assert!(seen.values().all(|n| *n == 1), "an invocation ran twice");
        assert!(ids.iter().all(|id| seen.contains_key(id.as_str())));
    }
    let stats = f.stats();
    assert!(stats.peak_concurrency <= CAP as u64, "{stats:?}");
    assert_eq!(
        stats.peak_concurrency, CAP as u64,
        "32 callers keep all 8 busy"
    );
    assert_eq!(stats.throttles, 0);
    assert_eq!(stats.invocations, invokes as u64);

    // Memory flat within 10% from the 1,000th invoke to the last.
    let growth = rss_end as f64 / rss_1000 as f64;
    eprintln!(
        "SOAK {backend}: {invokes} invokes ({kinds:?}) in {took:.2?} ({:.0}/s), \
         {} environments launched, RSS {rss_1000} KiB at #1000, {rss_end} KiB at the end \
         ({:+.1}%), fds {fds_before} before, {} timeline events",
        invokes as f64 / took.as_secs_f64(),
        stats.environments_launched,
        (growth - 1.0) * 100.0,
        emu.timeline().len()
    );
    assert!(growth <= 1.10, "RSS grew {rss_1000} -> {rss_end} KiB");

    // Nothing left: environments gone, their descriptors closed, their processes exited.
    f.evict_all();
    f.wait_for("every environment gone", Duration::from_secs(20), |s| {
        s.environments == 0
    })
    .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds() > fds_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fds_after = open_fds();
    assert!(fds_after <= fds_before, "fds {fds_before} -> {fds_after}");
    drop(f);
    emu.shutdown().await;
    if backend == BackendKind::Process {
        let pids: Vec<u32> = pids.into_iter().map(|p| p as u32).collect();
        assert!(pids.len() >= CAP, "{pids:?}");
        assert_eq!(support::wait_gone(&pids).await, Vec::<u32>::new());
    }
    Ok(())
}

/// Emulators started side by side in one test process.
const EMULATORS: usize = 32;
/// Functions per emulator.
const FUNCTIONS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_emulators_of_four_functions_run_side_by_side_in_one_process()
-> anyhow::Result<()> {
    // One buffer for all 128 deploys: the binary is not what is measured.
    let echo = bytes::Bytes::from(require!(support::rust_fixture("echo")));
    let rss_before = rss_kib();
    let started = Instant::now();
    let emulators = futures::future::try_join_all((0..EMULATORS).map(|e| {
        let echo = echo.clone();
        async move {
            let emu = support::builder().start().await?;
            let mut functions = Vec::new();
            for n in 0..FUNCTIONS {
                let f = lambda_testkit::Function::new(
                    format!("f{n}"),
                    lambda_testkit::Runtime::ProvidedAl2023,
                )
                .executable("bootstrap", echo.clone());
                let f = emu.deploy(f).await?;
                let out: Value = f
                    .invoke_json(&json!({"emulator": e, "function": n}))
                    .await?;
                assert_eq!(out, json!({"emulator": e, "function": n}));
                functions.push(f);
            }
            anyhow::Ok((emu, functions))
        }
    }))
    .await?;
    let took = started.elapsed();
    let rss_idle = rss_kib();
    let per_emulator = (rss_idle.saturating_sub(rss_before)) as f64 / EMULATORS as f64;
    eprintln!(
        "MANY: {EMULATORS} emulators x {FUNCTIONS} functions green in {took:.2?}; \
         RSS {rss_before} KiB before, {rss_idle} KiB idle: {per_emulator:.0} KiB per emulator"
    );
    for (_, functions) in &emulators {
        for f in functions {
            assert_eq!(f.stats().invocations, 1);
            assert_eq!(f.stats().environments, 1);
        }
    }
    assert!(
        per_emulator <= 2048.0,
        "{per_emulator:.0} KiB per idle emulator"
    );
    let pids: Vec<u32> = emulators
        .iter()
        .flat_map(|(_, fs)| fs.iter().flat_map(|f| f.environment_pids()))
        .collect();
    assert_eq!(pids.len(), EMULATORS * FUNCTIONS);
    for (emu, functions) in emulators {
        drop(functions);
        emu.shutdown().await;
    }
    assert_eq!(support::wait_gone(&pids).await, Vec::<u32>::new());
    Ok(())
}
