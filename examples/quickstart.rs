//! Starts an emulator, deploys an inline Python handler and a Rust `lambda_runtime`
//! handler, invokes each, and prints the results, a log and the stats.
//!
//! Run it with `scripts/quickstart` (which provisions awslambdaric and builds the Rust
//! handler first), or by hand with `LAMBDA_TESTKIT_PYTHON_3_12` (or `LAMBDA_TESTKIT_PYTHON`)
//! pointing at a Python 3.12 that has awslambdaric and `LAMBDA_TESTKIT_FIXTURES` at the
//! built `fixtures/rust` binaries.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lambda_testkit::{Emulator, Function, Runtime};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let emu = Emulator::start().await?;

    let greeter = emu
        .deploy(
            Function::new("greeter", Runtime::Python312)
                .handler("app.handler")
                .source(
                    "app.py",
                    "import os\n\ndef handler(event, context):\n    print(f\"greeting {event['name']}\")\n    return {'greeting': f\"hello, {event['name']}\", 'function': context.function_name, 'stage': os.environ['STAGE']}\n",
                )
                .env("STAGE", "quickstart")
                .timeout(Duration::from_secs(5)),
        )
        .await?;

    let fixtures = std::env::var_os("LAMBDA_TESTKIT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/fixtures/release"));
    let bootstrap = std::fs::read(fixtures.join("echo"))
        .map_err(|e| anyhow::anyhow!("Rust handler not built ({e}); run scripts/setup first"))?;
    let echo = emu
        .deploy(
            Function::new("rust-echo", Runtime::ProvidedAl2023).executable("bootstrap", bootstrap),
        )
        .await?;

    for name in ["ada", "grace"] {
        let t = Instant::now();
        let out: Value = greeter.invoke_json(&json!({ "name": name })).await?;
        println!(
            "python  greeter   -> {out}  ({:.2} ms)",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    for i in 0..3 {
        let t = Instant::now();
        let out: Value = echo.invoke_json(&json!({ "n": i, "lang": "rust" })).await?;
        println!(
            "rust    rust-echo -> {out}  ({:.3} ms)",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }

    let last = greeter.invoke(r#"{"name":"linus"}"#).await?;
    println!("\nlog of the last python invocation:\n{}", last.log);

    for f in [&greeter, &echo] {
        let s = f.stats();
        println!(
            "{:<10} invocations {}  cold starts {}  warm starts {}  errors {}  init {:?}",
            f.name(),
            s.invocations,
            s.cold_starts,
            s.warm_starts,
            s.errors,
            s.init_durations
        );
    }
    let pids = emu.environment_pids();
    drop((greeter, echo));
    emu.shutdown().await;
    println!(
        "\nshut down; {} runtime processes terminated; total {:.0} ms",
        pids.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
