//! What the Telemetry API saw: every record an execution environment produced, for tests
//! that assert without writing an extension.
//!
//! Each execution environment produces the records Lambda's Telemetry API (2022-07-01)
//! would deliver to a subscribed extension: `platform.*` records of the lifecycle, one
//! `function` record per line the runtime wrote, one `extension` record per line an
//! extension wrote. Subscribed extensions get them over HTTP as Lambda sends them; every
//! record also lands in the function's [`TelemetryFeed`], whether or not any extension
//! subscribed.
//!
//! Shapes follow AWS's "Telemetry API `Event` schema reference"
//! (docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html); the
//! `lambda-extension` crate's `LambdaTelemetry` parses every platform record produced.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::WaitTimeout;

/// Records a function's feed keeps by default; older ones are dropped (and counted).
pub(crate) const FEED_CAPACITY: usize = 10_000;

/// One Telemetry API record, as delivered: `{"time", "type", "record"}`.
///
/// `record_type` (`type` on the wire) is one of:
///
/// | type | `record` |
/// |---|---|
/// | `platform.initStart` | `{initializationType: "on-demand"\|"provisioned-concurrency", phase: "init"\|"invoke", runtimeVersion?, runtimeVersionArn?}` |
/// | `platform.initRuntimeDone` | `{initializationType, phase, status: "success"\|"failure"\|"error"\|"timeout", errorType?}` |
/// | `platform.initReport` | `{initializationType, phase, metrics: {durationMs}}` |
/// | `platform.start` | `{requestId, version}` |
/// | `platform.runtimeDone` | `{requestId, status, errorType?, metrics: {durationMs, producedBytes}, spans: [{name: "responseLatency"\|"responseDuration", start, durationMs}]}` |
/// | `platform.report` | `{requestId, status, errorType?, metrics: {durationMs, billedDurationMs, memorySizeMB, maxMemoryUsedMB, initDurationMs?}}` |
/// | `platform.extension` | `{name, state, events: ["INVOKE", "SHUTDOWN"]}` |
/// | `platform.telemetrySubscription` | `{name, state: "Subscribed", types: ["platform", …]}` |
/// | `platform.logsSubscription` | the same, for a Logs API (2020-08-15) subscription |
/// | `platform.logsDropped` | `{droppedBytes, droppedRecords, reason}` |
/// | `function` | the line the runtime wrote (a string, without its newline) |
/// | `extension` | the line an extension wrote (a string, without its newline) |
///
/// Durations are milliseconds (`durationMs` a float, `billedDurationMs` an integer);
/// memory is MB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TelemetryRecord {
    /// When the platform produced the record: RFC 3339, UTC, milliseconds
    /// (`2026-12-01T14:05:03.165Z`).
    pub time: String,
    /// The record type, `type` on the wire: `platform.start`, `function`, … (table above).
    #[serde(rename = "type")]
    pub record_type: String,
    /// The record itself: an object for `platform.*`, a string for `function` and
    /// `extension`.
    pub record: serde_json::Value,
}

impl TelemetryRecord {
    /// The record's `requestId`, for the records that carry one (`platform.start`,
    /// `platform.runtimeDone`, `platform.report`).
    pub fn request_id(&self) -> Option<&str> {
        self.record.get("requestId")?.as_str()
    }

    /// The line of a `function` or `extension` record.
    pub fn line(&self) -> Option<&str> {
        self.record.as_str()
    }
}

/// A record kept in its typed form, rendered as a [`TelemetryRecord`] when the feed is
/// read (the execution layer's records; building the JSON of every record at emit time
/// cost more than the rest of the warm invoke path's bookkeeping).
pub(crate) trait Pending: Send + Sync {
    /// The wire form.
    fn render(&self) -> TelemetryRecord;
}

impl Pending for TelemetryRecord {
    fn render(&self) -> TelemetryRecord {
        self.clone()
    }
}

/// The telemetry of one function: every record its execution environments produced, in
/// order (the most recent 10,000, or [`crate::EmulatorBuilder::history_limit`]). Cheap to
/// clone; clones share the records.
#[derive(Clone)]
pub struct TelemetryFeed {
    inner: Arc<Inner>,
}

struct Inner {
    function: String,
    /// Records kept; older ones are dropped.
    capacity: usize,
    records: Mutex<Records>,
    /// Woken after every push, for event-driven waits.
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct Records {
    kept: VecDeque<Box<dyn Pending>>,
    /// Records pushed over the feed's life; `kept` holds the last `kept.len()` of them.
    pushed: u64,
}

impl Records {
    /// The kept records from the `seq`-th pushed one on.
    fn since(&self, seq: u64) -> impl Iterator<Item = TelemetryRecord> + '_ {
        let first = self.pushed - self.kept.len() as u64;
        self.kept
            .iter()
            .skip(seq.saturating_sub(first) as usize)
            .map(|r| r.render())
    }
}

