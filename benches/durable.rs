//! Durable executions end to end, this emulator against AWS's local durable service.
//!
//! The same 10-step Python workflow (AWS's `aws-durable-execution-sdk-python`, one
//! checkpoint per step), the same runtime (`python3.11`, awslambdaric, process backend),
//! in one run:
//!
//! - `emulator`: `FunctionHandle::start_execution` then `DurableExecution::wait` — the
//!   emulator is the durable service: it invokes the handler and serves its checkpoints.
//! - `dex-local-runner`: `aws-durable-execution-sdk-python-testing`'s
//!   `start-server --skip-time` as the durable service (`POST /start-durable-execution`,
//!   then `GET /2025-12-01/durable-executions/{arn}` until the execution ends, polled every
//!   millisecond); it invokes the handler through this emulator's Invoke
//!   (`--lambda-endpoint`), and the handler checkpoints to it (`AWS_ENDPOINT_URL_LAMBDA`).
//!
//! Both services run the workflow twice: with the Python handler above, and with the same
//! ten steps in Rust (`fixtures/rust/src/bin/durable_steps.rs` on the published
//! `durable-lambda-closure` crate, which checkpoints through aws-sdk-lambda and so honours
//! `AWS_ENDPOINT_URL_LAMBDA` too). The Python SDK spends most of an execution in itself
//! (one boto3 call per step, up to 100 ms at each invocation's end for its checkpoint
//! thread), whoever serves it; the Rust handler leaves the service's own cost visible.
//!
//! Prints per-execution p50 / mean for every pairing and the ratios. Needs `scripts/setup`
//! (the venv, the durable SDK layer, the test driver under `target/testkit`, and the Rust
//! fixtures for the Rust rows). `LAMBDA_TESTKIT_BENCH_DURABLE=rust` runs the Rust rows
//! alone, `LAMBDA_TESTKIT_BENCH_DURABLE_N` sets the executions per row (default 30), and
//! `LAMBDA_TESTKIT_BENCH_DURABLE_TRACE=1` prints each of this emulator's executions as its
//! history, every event at its offset from the start call.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lambda_testkit::durable::model::ExecutionStatus;
use lambda_testkit::{CodeZip, DurableConfig, Emulator, Function, FunctionHandle, Layer, Runtime};

/// Executions per row; `LAMBDA_TESTKIT_BENCH_DURABLE_N` overrides (a multiple of `BLOCK`).
fn executions() -> usize {
    std::env::var("LAMBDA_TESTKIT_BENCH_DURABLE_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30)
}
const WARMUP: usize = 3;
/// Executions per side before the other side's turn.
const BLOCK: usize = 5;

const TEN_STEPS: &str = r#"
from aws_durable_execution_sdk_python import DurableContext, durable_execution

@durable_execution
def handler(event, context: DurableContext):
    total = 0
    for i in range(10):
        total = context.step(lambda _, t=total, i=i: t + i, name=f"step-{i}")
    return total
"#;

fn testkit(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/testkit")
        .join(path)
}

fn rust_fixture(name: &str) -> Option<Vec<u8>> {
    let dir = std::env::var_os("LAMBDA_TESTKIT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fixtures/release")
        });
    std::fs::read(dir.join(name)).ok()
}

fn python() -> PathBuf {
    std::env::var_os("LAMBDA_TESTKIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| testkit("venv/bin/python"))
}

fn function(name: &str, layer: &Layer) -> Function {
    Function::new(name, Runtime::Python311)
        .handler("app.handler")
        .source("app.py", TEN_STEPS)
        .layer(layer.clone())
        .timeout(Duration::from_secs(30))
}

/// `(p50, mean)` of `samples`.
fn summary(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    (samples[samples.len() / 2], mean)
}

async fn run_emulator(f: &FunctionHandle, n: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let wall = std::time::SystemTime::now();
        let execution = f.start_execution("{}").expect("starts");
        let done = execution.wait().await.expect("ends");
        samples.push(started.elapsed());
        if std::env::var_os("LAMBDA_TESTKIT_BENCH_DURABLE_TRACE").is_some() {
            // Where an execution's time goes: each history event after the start call.
            for e in execution.history().unwrap() {
                let at = e.timestamp.duration_since(wall).unwrap_or_default();
                eprintln!(
                    "{:>9.1?} {} {}",
                    at,
                    e.event_type,
                    e.name.unwrap_or_default()
                );
            }
            eprintln!("{:>9.1?} wait() returned", samples.last().unwrap());
        }
        assert_eq!(done.status, ExecutionStatus::Succeeded, "{done:?}");
        assert_eq!(done.result.as_deref(), Some("45"));
    }
    samples
}

/// The local durable service as a child process; killed on drop.
struct Dex {
    child: Child,
    url: String,
}

