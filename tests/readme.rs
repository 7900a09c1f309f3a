//! Every Rust snippet in README.md, compiled and run: each ```rust block of the README
//! stands in this file line for line (indentation aside), inside a test that gives it
//! what it needs, and `readme_snippets_are_the_tests_in_this_file` fails when the README
//! and this file drift apart. Quoted platform messages are checked against real invokes.

mod support;

use lambda_testkit::BackendKind;

// ---- README "Using it" ----------------------------------------------------------------

use lambda_testkit::{Emulator, Function, Runtime, fixtures::emulator};
use rstest::rstest;
use serde_json::{Value, json};

#[rstest]
#[tokio::test]
async fn greets(#[future] emulator: Emulator) -> anyhow::Result<()> {
    let emu = emulator.await;
    let f = emu
        .deploy(
            Function::new("greeter", Runtime::Python312)
                .handler("app.handler")
                .source(
                    "app.py",
                    "def handler(event, ctx):\n    return {'hi': event['name']}\n",
                )
                .timeout(std::time::Duration::from_secs(3)),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({"name": "ada"})).await?;
    assert_eq!(out["hi"], "ada");
    assert_eq!(f.stats().cold_starts, 1);
    Ok(())
} // emulator dropped: every runtime process it started is gone

// ---- README "Streaming" ---------------------------------------------------------------

#[tokio::test]
async fn streaming() -> anyhow::Result<()> {
    let emu = require!(support::emulator(BackendKind::Process).await);
    let f = emu
        .deploy(require!(support::rust_function("streamer", "stream")))
        .await?;
    use futures::StreamExt;
    let mut stream = f.invoke_stream(r#"{"chunks":3}"#).await?;
    while let Some(chunk) = stream.next().await {
        println!("chunk: {chunk:?}"); // `Bytes`, boundaries exactly as the handler flushed
    }
    let done = stream.completion().expect("finished"); // ok, or error type + details, log tail
    assert!(done.is_ok(), "{:?}", done.error);
    Ok(())
}

// ---- README "Function URLs" -----------------------------------------------------------

#[cfg(feature = "api")]
#[tokio::test]
async fn function_urls() -> anyhow::Result<()> {
    let emu = require!(support::python_emulator_on(BackendKind::Process, 12).await);
    use lambda_testkit::urls::FunctionUrlConfig;
    let f = emu
        .deploy(
            Function::new("hello-http", Runtime::Python312)
                .handler("app.handler")
                .source(
                    "app.py",
                    "def handler(event, ctx):\n    name = event['queryStringParameters']['name']\n    return {'statusCode': 200, 'headers': {'content-type': 'text/plain'}, 'body': f'hello {name}'}\n",
                ),
        )
        .await?;
    let url = f.create_url(FunctionUrlConfig::new()).await?;
    let response = reqwest::get(format!("{}greet?name=ada", url.url())).await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "hello ada");
    Ok(())
}

// ---- README "Asserting on the platform" -----------------------------------------------

#[tokio::test]
async fn asserting_on_the_platform() -> anyhow::Result<()> {
    let emu = require!(support::builder_for(BackendKind::Process))
        .idle_ttl(std::time::Duration::from_millis(200))
        .start()
        .await?;
    let f = emu
        .deploy(require!(support::rust_function("echo", "echo")))
        .await?;
    f.invoke("{}").await?;
    use lambda_testkit::stats::EvictionReason;
    use std::time::Duration;
    f.assert_cold_starts(1);
    f.assert_peak_concurrency_at_most(4);
    f.wait_until_idle(Duration::from_secs(5)).await?;
    f.wait_for("an idle-timeout eviction", Duration::from_secs(5), |s| {
        s.evictions_for(EvictionReason::IdleTimeout) == 1
    })
    .await?;
    f.assert_evictions(EvictionReason::IdleTimeout, 1);
    Ok(())
}

// ---- README "Versions, aliases and provisioned concurrency" ----------------------------

