//! What the platform did: an event timeline per emulator and counters derived from it.
//!
//! Every environment and invocation transition is recorded as an [`Event`]; [`Stats`] are
//! folded from the same events, so counters and timeline can never disagree.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::request_id::RequestId;

/// Events a timeline keeps by default; older ones are dropped, counters stay exact
/// (`EmulatorBuilder::history_limit` changes it).
pub(crate) const TIMELINE_CAPACITY: usize = 100_000;

/// Why an execution environment was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum EvictionReason {
    /// Idle longer than the idle TTL.
    IdleTimeout,
    /// Its deploy (code, configuration or layers) was replaced; retired once free.
    StaleDeploy,
    /// Found dead or unreachable before an invocation was sent to it.
    Unreachable,
    /// Evicted on request (`evict`, `evict_all`).
    Explicit,
    /// Reset after an invocation timed out.
    Timeout,
    /// Reset after its runtime exited (crash, `os._exit`, init failure).
    RuntimeExited,
    /// Its runtime could not be started.
    LaunchFailed,
    /// Its function was deleted.
    FunctionDeleted,
    /// The emulator shut down.
    Shutdown,
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvocationResult {
    /// The runtime answered with `/response`.
    Success,
    /// A function error (`X-Amz-Function-Error: Unhandled`) of this `errorType`.
    Error(String),
    /// `Sandbox.Timedout`.
    Timeout,
}

/// One thing the platform did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// A new execution environment is starting (cold start begins).
    EnvironmentLaunched {
        /// Environment id.
        environment: String,
    },
    /// Its runtime called `/next` for the first time: init is done.
    EnvironmentReady {
        /// Environment id.
        environment: String,
        /// Launch to first `/next`.
        init_duration: Duration,
    },
    /// It finished an invocation and waits for the next.
    EnvironmentIdle {
        /// Environment id.
        environment: String,
    },
    /// The platform removed it.
    EnvironmentEvicted {
        /// Environment id.
        environment: String,
        /// Why.
        reason: EvictionReason,
    },
    /// Its runtime exited on its own.
    EnvironmentDead {
        /// Environment id.
        environment: String,
        /// E.g. `exit status 3`.
        reason: String,
    },
    /// An invocation was handed to an environment.
    InvocationStarted {
        /// Environment id.
        environment: String,
        /// Request id.
        request_id: String,
        /// Whether the environment was launched for it.
        cold_start: bool,
    },
    /// An invocation ended.
    InvocationEnded {
        /// Environment id.
        environment: String,
        /// Request id.
        request_id: String,
        /// How it ended.
        result: InvocationResult,
    },
    /// The extension phase of an invocation ended: every extension subscribed to
    /// `INVOKE` called next again after the runtime's answer (Lambda's
    /// `PostRuntimeExtensionsDuration`).
    ExtensionPhaseEnded {
        /// Environment id.
        environment: String,
        /// Request id.
        request_id: String,
        /// From the runtime's answer to the last extension's next.
        duration: Duration,
    },
    /// An invoke was refused by reserved concurrency (`TooManyRequestsException`).
    Throttled {
        /// The reserved concurrency in force.
        limit: u32,
    },
    /// The function was deployed to run on another language version than its runtime names
    /// (the opt-in nearest-version fallback, e.g. `LAMBDA_TESTKIT_PYTHON_FALLBACK=nearest`).
    RuntimeFallback {
        /// The runtime it declares, e.g. `python3.12`.
        runtime: String,
        /// What runs it instead, e.g. `Python 3.13.0 (/path/to/python3.13, from pyenv)`.
        runs: String,
    },
}

