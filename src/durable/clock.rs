//! The emulator's clock: what durable timers (a WAIT's end, a STEP's retry delay, a
//! CALLBACK's timeout and heartbeat timeout, `DurableConfig.ExecutionTimeout`) are
//! measured against, so a test need not sleep through a one-hour wait.
//!
//! Real time by default (what `lambda-testkit serve` uses). A test can move it forward
//! ([`Clock::advance`]), freeze it ([`Clock::freeze`]) or let it skip ahead on its own
//! ([`Clock::auto_advance`]: whenever a timer is waited for, the clock jumps to it, like
//! `dex-local-runner --skip-time`). Waiters register for changes before they read the
//! time, so an advance never slips between a check and a wait.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// A shared clock; clones see the same time.
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Bumped on every change (advance, freeze, auto-advance), waking waiters.
    changes: watch::Sender<u64>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    /// `None`: real time plus `offset`. `Some(t)`: frozen at `t` (plus nothing).
    frozen: Option<SystemTime>,
    offset: Duration,
    auto_advance: bool,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::real()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("now", &self.now())
            .field("state", &*self.state())
            .finish()
    }
}

impl Clock {
    /// Real time (advances still add to it).
    pub fn real() -> Clock {
        Clock::with(State {
            frozen: None,
            offset: Duration::ZERO,
            auto_advance: false,
        })
    }

    /// A clock stopped at `at`: it moves only by [`Clock::advance`] (or auto-advance).
    pub fn frozen_at(at: SystemTime) -> Clock {
        Clock::with(State {
            frozen: Some(at),
            offset: Duration::ZERO,
            auto_advance: false,
        })
    }

    fn with(state: State) -> Clock {
        Clock {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                changes: watch::channel(0).0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The current time on this clock.
    pub fn now(&self) -> SystemTime {
        let state = *self.state();
        state.frozen.unwrap_or_else(SystemTime::now) + state.offset
    }

    /// Moves the clock forward by `by`; timers that are now due fire.
    pub fn advance(&self, by: Duration) {
        self.state().offset += by;
        self.changed();
    }

    /// Stops the clock where it is now; from then on only [`Clock::advance`] moves it.
    pub fn freeze(&self) {
        {
            let mut state = self.state();
            let now = state.frozen.unwrap_or_else(SystemTime::now) + state.offset;
            state.frozen = Some(now);
            state.offset = Duration::ZERO;
        }
        self.changed();
    }

    /// With `on`, a timer the workflow set (a WAIT, a STEP's retry delay) fires the moment
    /// it is waited for and moves the clock to its time (durations stay exact, nothing
    /// sleeps); timeouts that wait for the outside world (callbacks, `ExecutionTimeout`)
    /// still need the clock to get there. Off by default.
    pub fn auto_advance(&self, on: bool) {
        self.state().auto_advance = on;
        self.changed();
    }

    /// Whether auto-advance is on.
    pub fn is_auto_advance(&self) -> bool {
        self.state().auto_advance
    }

    /// Moves the clock to `to` if it is earlier (auto-advance's jump).
    fn jump_to(&self, to: SystemTime) {
        {
            let mut state = self.state();
            let now = state.frozen.unwrap_or_else(SystemTime::now) + state.offset;
            if let Ok(gap) = to.duration_since(now) {
                state.offset += gap;
            }
        }
        self.changed();
    }

    /// A timer the workflow set (a wait, a retry delay): like [`Clock::sleep_until`], but
    /// with auto-advance it fires at once and moves the clock to `deadline`.
    pub async fn timer(&self, deadline: SystemTime) {
        self.wait_for(deadline, true).await
    }

    /// Resolves once this clock reads `deadline` or later: at the real instant on a real
    /// clock, when an advance (or another timer's auto-advance) reaches it on a frozen one.
    /// Never moves the clock itself.
    pub async fn sleep_until(&self, deadline: SystemTime) {
        self.wait_for(deadline, false).await
    }

    async fn wait_for(&self, deadline: SystemTime, skippable: bool) {
        let mut changes = self.inner.changes.subscribe();
        loop {
            changes.borrow_and_update();
            let now = self.now();
            let Ok(remaining) = deadline.duration_since(now) else {
                return;
            };
            if remaining.is_zero() {
                return;
            }
            let (frozen, auto) = {
                let s = self.state();
                (s.frozen.is_some(), s.auto_advance)
            };
            if auto && skippable {
                self.jump_to(deadline);
                return;
            }
            if frozen {
                let _ = changes.changed().await;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(remaining) => {}
                    _ = changes.changed() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let clock = Clock::frozen_at(T0 + Duration::from_secs(100));
        assert_eq!(clock.now(), T0 + Duration::from_secs(100));
        clock.advance(Duration::from_secs(3600));
        assert_eq!(clock.now(), T0 + Duration::from_secs(3700));
        assert_eq!(clock.clone().now(), clock.now());
    }

    #[test]
    fn a_real_clock_adds_advances_to_real_time() {
        let clock = Clock::real();
        clock.advance(Duration::from_secs(86_400));
        let ahead = clock.now().duration_since(SystemTime::now()).unwrap();
        assert!(ahead > Duration::from_secs(86_000), "{ahead:?}");
        clock.freeze();
        let frozen = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), frozen);
    }

    #[tokio::test]
    async fn a_sleeper_wakes_when_an_advance_reaches_its_deadline() {
        let clock = Clock::frozen_at(T0);
        let deadline = T0 + Duration::from_secs(3600);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(deadline).await }
        });
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(1800));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke half-way");
        clock.advance(Duration::from_secs(1800));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woke at the deadline")
            .unwrap();
    }

    #[tokio::test]
    async fn auto_advance_jumps_to_the_deadline_at_once() {
        let clock = Clock::frozen_at(T0);
        clock.auto_advance(true);
        let deadline = T0 + Duration::from_secs(7 * 86_400);
        tokio::time::timeout(Duration::from_secs(1), clock.timer(deadline))
            .await
            .expect("no real waiting");
        assert_eq!(clock.now(), deadline);
        // A deadline in the past does not move the clock back.
        clock.timer(T0).await;
        assert_eq!(clock.now(), deadline);
        // A timeout is not skipped to.
        let later = deadline + Duration::from_secs(60);
        let waited =
            tokio::time::timeout(Duration::from_millis(50), clock.sleep_until(later)).await;
        assert!(waited.is_err(), "sleep_until never moves the clock");
        assert_eq!(clock.now(), deadline);
    }

    #[tokio::test]
    async fn a_real_clock_sleeps_real_time() {
        let clock = Clock::real();
        let start = std::time::Instant::now();
        clock
            .sleep_until(clock.now() + Duration::from_millis(30))
            .await;
        assert!(start.elapsed() >= Duration::from_millis(25));
    }
}
