//! Tests a Node.js handler from Rust: deploys an inline ES module on `nodejs20.x`,
//! `nodejs22.x` and `nodejs24.x` (the real npm `aws-lambda-ric` on a Node of each major),
//! invokes it cold and warm, streams a response, and prints what ran and how long it took.
//!
//! Run it after provisioning Node and the client with scripts/setup:
//!
//! ```sh
//! eval "$(scripts/setup | sed 's/^/export /')"
//! cargo run --release --example node            # every major
//! cargo run --release --example node -- 22      # only nodejs22.x
//! ```
//!
//! `LAMBDA_TESTKIT_NODE_<major>` names each node and `LAMBDA_TESTKIT_NODE_RIC_<major>` its
//! aws-lambda-ric package; without them, a `node` of that major on PATH with the client
//! installed globally for it is used.

use std::time::{Duration, Instant};

use lambda_testkit::{Emulator, Function, Runtime};
use serde_json::{Value, json};

const HANDLER: &str = r#"
export const handler = async (event, context) => ({
  hi: event.name,
  node: process.version,
  requestId: context.awsRequestId,
});

export const stream = awslambda.streamifyResponse(async (event, responseStream) => {
  for (const word of ["streamed ", "from ", "node"]) {
    responseStream.write(word);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  responseStream.end();
});
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let wanted: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let emu = Emulator::start().await?;
    for (major, runtime) in [
        (20, Runtime::Nodejs20),
        (22, Runtime::Nodejs22),
        (24, Runtime::Nodejs24),
    ] {
        if !wanted.is_empty() && !wanted.contains(&major) {
            continue;
        }
        let f = emu
            .deploy(
                Function::new(format!("greeter-{major}"), runtime)
                    .handler("index.handler")
                    .source("index.mjs", HANDLER)
                    .timeout(Duration::from_secs(5)),
            )
            .await?;

        let t = Instant::now();
        let out: Value = f.invoke_json(&json!({"name": "ada"})).await?;
        let cold = t.elapsed();
        println!(
            "{runtime}: {} answered {out} (cold start to response {:.1} ms)",
            out["node"].as_str().unwrap_or("?"),
            cold.as_secs_f64() * 1000.0
        );

        let mut warm = Vec::new();
        for i in 0..200 {
            let t = Instant::now();
            f.invoke(format!(r#"{{"name":"n{i}"}}"#)).await?;
            warm.push(t.elapsed());
        }
        warm.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{runtime}: warm invoke p50 {:.3} ms, p99 {:.3} ms over {} invokes",
            ms(warm[warm.len() / 2]),
            ms(warm[warm.len() * 99 / 100]),
            warm.len()
        );

        let s = emu
            .deploy(
                Function::new(format!("streamer-{major}"), runtime)
                    .handler("index.stream")
                    .source("index.mjs", HANDLER),
            )
            .await?;
        let collected = s.invoke_stream("{}").await?.collect_all().await;
        println!("{runtime}: streamed chunks {:?}", collected.chunk_texts());
        let stats = f.stats();
        println!(
            "{runtime}: {} invocations, {} cold start(s)\n",
            stats.invocations, stats.cold_starts
        );
    }
    Ok(())
}