#[tokio::test]
async fn versions_aliases_and_provisioned_concurrency() -> anyhow::Result<()> {
    let emu = require!(support::emulator(BackendKind::Process).await);
    let f = emu
        .deploy(require!(support::rust_function("versioned", "echo")))
        .await?;
    use lambda_testkit::InvokeRequest;
    let v1 = f.publish_version().await?; // "1": a snapshot with its own environments
    f.update(|f| f.env("GENERATION", "two")).await?;
    let v2 = f.publish_version().await?; // "2"
    f.create_alias("live", &v1.version, Some((&v2.version, 0.1)))?; // 10% to version 2
    let out = f
        .invoke_request(InvokeRequest::new("{}").qualifier("live"))
        .await?;
    assert!(out.executed_version == "1" || out.executed_version == "2");
    f.update_alias("live", |a| a.routing = None)?;
    let ready = f.provision("live", 2).await?; // two environments initialized ahead
    assert_eq!(ready.status, "READY");
    let out = f
        .invoke_request(InvokeRequest::new("{}").qualifier("live"))
        .await?;
    assert!(!out.cold_start);
    Ok(())
}

// ---- README "Extensions, telemetry and freeze/thaw" -----------------------------------

#[tokio::test]
async fn extensions_and_telemetry() -> anyhow::Result<()> {
    let emu = require!(support::emulator(BackendKind::Process).await);
    let extension_binary = require!(support::rust_fixture("ext_events"));
    let handler_binary = require!(support::rust_fixture("echo"));
    use lambda_testkit::{Function, Layer, Runtime};
    use std::time::Duration;
    // An external extension: an executable under `extensions/` in a layer.
    let ext = Layer::new("my-extension").executable("extensions/my-extension", extension_binary);
    let f = emu
        .deploy(
            Function::new("with-extension", Runtime::ProvidedAl2023)
                .executable("bootstrap", handler_binary)
                .layer(ext),
        )
        .await?;
    let out = f.invoke("{}").await?;
    // The function's Telemetry API stream, as a subscribed extension receives it.
    let report = f
        .telemetry()
        .wait_for(
            |r| r.record_type == "platform.report" && r.request_id() == Some(&out.request_id),
            Duration::from_secs(2),
        )
        .await?;
    assert_eq!(report.record["status"], "success");
    // What the extension printed is its `extension` stream.
    f.telemetry()
        .wait_for(
            |r| {
                r.record_type == "extension"
                    && r.line().is_some_and(|l| l.contains(&out.request_id))
            },
            Duration::from_secs(2),
        )
        .await?;
    Ok(())
}

// ---- README "Node.js" -----------------------------------------------------------------

/// The streaming handler the README shows in its `js` block, verbatim.
const NODE_STREAMING_HANDLER: &str = r#"export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const http = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: { "content-type": "text/plain" },
  });
  http.write("hello ");
  await new Promise((resolve) => setTimeout(resolve, 50));
  http.write("world");
  http.end();
});
"#;

#[tokio::test]
async fn node() -> anyhow::Result<()> {
    let emu = require!(support::node_emulator(BackendKind::Process, 22).await);
    let f = emu
        .deploy(
            Function::new("greeter", Runtime::Nodejs22)
                .handler("index.handler")
                .source(
                    "index.mjs",
                    "export const handler = async (event, context) =>\n  ({ hi: event.name, node: process.version, id: context.awsRequestId });\n",
                ),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({"name": "ada"})).await?;
    assert_eq!(out["hi"], "ada");
    assert!(out["node"].as_str().unwrap().starts_with("v22."));

    let s = emu
        .deploy(
            Function::new("streamer", Runtime::Nodejs22)
                .handler("index.handler")
                .source("index.mjs", NODE_STREAMING_HANDLER),
        )
        .await?;
    let streamed = s.invoke_stream("{}").await?.collect_all().await;
    assert_eq!(streamed.prelude.as_ref().unwrap().status_code, 201);
    assert_eq!(streamed.chunk_texts(), ["hello ", "world"]);

    let readme = std::fs::read_to_string(support::repo().join("README.md"))?;
    let shown = format!("```js\n{NODE_STREAMING_HANDLER}```");
    assert!(
        readme.contains(&shown),
        "README's Node streaming handler is not the one tested here:\n{shown}"
    );
    Ok(())
}

