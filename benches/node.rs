//! Node.js on the process backend, through the real npm `aws-lambda-ric`: warm invoke
//! round trip with a 1 KB payload and cold start to first response, per Node major. After
//! criterion's estimates, a percentile pass prints exact p50/p99 of each (criterion reports
//! means and medians only).
//!
//! Prerequisites: the Node.js runtimes scripts/setup provisions, exported as the process
//! backend reads them (`LAMBDA_TESTKIT_NODE_<major>`, `LAMBDA_TESTKIT_NODE_RIC_<major>`).
//! A major that is not provisioned is reported and skipped.
//!
//! ```sh
//! eval "$(scripts/setup | sed 's/^/export /')"
//! cargo bench --bench node                               # nodejs20.x, 22.x and 24.x
//! LAMBDA_TESTKIT_BENCH_NODE=22 cargo bench --bench node  # only nodejs22.x
//! ```

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use lambda_testkit::{Emulator, Function, FunctionHandle, Runtime};
use support::{payload_1kb, percentiles, runtime};

/// The echo handler: an ES module, as `nodejs*.x` functions are written today.
const ECHO: &str = "export const handler = async (event) => event;\n";

/// The majors to measure: `LAMBDA_TESTKIT_BENCH_NODE` (e.g. `22` or `20,24`), else all.
fn majors() -> Vec<(u32, Runtime)> {
    let all = [
        (20, Runtime::Nodejs20),
        (22, Runtime::Nodejs22),
        (24, Runtime::Nodejs24),
    ];
    let wanted: Vec<u32> = std::env::var("LAMBDA_TESTKIT_BENCH_NODE")
        .unwrap_or_default()
        .split([',', ' '])
        .filter_map(|m| m.trim().parse().ok())
        .collect();
    all.into_iter()
        .filter(|(major, _)| wanted.is_empty() || wanted.contains(major))
        .collect()
}

/// The echo function on `runtime`, or `None` (reported) when that Node is not provisioned.
async fn node_echo(emu: &Emulator, major: u32, runtime: Runtime) -> Option<FunctionHandle> {
    let deployed = emu
        .deploy(
            Function::new(format!("node{major}-echo"), runtime)
                .handler("index.handler")
                .source("index.mjs", ECHO),
        )
        .await;
    match deployed {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("SKIPPED {runtime}: {e}");
            None
        }
    }
}

fn warm_invoke(c: &mut Criterion) {
    let rt = runtime();
    let emu = rt.block_on(Emulator::start()).unwrap();
    let payload = bytes::Bytes::from(payload_1kb());
    for (major, runtime) in majors() {
        let Some(f) = rt.block_on(node_echo(&emu, major, runtime)) else {
            continue;
        };
        let first = rt.block_on(f.invoke(payload.clone())).unwrap();
        assert!(!first.is_error(), "{:?}", first.error());
        assert_eq!(first.payload, payload);
        let label = format!("warm invoke, Node {major} echo, 1 KB");
        c.bench_function(&label, |b| {
            b.to_async(&rt)
                .iter(|| async { f.invoke(payload.clone()).await.unwrap() })
        });
        percentiles(&label, &rt, 10_000, || {
            let f = f.clone();
            let payload = payload.clone();
            async move {
                f.invoke(payload).await.unwrap();
            }
        });
        assert_eq!(
            f.stats().cold_starts,
            1,
            "every warm invoke reused one environment"
        );
    }
}

fn cold_start(c: &mut Criterion) {
    let rt = runtime();
    let emu = rt.block_on(Emulator::start()).unwrap();
    let mut group = c.benchmark_group("cold start to first response");
    group.sample_size(20);
    for (major, runtime) in majors() {
        let Some(f) = rt.block_on(node_echo(&emu, major, runtime)) else {
            continue;
        };
        group.bench_function(format!("Node {major}"), |b| {
            b.to_async(&rt).iter(|| async {
                f.evict_all();
                let out = f.invoke("{}").await.unwrap();
                assert!(out.cold_start && !out.is_error(), "{:?}", out.error());
            })
        });
        percentiles(&format!("cold start, Node {major}"), &rt, 50, || {
            let f = f.clone();
            async move {
                f.evict_all();
                let out = f.invoke("{}").await.unwrap();
                assert!(out.cold_start);
            }
        });
    }
    group.finish();
}

criterion_group!(benches, warm_invoke, cold_start);
criterion_main!(benches);
