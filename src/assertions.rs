//! Assertions on what the platform did, in the crate's style: each failure message shows
//! the function's event timeline (a durable execution's: its operations and history), so
//! a test that fails says why.

use std::time::Duration;

use crate::durable::model::{OperationStatus, OperationType};
use crate::emulator::{DurableExecution, FunctionHandle};
use crate::stats::{EvictionReason, Stats, WaitTimeout};

impl FunctionHandle {
    #[track_caller]
    fn check(&self, ok: impl FnOnce(&Stats) -> bool, expectation: String) {
        let stats = self.stats();
        if !ok(&stats) {
            panic!(
                "`{}`: expected {expectation}\nstats: {stats:?}\ntimeline:\n{}",
                self.name,
                self.timeline_text()
            );
        }
    }

    /// Panics unless exactly `n` invocations started a new execution environment.
    #[track_caller]
    pub fn assert_cold_starts(&self, n: u64) {
        self.check(|s| s.cold_starts == n, format!("exactly {n} cold starts"));
    }

    /// Panics unless exactly `n` invocations ran.
    #[track_caller]
    pub fn assert_invocations(&self, n: u64) {
        self.check(|s| s.invocations == n, format!("exactly {n} invocations"));
    }

    /// Panics if more than `n` invocations ever ran at the same moment.
    #[track_caller]
    pub fn assert_peak_concurrency_at_most(&self, n: u64) {
        self.check(
            |s| s.peak_concurrency <= n,
            format!("peak concurrency at most {n}"),
        );
    }

    /// Panics unless exactly `n` environments were evicted for `reason`.
    #[track_caller]
    pub fn assert_evictions(&self, reason: EvictionReason, n: u64) {
        self.check(
            |s| s.evictions_for(reason) == n,
            format!("exactly {n} evictions for {reason:?}"),
        );
    }

    /// Panics unless exactly `n` invokes were throttled by reserved concurrency.
    #[track_caller]
    pub fn assert_throttles(&self, n: u64) {
        self.check(|s| s.throttles == n, format!("exactly {n} throttles"));
    }

    /// Waits (event-driven, no polling) until `condition` holds for this function's stats.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&Stats) -> bool,
    ) -> Result<Stats, WaitTimeout> {
        let held = self
            .core
            .timeline
            .wait_until(timeout, || condition(&self.stats()))
            .await;
        let stats = self.stats();
        if held {
            return Ok(stats);
        }
        Err(WaitTimeout {
            function: self.name.clone(),
            what: what.to_string(),
            waited: timeout,
            stats,
            timeline: self.timeline_text(),
        })
    }

    /// Waits until no invocation of this function is running, launching or queued.
    pub async fn wait_until_idle(&self, timeout: Duration) -> Result<(), WaitTimeout> {
        let admitted = || {
            self.core
                .function(&self.name)
                .map(|pool| pool.admitted())
                .unwrap_or(0)
        };
        if self
            .core
            .timeline
            .wait_until(timeout, || admitted() == 0)
            .await
        {
            return Ok(());
        }
        Err(WaitTimeout {
            function: self.name.clone(),
            what: "no invocation in flight".to_string(),
            waited: timeout,
            stats: self.stats(),
            timeline: self.timeline_text(),
        })
    }
}

impl DurableExecution {
    /// What a failed durable assertion prints: status, invocations, every operation
    /// (type, name, status, result or error) and the history's event types.
    fn report(&self) -> String {
        let Ok(info) = self.info() else {
            return format!("durable execution {} no longer exists", self.arn());
        };
        let mut out = format!(
            "durable execution {}: {}, {} invocation(s)\noperations:\n",
            info.arn,
            info.status.as_str(),
            info.invocations
        );
        for op in self.operations().unwrap_or_default() {
            let outcome = match (op.result(), op.error()) {
                (Some(result), _) => format!(" -> {result}"),
                (None, Some(error)) => format!(
                    " !! {}: {}",
                    error.error_type.as_deref().unwrap_or(""),
                    error.error_message.as_deref().unwrap_or("")
                ),
                (None, None) => String::new(),
            };
            out += &format!(
                "  {:<14} {:<24} {}{outcome}\n",
                op.kind.as_str(),
                op.name.as_deref().unwrap_or(&op.id),
                op.status.as_str()
            );
        }
        let events: Vec<_> = self
            .history()
            .unwrap_or_default()
            .into_iter()
            .map(|e| match e.details.pointer("/Error/Payload/ErrorType") {
                // An invocation that failed outside the durable protocol says why.
                Some(error) => format!("{}({})", e.event_type, error.as_str().unwrap_or("")),
                None => e.event_type.to_string(),
            })
            .collect();
        out + &format!("history: {}", events.join(", "))
    }

    /// Panics unless the handler was invoked exactly `n` times for this execution (the
    /// first invocation and `n - 1` replays; see [`DurableExecution::invocations`]).
    #[track_caller]
    pub fn assert_invocations(&self, n: u32) {
        if self.invocations().ok() != Some(n) {
            panic!("expected exactly {n} invocations\n{}", self.report());
        }
    }

    /// Panics unless the operations of `kind` are exactly `expected`, as `(name,
    /// status)` in checkpoint order (see [`DurableExecution::operation_summary`]):
    /// `execution.assert_operations(OperationType::Step, &[("add", SUCCEEDED)])`.
    #[track_caller]
    pub fn assert_operations(&self, kind: OperationType, expected: &[(&str, OperationStatus)]) {
        let actual = self.operation_summary(kind).unwrap_or_default();
        let matches = actual.len() == expected.len()
            && actual
                .iter()
                .zip(expected)
                .all(|((name, status), (want, want_status))| name == want && status == want_status);
        if !matches {
            panic!(
                "expected the {} operations {expected:?}, found {actual:?}\n{}",
                kind.as_str(),
                self.report()
            );
        }
    }
}