/// A timestamped event of one function.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event {
    /// Time since the emulator started.
    pub at: Duration,
    /// The function it concerns.
    pub function: Arc<str>,
    /// What happened.
    pub kind: EventKind,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>10.3} ms  {}  ",
            self.at.as_secs_f64() * 1000.0,
            self.function
        )?;
        match &self.kind {
            EventKind::EnvironmentLaunched { environment } => write!(f, "{environment} launched"),
            EventKind::EnvironmentReady {
                environment,
                init_duration,
            } => {
                write!(
                    f,
                    "{environment} ready (init {:.2} ms)",
                    init_duration.as_secs_f64() * 1000.0
                )
            }
            EventKind::EnvironmentIdle { environment } => write!(f, "{environment} idle"),
            EventKind::EnvironmentEvicted {
                environment,
                reason,
            } => write!(f, "{environment} evicted ({reason:?})"),
            EventKind::EnvironmentDead {
                environment,
                reason,
            } => write!(f, "{environment} dead ({reason})"),
            EventKind::InvocationStarted {
                environment,
                request_id,
                cold_start,
            } => {
                write!(
                    f,
                    "{environment} busy: invocation {request_id} started{}",
                    if *cold_start { " (cold)" } else { "" }
                )
            }
            EventKind::InvocationEnded {
                environment,
                request_id,
                result,
            } => {
                write!(f, "{environment} invocation {request_id} ended: {result:?}")
            }
            EventKind::ExtensionPhaseEnded {
                environment,
                request_id,
                duration,
            } => write!(
                f,
                "{environment} invocation {request_id} extension phase ended ({:.2} ms after the runtime's answer)",
                duration.as_secs_f64() * 1000.0
            ),
            EventKind::Throttled { limit } => write!(f, "throttled (reserved concurrency {limit})"),
            EventKind::RuntimeFallback { runtime, runs } => {
                write!(
                    f,
                    "deployed: {runtime} runs on {runs} (nearest-version fallback)"
                )
            }
        }
    }
}

/// Counters for one function or a whole emulator.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Invocations started.
    pub invocations: u64,
    /// Invocations that launched a new execution environment.
    pub cold_starts: u64,
    /// Invocations served by an already running environment.
    pub warm_starts: u64,
    /// Invocations that ended in a function error (timeouts included).
    pub errors: u64,
    /// Invocations that hit the function timeout.
    pub timeouts: u64,
    /// Invokes refused by reserved concurrency.
    pub throttles: u64,
    /// Most invocations running at the same moment.
    pub peak_concurrency: u64,
    /// Invocations running now.
    pub running: u64,
    /// Execution environments alive now (starting, idle or busy).
    pub environments: u64,
    /// Environments launched in total.
    pub environments_launched: u64,
    /// Init durations of environments that became ready, in launch order.
    pub init_durations: Vec<Duration>,
    /// Extension phases (runtime's answer to the last `INVOKE` subscriber's next), in
    /// the order they ended (Lambda's `PostRuntimeExtensionsDuration`).
    pub extension_phases: Vec<Duration>,
    /// Environments removed, by reason.
    pub evictions: BTreeMap<EvictionReason, u64>,
    /// Set when a deploy runs the function on another language version than its runtime
    /// names (the opt-in nearest-version fallback): the runtime and what runs it, e.g.
    /// `python3.12 on Python 3.13.0 (/path/to/python3.13, from pyenv)`. The latest such
    /// deploy's.
    pub runtime_fallback: Option<String>,
}

impl Stats {
    fn apply(&mut self, kind: &EventKind) {
        match kind {
            EventKind::EnvironmentLaunched { .. } => {
                self.environments += 1;
                self.environments_launched += 1;
            }
            EventKind::EnvironmentReady { init_duration, .. } => {
                self.init_durations.push(*init_duration)
            }
            EventKind::EnvironmentEvicted { reason, .. } => {
                self.environments = self.environments.saturating_sub(1);
                *self.evictions.entry(*reason).or_default() += 1;
            }
            EventKind::InvocationStarted { cold_start, .. } => {
                self.invocations += 1;
                if *cold_start {
                    self.cold_starts += 1;
                } else {
                    self.warm_starts += 1;
                }
                self.running += 1;
                self.peak_concurrency = self.peak_concurrency.max(self.running);
            }
            EventKind::InvocationEnded { result, .. } => {
                self.running = self.running.saturating_sub(1);
                match result {
                    InvocationResult::Success => {}
                    InvocationResult::Error(_) => self.errors += 1,
                    InvocationResult::Timeout => {
                        self.errors += 1;
                        self.timeouts += 1;
                    }
                }
            }
            EventKind::Throttled { .. } => self.throttles += 1,
            EventKind::ExtensionPhaseEnded { duration, .. } => {
                self.extension_phases.push(*duration)
            }
            EventKind::RuntimeFallback { runtime, runs } => {
                self.runtime_fallback = Some(format!("{runtime} on {runs}"))
            }
            EventKind::EnvironmentIdle { .. } | EventKind::EnvironmentDead { .. } => {}
        }
    }

