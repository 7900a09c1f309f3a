//! One subscriber's buffer and its delivery task: records collect until `maxItems` or
//! `maxBytes` is reached or `timeoutMs` has passed since the first of them, then go out as
//! one HTTP POST of a JSON array; failed posts are retried with backoff, and what cannot be
//! delivered is dropped, counted and announced with `platform.logsDropped`.
//!
//! The buffer ([`Buffer`]) is pure and tested without I/O; the task only performs the
//! posts it asks for.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Telemetry;
use super::record::{self, Record};
use super::subscription::{Buffering, Subscription};

/// What Lambda says when a consumer falls behind.
pub(crate) const FELL_BEHIND: &str =
    "Consumer seems to have fallen behind as it has not acknowledged receipt of logs.";

/// How failed posts are retried.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    /// Posts of one batch, the first included.
    pub(crate) attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub(crate) backoff: Duration,
    /// Limit of one post (a frozen or wedged listener must not hold the batch forever).
    pub(crate) attempt_timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        // 25 + 50 + 100 + 200 + 400 ms: `lambda-extension` rebinds its listener after each
        // accepted connection, so a refused connect is usually gone a moment later.
        Retry {
            attempts: 6,
            backoff: Duration::from_millis(25),
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

struct Entry {
    json: String,
    /// A `platform.logsDropped` notice: never counted as dropped itself, so two failing
    /// subscribers cannot keep announcing each other's drops.
    notice: bool,
}

/// Records waiting for delivery: at most two batches' worth (`2 × maxItems`,
/// `2 × maxBytes`) — one filling while another is in flight — beyond that, new records
/// are dropped and counted.
pub(crate) struct Buffer {
    limits: Buffering,
    entries: VecDeque<Entry>,
    bytes: usize,
    /// When the oldest waiting record arrived.
    since: Option<Instant>,
    dropped: Dropped,
}

/// Drops not yet announced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    pub(crate) reason: String,
}

/// One POST's worth.
pub(crate) struct Batch {
    /// The JSON array.
    pub(crate) body: String,
    pub(crate) items: usize,
    /// Records and bytes of the batch that count as dropped if it cannot be delivered
    /// (notices excluded).
    pub(crate) records: u64,
    pub(crate) bytes: u64,
}

impl Buffer {
    pub(crate) fn new(limits: Buffering) -> Buffer {
        Buffer {
            limits,
            entries: VecDeque::new(),
            bytes: 0,
            since: None,
            dropped: Dropped::default(),
        }
    }

    /// Adds a serialised record; `false` when it was dropped (the buffer is full).
    /// Notices are never dropped: they are the one record saying that others were.
    pub(crate) fn push(&mut self, json: String, notice: bool, now: Instant) -> bool {
        let full = self.entries.len() >= 2 * self.limits.max_items
            || self.bytes + json.len() > 2 * self.limits.max_bytes;
        if full && !notice {
            self.drop_records(1, json.len() as u64, FELL_BEHIND);
            return false;
        }
        self.bytes += json.len();
        self.since.get_or_insert(now);
        self.entries.push_back(Entry { json, notice });
        true
    }

    pub(crate) fn drop_records(&mut self, records: u64, bytes: u64, reason: &str) {
        if records == 0 {
            return;
        }
        self.dropped.records += records;
        self.dropped.bytes += bytes;
        self.dropped.reason = reason.to_string();
    }

    /// Drops not yet announced, now taken to be announced.
    pub(crate) fn take_dropped(&mut self) -> Option<Dropped> {
        (self.dropped.records > 0).then(|| std::mem::take(&mut self.dropped))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a batch should go now: `maxItems` or `maxBytes` reached, `timeoutMs`
    /// passed since the oldest record, or a flush asked for everything.
    pub(crate) fn is_due(&self, now: Instant, flush: bool) -> bool {
        !self.entries.is_empty()
            && (flush
                || self.entries.len() >= self.limits.max_items
                || self.bytes >= self.limits.max_bytes
                || self.deadline().is_some_and(|d| d <= now))
    }

    /// When the oldest waiting record's `timeoutMs` runs out.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + self.limits.timeout)
    }

    /// Takes the oldest records: at most `maxItems`, at most `maxBytes` (but at least one
    /// record, however large).
    pub(crate) fn take_batch(&mut self, now: Instant) -> Batch {
        let mut body = String::from("[");
        let (mut items, mut records, mut bytes) = (0, 0, 0);
        let mut size = 0;
        while let Some(entry) = self.entries.front() {
            if items == self.limits.max_items
                || (items > 0 && size + entry.json.len() > self.limits.max_bytes)
            {
                break;
            }
            let entry = self.entries.pop_front().expect("front exists");
            size += entry.json.len();
            self.bytes -= entry.json.len();
            if items > 0 {
                body.push(',');
            }
            body.push_str(&entry.json);
            items += 1;
            if !entry.notice {
                records += 1;
                bytes += entry.json.len() as u64;
            }
        }
        body.push(']');
        // What is left has waited since it arrived; it goes at the next due point, or at
        // once if that has passed.
        self.since = if self.entries.is_empty() {
            None
        } else {
            self.since.or(Some(now))
        };
        Batch {
            body,
            items,
            records,
            bytes,
        }
    }
}

