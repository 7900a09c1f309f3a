//! Record constructors: the shapes of AWS's Telemetry API `Event` schema reference
//! (telemetry-schema-reference.html), and their Logs API (2020-08-15 / 2021-03-18) forms.
//!
//! Every platform record built here parses as `lambda_extension::LambdaTelemetry` (the
//! tests at the bottom check it): that crate rejects a whole batch with 400 when one record
//! misses a field it requires, so the shapes are exact, not approximate.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::subscription::Category;
use crate::request_id::RequestId;
use crate::telemetry::{Pending, TelemetryRecord};

/// A record the engine emits: when, and its fields as typed values. The JSON of the wire
/// form ([`TelemetryRecord`]) is built by its [`Pending::render`] only when someone reads
/// the record — a subscriber's delivery, the function's
/// [`crate::telemetry::TelemetryFeed`] read by a test. Every invoke emits `platform.start`, `platform.runtimeDone` and
/// `platform.report`; building their `serde_json` maps and RFC 3339 times eagerly, and
/// dropping them when the feed rotated, was ~25% of the emulator's instructions on the
/// warm path (callgrind over `benches/pool.rs`'s load).
#[derive(Debug, Clone)]
pub(crate) struct Record {
    at: SystemTime,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Start {
        request_id: RequestId,
        version: Cow<'static, str>,
    },
    RuntimeDone(RuntimeDone),
    Report(Report),
    /// A `function` or `extension` line.
    Line {
        record_type: &'static str,
        line: String,
    },
    /// The records of init, registration, subscription and drops: rare, built at once.
    Built {
        record_type: &'static str,
        record: Value,
    },
}

impl Record {
    fn now(body: Body) -> Record {
        Record {
            at: SystemTime::now(),
            body,
        }
    }

    /// `type` on the wire: `platform.start`, `function`, ….
    pub(crate) fn record_type(&self) -> &'static str {
        match &self.body {
            Body::Start { .. } => "platform.start",
            Body::RuntimeDone(_) => "platform.runtimeDone",
            Body::Report(_) => "platform.report",
            Body::Line { record_type, .. } | Body::Built { record_type, .. } => record_type,
        }
    }
}

impl Pending for Record {
    /// The wire form: `{time, type, record}`.
    fn render(&self) -> TelemetryRecord {
        let record = match &self.body {
            Body::Start {
                request_id,
                version,
            } => json!({"requestId": request_id.as_str(), "version": version}),
            Body::RuntimeDone(done) => runtime_done_body(done),
            Body::Report(report) => report_body(report),
            Body::Line { line, .. } => Value::from(line.as_str()),
            Body::Built { record, .. } => record.clone(),
        };
        TelemetryRecord {
            time: timestamp(self.at),
            record_type: self.record_type().to_string(),
            record,
        }
    }
}

/// `initializationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InitType {
    OnDemand,
    ProvisionedConcurrency,
}

impl InitType {
    fn as_str(self) -> &'static str {
        match self {
            InitType::OnDemand => "on-demand",
            InitType::ProvisionedConcurrency => "provisioned-concurrency",
        }
    }
}

/// `phase`: `invoke` is a suppressed init re-run during the first invoke after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InitPhase {
    Init,
    // Emitted once failed inits are re-run in the invoke phase; its shape is tested now.
    #[cfg_attr(not(test), allow(dead_code))]
    Invoke,
}

impl InitPhase {
    fn as_str(self) -> &'static str {
        match self {
            InitPhase::Init => "init",
            InitPhase::Invoke => "invoke",
        }
    }
}

/// `status` of initRuntimeDone, runtimeDone and report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Success,
    /// A function error (`/error`, `/init/error`).
    Failure,
    /// A platform error: the runtime exited, the response was too large, …
    Error,
    Timeout,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Error => "error",
            Status::Timeout => "timeout",
        }
    }
}

/// A span of `platform.runtimeDone`: when it started and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Span {
    pub(crate) start: SystemTime,
    pub(crate) duration: Duration,
}