    /// Evictions recorded for `reason`.
    pub fn evictions_for(&self, reason: EvictionReason) -> u64 {
        self.evictions.get(&reason).copied().unwrap_or(0)
    }
}

/// A wait that did not see its condition in time; carries the stats and timeline then.
#[derive(Debug, thiserror::Error)]
#[error(
    "timed out after {waited:?} waiting for {what} on `{function}`; stats: {stats:?}\ntimeline:\n{timeline}"
)]
#[non_exhaustive]
pub struct WaitTimeout {
    /// The function waited on.
    pub function: String,
    /// What was awaited.
    pub what: String,
    /// How long it waited.
    pub waited: Duration,
    /// The function's stats at the timeout.
    pub stats: Stats,
    /// The function's timeline at the timeout.
    pub timeline: String,
}

#[derive(Default)]
struct Inner {
    events: VecDeque<Kept>,
    dropped: u64,
    total: Stats,
    per_function: FxHashMap<Arc<str>, Stats>,
    /// The ids of live environments, shared by their kept events.
    environments: FxHashSet<Arc<str>>,
}

/// An event as the timeline keeps it. The three every invoke records keep no string of
/// their own: the environment id is shared with that environment's other events and the
/// request id is inline (see [`crate::request_id`]): 112 bytes in the queue's buffer,
/// where a kept [`Event`] was 104 plus one or two small allocations (~80 bytes).
struct Kept {
    at: Duration,
    function: Arc<str>,
    kind: KeptKind,
}

enum KeptKind {
    Started {
        environment: Arc<str>,
        request_id: RequestId,
        cold_start: bool,
    },
    Ended {
        environment: Arc<str>,
        request_id: RequestId,
        result: InvocationResult,
    },
    Idle {
        environment: Arc<str>,
    },
    Other(EventKind),
}

impl Inner {
    /// `kind` as kept, its environment id shared with the environment's earlier events.
    fn keep(&mut self, kind: EventKind) -> KeptKind {
        match kind {
            EventKind::InvocationStarted {
                environment,
                request_id,
                cold_start,
            } => KeptKind::Started {
                environment: self.environment(environment),
                request_id: request_id.as_str().into(),
                cold_start,
            },
            EventKind::InvocationEnded {
                environment,
                request_id,
                result,
            } => KeptKind::Ended {
                environment: self.environment(environment),
                request_id: request_id.as_str().into(),
                result,
            },
            EventKind::EnvironmentIdle { environment } => KeptKind::Idle {
                environment: self.environment(environment),
            },
            EventKind::EnvironmentEvicted {
                ref environment, ..
            }
            | EventKind::EnvironmentDead {
                ref environment, ..
            } => {
                // It records no more invokes; its kept events hold the id on their own.
                self.environments.remove(environment.as_str());
                KeptKind::Other(kind)
            }
            other => KeptKind::Other(other),
        }
    }

    fn environment(&mut self, id: String) -> Arc<str> {
        match self.environments.get(id.as_str()) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = id.into();
                self.environments.insert(shared.clone());
                shared
            }
        }
    }
}

