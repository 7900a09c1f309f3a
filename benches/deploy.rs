//! Deploy benchmarks (process backend): deploying a 2.4 MB `provided.al2023` bootstrap
//! (the `lambda_runtime` echo fixture, padded to 2.4 MB with trailing bytes the ELF loader
//! ignores), alone and with the first invoke (a cold start), each on a fresh emulator.
//! After criterion's estimates, a percentile pass prints p50/p99.
//!
//! Two builds matter (issues 13 and 14):
//! - `cargo bench --bench deploy`: release, this crate's own figures.
//! - `cargo bench --bench deploy --profile dependent-debug`: the debug build a crate depending
//!   on lambda-testkit gets (its dev profile compiles this crate and every dependency at
//!   `opt-level = 0`; this crate's `[profile.dev.package.*]` overrides do not apply there).
//!
//! Prerequisites: `scripts/setup` (builds the Rust fixtures).

mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lambda_testkit::{Emulator, Function, Runtime};
use support::{fixture, runtime};

const BOOTSTRAP_BYTES: usize = 2_400_000;

/// The echo handler, padded with pseudo-random (incompressible) bytes to 2.4 MB.
fn bootstrap() -> Vec<u8> {
    let mut binary = fixture("echo");
    let mut x = 0x9E37_79B9_u32;
    while binary.len() < BOOTSTRAP_BYTES {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        binary.push(x as u8);
    }
    binary
}

fn function(binary: &[u8]) -> Function {
    Function::new("echo", Runtime::ProvidedAl2023).executable("bootstrap", binary.to_vec())
}

/// One deploy (and, with `invoke`, the first invoke) on a fresh emulator; the emulator's
/// start and drop are not counted.
async fn once(binary: &[u8], invoke: bool) -> Duration {
    let emu = Emulator::start().await.unwrap();
    let t = Instant::now();
    let f = emu.deploy(function(binary)).await.unwrap();
    if invoke {
        assert!(f.invoke("{}").await.unwrap().cold_start);
    }
    let elapsed = t.elapsed();
    drop(f);
    emu.shutdown().await;
    elapsed
}

fn deploy(c: &mut Criterion) {
    let rt = runtime();
    let binary = bootstrap();
    let mut group = c.benchmark_group("deploy 2.4 MB bootstrap");
    group.sample_size(20);
    for (name, invoke) in [("deploy", false), ("deploy + first invoke", true)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let binary = &binary;
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += once(binary, invoke).await;
                    }
                    total
                }
            })
        });
        let mut samples: Vec<Duration> = rt.block_on(async {
            let mut v = Vec::new();
            for _ in 0..40 {
                v.push(once(&binary, invoke).await);
            }
            v
        });
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        println!(
            "{name}: n={} p50={:.2} ms p99={:.2} ms",
            samples.len(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3
        );
    }
    group.finish();
}

criterion_group!(benches, deploy);
criterion_main!(benches);