/// One subscribed extension: its subscription, its buffer, and its delivery task.
pub(crate) struct Subscriber {
    pub(crate) extension: String,
    pub(crate) subscription: Subscription,
    /// The destination with `sandbox.localdomain` resolved (again when the environment's
    /// address becomes known: a container's, after it started).
    url: Mutex<String>,
    state: Mutex<State>,
    /// Wakes the delivery task: records arrived, a flush was asked for.
    wake: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct State {
    buffer: Buffer,
    in_flight: bool,
    flush: bool,
}

impl Subscriber {
    /// Where batches go now.
    pub(crate) fn url(&self) -> String {
        self.url.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves `sandbox.localdomain` to `sandbox` from now on.
    pub(crate) fn retarget(&self, sandbox: std::net::IpAddr) {
        *self.url.lock().unwrap_or_else(|e| e.into_inner()) =
            self.subscription.destination.url(sandbox);
    }

    pub(crate) fn new(extension: &str, subscription: Subscription, url: String) -> Subscriber {
        Subscriber {
            extension: extension.to_string(),
            url: Mutex::new(url),
            state: Mutex::new(State {
                buffer: Buffer::new(subscription.buffering),
                in_flight: false,
                flush: false,
            }),
            subscription,
            wake: Notify::new(),
            task: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Buffers `record` in this subscriber's API's form, if it subscribed to its stream.
    pub(crate) fn offer(&self, record: &Record) {
        if !self.subscription.types.contains(record::category(record)) {
            return;
        }
        let forms = match self.subscription.api {
            super::Api::Telemetry => record::for_telemetry(record).into_iter().collect(),
            super::Api::Logs => record::for_logs(record, self.subscription.logs_runtime_done()),
        };
        if forms.is_empty() {
            return;
        }
        let notice = record.record_type() == "platform.logsDropped";
        let now = Instant::now();
        {
            let mut state = self.lock();
            for form in forms {
                let json = serde_json::to_string(&form).unwrap_or_default();
                state.buffer.push(json, notice, now);
            }
        }
        self.wake.notify_one();
    }

    /// Asks for everything buffered to be sent now.
    pub(crate) fn request_flush(&self) {
        self.lock().flush = true;
        self.wake.notify_one();
    }

    /// Nothing buffered, nothing in flight.
    pub(crate) fn is_drained(&self) -> bool {
        let state = self.lock();
        state.buffer.is_empty() && !state.in_flight
    }

    pub(crate) fn start(
        self: &Arc<Self>,
        telemetry: Weak<Telemetry>,
        client: reqwest::Client,
        retry: Retry,
        delivered: Arc<Notify>,
    ) {
        let task = tokio::spawn(run(self.clone(), telemetry, client, retry, delivered));
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    pub(crate) fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// The delivery task: wait until a batch is due, post it, repeat.
async fn run(
    subscriber: Arc<Subscriber>,
    telemetry: Weak<Telemetry>,
    client: reqwest::Client,
    retry: Retry,
    delivered: Arc<Notify>,
) {
    loop {
        let wake = subscriber.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();

        let (dropped, batch, deadline) = {
            let mut state = subscriber.lock();
            let now = Instant::now();
            let dropped = state.buffer.take_dropped();
            let batch = if dropped.is_none() && state.buffer.is_due(now, state.flush) {
                state.in_flight = true;
                Some(state.buffer.take_batch(now))
            } else {
                None
            };
            if state.buffer.is_empty() {
                state.flush = false;
            }
            (dropped, batch, state.buffer.deadline())
        };

        if let Some(dropped) = dropped {
            announce(&subscriber, &telemetry, dropped);
            continue;
        }
        let Some(batch) = batch else {
            delivered.notify_waiters();
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        _ = &mut wake => {}
                        _ = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => wake.await,
            }
            continue;
        };

        let outcome = post(&client, &subscriber, &batch, retry).await;
        {
            let mut state = subscriber.lock();
            if let Err(reason) = outcome {
                tracing::warn!(
                    extension = %subscriber.extension,
                    url = %subscriber.url(),
                    items = batch.items,
                    "telemetry batch dropped: {reason}"
                );
                state
                    .buffer
                    .drop_records(batch.records, batch.bytes, &reason);
            }
            state.in_flight = false;
        }
        delivered.notify_waiters();
    }
}

/// `platform.logsDropped` for the drops of `subscriber`: to the feed and the other
/// subscribers at once, and to the subscriber itself at the head of its next batch.
fn announce(subscriber: &Arc<Subscriber>, telemetry: &Weak<Telemetry>, dropped: Dropped) {
    let notice = record::logs_dropped(dropped.bytes, dropped.records, &dropped.reason);
    if let Some(telemetry) = telemetry.upgrade() {
        telemetry.emit_except(notice.clone(), Some(subscriber));
    }
    subscriber.offer(&notice);
}

/// Posts one batch, retrying connection failures, timeouts and 5xx with backoff; a 4xx
/// is the listener refusing the batch and is not retried.
async fn post(
    client: &reqwest::Client,
    subscriber: &Subscriber,
    batch: &Batch,
    retry: Retry,
) -> Result<(), String> {
    let method = match subscriber.subscription.destination.method {
        "PUT" => reqwest::Method::PUT,
        _ => reqwest::Method::POST,
    };
    let mut backoff = retry.backoff;
    let mut last = String::new();
    for attempt in 0..retry.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        let sent = client
            .request(method.clone(), subscriber.url())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(retry.attempt_timeout)
            .body(batch.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) if response.status().is_server_error() => {
                last = format!("{} answered {}", subscriber.url(), response.status());
            }
            Ok(response) => {
                return Err(format!(
                    "{} refused the batch with {}",
                    subscriber.url(),
                    response.status()
                ));
            }
            Err(e) => last = format!("{} unreachable: {e}", subscriber.url()),
        }
    }
    Err(format!("{last} (after {} attempts)", retry.attempts.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_items: usize, max_bytes: usize, timeout_ms: u64) -> Buffering {
        Buffering {
            max_items,
            max_bytes,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    fn json(n: usize, len: usize) -> String {
        let body = format!("\"{n}");
        format!("{body}{}\"", "x".repeat(len.saturating_sub(body.len() + 1)))
    }

    #[test]
    fn a_batch_is_due_at_max_items() {
        let t0 = Instant::now();
        let mut b = Buffer::new(limits(3, 1_000_000, 1_000));
        for n in 0..2 {
            b.push(json(n, 10), false, t0);
        }
        assert!(!b.is_due(t0, false));
        b.push(json(2, 10), false, t0);
        assert!(b.is_due(t0, false));
        for n in 3..5 {
            b.push(json(n, 10), false, t0);
        }
        let batch = b.take_batch(t0);
        assert_eq!(batch.items, 3);
        assert_eq!(batch.body.matches(',').count(), 2);
        assert!(batch.body.starts_with("[\"0") && batch.body.ends_with(']'));
        // The two left over keep the first record's timer.
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(1_000)));
    }

    #[test]
    fn a_batch_is_due_at_max_bytes_and_never_exceeds_it() {
        let t0 = Instant::now();
        let mut b = Buffer::new(limits(1_000, 100, 1_000));
        b.push(json(0, 60), false, t0);
        assert!(!b.is_due(t0, false));
        b.push(json(1, 60), false, t0);
        assert!(b.is_due(t0, false));
        let batch = b.take_batch(t0);
        assert_eq!((batch.items, batch.bytes), (1, 60));
        assert_eq!(b.take_batch(t0).items, 1);
        // A record larger than maxBytes still goes, alone.
        assert!(b.push(json(2, 150), false, t0));
        assert!(b.is_due(t0, false));
        assert_eq!(b.take_batch(t0).bytes, 150);
        assert!(b.is_empty());
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn a_batch_is_due_timeout_ms_after_its_first_record_or_on_flush() {
        let t0 = Instant::now();
        let mut b = Buffer::new(limits(1_000, 262_144, 100));
        assert!(!b.is_due(t0, true), "an empty buffer is never due");
        b.push(json(0, 10), false, t0);
        b.push(json(1, 10), false, t0 + Duration::from_millis(90));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(100)));
        assert!(!b.is_due(t0 + Duration::from_millis(99), false));
        assert!(b.is_due(t0 + Duration::from_millis(99), true));
        assert!(b.is_due(t0 + Duration::from_millis(100), false));
    }

    #[test]
    fn beyond_two_batches_records_are_dropped_and_counted_but_notices_are_kept() {
        let t0 = Instant::now();
        let mut b = Buffer::new(limits(2, 1_000_000, 1_000));
        for n in 0..4 {
            assert!(b.push(json(n, 10), false, t0));
        }
        assert!(!b.push(json(4, 10), false, t0));
        assert!(!b.push(json(5, 7), false, t0));
        assert!(b.push(json(6, 10), true, t0), "a notice is never dropped");
        assert_eq!(
            b.take_dropped(),
            Some(Dropped {
                records: 2,
                bytes: 17,
                reason: FELL_BEHIND.to_string()
            })
        );
        assert_eq!(b.take_dropped(), None);
        // A failed batch counts only its real records.
        let first = b.take_batch(t0);
        let _ = b.take_batch(t0);
        let last = b.take_batch(t0);
        assert_eq!((first.records, first.bytes), (2, 20));
        assert_eq!((last.items, last.records), (1, 0));
    }
}
