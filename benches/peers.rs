//! lambda-testkit against lambda-simulator 0.2.0, side by side in one process (issue 13):
//! the same `lambda_runtime` echo handler binary (`fixtures/rust`, `echo`), the same 1 KB
//! payload, measured in interleaved blocks so that both see the same machine load.
//!
//! - warm: one environment / one runtime process, invoke and wait for the response, on a
//!   multi-thread and on a current-thread tokio runtime; lambda-testkit twice, parked
//!   (the default) and with `EmulatorBuilder::spin_wait` (see `src/execution/spin.rs`);
//! - cold: lambda-testkit's launch of a deployed function (evict, invoke) against
//!   lambda-simulator's spawn of the runtime on a fresh simulator (build, spawn, enqueue,
//!   wait).
//!
//! Prints p50/p90/p99 per side and the ratio peer/us (above 1: lambda-testkit is faster),
//! and the largest cold sample over the cold p50. Not criterion: the figures are
//! percentiles of interleaved samples, which criterion's per-bench estimates cannot give.
//!
//! Prerequisites: `scripts/setup` (builds the Rust fixtures). Run: `cargo bench --bench
//! peers` (`LAMBDA_TESTKIT_PEERS_N` sets the samples per side and series, default 4,000
//! warm, cold a tenth of it).

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lambda_simulator::Simulator;
use lambda_simulator::process::{ProcessConfig, ProcessRole};
use lambda_testkit::{Emulator, Function, FunctionHandle, Runtime};
use support::payload_1kb;

/// Samples per block of one side before switching to the other.
const BLOCK: usize = 200;

fn echo_path() -> PathBuf {
    std::env::var_os("LAMBDA_TESTKIT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/release")
        })
        .join("echo")
}

