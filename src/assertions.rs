//! Assertions on what the platform did, in the crate's style: each failure message shows
//! the function's event timeline, so a test that fails says why.

use std::time::Duration;

use crate::emulator::FunctionHandle;
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