// ---- README "Durable functions" -------------------------------------------------------

#[cfg(feature = "api")]
const ORDER_WORKFLOW: &str = r#"
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration

@durable_execution
def handler(event, context: DurableContext):
    reserved = context.step(lambda _: f"reserved {event['order']}", name="reserve")
    context.wait(Duration.from_hours(1), name="cool-off")
    return context.step(lambda _: f"{reserved}, shipped", name="ship")
"#;

#[cfg(feature = "api")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_functions() -> anyhow::Result<()> {
    let durable_sdk = require!(support::durable_sdk_layer());
    let emu = require!(support::emulator(BackendKind::Process).await);
    use lambda_testkit::DurableConfig;
    use lambda_testkit::durable::model::ExecutionStatus;
    use lambda_testkit::durable::model::OperationStatus::Succeeded;
    use lambda_testkit::durable::model::OperationType;
    use std::time::Duration;
    emu.clock().freeze(); // from now on time moves only when the test moves it
    let f = emu
        .deploy(
            Function::new("order", Runtime::Python311)
                .handler("app.handler")
                .source("app.py", ORDER_WORKFLOW) // a step, a one-hour wait, a step
                .layer(durable_sdk) // aws-durable-execution-sdk-python
                .durable(DurableConfig::new(Duration::from_secs(86_400))),
        )
        .await?;
    let execution = f.start_execution(r#"{"order": 17}"#)?;
    execution
        .wait_for_operation(|op| op.name.as_deref() == Some("cool-off"))
        .await?;
    emu.clock().advance(Duration::from_secs(3600)); // the wait fires now
    let done = execution.wait().await?;
    assert_eq!(done.status, ExecutionStatus::Succeeded);
    assert_eq!(done.invocations, 2); // the first run, and one replay after the wait
    let steps = [("reserve", Succeeded), ("ship", Succeeded)];
    execution.assert_operations(OperationType::Step, &steps); // (name, status), in order
    execution.assert_operations(OperationType::Wait, &[("cool-off", Succeeded)]);
    let reserve = execution.operation("reserve")?.expect("checkpointed");
    assert_eq!(reserve.result(), Some(r#""reserved 17""#)); // as the SDK serialised it
    execution.assert_invocations(2); // panics with the operations and history if not
    assert_eq!(done.result.as_deref(), Some(r#""reserved 17, shipped""#));
    Ok(())
}

// ---- README "Functions that reach the test's other containers" ------------------------

/// The README's `app.py`: pg8000 to `$DB_HOST:5432`.
#[cfg(feature = "docker")]
const ORDERS_HANDLER: &str = r#"import os
import pg8000.native

def handler(event, context):
    con = pg8000.native.Connection("postgres", password="postgres", host=os.environ["DB_HOST"])
    try:
        con.run("create table if not exists orders (id serial primary key, item text)")
        [[order_id]] = con.run("insert into orders (item) values (:item) returning id", item=event["insert"])
        return {"id": order_id}
    finally:
        con.close()
"#;

#[cfg(feature = "docker")]
#[tokio::test(flavor = "multi_thread")]
async fn functions_reach_the_tests_other_containers() -> anyhow::Result<()> {
    require!(support::image_ready(support::POSTGRES_IMAGE.to_string()));
    let pg8000 = require!(support::pg8000_layer());
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let network = format!("readme-net-{suffix}");
    let db_name = format!("orders-db-{suffix}");
    use lambda_testkit::{Emulator, Function, Layer, Runtime};
    use testcontainers::core::WaitFor;
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{GenericImage, ImageExt};
    // Postgres on the test's network (testcontainers creates it, and removes it when `_db`
    // drops: declared before the emulator, it drops after the emulator's containers are gone).
    let _db = GenericImage::new("lambda-testkit/postgres", "15")
        .with_wait_for(WaitFor::message_on_stderr("ready to accept connections"))
        .with_network(&network)
        .with_container_name(&db_name)
        .start()
        .await?;
    // Every function container joins that network: the database is `db_name:5432`.
    let emu = Emulator::builder()
        .docker()
        .standin_images(true)
        .network(&network)
        .start()
        .await?;
    let f = emu
        .deploy(
            Function::new("orders", Runtime::Python311)
                .handler("app.handler")
                .source("app.py", ORDERS_HANDLER)
                .layer(Layer::new("pg8000").code(pg8000))
                .env("DB_HOST", &db_name),
        )
        .await?;
    let out: Value = f.invoke_json(&json!({"insert": "coffee"})).await?;
    assert_eq!(out, json!({"id": 1}));
    Ok(())
}

// ---- README "The emulator as a testcontainers module" ---------------------------------

#[cfg(all(feature = "testcontainers", feature = "api", feature = "doctor"))]
#[tokio::test(flavor = "multi_thread")]
async fn the_emulator_as_a_testcontainers_module() -> anyhow::Result<()> {
    require!(support::serve_image(env!("CARGO_BIN_EXE_lambda-testkit")));
    use lambda_testkit::testcontainers::{LambdaTestkit, endpoint_url};
    use testcontainers::runners::AsyncRunner;
    let lambda = LambdaTestkit::default().start().await?; // lambda-testkit/serve:<version>
    let url = endpoint_url(&lambda).await?; // http://127.0.0.1:<mapped port>
    let list = reqwest::get(format!("{url}/2015-03-31/functions/")).await?;
    let list: Value = serde_json::from_slice(&list.bytes().await?)?;
    assert_eq!(list["Functions"], json!([]));
    Ok(())
}

// ---- Quoted messages ------------------------------------------------------------------

/// README: `Sandbox.Timedout` (`"RequestId: <id> Error: Task timed out after 3.00
/// seconds"`).
#[tokio::test]
async fn the_quoted_timeout_message_is_the_one_returned() -> anyhow::Result<()> {
    let emu = require!(support::emulator(BackendKind::Process).await);
    let f = require!(support::rust_function("sleepy", "sleep"))
        .timeout(std::time::Duration::from_secs(1));
    let f = emu.deploy(f).await?;
    let out = f.invoke(r#"{"ms": 3000}"#).await?;
    let error = out.error().expect("a timeout is a function error");
    assert_eq!(error.error_type, "Sandbox.Timedout");
    assert_eq!(
        error.error_message,
        format!(
            "RequestId: {} Error: Task timed out after 1.00 seconds",
            out.request_id
        )
    );
    let readme = std::fs::read_to_string(support::repo().join("README.md"))?;
    let quoted = "\"RequestId: <id> Error: Task\n  timed out after 3.00 seconds\"";
    assert!(
        readme.contains(quoted),
        "README no longer quotes {quoted:?}"
    );
    Ok(())
}

// ---- The check ------------------------------------------------------------------------

/// The lines of `text`, each without its leading whitespace, blank lines dropped.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn readme_snippets_are_the_tests_in_this_file() {
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    let this = std::fs::read_to_string(support::repo().join("tests/readme.rs")).unwrap();
    let this = lines(&this);
    let mut blocks = 0;
    for block in readme.split("```rust\n").skip(1) {
        let block = block.split("```").next().unwrap();
        blocks += 1;
        let wanted = lines(block);
        let found = this
            .windows(wanted.len())
            .any(|window| window == wanted.as_slice());
        assert!(
            found,
            "README block {blocks} is not in tests/readme.rs line for line:\n{block}"
        );
    }
    assert!(blocks >= 3, "found only {blocks} rust blocks in README.md");
}
