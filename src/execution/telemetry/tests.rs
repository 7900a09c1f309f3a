//! The engine against real HTTP listeners on 127.0.0.1 (the subscriber's side is an axum
//! server, as an extension's listener would be).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::delivery::Retry;
use super::record::{self, InitPhase, InitType};
use super::{Api, Telemetry, TelemetryFeed};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A subscriber's listener: every POST body arrives on `batches`; the statuses scripted
/// in `fail_with` answer the first requests, 200 the rest.
struct Listener {
    port: u16,
    batches: mpsc::UnboundedReceiver<(Instant, Vec<Value>)>,
    requests: Arc<Mutex<u32>>,
}

async fn listener(fail_with: &[StatusCode]) -> Listener {
    let (tx, batches) = mpsc::unbounded_channel();
    let script = Arc::new(Mutex::new(
        fail_with.iter().copied().collect::<VecDeque<_>>(),
    ));
    let requests = Arc::new(Mutex::new(0));
    let counted = requests.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let tx = tx.clone();
        let script = script.clone();
        let counted = counted.clone();
        async move {
            *counted.lock().unwrap() += 1;
            if let Some(status) = script.lock().unwrap().pop_front() {
                return status;
            }
            let batch: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array");
            let _ = tx.send((Instant::now(), batch));
            StatusCode::OK
        }
    });
    let socket = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(socket, app).await });
    Listener {
        port,
        batches,
        requests,
    }
}

impl Listener {
    async fn next_batch(&mut self, within: Duration) -> Option<(Instant, Vec<Value>)> {
        tokio::time::timeout(within, self.batches.recv())
            .await
            .ok()
            .flatten()
    }
}

fn body(port: u16, types: &[&str], buffering: Value) -> Vec<u8> {
    json!({
        "schemaVersion": "2022-12-13",
        "types": types,
        "buffering": buffering,
        "destination": {"protocol": "HTTP", "URI": format!("http://sandbox.localdomain:{port}/telemetry")},
    })
    .to_string()
    .into_bytes()
}

fn fast_retry() -> Retry {
    Retry {
        attempts: 3,
        backoff: Duration::from_millis(10),
        attempt_timeout: Duration::from_secs(2),
    }
}

