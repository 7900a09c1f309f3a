//! External extensions (Extensions API 2020-01-01) in layers: real extensions built with
//! the `lambda-extension` crate (`fixtures/rust/src/bin/ext_*.rs`) and a stdlib Python one
//! (`fixtures/python/extensions/py_ext`), next to real runtimes (`lambda_runtime`,
//! awslambdaric).

mod support;

use std::time::{Duration, Instant};

use lambda_testkit::stats::{EventKind, EvictionReason};
use lambda_testkit::{BackendKind, Function, Layer};
use rstest::rstest;
use serde_json::{Value, json};

/// A layer holding the Rust fixture `name` as the external extension `extensions/<name>`.
fn rust_extension(name: &str) -> Result<Layer, String> {
    let binary = support::rust_fixture(name)?;
    Ok(Layer::new(name).executable(format!("extensions/{name}"), binary))
}

/// A layer holding the Python script `fixtures/python/extensions/py_ext`.
fn python_extension() -> Layer {
    let script = std::fs::read(support::repo().join("fixtures/python/extensions/py_ext"))
        .expect("py_ext fixture");
    Layer::new("py-ext").executable("extensions/py_ext", script)
}

/// The `sleep` Rust handler: sleeps `{"ms": N}`, so an extension's INVOKE output lands
/// inside the invocation's log.
fn sleeper(name: &str) -> Result<Function, String> {
    support::rust_function(name, "sleep")
}

