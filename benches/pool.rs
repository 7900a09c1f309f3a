//! Pool benchmarks (process backend, Rust `lambda_runtime` echo handler): throughput with
//! 8 execution environments, and the pool's own acquire/release cost on a warm
//! environment. Run: `cargo bench --bench pool` (after `scripts/setup`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures::future::join_all;
use lambda_testkit::{Emulator, Function, FunctionHandle, Runtime};

mod support;
use support::fixture;

async fn echo(emu: &Emulator, cap: usize) -> FunctionHandle {
    let f = Function::new("echo", Runtime::ProvidedAl2023)
        .executable("bootstrap", fixture("echo"))
        .max_environments(cap);
    emu.deploy(f).await.unwrap()
}

/// `total` invokes from `concurrency` workers; returns invokes per second.
async fn run_load(f: &FunctionHandle, total: usize, concurrency: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (f, next) = (f.clone(), next.clone());
        tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                f.invoke("{\"n\":1}").await.unwrap();
            }
        })
    });
    join_all(workers).await;
    total as f64 / started.elapsed().as_secs_f64()
}

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let emu = rt.block_on(Emulator::start()).unwrap();
    let f = rt.block_on(echo(&emu, 8));
    // Warm all 8 environments first.
    rt.block_on(run_load(&f, 64, 8));
    let mut group = c.benchmark_group("throughput, 8 environments");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(criterion::Throughput::Elements(2000));
    group.bench_function("2000 invokes at concurrency 16", |b| {
        b.to_async(&rt).iter(|| run_load(&f, 2000, 16))
    });
    group.finish();
    for concurrency in [8, 16, 32] {
        let per_second = rt.block_on(run_load(&f, 20_000, concurrency));
        println!(
            "throughput, 8 environments, concurrency {concurrency}: {per_second:.0} invokes/s"
        );
    }
    let s = f.stats();
    println!(
        "environments launched {} (cap 8), peak concurrency {}",
        s.environments_launched, s.peak_concurrency
    );
}

fn acquire_release(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let emu = rt.block_on(Emulator::start()).unwrap();
    let f = rt.block_on(echo(&emu, 1));
    rt.block_on(f.invoke("{}")).unwrap();
    c.bench_function("pool acquire + release (warm)", |b| {
        b.to_async(&rt)
            .iter(|| async { assert!(f.acquire_and_release().await.unwrap()) })
    });
    let mut samples: Vec<Duration> = rt.block_on(async {
        let mut v = Vec::with_capacity(100_000);
        for _ in 0..100_000 {
            let t = Instant::now();
            f.acquire_and_release().await.unwrap();
            v.push(t.elapsed());
        }
        v
    });
    samples.sort();
    println!(
        "pool acquire + release: p50 {:.2} us, p99 {:.2} us",
        samples[samples.len() / 2].as_secs_f64() * 1e6,
        samples[samples.len() * 99 / 100].as_secs_f64() * 1e6
    );
}

criterion_group!(benches, throughput, acquire_release);
criterion_main!(benches);
