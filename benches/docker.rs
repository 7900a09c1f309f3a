//! Docker backend figures, on the stand-in provided image with the Rust `echo` fixture:
//!
//! - `docker/cold_start`: container create to first response (target <= 250 ms), code
//!   volume already loaded (an earlier deploy of the same files);
//! - `docker/cold_start_new_code`: the same when the code is new, its volume loaded on the
//!   way (the first cold start of a deployment);
//! - `docker/warm_invoke`: a warm invoke round trip through a container (target p50 <= 1 ms);
//! - `docker/teardown_10_warm`: dropping an emulator that holds 10 warm containers, until
//!   they are gone (target <= 1 s).
//!
//! Needs a Docker daemon and the stand-in images (`scripts/docker-up`, `images/build`) and
//! the fixtures (`scripts/setup`); skips (prints why) otherwise. Besides criterion's
//! estimates it prints percentiles of its own sample for the warm invoke.
//!
//! `cargo bench --bench docker`

#[path = "../tests/support/mod.rs"]
#[allow(unused_macros)]
mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use lambda_testkit::{BackendKind, Emulator, EmulatorBuilder, Function};

fn prerequisites() -> Option<(EmulatorBuilder, Function)> {
    let ready = support::docker_ready().and_then(|_| support::rust_function("echo", "echo"));
    match (ready, support::builder_for(BackendKind::Docker)) {
        (Ok(echo), Ok(builder)) => Some((builder, echo)),
        (Err(why), _) | (_, Err(why)) => {
            eprintln!("SKIPPED docker benches: {why}");
            None
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One cold start per iteration: a fresh function each time, so no warm environment
/// exists. With `new_code`, the code differs every time too, so its volumes are created
/// and loaded on the way (the first cold start of a deployment); without, the code volume
/// of an earlier deploy of the same files is reused (a later cold start: scale-out, or
/// after a timeout, a crash or a redeploy of the same code).
fn cold(c: &mut Criterion, name: &str, new_code: bool) {
    let Some((builder, echo)) = prerequisites() else {
        return;
    };
    let rt = runtime();
    let emu = rt.block_on(builder.start()).expect("emulator");
    let mut group = c.benchmark_group("docker");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(15))
        .warm_up_time(Duration::from_secs(2));
    let mut n = 0u64;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let mut function = echo.clone();
                    if new_code {
                        function = function.source("nonce.txt", n.to_string());
                    }
                    let f = emu.deploy(function).await.expect("deploy");
                    let started = Instant::now();
                    let out = f.invoke(r#"{"cold":true}"#).await.expect("invoke");
                    total += started.elapsed();
                    assert!(out.cold_start && out.function_error.is_none());
                    emu.delete_function("echo").expect("delete");
                    // Let the janitor remove the container outside the measurement.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                total
            })
        })
    });
    group.finish();
}

fn cold_start(c: &mut Criterion) {
    cold(c, "cold_start", false);
}

fn cold_start_new_code(c: &mut Criterion) {
    cold(c, "cold_start_new_code", true);
}

fn warm_invoke(c: &mut Criterion) {
    let Some((builder, echo)) = prerequisites() else {
        return;
    };
    let rt = runtime();
    let (emu, f) = rt.block_on(async {
        let emu = builder.start().await.expect("emulator");
        let f = emu.deploy(echo).await.expect("deploy");
        f.invoke("{}").await.expect("cold invoke");
        (emu, f)
    });
    let mut group = c.benchmark_group("docker");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("warm_invoke", |b| {
        b.to_async(&rt)
            .iter(|| async { f.invoke(r#"{"warm":true}"#).await.expect("invoke") })
    });
    group.finish();

    let mut samples: Vec<Duration> = rt.block_on(async {
        let mut samples = Vec::with_capacity(3000);
        for _ in 0..3000 {
            let started = Instant::now();
            f.invoke(r#"{"warm":true}"#).await.expect("invoke");
            samples.push(started.elapsed());
        }
        samples
    });
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "docker/warm_invoke percentiles over {} invokes: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        samples.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        samples[samples.len() - 1]
    );
    assert_eq!(f.stats().cold_starts, 1, "every timed invoke was warm");
    drop((f, emu));
}

fn teardown(c: &mut Criterion) {
    let Some((builder, _)) = prerequisites() else {
        return;
    };
    let sleep = support::rust_function("sleep", "sleep").expect("sleep fixture");
    let rt = runtime();
    let mut group = c.benchmark_group("docker");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function("teardown_10_warm", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let emu: Emulator = rt.block_on(async {
                    let emu = builder.clone().start().await.expect("emulator");
                    let f = emu
                        .deploy(sleep.clone().max_environments(10))
                        .await
                        .expect("deploy");
                    // Ten overlapping invokes: ten environments, all warm afterwards.
                    let calls = (0..10).map(|_| f.invoke(r#"{"ms": 300}"#));
                    for out in futures::future::join_all(calls).await {
                        out.expect("invoke");
                    }
                    assert_eq!(f.stats().environments, 10);
                    emu
                });
                let started = Instant::now();
                drop(emu); // returns once every container is removed
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    cold_start,
    cold_start_new_code,
    warm_invoke,
    teardown
);
criterion_main!(benches);