#[rstest]
#[tokio::test]
async fn an_external_extension_receives_every_invoke_with_its_request_id(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_events"));
    let f = require!(sleeper("ext-invoke"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f.layer(ext)).await?;
    for _ in 0..3 {
        let out = f.invoke(r#"{"ms": 200}"#).await?;
        assert!(out.function_error.is_none(), "{}", out.log);
        let line = format!("ext_events INVOKE {}", out.request_id);
        assert!(out.log.contains(&line), "{line:?} not in:\n{}", out.log);
    }
    assert_eq!(f.stats().environments_launched, 1, "{}", f.timeline_text());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn the_caller_gets_the_response_before_the_extension_phase_ends(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_events"));
    let f = require!(support::rust_function("ext-phase", "echo"));
    let emu = require!(support::emulator(backend).await);
    let f = emu
        .deploy(f.layer(ext).env("EXT_EVENTS_DELAY_MS", "600"))
        .await?;
    let started = Instant::now();
    let out: Value = f.invoke_json(&json!({"a": 1})).await?;
    let answered = started.elapsed();
    assert_eq!(out, json!({"a": 1}));
    assert!(
        answered < Duration::from_millis(500),
        "answered after {answered:?}"
    );
    // The environment is still in the invocation's extension phase: a second invoke now
    // needs another environment, as in Lambda.
    let second = f.invoke(r#"{"b": 2}"#).await?;
    assert!(second.cold_start, "{}", f.timeline_text());
    let stats = f
        .wait_for("an extension phase ended", Duration::from_secs(5), |s| {
            !s.extension_phases.is_empty()
        })
        .await?;
    let phase = stats.extension_phases[0];
    assert!(phase >= Duration::from_millis(550), "{phase:?}");
    assert!(
        f.timeline()
            .iter()
            .any(|e| matches!(e.kind, EventKind::ExtensionPhaseEnded { .. })),
        "{}",
        f.timeline_text()
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn the_function_timeout_covers_the_extension_phase(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_events"));
    let f = require!(support::rust_function("ext-overrun", "echo"));
    let emu = require!(support::emulator(backend).await);
    let f = emu
        .deploy(
            f.layer(ext)
                .env("EXT_EVENTS_DELAY_MS", "5000")
                .timeout(Duration::from_secs(1)),
        )
        .await?;
    let out = f.invoke("{}").await?;
    assert!(out.function_error.is_none(), "the runtime answered in time");
    f.wait_for(
        "the overrun environment evicted",
        Duration::from_secs(5),
        |s| s.evictions_for(EvictionReason::Timeout) == 1,
    )
    .await?;
    let next = f.invoke("{}").await?;
    assert!(next.cold_start, "the overrun environment was reset");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn an_extension_init_error_fails_the_invoke_with_its_error_type(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_init_error"));
    let f = require!(support::rust_function("ext-init-error", "echo"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f.layer(ext)).await?;
    for _ in 0..2 {
        let out = f.invoke("{}").await?;
        let error: Value = serde_json::from_slice(&out.payload)?;
        assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
        assert_eq!(error["errorType"], "Extension.ConfigInvalid", "{error}");
    }
    assert_eq!(
        f.stats().environments_launched,
        2,
        "each failed init is replaced"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn an_extension_crash_mid_invoke_fails_it_and_resets_the_environment(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_crash"));
    let f = require!(sleeper("ext-crash"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f.layer(ext)).await?;
    let out = f.invoke(r#"{"ms": 2000}"#).await?;
    let error: Value = serde_json::from_slice(&out.payload)?;
    assert_eq!(
        error["errorType"], "Extension.Crash",
        "{error}\n{}",
        out.log
    );
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("ext_crash") && message.contains("exit status 7"),
        "{message}"
    );
    assert!(
        out.duration < Duration::from_millis(1500),
        "failed at the crash, not the sleep"
    );
    let pids = f.environment_pids();
    let next = f.invoke(r#"{"ms": 0}"#).await?;
    assert!(next.cold_start);
    assert!(
        support::wait_gone(&pids).await.is_empty(),
        "the crashed environment is gone"
    );
    Ok(())
}

#[rstest]
#[tokio::test]
async fn an_extension_that_never_registers_fails_init_at_the_limit(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_never"));
    let f = require!(support::rust_function("ext-never", "echo"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f.layer(ext)).await?;
    let started = Instant::now();
    let out = f.invoke("{}").await?;
    let error: Value = serde_json::from_slice(&out.payload)?;
    assert_eq!(error["errorType"], "Sandbox.Timedout", "{error}");
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("ext_never"), "{message}");
    assert!(started.elapsed() >= Duration::from_secs(10));
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_python_extension_and_the_python_runtime_share_the_environment(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator(backend).await);
    let f = emu
        .deploy(support::python_function("py-ext", "sleep").layer(python_extension()))
        .await?;
    let out = f.invoke(r#"{"ms": 300}"#).await?;
    assert!(out.function_error.is_none(), "{}", out.log);
    let line = format!("py_ext INVOKE {}", out.request_id);
    assert!(out.log.contains(&line), "{line:?} not in:\n{}", out.log);
    Ok(())
}

/// What the inline Python extensions share: `call` (any Extensions / Telemetry API
/// request; refusals returned, not raised), `register`, and `serve` (the event loop).
const PYTHON_EXTENSION_PRELUDE: &str = r#"#!/usr/bin/env python3
import json, os, urllib.request, urllib.error
API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"]
def call(path, body=None, headers={}, method="POST"):
    req = urllib.request.Request(API + path, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")
def register(name, events):
    _, headers, _ = call("/2020-01-01/extension/register", json.dumps({"events": events}).encode(),
                         {"Lambda-Extension-Name": name})
    return headers["Lambda-Extension-Identifier"]
def serve(ident, on_invoke=lambda event, headers: None):
    while True:
        _, headers, event = call("/2020-01-01/extension/event/next",
                                 headers={"Lambda-Extension-Identifier": ident}, method="GET")
        if event["eventType"] == "SHUTDOWN":
            return
        on_invoke(event, headers)
"#;

/// An inline Python extension: the prelude, then `body`.
fn inline_python_extension(body: &str) -> String {
    format!("{PYTHON_EXTENSION_PRELUDE}{body}")
}

/// An extension that probes the Extensions API's refusals, then registers and serves.
const PROBE: &str = r#"def say(*words):
    print("probe", *words, flush=True)
status, _, body = call("/2020-01-01/extension/register", b"not json", {"Lambda-Extension-Name": "probe"})
say("malformed", status, body["errorType"])
status, _, body = call("/2020-01-01/extension/register", b'{"events":["INVOKE"]}', {})
say("unnamed", status, body["errorType"])
status, _, body = call("/2020-01-01/extension/event/next", method="GET")
say("no-identifier", status, body["errorType"])
status, _, body = call("/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": "00000000-0000-0000-0000-000000000000"}, method="GET")
say("unknown", status, body["errorType"])
status, h, body = call("/2020-01-01/extension/register", b'{"events":["INVOKE","SHUTDOWN"]}', {"Lambda-Extension-Name": "probe", "Lambda-Extension-Accept-Feature": "accountId"})
say("registered", status, body["functionName"], body["functionVersion"], body["handler"], body.get("accountId"))
say("env", "_HANDLER" in os.environ, "LAMBDA_TASK_ROOT" in os.environ, "AWS_EXECUTION_ENV" in os.environ, os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
def on_invoke(event, headers):
    say("INVOKE", event["requestId"], type(event["deadlineMs"]).__name__, event["invokedFunctionArn"], event["tracing"]["type"], bool(headers.get("Lambda-Extension-Event-Identifier")))
serve(h["Lambda-Extension-Identifier"], on_invoke)
"#;

#[rstest]
#[tokio::test]
async fn the_extensions_api_refuses_bad_calls_as_lambda_does(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    // A Python function: its image has the python3 the probe runs on.
    let emu = require!(support::python_emulator(backend).await);
    let f = emu
        .deploy(support::python_function("probed", "sleep").layer(
            Layer::new("probe").executable("extensions/probe", inline_python_extension(PROBE)),
        ))
        .await?;
    let out = f.invoke(r#"{"ms": 300}"#).await?;
    let log = &out.log;
    for expected in [
        "probe malformed 403 InvalidRequestFormat",
        "probe unnamed 403 Extension.InvalidExtensionName",
        "probe no-identifier 403 Extension.MissingExtensionIdentifier",
        "probe unknown 403 Extension.UnknownExtensionIdentifier",
        "probe registered 200 probed $LATEST sleep.handler 123456789012",
        "probe env False False False probed",
        &format!(
            "probe INVOKE {} int arn:aws:lambda:us-east-1:123456789012:function:probed X-Amzn-Trace-Id True",
            out.request_id
        ),
    ] {
        assert!(log.contains(expected), "{expected:?} not in:\n{log}");
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1 for an extension's telemetry listener (9003 by default,
/// which two environments on the process backend would share).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[rstest]
#[tokio::test]
async fn a_lambda_extension_crate_subscriber_receives_platform_and_function_records(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_telemetry"));
    let f = require!(sleeper("telemetry-sub"));
    let emu = require!(support::emulator(backend).await);
    let f = emu
        .deploy(
            f.layer(ext)
                .env("EXT_TELEMETRY_PORT", free_port().to_string()),
        )
        .await?;
    let out = f.invoke(r#"{"ms": 5}"#).await?;
    assert!(out.function_error.is_none(), "{}", out.log);
    let feed = f.telemetry();
    // The extension prints each record it was sent: its lines come back as `extension`
    // records of the feed.
    for expected in [
        "ext_telemetry platform.initStart -".to_string(),
        "ext_telemetry platform.initReport -".to_string(),
        format!("ext_telemetry platform.start {}", out.request_id),
        format!("ext_telemetry platform.runtimeDone {}", out.request_id),
        format!("ext_telemetry platform.report {}", out.request_id),
        "ext_telemetry function -".to_string(),
    ] {
        feed.wait_for(
            |r| r.record_type == "extension" && r.line() == Some(expected.as_str()),
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{expected:?}: {e}"))?;
    }
    Ok(())
}

#[rstest]
#[tokio::test]
async fn the_feed_holds_every_platform_record_in_the_lambda_extension_crates_shapes(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let f = require!(sleeper("telemetry-feed"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f).await?;
    let out = f.invoke(r#"{"ms": 5}"#).await?;
    let feed = f.telemetry();
    let report = feed
        .wait_for(
            |r| r.record_type == "platform.report" && r.request_id() == Some(&out.request_id),
            Duration::from_secs(2),
        )
        .await?;
    assert_eq!(report.record["status"], "success");
    assert_eq!(report.record["metrics"]["memorySizeMB"], 128);
    assert!(
        report.record["metrics"]["initDurationMs"]
            .as_f64()
            .is_some()
    );
    let records = feed.records();
    let types: Vec<&str> = records.iter().map(|r| r.record_type.as_str()).collect();
    for expected in [
        "platform.initStart",
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
    ] {
        assert!(types.contains(&expected), "{expected} not in {types:?}");
    }
    assert!(
        records
            .iter()
            .any(|r| r.record_type == "function" && r.line() == Some("sleeping 5")),
        "{records:#?}"
    );
    // Every record parses with the crate extensions are written with.
    let parsed: Vec<lambda_extension::LambdaTelemetry> =
        serde_json::from_value(serde_json::to_value(&records)?)?;
    assert_eq!(parsed.len(), records.len());
    Ok(())
}

/// Subscribes to the Telemetry API with a destination nothing listens on.
const DEAD_END: &str = r#"import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
ident = register("dead_end", ["INVOKE"])
status, _, _ = call("/2022-07-01/telemetry", json.dumps({"schemaVersion": "2022-12-13",
    "types": ["platform", "function"], "buffering": {"timeoutMs": 25},
    "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{port}"}}).encode(),
    {"Lambda-Extension-Identifier": ident}, "PUT")
print("dead_end subscribed", status, flush=True)
serve(ident)
"#;

#[rstest]
#[tokio::test]
async fn records_a_subscriber_cannot_take_are_dropped_and_counted(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator(backend).await);
    let f = emu
        .deploy(
            support::python_function("telemetry-dead-end", "sleep").layer(
                Layer::new("dead-end")
                    .executable("extensions/dead_end", inline_python_extension(DEAD_END)),
            ),
        )
        .await?;
    let out = f.invoke(r#"{"ms": 5}"#).await?;
    assert!(out.function_error.is_none(), "{}", out.log);
    let dropped = f
        .telemetry()
        .wait_for(
            |r| r.record_type == "platform.logsDropped",
            Duration::from_secs(10),
        )
        .await?;
    assert!(
        dropped.record["droppedRecords"].as_u64() > Some(0),
        "{dropped:?}"
    );
    assert!(
        dropped.record["droppedBytes"].as_u64() > Some(0),
        "{dropped:?}"
    );
    // The function itself is unaffected.
    assert!(f.invoke(r#"{"ms": 5}"#).await?.function_error.is_none());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn eviction_sends_shutdown_and_the_extension_sees_it(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_events"));
    let f = require!(support::rust_function("ext-shutdown", "echo"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f.layer(ext)).await?;
    f.invoke("{}").await?;
    f.wait_until_idle(Duration::from_secs(2)).await?;
    let pids = f.environment_pids();
    assert_eq!(f.evict_all(), 1);
    f.telemetry()
        .wait_for(
            |r| r.line() == Some("ext_events SHUTDOWN spindown"),
            Duration::from_secs(3),
        )
        .await?;
    assert!(support::wait_gone(&pids).await.is_empty(), "nothing left");
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_runtime_crash_sends_shutdown_failure_to_extensions(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_events"));
    let f = require!(support::rust_function("ext-runtime-crash", "crash"));
    let emu = require!(support::emulator(backend).await);
    let f = emu.deploy(f.layer(ext)).await?;
    let out = f.invoke(r#"{"exit": 3}"#).await?;
    let error: Value = serde_json::from_slice(&out.payload)?;
    assert_eq!(error["errorType"], "Runtime.ExitError", "{error}");
    f.telemetry()
        .wait_for(
            |r| r.line() == Some("ext_events SHUTDOWN failure"),
            Duration::from_secs(3),
        )
        .await?;
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_frozen_environment_makes_no_progress_between_invocations(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
    #[values(true, false)] freeze: bool,
) -> anyhow::Result<()> {
    let builder = require!(support::builder_for(backend));
    let emu = builder.freeze(freeze).start().await?;
    let f = emu
        .deploy(support::python_function("counter", "counter"))
        .await?;
    let first: Value = f.invoke_json(&json!({})).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second: Value = f.invoke_json(&json!({})).await?;
    let ticks = second["count"].as_u64().unwrap_or(0) - first["count"].as_u64().unwrap_or(0);
    // 5 ms ticks: ~100 in 500 ms when running, a handful (the invocations) when frozen.
    if freeze {
        assert!(ticks < 30, "{ticks} ticks while frozen");
    } else {
        assert!(ticks > 50, "only {ticks} ticks while running");
    }
    Ok(())
}

#[rstest]
#[tokio::test]
async fn redeploy_idle_ttl_and_emulator_shutdown_send_shutdown_spindown(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_events"));
    let f = require!(support::rust_function("ext-spindown", "echo"));
    let builder = require!(support::builder_for(backend));
    let emu = builder.idle_ttl(Duration::from_millis(300)).start().await?;
    let f = emu.deploy(f.layer(ext)).await?;
    let feed = f.telemetry();
    let shutdowns = |feed: &lambda_testkit::telemetry::TelemetryFeed| {
        feed.records()
            .iter()
            .filter(|r| r.line() == Some("ext_events SHUTDOWN spindown"))
            .count()
    };
    // A redeploy retires the old environment.
    f.invoke("{}").await?;
    f.update(|f| f.env("GENERATION", "2")).await?;
    f.invoke("{}").await?;
    feed.wait_for(
        |r| r.line() == Some("ext_events SHUTDOWN spindown"),
        Duration::from_secs(5),
    )
    .await?;
    // Idle for longer than the TTL: the second one goes.
    f.wait_for(
        "the idle environment evicted",
        Duration::from_secs(5),
        |s| s.evictions_for(EvictionReason::IdleTimeout) == 1,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while shutdowns(&feed) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shutdowns(&feed), 2, "{:#?}", feed.records());
    // The emulator's own shutdown waits for the third.
    f.invoke("{}").await?;
    emu.shutdown().await;
    assert_eq!(shutdowns(&feed), 3, "{:#?}", feed.records());
    Ok(())
}

#[rstest]
#[tokio::test]
async fn a_function_timeout_sends_shutdown_timeout(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_events"));
    let f = require!(sleeper("ext-timeout"));
    let emu = require!(support::emulator(backend).await);
    let f = emu
        .deploy(f.layer(ext).timeout(Duration::from_secs(1)))
        .await?;
    let out = f.invoke(r#"{"ms": 3000}"#).await?;
    assert_eq!(
        out.error().map(|e| e.error_type),
        Some("Sandbox.Timedout".into())
    );
    f.telemetry()
        .wait_for(
            |r| r.line() == Some("ext_events SHUTDOWN timeout"),
            Duration::from_secs(3),
        )
        .await?;
    Ok(())
}

/// A Logs API (2020-08-15) subscriber: serves its destination itself and prints the type
/// of every record it is sent.
const LOGS_SUBSCRIBER: &str = r#"import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
class Receive(BaseHTTPRequestHandler):
    def do_POST(self):
        batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        for record in batch:
            rid = record["record"].get("requestId", "-") if isinstance(record["record"], dict) else "-"
            print("logs_sub", record["type"], rid, flush=True)
        self.send_response(200); self.end_headers()
    def log_message(self, *args):
        pass
server = HTTPServer(("0.0.0.0", 0), Receive)
threading.Thread(target=server.serve_forever, daemon=True).start()
ident = register("logs_sub", ["INVOKE"])
call("/2020-08-15/logs", json.dumps({"schemaVersion": "2021-03-18", "types": ["platform", "function"],
    "buffering": {"timeoutMs": 25, "maxItems": 1000, "maxBytes": 262144},
    "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{server.server_port}"}}).encode(),
    {"Lambda-Extension-Identifier": ident}, "PUT")
serve(ident)
"#;

#[rstest]
#[tokio::test]
async fn a_logs_api_subscriber_gets_platform_and_function_records(
    #[values(BackendKind::Process, BackendKind::Docker)] backend: BackendKind,
) -> anyhow::Result<()> {
    let emu = require!(support::python_emulator(backend).await);
    let f = emu
        .deploy(support::python_function("logs-sub", "sleep").layer(
            Layer::new("logs-sub").executable(
                "extensions/logs_sub",
                inline_python_extension(LOGS_SUBSCRIBER),
            ),
        ))
        .await?;
    let out = f.invoke(r#"{"ms": 5}"#).await?;
    let feed = f.telemetry();
    for expected in [
        format!("logs_sub platform.start {}", out.request_id),
        format!("logs_sub platform.report {}", out.request_id),
        "logs_sub function -".to_string(),
    ] {
        feed.wait_for(
            |r| r.line() == Some(expected.as_str()),
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{expected:?}: {e}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn on_the_docker_bridge_two_environments_listen_on_the_same_telemetry_port()
-> anyhow::Result<()> {
    let ext = require!(rust_extension("ext_telemetry"));
    let f = require!(sleeper("telemetry-bridge"));
    let emu = require!(support::builder_for(BackendKind::Docker))
        .docker_network(lambda_testkit::docker::DockerNetwork::HostGateway)
        .start()
        .await?;
    // The crate's default port 9003 in both: each container has its own network.
    let f = emu.deploy(f.layer(ext)).await?;
    let (a, b) = tokio::join!(f.invoke(r#"{"ms": 300}"#), f.invoke(r#"{"ms": 300}"#));
    let (a, b) = (a?, b?);
    assert_ne!(a.environment_id, b.environment_id, "two environments");
    for out in [&a, &b] {
        assert!(out.function_error.is_none(), "{}", out.log);
        let line = format!("ext_telemetry platform.start {}", out.request_id);
        f.telemetry()
            .wait_for(
                |r| r.record_type == "extension" && r.line() == Some(line.as_str()),
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{line:?}: {e}"))?;
    }
    Ok(())
}
