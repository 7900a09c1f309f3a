//! The Telemetry API (2022-07-01) and its predecessor the Logs API (2020-08-15) of one
//! execution environment: the records, each subscriber's buffer and delivery, and the
//! function's [`TelemetryFeed`].
//!
//! ```text
//! record        constructors of every record type (AWS's schema reference) and the Logs
//!               API forms
//! subscription  a subscribe body parsed and validated (pure)
//! delivery      a subscriber's buffer (pure) and its delivery task (HTTP POST, retries,
//!               drops -> platform.logsDropped)
//! ```
//!
//! The Runtime API adapter routes `PUT /2022-07-01/telemetry` and `PUT /2020-08-15/logs`
//! to [`Telemetry::subscribe`] (it checks first that subscriptions are still open: only
//! during init); the lifecycle emits platform records; the backend's output of the runtime
//! and of extensions comes in as lines. Every record goes to the feed and to every
//! subscriber of its stream.
//!
//! Records emitted during init, before an extension subscribed, are replayed to it when it
//! does (an extension sees `platform.initStart` and the init's function lines, as on
//! Lambda), until [`Telemetry::subscriptions_closed`].

mod delivery;
pub(crate) mod record;
mod subscription;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

pub(crate) use crate::telemetry::TelemetryFeed;
use delivery::{Retry, Subscriber};
pub(crate) use record::Record;

/// Records kept for replay to extensions that subscribe later during init.
const BACKLOG_CAPACITY: usize = 10_000;
/// A line longer than this without a newline is cut into records of this size.
const MAX_LINE: usize = 256 * 1024;

/// Which subscribe endpoint was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `PUT /2022-07-01/telemetry`.
    Telemetry,
    /// `PUT /2020-08-15/logs`.
    Logs,
}

impl Api {
    /// The `errorType` of a 400 for an invalid subscription.
    pub(crate) fn validation_error_type(self) -> &'static str {
        match self {
            Api::Telemetry => "ValidationError",
            Api::Logs => "Logs.ValidationError",
        }
    }

    /// The `errorType` of a 403 for a subscription after init.
    pub(crate) fn closed_error_type(self) -> &'static str {
        match self {
            Api::Telemetry => "Telemetry.SubscriptionClosed",
            Api::Logs => "Logs.SubscriptionClosed",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Api::Telemetry => "Telemetry API",
            Api::Logs => "Logs API",
        }
    }

    fn subscription_record_type(self) -> &'static str {
        match self {
            Api::Telemetry => "platform.telemetrySubscription",
            Api::Logs => "platform.logsSubscription",
        }
    }
}

/// The telemetry of one execution environment.
pub(crate) struct Telemetry {
    me: Weak<Telemetry>,
    sandbox: Mutex<IpAddr>,
    feed: TelemetryFeed,
    client: reqwest::Client,
    retry: Retry,
    shared: Mutex<Shared>,
    lines: Mutex<Lines>,
    /// Woken whenever a delivery task finishes a batch or goes idle (for `flush`).
    delivered: Arc<Notify>,
}

#[derive(Default)]
struct Shared {
    subscribers: Vec<Arc<Subscriber>>,
    /// `None` once subscriptions have closed.
    backlog: Option<Vec<Record>>,
}

/// Partial lines: output arrives in chunks that need not end at a newline.
#[derive(Default)]
struct Lines {
    function: Vec<u8>,
    extensions: HashMap<String, Vec<u8>>,
}

impl Telemetry {
    /// `sandbox`: the address `sandbox.localdomain` in a subscriber's destination URI
    /// means (127.0.0.1 on the process backend, the container's IP on Docker). `feed`:
    /// the function's record log, which every record also goes to.
    pub(crate) fn new(sandbox: IpAddr, feed: TelemetryFeed) -> Arc<Telemetry> {
        Telemetry::with_retry(sandbox, feed, Retry::default())
    }

    /// Where `sandbox.localdomain` is, once the backend knows (a container's address).
    pub(crate) fn set_sandbox(&self, sandbox: IpAddr) {
        let shared = self.shared();
        *self.sandbox.lock().unwrap_or_else(|e| e.into_inner()) = sandbox;
        // Extensions may have subscribed while the backend was still finding it out.
        for subscriber in &shared.subscribers {
            subscriber.retarget(sandbox);
        }
    }