fn types(batch: &[Value]) -> Vec<&str> {
    batch.iter().map(|r| r["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_batch_goes_when_max_items_is_reached_not_before() {
    let mut l = listener(&[]).await;
    let t = Telemetry::new(LOCALHOST, TelemetryFeed::new("f"));
    t.subscribe(
        Api::Telemetry,
        "ext",
        &body(
            l.port,
            &["function"],
            json!({"maxItems": 1000, "timeoutMs": 30000}),
        ),
    )
    .unwrap();
    for n in 0..999 {
        t.function_output(format!("line {n}\n").as_bytes());
    }
    assert!(
        l.next_batch(Duration::from_millis(300)).await.is_none(),
        "999 of maxItems 1000 must wait for the timeout"
    );
    t.function_output(b"line 999\nline 1000\n");
    let (_, batch) = l
        .next_batch(Duration::from_secs(5))
        .await
        .expect("a full batch");
    assert_eq!(batch.len(), 1000);
    assert_eq!(
        batch[0],
        json!({"time": batch[0]["time"], "type": "function", "record": "line 0"})
    );
    assert_eq!(batch[999]["record"], "line 999");
    // The 1001st waits for the next due point (or a flush).
    assert!(l.next_batch(Duration::from_millis(200)).await.is_none());
    t.flush(Duration::from_secs(5)).await;
    let (_, rest) = l.next_batch(Duration::from_secs(1)).await.expect("flushed");
    assert_eq!(types(&rest), ["function"]);
    assert_eq!(rest[0]["record"], "line 1000");
}

#[tokio::test]
async fn a_batch_goes_timeout_ms_after_its_first_record() {
    let mut l = listener(&[]).await;
    let t = Telemetry::new(LOCALHOST, TelemetryFeed::new("f"));
    t.subscribe(
        Api::Telemetry,
        "ext",
        &body(l.port, &["platform"], json!({"timeoutMs": 200})),
    )
    .unwrap();
    let first = Instant::now();
    t.emit(record::start("req-1", "$LATEST"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    t.emit(record::extension("ext", "Ready", &["INVOKE"]));
    let (at, batch) = l.next_batch(Duration::from_secs(5)).await.expect("a batch");
    let waited = at - first;
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_millis(1_000),
        "sent after {waited:?}, timeoutMs 200"
    );
    // Its own subscription record came first; all three in one POST.
    assert_eq!(
        types(&batch),
        [
            "platform.telemetrySubscription",
            "platform.start",
            "platform.extension"
        ]
    );
    assert_eq!(
        batch[0]["record"],
        json!({"name": "ext", "state": "Subscribed", "types": ["platform"]})
    );
    assert_eq!(
        batch[1]["record"],
        json!({"requestId": "req-1", "version": "$LATEST"})
    );
    // What went over the wire parses as lambda-extension's types.
    let parsed: Vec<lambda_extension::LambdaTelemetry> =
        serde_json::from_value(Value::Array(batch)).unwrap();
    assert_eq!(parsed.len(), 3);
}

#[tokio::test]
async fn a_failing_post_is_retried_until_it_is_accepted() {
    let mut l = listener(&[
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
    ])
    .await;
    let feed = TelemetryFeed::new("f");
    let t = Telemetry::with_retry(LOCALHOST, feed.clone(), fast_retry());
    t.subscribe(
        Api::Telemetry,
        "ext",
        &body(l.port, &["function"], json!({"timeoutMs": 25})),
    )
    .unwrap();
    t.function_output(b"hello\n");
    let (_, batch) = l
        .next_batch(Duration::from_secs(5))
        .await
        .expect("delivered on the third try");
    assert_eq!(batch[0]["record"], "hello");
    assert_eq!(*l.requests.lock().unwrap(), 3);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !feed
            .records()
            .iter()
            .any(|r| r.record_type == "platform.logsDropped")
    );
}

#[tokio::test]
async fn undeliverable_records_are_dropped_and_announced_to_the_feed_and_other_subscribers() {
    // A port nobody listens on: connection refused on every attempt.
    let closed = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut healthy = listener(&[]).await;
    let feed = TelemetryFeed::new("f");
    let t = Telemetry::with_retry(LOCALHOST, feed.clone(), fast_retry());
    t.subscribe(
        Api::Telemetry,
        "dead",
        &body(dead_port, &["function"], json!({"timeoutMs": 25})),
    )
    .unwrap();
    t.subscribe(
        Api::Telemetry,
        "healthy",
        &body(healthy.port, &["platform"], json!({"timeoutMs": 25})),
    )
    .unwrap();
    t.function_output(b"one\ntwo\nthree\n");

    let dropped = feed
        .wait_for(
            |r| r.record_type == "platform.logsDropped",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(dropped.record["droppedRecords"], 3);
    let bytes = dropped.record["droppedBytes"].as_u64().unwrap();
    assert!(
        bytes > "onetwothree".len() as u64,
        "bytes of the serialised records: {bytes}"
    );
    assert!(
        dropped.record["reason"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{dropped:?}"
    );
    // The healthy subscriber (platform only) hears of it.
    let mut seen = Vec::new();
    while let Some((_, batch)) = healthy.next_batch(Duration::from_secs(5)).await {
        seen.extend(batch);
        if seen.iter().any(|r| r["type"] == "platform.logsDropped") {
            break;
        }
    }
    let notice = seen
        .iter()
        .find(|r| r["type"] == "platform.logsDropped")
        .expect("the other subscriber gets platform.logsDropped");
    assert_eq!(notice["record"]["droppedRecords"], 3);
    // The notice itself is not announced again when the dead subscriber cannot take it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notices = feed
        .records()
        .iter()
        .filter(|r| r.record_type == "platform.logsDropped")
        .count();
    assert_eq!(notices, 1);
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_loses_records_beyond_two_batches() {
    // The listener answers only after a while: the first batch stays in flight.
    let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let tx = tx.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let batch: Vec<Value> = serde_json::from_slice(&body).unwrap();
            let _ = tx.send(batch.len());
            StatusCode::OK
        }
    });
    let socket = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(socket, app).await });

    let feed = TelemetryFeed::new("f");
    let t = Telemetry::new(LOCALHOST, feed.clone());
    t.subscribe(
        Api::Telemetry,
        "slow",
        &body(port, &["function"], json!({"maxItems": 1000})),
    )
    .unwrap();
    let lines: String = (0..1000).map(|n| format!("a{n}\n")).collect();
    t.function_output(lines.as_bytes());
    tokio::time::sleep(Duration::from_millis(50)).await; // the first batch is in flight
    let lines: String = (0..2500).map(|n| format!("b{n}\n")).collect();
    t.function_output(lines.as_bytes());

    let dropped = feed
        .wait_for(
            |r| r.record_type == "platform.logsDropped",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(dropped.record["droppedRecords"], 500);
    assert_eq!(dropped.record["reason"], super::delivery::FELL_BEHIND);
    let mut delivered = 0;
    while delivered < 3000 {
        delivered += tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("batches keep coming")
            .unwrap();
    }
    assert_eq!(delivered, 3000);
}

#[tokio::test]
async fn flush_delivers_everything_buffered_including_a_partial_line() {
    let mut l = listener(&[]).await;
    let t = Telemetry::new(LOCALHOST, TelemetryFeed::new("f"));
    t.subscribe(
        Api::Telemetry,
        "ext",
        &body(
            l.port,
            &["function", "extension"],
            json!({"timeoutMs": 30000}),
        ),
    )
    .unwrap();
    t.function_output(b"complete\r\nparti");
    t.function_output(b"al");
    t.extension_output("ext", b"ext says hi\n\n");
    let started = Instant::now();
    t.flush(Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let (_, batch) = l
        .next_batch(Duration::from_millis(100))
        .await
        .expect("flushed");
    let records: Vec<(&str, &str)> = batch
        .iter()
        .map(|r| (r["type"].as_str().unwrap(), r["record"].as_str().unwrap()))
        .collect();
    assert_eq!(
        records,
        [
            ("function", "complete"),
            ("extension", "ext says hi"),
            ("function", "partial")
        ]
    );
}

#[tokio::test]
async fn flush_waits_no_longer_than_its_budget() {
    let closed = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let t = Telemetry::new(LOCALHOST, TelemetryFeed::new("f"));
    t.subscribe(
        Api::Telemetry,
        "dead",
        &body(dead_port, &["function"], json!({})),
    )
    .unwrap();
    t.function_output(b"x\n");
    let started = Instant::now();
    t.flush(Duration::from_millis(100)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(95) && took < Duration::from_millis(500),
        "{took:?}"
    );
}

#[tokio::test]
async fn init_records_before_a_subscription_are_replayed_to_it_until_subscriptions_close() {
    let mut early = listener(&[]).await;
    let mut late = listener(&[]).await;
    let t = Telemetry::new(LOCALHOST, TelemetryFeed::new("f"));
    t.emit(record::init_start(
        InitType::OnDemand,
        InitPhase::Init,
        None,
        None,
    ));
    t.function_output(b"importing\n");
    t.subscribe(
        Api::Telemetry,
        "early",
        &body(
            early.port,
            &["platform", "function"],
            json!({"timeoutMs": 25}),
        ),
    )
    .unwrap();
    t.subscriptions_closed();
    t.subscribe(
        Api::Telemetry,
        "late",
        &body(late.port, &["platform"], json!({"timeoutMs": 25})),
    )
    .unwrap();
    let (_, batch) = early.next_batch(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        types(&batch)[..3],
        [
            "platform.initStart",
            "function",
            "platform.telemetrySubscription"
        ]
    );
    let (_, batch) = late.next_batch(Duration::from_secs(5)).await.unwrap();
    assert_eq!(types(&batch), ["platform.telemetrySubscription"]);
}

#[tokio::test]
async fn a_subscriber_gets_only_the_streams_it_subscribed_to() {
    let mut l = listener(&[]).await;
    let feed = TelemetryFeed::new("f");
    let t = Telemetry::new(LOCALHOST, feed.clone());
    t.subscribe(
        Api::Telemetry,
        "ext",
        &body(l.port, &["function"], json!({"timeoutMs": 25})),
    )
    .unwrap();
    t.emit(record::start("req-1", "$LATEST"));
    t.extension_output("ext", b"not for you\n");
    t.function_output(b"for you\n");
    let (_, batch) = l.next_batch(Duration::from_secs(5)).await.unwrap();
    assert_eq!(types(&batch), ["function"]);
    // The feed has everything.
    let feed_types: Vec<String> = feed.records().into_iter().map(|r| r.record_type).collect();
    assert_eq!(
        feed_types,
        [
            "platform.telemetrySubscription",
            "platform.start",
            "extension",
            "function"
        ]
    );
}

#[tokio::test]
async fn a_logs_api_subscriber_gets_the_logs_api_forms() {
    let mut l = listener(&[]).await;
    let t = Telemetry::new(LOCALHOST, TelemetryFeed::new("f"));
    let logs_body = json!({
        "schemaVersion": "2021-03-18",
        "types": ["platform", "function", "extension"],
        "buffering": {"timeoutMs": 25},
        "destination": {"protocol": "HTTP", "URI": format!("http://sandbox.localdomain:{}/logs", l.port)},
    });
    t.subscribe(Api::Logs, "logger", logs_body.to_string().as_bytes())
        .unwrap();
    for r in record::tests::every_record() {
        t.emit(r);
    }
    let mut batch = Vec::new();
    while !types(&batch).contains(&"extension") {
        batch.extend(
            l.next_batch(Duration::from_secs(5))
                .await
                .expect("batches")
                .1,
        );
    }
    let got = types(&batch);
    assert_eq!(got[0], "platform.logsSubscription");
    assert!(got.contains(&"platform.end") && got.contains(&"platform.runtimeDone"));
    assert!(
        !got.iter()
            .any(|t| t.starts_with("platform.init") || *t == "platform.telemetrySubscription")
    );
    let parsed: Vec<lambda_extension::LambdaLog> =
        serde_json::from_value(Value::Array(batch)).expect("lambda-extension's Logs API types");
    assert!(!parsed.is_empty());
}

#[tokio::test]
async fn an_extension_subscribes_to_one_api_and_a_repeat_replaces_its_subscription() {
    let mut l = listener(&[]).await;
    let t = Telemetry::new(LOCALHOST, TelemetryFeed::new("f"));
    let telemetry = body(l.port, &["platform"], json!({"timeoutMs": 25}));
    t.subscribe(Api::Telemetry, "ext", &telemetry).unwrap();
    t.subscribe(Api::Telemetry, "ext", &telemetry).unwrap();
    let logs = json!({
        "types": ["platform"],
        "destination": {"protocol": "HTTP", "URI": format!("http://sandbox.localdomain:{}", l.port)},
    });
    let err = t
        .subscribe(Api::Logs, "ext", logs.to_string().as_bytes())
        .unwrap_err();
    assert!(err.contains("not both"), "{err}");
    assert_eq!(Api::Logs.validation_error_type(), "Logs.ValidationError");
    assert_eq!(t.shared().subscribers.len(), 1);
    t.emit(record::start("r", "$LATEST"));
    let mut batch = Vec::new();
    while !types(&batch).contains(&"platform.start") {
        batch.extend(
            l.next_batch(Duration::from_secs(5))
                .await
                .expect("batches")
                .1,
        );
    }
    assert_eq!(
        types(&batch)
            .iter()
            .filter(|t| **t == "platform.start")
            .count(),
        1
    );
}

#[tokio::test]
async fn an_invalid_subscription_is_refused_and_starts_nothing() {
    let feed = TelemetryFeed::new("f");
    let t = Telemetry::new(LOCALHOST, feed.clone());
    let err = t
        .subscribe(
            Api::Telemetry,
            "ext",
            &body(9003, &["platform"], json!({"maxItems": 10})),
        )
        .unwrap_err();
    assert!(err.contains("maxItems"), "{err}");
    assert!(t.shared().subscribers.is_empty());
    assert!(feed.records().is_empty());
}

#[test]
fn lines_are_split_at_newlines_and_cut_when_endless() {
    let mut partial = Vec::new();
    assert_eq!(super::split_lines(&mut partial, b"a\nb\r\n\nc"), ["a", "b"]);
    assert_eq!(partial, b"c");
    assert_eq!(super::split_lines(&mut partial, b"d\n"), ["cd"]);
    assert!(partial.is_empty());
    let long = vec![b'x'; super::MAX_LINE + 10];
    let lines = super::split_lines(&mut partial, &long);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].len(), super::MAX_LINE);
    assert_eq!(partial.len(), 10);
}