impl std::fmt::Debug for TelemetryFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let records = self.lock();
        f.debug_struct("TelemetryFeed")
            .field("function", &self.inner.function)
            .field("records", &records.kept.len())
            .field("pushed", &records.pushed)
            .finish()
    }
}

impl TelemetryFeed {
    /// An empty feed for `function` (named in a [`WaitTimeout`]).
    pub(crate) fn new(function: &str) -> TelemetryFeed {
        TelemetryFeed::with_capacity(function, FEED_CAPACITY)
    }

    /// An empty feed keeping the last `capacity` records (at least one).
    pub(crate) fn with_capacity(function: &str, capacity: usize) -> TelemetryFeed {
        TelemetryFeed {
            inner: Arc::new(Inner {
                function: function.to_string(),
                capacity: capacity.max(1),
                records: Mutex::default(),
                changed: tokio::sync::Notify::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.inner.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a record and wakes the waiters.
    pub(crate) fn push(&self, record: impl Pending + 'static) {
        {
            let mut records = self.lock();
            if records.kept.len() >= self.inner.capacity {
                records.kept.pop_front();
            }
            records.kept.push_back(Box::new(record));
            records.pushed += 1;
        }
        self.inner.changed.notify_waiters();
    }

    /// Every record kept so far, oldest first.
    pub fn records(&self) -> Vec<TelemetryRecord> {
        self.lock().since(0).collect()
    }

    /// Waits (event-driven, no polling) for a record for which `pred` holds — one already
    /// in the feed counts — and returns the first such record.
    ///
    /// On timeout the [`WaitTimeout`]'s `timeline` lists the records seen (its `stats`
    /// are empty: a feed knows records, not counters).
    pub async fn wait_for(
        &self,
        pred: impl Fn(&TelemetryRecord) -> bool,
        timeout: Duration,
    ) -> Result<TelemetryRecord, WaitTimeout> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut checked = 0;
        loop {
            // Register for the wake-up before checking, so no push in between is lost.
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let records = self.lock();
                if let Some(found) = records.since(checked).find(|r| pred(r)) {
                    return Ok(found);
                }
                checked = records.pushed;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let records = self.lock();
                if let Some(found) = records.since(checked).find(|r| pred(r)) {
                    return Ok(found);
                }
                return Err(WaitTimeout {
                    function: self.inner.function.clone(),
                    what: "a telemetry record matching the predicate".to_string(),
                    waited: timeout,
                    stats: Default::default(),
                    timeline: render(&records),
                });
            }
        }
    }
}

/// The last records, one line each, for a timeout's message.
fn render(records: &Records) -> String {
    const SHOWN: usize = 200;
    let skipped = records.kept.len().saturating_sub(SHOWN);
    let mut text = String::new();
    if skipped > 0 || records.pushed > records.kept.len() as u64 {
        let earlier = records.pushed - records.kept.len() as u64 + skipped as u64;
        text.push_str(&format!("  ({earlier} earlier records not shown)\n"));
    }
    for r in records.kept.iter().skip(skipped).map(|r| r.render()) {
        text.push_str(&format!("  {} {} {}\n", r.time, r.record_type, r.record));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> TelemetryRecord {
        TelemetryRecord {
            time: "2026-12-01T00:00:00.000Z".to_string(),
            record_type: "function".to_string(),
            record: serde_json::Value::String(format!("line {n}")),
        }
    }

    #[test]
    fn a_record_serialises_as_the_wire_shape() {
        let json = serde_json::to_value(record(1)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"time": "2026-12-01T00:00:00.000Z", "type": "function", "record": "line 1"})
        );
    }

    #[tokio::test]
    async fn wait_for_sees_a_record_already_pushed_and_one_pushed_later() {
        let feed = TelemetryFeed::new("f");
        feed.push(record(1));
        let found = feed
            .wait_for(|r| r.line() == Some("line 1"), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(found, record(1));

        let pusher = feed.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            pusher.push(record(2));
        });
        let found = feed
            .wait_for(|r| r.line() == Some("line 2"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(found, record(2));
        assert_eq!(feed.records().len(), 2);
    }

    #[tokio::test]
    async fn wait_for_times_out_listing_the_records_seen() {
        let feed = TelemetryFeed::new("greeter");
        feed.push(record(1));
        let err = feed
            .wait_for(
                |r| r.record_type == "platform.report",
                Duration::from_millis(30),
            )
            .await
            .unwrap_err();
        assert_eq!(err.function, "greeter");
        assert!(
            err.timeline.contains("function \"line 1\""),
            "{}",
            err.timeline
        );
    }

    #[test]
    fn the_feed_keeps_the_most_recent_records() {
        let feed = TelemetryFeed::new("f");
        for n in 0..FEED_CAPACITY as u64 + 3 {
            feed.push(record(n));
        }
        let records = feed.records();
        assert_eq!(records.len(), FEED_CAPACITY);
        assert_eq!(records[0], record(3));
        let kept = feed.lock();
        assert_eq!(kept.since(0).count(), FEED_CAPACITY);
        assert_eq!(kept.since(FEED_CAPACITY as u64 + 2).count(), 1);
    }
}
