//! Foundation benchmarks (process backend): emulator start + drop, warm invoke round trip
//! with a 1 KB payload through the real `lambda_runtime` echo handler, and cold start to
//! first response for Rust and Python. After criterion's estimates, a percentile pass
//! prints p50/p99 of the warm round trip (criterion reports means and medians only).
//!
//! Prerequisites: `scripts/setup` (exports nothing; this file finds `target/fixtures` and
//! `target/testkit/venv` itself, or `LAMBDA_TESTKIT_FIXTURES` / `LAMBDA_TESTKIT_PYTHON`).
//! Run: `cargo bench --bench invoke`.

use std::path::PathBuf;

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use lambda_testkit::{Emulator, Function, FunctionHandle, Runtime};
use support::{payload_1kb, percentiles, runtime};

fn repo_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(default))
}

async fn emulator() -> Emulator {
    Emulator::builder()
        .python(repo_path(
            "LAMBDA_TESTKIT_PYTHON",
            "target/testkit/venv/bin/python",
        ))
        .start()
        .await
        .unwrap()
}

async fn rust_echo(emu: &Emulator) -> FunctionHandle {
    let binary =
        std::fs::read(repo_path("LAMBDA_TESTKIT_FIXTURES", "target/fixtures/release").join("echo"))
            .expect("run scripts/setup to build the Rust fixtures");
    emu.deploy(Function::new("echo", Runtime::ProvidedAl2023).executable("bootstrap", binary))
        .await
        .unwrap()
}

async fn python_echo(emu: &Emulator) -> FunctionHandle {
    emu.deploy(
        Function::new("py-echo", Runtime::Python311)
            .handler("app.handler")
            .source("app.py", "def handler(event, context):\n    return event\n"),
    )
    .await
    .unwrap()
}

fn start_and_drop(c: &mut Criterion) {
    let rt = runtime();
    c.bench_function("emulator start + drop", |b| {
        b.to_async(&rt)
            .iter(|| async { drop(Emulator::start().await.unwrap()) })
    });
}

fn warm_invoke(c: &mut Criterion) {
    let rt = runtime();
    let emu = rt.block_on(emulator());
    let f = rt.block_on(rust_echo(&emu));
    let payload = bytes::Bytes::from(payload_1kb());
    rt.block_on(f.invoke(payload.clone())).unwrap();
    c.bench_function("warm invoke, Rust echo, 1 KB", |b| {
        b.to_async(&rt)
            .iter(|| async { f.invoke(payload.clone()).await.unwrap() })
    });
    percentiles("warm invoke, Rust echo, 1 KB", &rt, 20_000, || {
        let f = f.clone();
        let payload = payload.clone();
        async move {
            f.invoke(payload).await.unwrap();
        }
    });
}

fn cold_start(c: &mut Criterion) {
    let rt = runtime();
    let emu = rt.block_on(emulator());
    let rust = rt.block_on(rust_echo(&emu));
    let python = rt.block_on(python_echo(&emu));
    let mut group = c.benchmark_group("cold start to first response");
    group.sample_size(30);
    for (name, f) in [("Rust", &rust), ("Python", &python)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                f.evict_all();
                let out = f.invoke("{}").await.unwrap();
                assert!(out.cold_start);
            })
        });
        percentiles(
            &format!("cold start, {name}"),
            &rt,
            if name == "Rust" { 200 } else { 40 },
            || {
                let f = f.clone();
                async move {
                    f.evict_all();
                    f.invoke("{}").await.unwrap();
                }
            },
        );
    }
    group.finish();
}

criterion_group!(benches, start_and_drop, warm_invoke, cold_start);
criterion_main!(benches);