impl Kept {
    /// The public form, with strings of its own.
    fn event(&self) -> Event {
        let kind = match &self.kind {
            KeptKind::Started {
                environment,
                request_id,
                cold_start,
            } => EventKind::InvocationStarted {
                environment: environment.to_string(),
                request_id: request_id.as_str().to_string(),
                cold_start: *cold_start,
            },
            KeptKind::Ended {
                environment,
                request_id,
                result,
            } => EventKind::InvocationEnded {
                environment: environment.to_string(),
                request_id: request_id.as_str().to_string(),
                result: result.clone(),
            },
            KeptKind::Idle { environment } => EventKind::EnvironmentIdle {
                environment: environment.to_string(),
            },
            KeptKind::Other(kind) => kind.clone(),
        };
        Event {
            at: self.at,
            function: self.function.clone(),
            kind,
        }
    }
}

/// All events of one emulator.
pub(crate) struct Timeline {
    start: Instant,
    /// Events kept; older ones are dropped (and counted).
    capacity: usize,
    inner: Mutex<Inner>,
    /// Woken after every event (and pool change), for event-driven waits.
    changed: tokio::sync::Notify,
}

impl Timeline {
    #[cfg(test)]
    pub(crate) fn new() -> Arc<Timeline> {
        Timeline::with_capacity(TIMELINE_CAPACITY)
    }

