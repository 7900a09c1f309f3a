//! Python cold start to first response with and without the fork server, interleaved.
//!
//! Two emulators in one process, the same `python3.X` echo function on each: one forks its
//! runtimes from the interpreter's fork server (the default), the other starts a fresh
//! interpreter per environment (`EmulatorBuilder::python_fork_server(false)`). Each round
//! evicts both functions' environments and times one cold invoke on each, alternating which
//! goes first, so both series see the same machine load. Prints p50/p90/p99/max per series
//! and the ratio of the p50s; the first cold starts of the fork-server emulator (spawned
//! until the server, started at the second, is up) are timed on their own.
//!
//! Prerequisites: `scripts/setup`. Run: `cargo bench --bench python_cold` (rounds:
//! `LAMBDA_TESTKIT_BENCH_ROUNDS`, default 200; runtime: `LAMBDA_TESTKIT_BENCH_PYTHON=3.12`,
//! default 3.11).

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod support;

use lambda_testkit::{Emulator, Function, FunctionHandle, Runtime};

fn minor() -> u32 {
    std::env::var("LAMBDA_TESTKIT_BENCH_PYTHON")
        .ok()
        .and_then(|v| v.trim().strip_prefix("3.")?.parse().ok())
        .unwrap_or(11)
}

fn python_runtime(minor: u32) -> Runtime {
    *Runtime::all()
        .iter()
        .find(|r| r.python_minor() == Some(minor))
        .expect("a python3.X runtime")
}

fn interpreter(minor: u32) -> PathBuf {
    let var = lambda_testkit::process::python_version_env_var(minor);
    std::env::var_os(&var)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testkit");
            let venv = root.join(format!("venv-3.{minor}/bin/python"));
            if venv.exists() {
                venv
            } else {
                root.join("venv/bin/python")
            }
        })
}

async fn deploy(fork: bool, minor: u32) -> (Emulator, FunctionHandle) {
    let emu = Emulator::builder()
        .python_for(python_runtime(minor), interpreter(minor))
        .python_fork_server(fork)
        .start()
        .await
        .unwrap();
    let f = emu
        .deploy(
            Function::new("py-echo", python_runtime(minor))
                .handler("app.handler")
                .source("app.py", "def handler(event, context):\n    return event\n"),
        )
        .await
        .unwrap();
    (emu, f)
}

async fn cold(f: &FunctionHandle) -> Duration {
    f.evict_all();
    let t = Instant::now();
    let out = f.invoke("{}").await.unwrap();
    let elapsed = t.elapsed();
    assert!(
        out.cold_start && out.function_error.is_none(),
        "{}",
        out.log
    );
    elapsed
}

fn report(label: &str, samples: &mut [Duration]) -> f64 {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        ms(at(0.50)),
        ms(at(0.90)),
        ms(at(0.99)),
        ms(*samples.last().unwrap())
    );
    ms(at(0.50))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`
    }
    let rounds: usize = std::env::var("LAMBDA_TESTKIT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let minor = minor();
    let rt = support::runtime();
    rt.block_on(async {
        let (_a, forked) = deploy(true, minor).await;
        let (_b, spawned) = deploy(false, minor).await;
        // The first cold starts on the fork-server emulator: the first spawns, the second
        // spawns while the server starts in the background, the next fork once it is up.
        let mut first = Vec::new();
        for _ in 0..4 {
            first.push(format!("{:.2}", cold(&forked).await.as_secs_f64() * 1e3));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "python3.{minor} first cold starts with the fork server on (ms): {}",
            first.join(", ")
        );
        // Warm-up: page cache, pyc files, the allocator.
        for _ in 0..5 {
            cold(&forked).await;
            cold(&spawned).await;
        }
        let mut with_server = Vec::with_capacity(rounds);
        let mut without = Vec::with_capacity(rounds);
        for round in 0..rounds {
            if round % 2 == 0 {
                with_server.push(cold(&forked).await);
                without.push(cold(&spawned).await);
            } else {
                without.push(cold(&spawned).await);
                with_server.push(cold(&forked).await);
            }
        }
        let a = report(
            &format!("python3.{minor} cold start, fork server"),
            &mut with_server,
        );
        let b = report(&format!("python3.{minor} cold start, spawn"), &mut without);
        println!("spawn p50 / fork server p50 = {:.2}", b / a);
    });
}
