//! The Docker backend itself: containers, labels, cleanup, the reaper, killed containers.

mod support;

use lambda_testkit::BackendKind;
use serde_json::{Value, json};

#[tokio::test]
async fn smoke() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_env_filter("lambda_testkit=debug").try_init();
    let emu = require!(support::emulator(BackendKind::Docker).await);
    let f = emu.deploy(require!(support::rust_function("echo", "echo"))).await?;
    let t = std::time::Instant::now();
    let out = f.invoke(r#"{"a":1}"#).await?;
    println!("cold {:?}\n{}", t.elapsed(), out.log);
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let out: Value = f.invoke_json(&json!({"b": 2})).await?;
        println!("warm {:?} {out}", t.elapsed());
    }
    let t = std::time::Instant::now();
    drop(emu);
    println!("drop {:?}", t.elapsed());
    Ok(())
}