fn samples_per_side() -> usize {
    std::env::var("LAMBDA_TESTKIT_PEERS_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4_000)
}

async fn testkit_echo(emu: &Emulator) -> FunctionHandle {
    let binary = std::fs::read(echo_path()).expect("run scripts/setup to build the Rust fixtures");
    emu.deploy(Function::new("echo", Runtime::ProvidedAl2023).executable("bootstrap", binary))
        .await
        .unwrap()
}

/// A simulator with the echo runtime running and its first invocation done.
async fn simulator_echo() -> (Simulator, lambda_simulator::process::ManagedProcess) {
    let simulator = Simulator::builder()
        .function_name("echo")
        .build()
        .await
        .unwrap();
    let runtime = simulator
        .spawn_process_with_config(
            ProcessConfig::new(echo_path(), ProcessRole::Runtime) // Piped stdio is never drained by the simulator: the runtime would block.
                .inherit_stdio(true),
        )
        .unwrap();
    simulator_invoke(&simulator, serde_json::json!({})).await;
    (simulator, runtime)
}

async fn simulator_invoke(simulator: &Simulator, payload: serde_json::Value) {
    let id = simulator.enqueue_payload(payload).await;
    let state = simulator
        .wait_for_invocation_complete(&id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(state.status, lambda_simulator::InvocationStatus::Success);
}

#[derive(Default)]
struct Series {
    us: Vec<Duration>,
    /// lambda-testkit with `spin_wait(SPIN)` (warm series only).
    spun: Vec<Duration>,
    peer: Vec<Duration>,
}

/// The busy-wait budget of the spinning side of the warm series.
const SPIN: Duration = Duration::from_millis(2);

impl Series {
    fn report(mut self, label: &str) {
        // The samples above 2x the p50, by position in the series (before sorting).
        let outliers = |v: &[Duration]| {
            let mut sorted = v.to_vec();
            sorted.sort();
            let p50 = sorted[sorted.len() / 2];
            v.iter()
                .enumerate()
                .filter(|(_, d)| **d > p50 * 2)
                .map(|(i, d)| format!("#{i} {:.0}", d.as_secs_f64() * 1e6))
                .collect::<Vec<_>>()
        };
        let outliers = [outliers(&self.us), outliers(&self.peer)];
        self.us.sort();
        self.spun.sort();
        self.peer.sort();
        let at = |v: &[Duration], q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
        let us_ = |d: Duration| d.as_secs_f64() * 1e6;
        for q in [0.50, 0.90, 0.99] {
            let (a, b) = (at(&self.us, q), at(&self.peer, q));
            println!(
                "{label} p{:.0}: lambda-testkit {:.1} us, lambda-simulator {:.1} us, ratio {:.2}",
                q * 100.0,
                us_(a),
                us_(b),
                b.as_secs_f64() / a.as_secs_f64()
            );
            if !self.spun.is_empty() {
                let c = at(&self.spun, q);
                println!(
                    "{label} p{:.0}: lambda-testkit spin_wait({SPIN:?}) {:.1} us, ratio {:.2}",
                    q * 100.0,
                    us_(c),
                    b.as_secs_f64() / c.as_secs_f64()
                );
            }
        }
        let sides = [
            ("lambda-testkit", &self.us),
            ("lambda-simulator", &self.peer),
        ];
        for ((side, v), over) in sides.into_iter().zip(outliers) {
            let p50 = at(v, 0.5);
            println!(
                "{label} {side} max/p50: {:.2} (max {:.1} us, n={}); above 2x p50: {} [{}] us (#: position in the series)",
                v.last().unwrap().as_secs_f64() / p50.as_secs_f64(),
                us_(*v.last().unwrap()),
                v.len(),
                over.len(),
                over.join(", ")
            );
        }
    }
}

async fn warm(n: usize) -> Series {
    let emu = Emulator::start().await.unwrap();
    let f = testkit_echo(&emu).await;
    f.invoke("{}").await.unwrap();
    let spinning = Emulator::builder().spin_wait(SPIN).start().await.unwrap();
    let g = testkit_echo(&spinning).await;
    g.invoke("{}").await.unwrap();
    let (simulator, _runtime) = simulator_echo().await;
    let payload = bytes::Bytes::from(payload_1kb());
    let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let mut series = Series::default();
    while series.us.len() < n {
        for _ in 0..BLOCK {
            let t = Instant::now();
            f.invoke(payload.clone()).await.unwrap();
            series.us.push(t.elapsed());
        }
        for _ in 0..BLOCK {
            let t = Instant::now();
            g.invoke(payload.clone()).await.unwrap();
            series.spun.push(t.elapsed());
        }
        for _ in 0..BLOCK {
            let t = Instant::now();
            simulator_invoke(&simulator, value.clone()).await;
            series.peer.push(t.elapsed());
        }
    }
    simulator.shutdown().await;
    series
}

async fn cold(n: usize) -> Series {
    let emu = Emulator::start().await.unwrap();
    let f = testkit_echo(&emu).await;
    let mut series = Series::default();
    let block = (BLOCK / 10).max(1);
    while series.us.len() < n {
        for _ in 0..block {
            f.evict_all();
            let t = Instant::now();
            assert!(f.invoke("{}").await.unwrap().cold_start);
            series.us.push(t.elapsed());
        }
        for _ in 0..block {
            let t = Instant::now();
            let (simulator, runtime) = simulator_echo().await;
            series.peer.push(t.elapsed());
            drop(runtime);
            simulator.shutdown().await;
        }
    }
    series
}

/// Both sides share this process's allocator. lambda-simulator's state of the warm series
/// (8,000 invocations) is freed at its shutdown into the arenas of the tokio workers that
/// made it, and glibc consolidates those free chunks at the next large allocation there:
/// the first one or two cold samples paid 3.5-7.7 ms for it (`perf record`: 4.8 of 5.5 ms
/// in `malloc_consolidate` and `unlink_chunk`; without the peer's warm invocations the cold
/// series has no sample above 2x its p50). Consolidating once here charges that teardown
/// to neither series.
fn settle_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only reorganises glibc's own free lists; no pointer we hold moves.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn main() {
    let n = samples_per_side();
    let multi = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    multi.block_on(warm(n)).report("warm, multi-thread");
    let current = support::runtime();
    current.block_on(warm(n)).report("warm, current-thread");
    settle_allocator();
    multi.block_on(cold(n / 10)).report("cold, multi-thread");
}
