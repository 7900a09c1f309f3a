//! What the benches share: a current-thread runtime, the 1 KB payload, exact percentiles.
#![allow(dead_code)]

use std::time::{Duration, Instant};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A Rust fixture binary (`fixtures/rust`, built by scripts/setup into
/// `target/fixtures/release`, or `LAMBDA_TESTKIT_FIXTURES`).
pub fn fixture(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("LAMBDA_TESTKIT_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/release")
        });
    std::fs::read(dir.join(name)).expect("run scripts/setup to build the Rust fixtures")
}

pub fn payload_1kb() -> String {
    format!("{{\"data\":\"{}\"}}", "x".repeat(1024 - 11))
}

/// Runs `op` `n` times and prints p50 / p99 / max.
pub fn percentiles<F: std::future::Future<Output = ()>>(
    label: &str,
    rt: &tokio::runtime::Runtime,
    n: usize,
    op: impl Fn() -> F,
) {
    let mut samples: Vec<Duration> = rt.block_on(async {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            op().await;
            v.push(t.elapsed());
        }
        v
    });
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{label}: n={n} p50={:.1} us p99={:.1} us max={:.1} us",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        samples.last().unwrap().as_secs_f64() * 1e6
    );
}