/// The fields of `platform.runtimeDone`.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeDone {
    pub(crate) request_id: RequestId,
    pub(crate) status: Status,
    pub(crate) error_type: Option<String>,
    /// From the invoke's delivery to the runtime's `/response` (or `/error`) completing.
    pub(crate) duration: Duration,
    /// Bytes of the response the runtime posted.
    pub(crate) produced_bytes: u64,
    /// From the delivery to the first byte of the response.
    pub(crate) response_latency: Option<Span>,
    /// From the first to the last byte of the response.
    pub(crate) response_duration: Option<Span>,
}

/// The fields of `platform.report` (the REPORT line's numbers).
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) request_id: RequestId,
    pub(crate) status: Status,
    pub(crate) error_type: Option<String>,
    pub(crate) duration: Duration,
    pub(crate) billed_duration_ms: u64,
    pub(crate) memory_size_mb: u64,
    pub(crate) max_memory_used_mb: u64,
    /// Present on the invoke that followed a cold start.
    pub(crate) init_duration: Option<Duration>,
}

/// `2026-12-01T14:05:03.165Z`: RFC 3339, UTC, milliseconds, as Lambda writes `time`.
pub(crate) fn timestamp(at: SystemTime) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from(at)
        .format(FORMAT)
        .unwrap_or_default()
}

/// Milliseconds as Lambda's `durationMs`: a float, to the microsecond.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

fn built(record_type: &'static str, record: Value) -> Record {
    Record::now(Body::Built {
        record_type,
        record,
    })
}

/// Inserts `key: value` when there is a value (the schema's `?` fields are absent, not null).
fn with(mut record: Value, key: &str, value: Option<Value>) -> Value {
    if let (Some(value), Some(map)) = (value, record.as_object_mut()) {
        map.insert(key.to_string(), value);
    }
    record
}

pub(crate) fn init_start(
    initialization_type: InitType,
    phase: InitPhase,
    runtime_version: Option<&str>,
    runtime_version_arn: Option<&str>,
) -> Record {
    let body = json!({
        "initializationType": initialization_type.as_str(),
        "phase": phase.as_str(),
    });
    let body = with(body, "runtimeVersion", runtime_version.map(Value::from));
    let body = with(
        body,
        "runtimeVersionArn",
        runtime_version_arn.map(Value::from),
    );
    built("platform.initStart", body)
}

pub(crate) fn init_runtime_done(
    initialization_type: InitType,
    phase: InitPhase,
    status: Status,
    error_type: Option<&str>,
) -> Record {
    let body = json!({
        "initializationType": initialization_type.as_str(),
        "phase": phase.as_str(),
        "status": status.as_str(),
    });
    built(
        "platform.initRuntimeDone",
        with(body, "errorType", error_type.map(Value::from)),
    )
}

pub(crate) fn init_report(
    initialization_type: InitType,
    phase: InitPhase,
    duration: Duration,
) -> Record {
    built(
        "platform.initReport",
        json!({
            "initializationType": initialization_type.as_str(),
            "phase": phase.as_str(),
            "metrics": {"durationMs": millis(duration)},
        }),
    )
}

/// `version`: the function version that runs (`$LATEST`, `3`).
pub(crate) fn start(request_id: &str, version: &str) -> Record {
    Record::now(Body::Start {
        request_id: request_id.into(),
        version: match version {
            "$LATEST" => Cow::Borrowed("$LATEST"),
            other => Cow::Owned(other.to_string()),
        },
    })
}

pub(crate) fn runtime_done(done: RuntimeDone) -> Record {
    Record::now(Body::RuntimeDone(done))
}

