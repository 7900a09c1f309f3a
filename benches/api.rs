//! Benchmarks for the second front door and for streaming.
//!
//! - `stream/first_chunk`: a warm `lambda_runtime` streaming handler writes its first chunk
//!   at once, then sleeps 20 ms; the time from the invoke call until the reader has that
//!   chunk (an upper bound on write-to-read latency, since it includes delivering the
//!   invocation to the runtime).
//! - `invoke/rust_api` vs `invoke/rest`: a warm echo invoke through `FunctionHandle::invoke`
//!   and through `POST /2015-03-31/functions/echo/invocations` on a kept-alive HTTP/1.1
//!   connection; the difference is what the REST front door costs.
//! - `emulator/start_drop`: starting an emulator (REST listener included) and dropping it.
//!
//! With `--bench`, exact per-call percentiles from plain loops are printed at the end.
//! Needs the Rust fixtures (`scripts/setup`, or `LAMBDA_TESTKIT_FIXTURES`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use lambda_testkit::{Emulator, Function, FunctionHandle, Runtime};

const ECHO_EVENT: &str = r#"{"hello":"world"}"#;
const STREAM_EVENT: &str = r#"{"chunks":2,"delay_ms":20}"#;

fn fixture(name: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("LAMBDA_TESTKIT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/release")
        });
    std::fs::read(dir.join(name)).ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct Setup {
    emu: Emulator,
    echo: FunctionHandle,
    stream: FunctionHandle,
}

async fn setup() -> Option<Setup> {
    let (echo, stream) = (fixture("echo")?, fixture("stream")?);
    let emu = Emulator::start().await.unwrap();
    let echo = emu
        .deploy(Function::new("echo", Runtime::ProvidedAl2023).executable("bootstrap", echo))
        .await
        .unwrap();
    let stream = emu
        .deploy(Function::new("stream", Runtime::ProvidedAl2023).executable("bootstrap", stream))
        .await
        .unwrap();
    echo.invoke(ECHO_EVENT).await.unwrap();
    stream
        .invoke_stream(STREAM_EVENT)
        .await
        .unwrap()
        .collect_all()
        .await;
    Some(Setup { emu, echo, stream })
}

/// One kept-alive HTTP/1.1 connection to the REST endpoint, Nagle off (as SDK clients).
async fn connect(endpoint: &str) -> SendRequest<Full<Bytes>> {
    let addr = endpoint.trim_start_matches("http://");
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn rest_invoke(sender: &mut SendRequest<Full<Bytes>>) -> Bytes {
    sender.ready().await.unwrap();
    let request = hyper::Request::post("/2015-03-31/functions/echo/invocations")
        .header("host", "127.0.0.1")
        .header("content-type", "application/octet-stream")
        .body(Full::new(Bytes::from_static(ECHO_EVENT.as_bytes())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], ECHO_EVENT.as_bytes());
    body
}

/// Time from the invoke call to the first chunk in hand; the rest is drained untimed.
async fn first_chunk(f: &FunctionHandle) -> Duration {
    let started = Instant::now();
    let mut stream = f.invoke_stream(STREAM_EVENT).await.unwrap();
    let first = stream.next().await.expect("a first chunk");
    let elapsed = started.elapsed();
    assert_eq!(&first[..], b"chunk-0\n");
    while stream.next().await.is_some() {}
    assert!(stream.completion().unwrap().is_ok());
    elapsed
}

fn benches(c: &mut Criterion, rt: &tokio::runtime::Runtime, s: &Setup) {
    let mut group = c.benchmark_group("stream");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.bench_function("first_chunk", |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += first_chunk(&s.stream).await;
            }
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("invoke");
    group.bench_function("rust_api", |b| {
        b.to_async(rt)
            .iter(|| async { s.echo.invoke(ECHO_EVENT).await.unwrap() })
    });
    let endpoint = s.emu.endpoint_url();
    group.bench_function("rest", |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let mut sender = connect(endpoint).await;
            let started = Instant::now();
            for _ in 0..iters {
                rest_invoke(&mut sender).await;
            }
            started.elapsed()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("emulator");
    group.bench_function("start_drop", |b| {
        b.to_async(rt)
            .iter(|| async { drop(Emulator::start().await.unwrap()) })
    });
    group.finish();
}

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, samples: Vec<Duration>) {
    let (p50, p95, p99) = (
        percentile(samples.clone(), 0.5),
        percentile(samples.clone(), 0.95),
        percentile(samples.clone(), 0.99),
    );
    println!(
        "{name:<28} n={:<5} p50 {p50:>10.1?}  p95 {p95:>10.1?}  p99 {p99:>10.1?}",
        samples.len()
    );
}

/// Exact per-call percentiles (criterion reports per-sample means).
fn percentiles(rt: &tokio::runtime::Runtime, s: &Setup) {
    println!("\nper-call percentiles:");
    rt.block_on(async {
        let mut chunks = Vec::new();
        for _ in 0..200 {
            chunks.push(first_chunk(&s.stream).await);
        }
        report("stream first chunk", chunks);

        let mut rust = Vec::new();
        let mut rest = Vec::new();
        let mut sender = connect(s.emu.endpoint_url()).await;
        // Interleaved, so both see the same machine load.
        for _ in 0..3000 {
            let t = Instant::now();
            s.echo.invoke(ECHO_EVENT).await.unwrap();
            rust.push(t.elapsed());
            let t = Instant::now();
            rest_invoke(&mut sender).await;
            rest.push(t.elapsed());
        }
        let overhead = percentile(rest.clone(), 0.5).saturating_sub(percentile(rust.clone(), 0.5));
        report("warm invoke, Rust API", rust);
        report("warm invoke, REST", rest);
        println!("{:<28} p50 {overhead:>10.1?}", "REST overhead (p50 - p50)");

        let mut starts = Vec::new();
        for _ in 0..500 {
            let t = Instant::now();
            drop(Emulator::start().await.unwrap());
            starts.push(t.elapsed());
        }
        report("emulator start + drop", starts);
    });
}

fn main() {
    let rt = runtime();
    let Some(setup) = rt.block_on(setup()) else {
        eprintln!(
            "skipping: Rust fixtures not built (scripts/setup, or set LAMBDA_TESTKIT_FIXTURES)"
        );
        return;
    };
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &rt, &setup);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        percentiles(&rt, &setup);
    }
}