    fn with_retry(sandbox: IpAddr, feed: TelemetryFeed, retry: Retry) -> Arc<Telemetry> {
        let client = reqwest::Client::builder()
            // The destination is inside the environment: never through a proxy.
            .no_proxy()
            .build()
            .unwrap_or_default();
        Arc::new_cyclic(|me| Telemetry {
            me: me.clone(),
            sandbox: Mutex::new(sandbox),
            feed,
            client,
            retry,
            shared: Mutex::new(Shared {
                subscribers: Vec::new(),
                backlog: Some(Vec::new()),
            }),
            lines: Mutex::default(),
            delivered: Arc::new(Notify::new()),
        })
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The body of `PUT /2022-07-01/telemetry` (`api` = Telemetry) or `PUT /2020-08-15/logs`
    /// (`api` = Logs) from the extension named `extension`. `Err` is the `errorMessage` of
    /// the 400 (`errorType`: [`Api::validation_error_type`]). On success emits
    /// `platform.telemetrySubscription` (Logs API: `platform.logsSubscription`) and starts
    /// the subscriber's delivery. Subscribing again to the same API replaces the
    /// subscription (no duplicate); an extension subscribes to one API, not both.
    pub(crate) fn subscribe(&self, api: Api, extension: &str, body: &[u8]) -> Result<(), String> {
        let subscription = subscription::parse(api, body)?;
        let sandbox = *self.sandbox.lock().unwrap_or_else(|e| e.into_inner());
        let url = subscription.destination.url(sandbox);
        let type_names = subscription.type_names.clone();
        let subscriber = Arc::new(Subscriber::new(extension, subscription, url));
        {
            let mut shared = self.shared();
            let existing = shared
                .subscribers
                .iter()
                .position(|s| s.extension == extension);
            match existing {
                Some(i) if shared.subscribers[i].subscription.api != api => {
                    return Err(format!(
                        "extension {extension} is already subscribed to the {}; an extension subscribes to the Telemetry API or the Logs API, not both",
                        shared.subscribers[i].subscription.api.name()
                    ));
                }
                Some(i) => shared.subscribers.remove(i).stop(),
                None => {
                    for record in shared.backlog.iter().flatten() {
                        subscriber.offer(record);
                    }
                }
            }
            // Under the same lock as `set_sandbox`: an address found meanwhile applies.
            subscriber.retarget(*self.sandbox.lock().unwrap_or_else(|e| e.into_inner()));
            shared.subscribers.push(subscriber.clone());
        }
        subscriber.start(
            self.me.clone(),
            self.client.clone(),
            self.retry,
            self.delivered.clone(),
        );
        self.emit(record::subscription(
            api.subscription_record_type(),
            extension,
            &type_names,
        ));
        Ok(())
    }

    /// Init is over: no more subscriptions, so the replay backlog goes.
    pub(crate) fn subscriptions_closed(&self) {
        self.shared().backlog = None;
    }

    /// A platform record (built with the [`record`] constructors).
    pub(crate) fn emit(&self, record: Record) {
        self.emit_except(record, None);
    }

    /// `emit`, skipping one subscriber (a `platform.logsDropped` about its own drops goes
    /// to it through its own buffer).
    fn emit_except(&self, record: Record, except: Option<&Arc<Subscriber>>) {
        {
            let mut shared = self.shared();
            for subscriber in &shared.subscribers {
                if except.is_none_or(|e| !Arc::ptr_eq(e, subscriber)) {
                    subscriber.offer(&record);
                }
            }
            if let Some(backlog) = shared.backlog.as_mut()
                && backlog.len() < BACKLOG_CAPACITY
            {
                backlog.push(record.clone());
            }
        }
        self.feed.push(record);
    }

    /// Output the runtime wrote (raw bytes: several lines, or part of one): one `function`
    /// record per line.
    pub(crate) fn function_output(&self, bytes: &[u8]) {
        let lines = {
            let mut pending = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            split_lines(&mut pending.function, bytes)
        };
        for line in lines {
            self.emit(record::function_line(line));
        }
    }

    /// Output the extension `extension` wrote: one `extension` record per line.
    pub(crate) fn extension_output(&self, extension: &str, bytes: &[u8]) {
        let lines = {
            let mut pending = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            let partial = pending.extensions.entry(extension.to_string()).or_default();
            split_lines(partial, bytes)
        };
        for line in lines {
            self.emit(record::extension_line(line));
        }
    }

    /// Partial lines still waiting for their newline become records now.
    fn flush_lines(&self) {
        let (function, extensions) = {
            let mut pending = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            let function = std::mem::take(&mut pending.function);
            let extensions: Vec<Vec<u8>> = pending
                .extensions
                .values_mut()
                .map(std::mem::take)
                .collect();
            (function, extensions)
        };
        if let Some(line) = finish_line(&function) {
            self.emit(record::function_line(line));
        }
        for partial in extensions {
            if let Some(line) = finish_line(&partial) {
                self.emit(record::extension_line(line));
            }
        }
    }

    /// Sends every subscriber's buffer now (partial lines included) and waits, at most
    /// `budget`, until all of it is delivered or dropped — before SHUTDOWN and before a
    /// freeze, so that nothing is posted to a frozen listener.
    pub(crate) async fn flush(&self, budget: Duration) {
        self.flush_lines();
        let subscribers = self.shared().subscribers.clone();
        if subscribers.is_empty() {
            return;
        }
        for subscriber in &subscribers {
            subscriber.request_flush();
        }
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            // Register before checking, so a batch finishing in between is not missed.
            let delivered = self.delivered.notified();
            tokio::pin!(delivered);
            delivered.as_mut().enable();
            if subscribers.iter().all(|s| s.is_drained()) {
                return;
            }
            if tokio::time::timeout_at(deadline, delivered).await.is_err() {
                return;
            }
        }
    }

    /// True when an extension subscribed (delivery then precedes a freeze).
    pub(crate) fn has_subscribers(&self) -> bool {
        !self.shared().subscribers.is_empty()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        for subscriber in &self.shared().subscribers {
            subscriber.stop();
        }
    }
}

/// Appends `bytes` to `partial` and returns the lines completed (without `\n` / `\r\n`;
/// empty lines are skipped). A partial line reaching [`MAX_LINE`] is cut there.
fn split_lines(partial: &mut Vec<u8>, bytes: &[u8]) -> Vec<String> {
    partial.extend_from_slice(bytes);
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, byte) in partial.iter().enumerate() {
        if *byte == b'\n' {
            lines.extend(finish_line(&partial[start..i]));
            start = i + 1;
        } else if i + 1 - start == MAX_LINE {
            lines.extend(finish_line(&partial[start..=i]));
            start = i + 1;
        }
    }
    partial.drain(..start);
    lines
}

fn finish_line(bytes: &[u8]) -> Option<String> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests;