fn runtime_done_body(done: &RuntimeDone) -> Value {
    let span = |name: &str, span: &Span| {
        json!({
            "name": name,
            "start": timestamp(span.start),
            "durationMs": millis(span.duration),
        })
    };
    let spans: Vec<Value> = [
        done.response_latency
            .as_ref()
            .map(|s| span("responseLatency", s)),
        done.response_duration
            .as_ref()
            .map(|s| span("responseDuration", s)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let body = json!({
        "requestId": done.request_id.as_str(),
        "status": done.status.as_str(),
        "metrics": {
            "durationMs": millis(done.duration),
            "producedBytes": done.produced_bytes,
        },
        "spans": spans,
    });
    with(body, "errorType", done.error_type.clone().map(Value::from))
}

pub(crate) fn report(report: Report) -> Record {
    Record::now(Body::Report(report))
}

fn report_body(report: &Report) -> Value {
    let metrics = json!({
        "durationMs": millis(report.duration),
        "billedDurationMs": report.billed_duration_ms,
        "memorySizeMB": report.memory_size_mb,
        "maxMemoryUsedMB": report.max_memory_used_mb,
    });
    let metrics = with(
        metrics,
        "initDurationMs",
        report.init_duration.map(|d| Value::from(millis(d))),
    );
    let body = json!({
        "requestId": report.request_id.as_str(),
        "status": report.status.as_str(),
        "metrics": metrics,
    });
    with(
        body,
        "errorType",
        report.error_type.clone().map(Value::from),
    )
}

/// `state`: `Ready` once registered (what Lambda reports); `events`: what it registered for.
pub(crate) fn extension(name: &str, state: &str, events: &[&str]) -> Record {
    built(
        "platform.extension",
        json!({"name": name, "state": state, "events": events}),
    )
}

pub(crate) fn logs_dropped(dropped_bytes: u64, dropped_records: u64, reason: &str) -> Record {
    built(
        "platform.logsDropped",
        json!({
            "droppedBytes": dropped_bytes,
            "droppedRecords": dropped_records,
            "reason": reason,
        }),
    )
}

/// `platform.telemetrySubscription` (Telemetry API) or `platform.logsSubscription` (Logs).
pub(crate) fn subscription(record_type: &'static str, name: &str, types: &[&str]) -> Record {
    built(
        record_type,
        json!({"name": name, "state": "Subscribed", "types": types}),
    )
}

/// A `function` record: one line the runtime wrote, without its line ending.
pub(crate) fn function_line(line: String) -> Record {
    Record::now(Body::Line {
        record_type: "function",
        line,
    })
}

/// An `extension` record: one line an extension wrote, without its line ending.
pub(crate) fn extension_line(line: String) -> Record {
    Record::now(Body::Line {
        record_type: "extension",
        line,
    })
}

/// Which stream a record belongs to, for a subscriber's `types`.
pub(crate) fn category(record: &Record) -> Category {
    match record.record_type() {
        "function" => Category::Function,
        "extension" => Category::Extension,
        _ => Category::Platform,
    }
}

/// The records a Telemetry API subscriber gets for `record`: all but the Logs API's own.
pub(crate) fn for_telemetry(record: &Record) -> Option<TelemetryRecord> {
    (record.record_type() != "platform.logsSubscription").then(|| record.render())
}

/// The Logs API form of `record`: `platform.start`/`platform.end`/`platform.report` with
/// the 2020-08-15 fields, `platform.runtimeDone {requestId, status}` only from schema
/// 2021-03-18 on; the init records and `platform.telemetrySubscription` do not exist there.
/// A report becomes `platform.end` then `platform.report`, as END precedes REPORT.
pub(crate) fn for_logs(record: &Record, runtime_done: bool) -> Vec<TelemetryRecord> {
    let record = &record.render();
    let field = |name: &str| record.record.get(name).cloned().unwrap_or(Value::Null);
    let at = |record_type: &str, body: Value| TelemetryRecord {
        time: record.time.clone(),
        record_type: record_type.to_string(),
        record: body,
    };
    match record.record_type.as_str() {
        "function"
        | "extension"
        | "platform.extension"
        | "platform.logsSubscription"
        | "platform.logsDropped" => vec![record.clone()],
        "platform.start" => vec![at(
            "platform.start",
            json!({"requestId": field("requestId"), "version": field("version")}),
        )],
        "platform.runtimeDone" if runtime_done => {
            // 2021-03-18 knows success | failure | timeout; a platform error is a failure.
            let status = match field("status").as_str() {
                Some("success") => "success",
                Some("timeout") => "timeout",
                _ => "failure",
            };
            vec![at(
                "platform.runtimeDone",
                json!({"requestId": field("requestId"), "status": status}),
            )]
        }
        "platform.report" => {
            let metrics = field("metrics");
            let mut logs_metrics = json!({});
            for key in [
                "durationMs",
                "billedDurationMs",
                "memorySizeMB",
                "maxMemoryUsedMB",
                "initDurationMs",
            ] {
                if let Some(value) = metrics.get(key) {
                    logs_metrics[key] = value.clone();
                }
            }
            vec![
                at("platform.end", json!({"requestId": field("requestId")})),
                at(
                    "platform.report",
                    json!({"requestId": field("requestId"), "metrics": logs_metrics}),
                ),
            ]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One record of every type the engine produces, with every optional field set in one
    /// and unset in another.
    pub(crate) fn every_record() -> Vec<Record> {
        let t0 = SystemTime::now();
        vec![
            init_start(InitType::OnDemand, InitPhase::Init, None, None),
            init_start(
                InitType::ProvisionedConcurrency,
                InitPhase::Invoke,
                Some("python:3.12.v40"),
                Some("arn:aws:lambda:us-east-1::runtime:abc"),
            ),
            init_runtime_done(InitType::OnDemand, InitPhase::Init, Status::Success, None),
            init_runtime_done(
                InitType::OnDemand,
                InitPhase::Init,
                Status::Failure,
                Some("Runtime.ImportModuleError"),
            ),
            init_report(
                InitType::OnDemand,
                InitPhase::Init,
                Duration::from_micros(12_345),
            ),
            start("req-1", "$LATEST"),
            runtime_done(RuntimeDone {
                request_id: "req-1".into(),
                status: Status::Success,
                error_type: None,
                duration: Duration::from_millis(3),
                produced_bytes: 17,
                response_latency: Some(Span {
                    start: t0,
                    duration: Duration::from_millis(2),
                }),
                response_duration: Some(Span {
                    start: t0 + Duration::from_millis(2),
                    duration: Duration::from_millis(1),
                }),
            }),
            runtime_done(RuntimeDone {
                request_id: "req-2".into(),
                status: Status::Timeout,
                error_type: Some("Sandbox.Timedout".into()),
                duration: Duration::from_secs(3),
                produced_bytes: 0,
                response_latency: None,
                response_duration: None,
            }),
            runtime_done(RuntimeDone {
                request_id: "req-3".into(),
                status: Status::Error,
                error_type: Some("Runtime.ExitError".into()),
                duration: Duration::from_millis(5),
                produced_bytes: 0,
                response_latency: None,
                response_duration: None,
            }),
            report(Report {
                request_id: "req-1".into(),
                status: Status::Success,
                error_type: None,
                duration: Duration::from_micros(3_210),
                billed_duration_ms: 4,
                memory_size_mb: 128,
                max_memory_used_mb: 31,
                init_duration: Some(Duration::from_millis(120)),
            }),
            report(Report {
                request_id: "req-2".into(),
                status: Status::Failure,
                error_type: Some("Handled".into()),
                duration: Duration::from_millis(1),
                billed_duration_ms: 1,
                memory_size_mb: 128,
                max_memory_used_mb: 31,
                init_duration: None,
            }),
            extension("ext_events", "Ready", &["INVOKE", "SHUTDOWN"]),
            subscription(
                "platform.telemetrySubscription",
                "ext_telemetry",
                &["platform", "function"],
            ),
            logs_dropped(1234, 5, "Consumer seems to have fallen behind"),
            function_line("[INFO] hello".into()),
            extension_line("ext_events INVOKE req-1".into()),
        ]
    }

    #[test]
    fn time_is_rfc3339_utc_with_milliseconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(timestamp(at), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn a_report_has_the_schema_fields_and_no_absent_optionals() {
        let r = report(Report {
            request_id: "r".into(),
            status: Status::Success,
            error_type: None,
            duration: Duration::from_micros(693_920),
            billed_duration_ms: 694,
            memory_size_mb: 128,
            max_memory_used_mb: 84,
            init_duration: None,
        })
        .render();
        assert_eq!(r.record_type, "platform.report");
        assert_eq!(
            r.record,
            json!({"requestId": "r", "status": "success", "metrics": {
                "durationMs": 693.92, "billedDurationMs": 694,
                "memorySizeMB": 128, "maxMemoryUsedMB": 84}})
        );
    }

    #[test]
    fn runtime_done_carries_both_spans_named_as_lambda_names_them() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let r = runtime_done(RuntimeDone {
            request_id: "r".into(),
            status: Status::Success,
            error_type: None,
            duration: Duration::from_millis(3),
            produced_bytes: 8,
            response_latency: Some(Span {
                start: t0,
                duration: Duration::from_millis(2),
            }),
            response_duration: Some(Span {
                start: t0 + Duration::from_millis(2),
                duration: Duration::from_millis(1),
            }),
        })
        .render();
        assert_eq!(
            r.record["metrics"],
            json!({"durationMs": 3.0, "producedBytes": 8})
        );
        assert_eq!(
            r.record["spans"],
            json!([
                {"name": "responseLatency", "start": "2023-11-14T22:13:20.000Z", "durationMs": 2.0},
                {"name": "responseDuration", "start": "2023-11-14T22:13:20.002Z", "durationMs": 1.0},
            ])
        );
    }

    #[test]
    fn every_platform_record_parses_as_lambda_extension_telemetry() {
        let rendered: Vec<TelemetryRecord> = every_record().iter().map(Record::render).collect();
        let batch = serde_json::to_string(&rendered).unwrap();
        let parsed: Vec<lambda_extension::LambdaTelemetry> =
            serde_json::from_str(&batch).expect("lambda-extension rejects the batch");
        assert_eq!(parsed.len(), every_record().len());
        use lambda_extension::LambdaTelemetryRecord as R;
        assert!(matches!(
            &parsed[9].record,
            R::PlatformReport { metrics, .. } if metrics.init_duration_ms == Some(120.0)
                && metrics.memory_size_mb == 128 && metrics.billed_duration_ms == 4
        ));
        assert!(matches!(
            &parsed[6].record,
            R::PlatformRuntimeDone { spans, metrics: Some(m), .. }
                if spans.len() == 2 && m.produced_bytes == Some(17)
        ));
        assert!(matches!(&parsed[14].record, R::Function(line) if line == "[INFO] hello"));
    }

    #[test]
    fn the_logs_api_form_parses_as_lambda_extension_logs() {
        let logs: Vec<TelemetryRecord> = every_record()
            .iter()
            .flat_map(|r| for_logs(r, true))
            .chain([subscription("platform.logsSubscription", "x", &["platform"]).render()])
            .collect();
        let types: Vec<&str> = logs.iter().map(|r| r.record_type.as_str()).collect();
        assert!(!types.iter().any(|t| t.starts_with("platform.init")));
        assert!(!types.contains(&"platform.telemetrySubscription"));
        let end = types.iter().position(|t| *t == "platform.end").unwrap();
        assert_eq!(types[end + 1], "platform.report");

        let batch = serde_json::to_string(&logs).unwrap();
        let parsed: Vec<lambda_extension::LambdaLog> =
            serde_json::from_str(&batch).expect("lambda-extension rejects the Logs API batch");
        assert_eq!(parsed.len(), logs.len());
        use lambda_extension::LambdaLogRecord as L;
        assert!(parsed.iter().any(
            |l| matches!(&l.record, L::PlatformRuntimeDone { status, .. } if status == "timeout")
        ));
        // A platform error is a failure in the 2021-03-18 vocabulary.
        assert!(parsed.iter().any(
            |l| matches!(&l.record, L::PlatformRuntimeDone { request_id, status } if request_id == "req-3" && status == "failure")
        ));
    }

    #[test]
    fn logs_schema_2020_08_15_has_no_runtime_done() {
        let done = every_record()
            .into_iter()
            .find(|r| r.record_type() == "platform.runtimeDone")
            .unwrap();
        assert!(for_logs(&done, false).is_empty());
        assert_eq!(for_logs(&done, true).len(), 1);
    }
}