impl Drop for Dex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_dex(lambda_endpoint: &str) -> Dex {
    let port = free_port();
    let pythonpath = format!(
        "{}:{}",
        testkit("durable-testing").display(),
        testkit("durable-layer/python").display()
    );
    let child = Command::new(python())
        .args([
            "-m",
            "aws_durable_execution_sdk_python_testing.cli",
            "start-server",
        ])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--lambda-endpoint", lambda_endpoint, "--skip-time"])
        .args(["--log-level", "WARNING"])
        .env("PYTHONPATH", pythonpath)
        .env("AWS_ACCESS_KEY_ID", "lambda-testkit")
        .env("AWS_SECRET_ACCESS_KEY", "lambda-testkit")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dex-local-runner starts");
    let dex = Dex {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "dex-local-runner did not listen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dex
}

/// Percent-encodes a path label (everything but unreserved characters).
fn label(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `n` executions of `function` on the peer; `runs` numbers their names (unique per peer).
async fn run_dex(dex: &Dex, function: &str, n: usize, runs: &mut usize) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        *runs += 1;
        let started = Instant::now();
        let body = serde_json::json!({
            "AccountId": "123456789012",
            "FunctionName": function,
            "FunctionQualifier": "$LATEST",
            "ExecutionName": format!("bench-{runs}"),
            "ExecutionTimeoutSeconds": 300,
            "ExecutionRetentionPeriodDays": 1,
            "Input": "{}",
        });
        let response = client
            .post(format!("{}/start-durable-execution", dex.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("start");
        let started_execution: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.expect("start output"))
                .expect("start output is JSON");
        let arn = started_execution["ExecutionArn"]
            .as_str()
            .expect("ExecutionArn")
            .to_string();
        let url = format!("{}/2025-12-01/durable-executions/{}", dex.url, label(&arn));
        loop {
            let response = client.get(&url).send().await.expect("get");
            let state: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.expect("get output"))
                    .expect("get output is JSON");
            match state["Status"].as_str() {
                Some("RUNNING") | None => tokio::time::sleep(Duration::from_millis(1)).await,
                Some("SUCCEEDED") => {
                    assert_eq!(state["Result"], "45", "{state}");
                    break;
                }
                Some(other) => panic!("peer execution ended {other}: {state}"),
            }
        }
        samples.push(started.elapsed());
    }
    samples
}

/// Prints each row's p50 and mean, then the ratio of each peer row to the emulator row
/// before it.
fn report(rows: &[(&str, Vec<Duration>)]) {
    let summaries: Vec<_> = rows
        .iter()
        .map(|(label, samples)| (*label, summary(samples.clone())))
        .collect();
    for (label, (p50, mean)) in &summaries {
        println!("  {label:<32} p50 {p50:>10.2?}  mean {mean:>10.2?}");
    }
    for pair in summaries.chunks(2) {
        if let [(ours, (ours_p50, ours_mean)), (peer, (peer_p50, peer_mean))] = pair {
            println!(
                "  ratio {peer} / {ours}: p50 {:.1}x, mean {:.1}x",
                peer_p50.as_secs_f64() / ours_p50.as_secs_f64(),
                peer_mean.as_secs_f64() / ours_mean.as_secs_f64()
            );
        }
    }
}

fn main() {
    if !testkit("durable-testing/aws_durable_execution_sdk_python_testing").is_dir()
        || !testkit("durable-layer/python").is_dir()
    {
        eprintln!("SKIPPED: durable bench needs scripts/setup (durable layer and test driver)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let emu = Emulator::builder().python(python()).start().await.unwrap();
        let layer =
            Layer::new("durable-sdk").code(CodeZip::new().dir("", testkit("durable-layer")));
        let durable = || DurableConfig::new(Duration::from_secs(300));
        let ours = emu
            .deploy(function("ten", &layer).durable(durable()))
            .await
            .unwrap();
        let dex = start_dex(emu.endpoint_url()).await;
        // Not durable here: the peer is the durable service, this emulator only runs the
        // handler it invokes.
        emu.deploy(function("ten-peer", &layer).env("AWS_ENDPOINT_URL_LAMBDA", &dex.url))
            .await
            .unwrap();
        // The same ten steps in Rust, if the fixture is built.
        let rust = match rust_fixture("durable_steps") {
            Some(binary) => {
                let rust = |name: &str| {
                    Function::new(name, Runtime::ProvidedAl2023).executable("bootstrap", binary.clone())
                };
                let f = emu.deploy(rust("ten-rust").durable(durable())).await.unwrap();
                emu.deploy(rust("ten-rust-peer").env("AWS_ENDPOINT_URL_LAMBDA", &dex.url))
                    .await
                    .unwrap();
                Some(f)
            }
            None => {
                eprintln!("durable bench: no durable_steps fixture, Python rows only");
                None
            }
        };

        // Warm-up, then interleaved blocks: every side sees the same machine.
        let mut peer_runs = 0;
        // `LAMBDA_TESTKIT_BENCH_DURABLE=rust`: the Rust rows alone (e.g. under a profiler).
        let python_rows = std::env::var("LAMBDA_TESTKIT_BENCH_DURABLE").as_deref() != Ok("rust");
        if python_rows {
            run_emulator(&ours, WARMUP).await;
            run_dex(&dex, "ten-peer", WARMUP, &mut peer_runs).await;
        }
        if let Some(f) = &rust {
            run_emulator(f, WARMUP).await;
            run_dex(&dex, "ten-rust-peer", WARMUP, &mut peer_runs).await;
        }
        let mut rows: Vec<(&str, Vec<Duration>)> = vec![
            ("emulator, Python handler", vec![]),
            ("dex-local-runner, Python handler", vec![]),
            ("emulator, Rust handler", vec![]),
            ("dex-local-runner, Rust handler", vec![]),
        ];
        for _ in 0..executions() / BLOCK {
            if python_rows {
                rows[0].1.extend(run_emulator(&ours, BLOCK).await);
                rows[1].1.extend(run_dex(&dex, "ten-peer", BLOCK, &mut peer_runs).await);
            }
            if let Some(f) = &rust {
                rows[2].1.extend(run_emulator(f, BLOCK).await);
                rows[3].1.extend(run_dex(&dex, "ten-rust-peer", BLOCK, &mut peer_runs).await);
            }
        }
        rows.retain(|(_, samples)| !samples.is_empty());
        println!(
            "10-step workflow, {} sequential executions per row in blocks of {BLOCK}, process backend",
            executions()
        );
        report(&rows);
    });
}