    /// A timeline keeping the last `capacity` events (at least one).
    pub(crate) fn with_capacity(capacity: usize) -> Arc<Timeline> {
        Arc::new(Timeline {
            start: Instant::now(),
            capacity: capacity.max(1),
            inner: Mutex::default(),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// Waits until `done()` holds or `timeout` passes; returns whether it held. Registers
    /// for the wake-up *before* checking, so no change between check and wait is lost.
    pub(crate) async fn wait_until(
        &self,
        timeout: std::time::Duration,
        done: impl Fn() -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return done();
            }
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn recorder(self: &Arc<Self>, function: &str) -> Recorder {
        Recorder {
            timeline: self.clone(),
            function: Arc::from(function),
        }
    }

    /// Counters for `function`, or for the whole emulator when `None`.
    pub(crate) fn stats(&self, function: Option<&str>) -> Stats {
        let inner = self.inner();
        match function {
            Some(f) => inner.per_function.get(f).cloned().unwrap_or_default(),
            None => inner.total.clone(),
        }
    }

    /// Events kept so far, oldest first, for `function` or all.
    pub(crate) fn events(&self, function: Option<&str>) -> Vec<Event> {
        let inner = self.inner();
        inner
            .events
            .iter()
            .filter(|e| function.is_none_or(|f| &*e.function == f))
            .map(Kept::event)
            .collect()
    }

    /// The kept events as text, one per line, for assertion messages.
    pub(crate) fn render(&self, function: Option<&str>) -> String {
        let dropped = self.inner().dropped;
        let mut out = String::new();
        if dropped > 0 {
            out.push_str(&format!("({dropped} older events dropped)\n"));
        }
        for e in self.events(function) {
            out.push_str(&format!("{e}\n"));
        }
        out
    }
}

/// Records events for one function.
#[derive(Clone)]
pub(crate) struct Recorder {
    timeline: Arc<Timeline>,
    function: Arc<str>,
}

impl Recorder {
    /// The history limit of this recorder's timeline (events kept).
    pub(crate) fn history_limit(&self) -> usize {
        self.timeline.capacity
    }

    /// [`Timeline::wait_until`] on this recorder's timeline: woken by every event.
    pub(crate) async fn wait_until(
        &self,
        timeout: std::time::Duration,
        done: impl Fn() -> bool,
    ) -> bool {
        self.timeline.wait_until(timeout, done).await
    }

    pub(crate) fn record(&self, kind: EventKind) {
        let at = self.timeline.start.elapsed();
        {
            let mut inner = self.timeline.inner();
            inner.total.apply(&kind);
            // Looked up by `&str` first: no clone of the name's `Arc` once it is there.
            match inner.per_function.get_mut(&*self.function) {
                Some(stats) => stats.apply(&kind),
                None => inner
                    .per_function
                    .entry(self.function.clone())
                    .or_default()
                    .apply(&kind),
            }
            if inner.events.len() >= self.timeline.capacity {
                inner.events.pop_front();
                inner.dropped += 1;
            }
            let kind = inner.keep(kind);
            inner.events.push_back(Kept {
                at,
                function: self.function.clone(),
                kind,
            });
        }
        self.timeline.changed.notify_waiters();
    }

    /// Wakes waiters after a change that is not an event (e.g. an invoke leaving the pool).
    pub(crate) fn notify(&self) {
        self.timeline.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_concurrency_counts_overlapping_invocations() {
        let timeline = Timeline::new();
        let r = timeline.recorder("f");
        let start = |id: &str| EventKind::InvocationStarted {
            environment: "e".into(),
            request_id: id.into(),
            cold_start: false,
        };
        let end = |id: &str| EventKind::InvocationEnded {
            environment: "e".into(),
            request_id: id.into(),
            result: InvocationResult::Success,
        };
        r.record(start("a"));
        r.record(start("b"));
        r.record(end("a"));
        r.record(start("c"));
        r.record(end("b"));
        r.record(end("c"));
        let s = timeline.stats(Some("f"));
        assert_eq!((s.invocations, s.peak_concurrency, s.running), (3, 2, 0));
        assert_eq!(timeline.stats(None), s);
        assert!(timeline.render(Some("f")).contains("invocation b started"));
    }

    #[test]
    fn kept_events_come_back_as_recorded_and_share_environment_ids() {
        let timeline = Timeline::new();
        let r = timeline.recorder("f");
        let recorded = vec![
            EventKind::EnvironmentLaunched {
                environment: "f-env-1".into(),
            },
            EventKind::InvocationStarted {
                environment: "f-env-1".into(),
                request_id: "0b6e4c1e-2d3f-4a5b-8c9d-0e1f2a3b4c5d".into(),
                cold_start: true,
            },
            EventKind::InvocationEnded {
                environment: "f-env-1".into(),
                request_id: "0b6e4c1e-2d3f-4a5b-8c9d-0e1f2a3b4c5d".into(),
                result: InvocationResult::Error("Oops".into()),
            },
            EventKind::EnvironmentIdle {
                environment: "f-env-1".into(),
            },
            EventKind::InvocationStarted {
                environment: "f-env-1".into(),
                request_id: "not-a-uuid".into(),
                cold_start: false,
            },
        ];
        for kind in recorded.clone() {
            r.record(kind);
        }
        {
            let inner = timeline.inner();
            assert_eq!(inner.environments.len(), 1, "one id for the environment");
            let shared: Vec<_> = inner
                .events
                .iter()
                .filter_map(|e| match &e.kind {
                    KeptKind::Started { environment, .. }
                    | KeptKind::Ended { environment, .. }
                    | KeptKind::Idle { environment } => Some(environment.clone()),
                    KeptKind::Other(_) => None,
                })
                .collect();
            assert!(shared.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
        }
        r.record(EventKind::EnvironmentEvicted {
            environment: "f-env-1".into(),
            reason: EvictionReason::Explicit,
        });
        assert!(
            timeline.inner().environments.is_empty(),
            "forgotten once evicted"
        );
        let kinds: Vec<EventKind> = timeline
            .events(Some("f"))
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds[..recorded.len()], recorded[..]);
        assert_eq!(kinds.len(), recorded.len() + 1);
    }

    #[test]
    fn a_nearest_version_fallback_shows_in_stats_and_the_timeline() {
        let timeline = Timeline::new();
        let r = timeline.recorder("old");
        assert_eq!(timeline.stats(Some("old")).runtime_fallback, None);
        r.record(EventKind::RuntimeFallback {
            runtime: "python3.9".into(),
            runs: "Python 3.10.13 (/v/bin/python, from LAMBDA_TESTKIT_PYTHON_3_10)".into(),
        });
        assert_eq!(
            timeline.stats(Some("old")).runtime_fallback.as_deref(),
            Some("python3.9 on Python 3.10.13 (/v/bin/python, from LAMBDA_TESTKIT_PYTHON_3_10)")
        );
        assert!(
            timeline
                .render(Some("old"))
                .contains("deployed: python3.9 runs on Python 3.10.13")
        );
    }
}
