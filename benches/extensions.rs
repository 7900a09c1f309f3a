//! The cost of the execution environment's lifecycle (process backend, Rust `lambda_runtime`
//! echo handler, 1 KB payload):
//!
//! - freeze/thaw: warm invoke with freezing on (the default) and off, interleaved in blocks;
//! - the extension phase: back-to-back invokes on one environment with the
//!   `lambda-extension` crate's `ext_events` extension (every invoke waits until the
//!   extension called next again) and without;
//! - telemetry delivery: from an invoke's answer until the `ext_telemetry` subscriber has
//!   received its `platform.runtimeDone` (seen as the extension's printed line in the feed).
//!
//! Prerequisites: `scripts/setup` (the Rust fixtures). Run: `cargo bench --bench extensions`.

use std::time::{Duration, Instant};

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use lambda_testkit::{Emulator, Function, FunctionHandle, Layer, Runtime};
use support::{fixture, payload_1kb, runtime};

fn echo(name: &str) -> Function {
    Function::new(name, Runtime::ProvidedAl2023)
        .executable("bootstrap", fixture("echo"))
        .max_environments(1)
}

fn extension(name: &str) -> Layer {
    Layer::new(name).executable(format!("extensions/{name}"), fixture(name))
}

async fn deploy(freeze: bool, function: Function) -> (Emulator, FunctionHandle) {
    let emu = Emulator::builder().freeze(freeze).start().await.unwrap();
    let f = emu.deploy(function).await.unwrap();
    f.invoke("{}").await.unwrap();
    (emu, f)
}

/// Runs `blocks` rounds of `per_block` invokes on each function in turn; returns each
/// function's sorted samples.
fn interleaved(
    rt: &tokio::runtime::Runtime,
    functions: &[&FunctionHandle],
    blocks: usize,
    per_block: usize,
) -> Vec<Vec<Duration>> {
    let payload = bytes::Bytes::from(payload_1kb());
    let mut samples = vec![Vec::with_capacity(blocks * per_block); functions.len()];
    rt.block_on(async {
        for _ in 0..blocks {
            for (f, samples) in functions.iter().zip(samples.iter_mut()) {
                for _ in 0..per_block {
                    let t = Instant::now();
                    f.invoke(payload.clone()).await.unwrap();
                    samples.push(t.elapsed());
                }
            }
        }
    });
    for s in &mut samples {
        s.sort();
    }
    samples
}

fn at(samples: &[Duration], q: f64) -> f64 {
    samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1e6
}

fn report(label: &str, samples: &[Duration]) {
    println!(
        "{label}: n={} p50={:.1} us p99={:.1} us",
        samples.len(),
        at(samples, 0.5),
        at(samples, 0.99)
    );
}

fn freeze_thaw(c: &mut Criterion) {
    let rt = runtime();
    let (_a, frozen) = rt.block_on(deploy(true, echo("frozen")));
    let (_b, running) = rt.block_on(deploy(false, echo("running")));
    let payload = bytes::Bytes::from(payload_1kb());
    c.bench_function("warm invoke, freeze on", |b| {
        b.to_async(&rt)
            .iter(|| async { frozen.invoke(payload.clone()).await.unwrap() })
    });
    let samples = interleaved(&rt, &[&frozen, &running], 20, 500);
    report("warm invoke, freeze on", &samples[0]);
    report("warm invoke, freeze off", &samples[1]);
    println!(
        "freeze/thaw adds: p50 {:+.1} us",
        at(&samples[0], 0.5) - at(&samples[1], 0.5)
    );
}

fn extension_phase(_: &mut Criterion) {
    let rt = runtime();
    let (_a, with) = rt.block_on(deploy(
        true,
        echo("with-ext").layer(extension("ext_events")),
    ));
    let (_b, without) = rt.block_on(deploy(true, echo("without-ext")));
    let samples = interleaved(&rt, &[&with, &without], 10, 200);
    report("back-to-back invokes, one INVOKE extension", &samples[0]);
    report("back-to-back invokes, no extension", &samples[1]);
    println!(
        "extension phase adds: p50 {:+.1} us",
        at(&samples[0], 0.5) - at(&samples[1], 0.5)
    );
    let phases = with.stats().extension_phases;
    let mut phases: Vec<Duration> = phases.into_iter().collect();
    phases.sort();
    report(
        "extension phase (runtime answer to extension next)",
        &phases,
    );
}

fn telemetry_delivery(_: &mut Criterion) {
    let rt = runtime();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let (_emu, f) = rt.block_on(deploy(
        true,
        echo("telemetry")
            .layer(extension("ext_telemetry"))
            .env("EXT_TELEMETRY_PORT", port.to_string()),
    ));
    let feed = f.telemetry();
    let mut samples: Vec<Duration> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..300 {
            let out = f.invoke("{}").await.unwrap();
            let answered = Instant::now();
            let line = format!("ext_telemetry platform.runtimeDone {}", out.request_id);
            feed.wait_for(|r| r.line() == Some(line.as_str()), Duration::from_secs(5))
                .await
                .unwrap();
            v.push(answered.elapsed());
        }
        v
    });
    samples.sort();
    report(
        "telemetry: answer to the subscriber's platform.runtimeDone",
        &samples,
    );
}

criterion_group!(benches, freeze_thaw, extension_phase, telemetry_delivery);
criterion_main!(benches);
