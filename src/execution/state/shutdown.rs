//! How an environment ends, and its freezes between invocations: the runtime's exit, an
//! abandoned invocation, retirement, Lambda's shutdown phase (SIGTERM, `SHUTDOWN`, the
//! budget, SIGKILL), termination; freeze and thaw with their telemetry flush and epoch.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{EnvironmentState, Outcome, Slot};
use crate::backend::Instance;
use crate::execution::lifecycle::extensions::ShutdownReason;
use crate::execution::lifecycle::{Effects, Exit};
use crate::invoke::FunctionError;
use crate::stats::EventKind;

impl EnvironmentState {
    /// The runtime exited: fail what it was doing and never hand it work again; with
    /// extensions, they get `SHUTDOWN` (reason `failure`) first.
    pub(crate) fn exited(self: &Arc<Self>, reason: String) {
        let mut slot = self.slot();
        slot.parked = None;
        let exit = slot.lifecycle.exited();
        let caller = slot.caller.take();
        drop(slot);
        if let Some(caller) = caller {
            let outcome = match exit {
                Exit::NotDelivered(_) => Outcome::NotDelivered,
                Exit::Failed(request_id) => Outcome::Error(FunctionError::platform(
                    "Runtime.ExitError",
                    format!("RequestId: {request_id} Error: Runtime exited with error: {reason}"),
                    &request_id,
                )),
                Exit::Idle => Outcome::NotDelivered,
            };
            let _ = caller.reply.send(outcome);
        }
        if !self.gone.load(Ordering::SeqCst) {
            self.recorder.record(EventKind::EnvironmentDead {
                environment: self.id.clone(),
                reason,
            });
        }
        self.shut_down(ShutdownReason::Failure);
    }

    /// The caller gave up on `request_id` (deadline, init limit): the runtime's state is
    /// unknown, so the environment ends here (`SHUTDOWN` reason `timeout`).
    pub(crate) fn abandon(self: &Arc<Self>, request_id: &str) {
        {
            let mut slot = self.slot();
            slot.lifecycle.abandon(request_id);
            slot.parked = None;
            slot.caller = None;
            slot.release = None;
        }
        self.shut_down(ShutdownReason::Timeout);
    }

    /// Retires the environment; returns false if it was already retired. A busy
    /// invocation is ended by the runtime's exit, which the termination causes.
    /// `graceful`: extensions get `SHUTDOWN` (reason `spindown`) and their budget first;
    /// otherwise everything is killed now (a dropped emulator).
    pub(crate) fn retire(self: &Arc<Self>, graceful: bool) -> bool {
        let first = !self.gone.swap(true, Ordering::SeqCst);
        {
            let mut slot = self.slot();
            slot.lifecycle.retire();
            slot.parked = None;
        }
        if graceful {
            self.shut_down(ShutdownReason::Spindown);
        } else {
            {
                let mut slot = self.slot();
                slot.lifecycle.shutdown(ShutdownReason::Spindown);
                let effects = slot.lifecycle.take_effects();
                self.apply(
                    &mut slot,
                    Effects {
                        events: Vec::new(),
                        ..effects
                    },
                );
            }
            self.terminate();
        }
        first
    }

    /// Shuts the environment down once: without extensions the runtime is killed at once;
    /// with them the runtime gets SIGTERM, the `SHUTDOWN` subscribers their event, and
    /// everything is killed when they have exited or the budget (500 / 2,000 ms) is spent.
    pub(super) fn shut_down(self: &Arc<Self>, reason: ShutdownReason) {
        let (budget, events) = {
            let mut slot = self.slot();
            let Some(budget) = slot.lifecycle.shutdown(reason) else {
                return;
            };
            slot.parked = None;
            let mut effects = slot.lifecycle.take_effects();
            // SHUTDOWN follows the telemetry flush below.
            let events = std::mem::take(&mut effects.events);
            self.apply(&mut slot, effects);
            (budget, events)
        };
        if budget == 0 || tokio::runtime::Handle::try_current().is_err() {
            self.terminate();
            return;
        }
        let state = self.clone();
        let guard = self.shutdowns.begin();
        tokio::spawn(async move {
            let _guard = guard;
            let deadline = Instant::now() + Duration::from_millis(budget);
            // What subscribers are owed arrives before SHUTDOWN, within a share of the
            // budget.
            state
                .telemetry
                .flush(Duration::from_millis(budget / 4))
                .await;
            {
                let mut slot = state.slot();
                state.apply(
                    &mut slot,
                    Effects {
                        events,
                        ..Effects::default()
                    },
                );
            }
            if let Some(instance) = state.instance.get() {
                instance.interrupt();
            }
            loop {
                let mut exits = std::pin::pin!(state.extension_exits.notified());
                exits.as_mut().enable();
                if !state.slot().lifecycle.shutdown_pending() {
                    break;
                }
                if tokio::time::timeout_at(deadline.into(), exits)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            state.terminate();
        });
    }

    /// The Runtime API listener's task (aborted when the environment is terminated).
    pub(crate) fn set_server(&self, server: tokio::task::AbortHandle) {
        let _ = self.server.set(server);
    }

    pub(super) fn terminate(&self) {
        if let Some(instance) = self.instance.get() {
            instance.terminate();
        }
        if let Some(server) = self.server.get() {
            server.abort();
        }
    }

    /// Freezes the environment; with telemetry subscribers, once what they are owed is
    /// delivered (nothing is posted to a frozen listener), unless a thaw came first.
    pub(super) fn freeze(&self, slot: &Slot, instance: &dyn Instance) {
        if !self.telemetry.has_subscribers() {
            instance.freeze();
            return;
        }
        let (Some(state), epoch) = (self.me.upgrade(), slot.freeze_epoch) else {
            return;
        };
        tokio::spawn(async move {
            state.telemetry.flush(TELEMETRY_FLUSH).await;
            let slot = state.slot();
            if slot.freeze_epoch == epoch
                && let Some(instance) = state.instance.get()
            {
                instance.freeze();
            }
        });
    }

    /// Thaws a frozen environment and waits until it runs again (a container's unpause
    /// takes a round trip to the daemon); called before dispatching to it.
    pub(crate) async fn thaw(&self) {
        let was_frozen = {
            let mut slot = self.slot();
            let was = slot.lifecycle.thaw();
            let mut effects = slot.lifecycle.take_effects();
            effects.thaw = false;
            slot.freeze_epoch += 1;
            self.apply(&mut slot, effects);
            was
        };
        if was_frozen
            && self.freeze
            && let Some(instance) = self.instance.get()
        {
            instance.thaw().await;
        }
    }
}

/// The graceful shutdowns in flight across an emulator's environments, so that
/// `Emulator::shutdown` can wait for their extensions' `SHUTDOWN` to play out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shutdowns(Arc<(std::sync::atomic::AtomicUsize, tokio::sync::Notify)>);

/// One graceful shutdown in flight; done when dropped.
struct ShutdownGuard(Shutdowns);

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        let (count, done) = &*(self.0).0;
        if count.fetch_sub(1, Ordering::SeqCst) == 1 {
            done.notify_waiters();
        }
    }
}

impl Shutdowns {
    fn begin(&self) -> ShutdownGuard {
        self.0.0.fetch_add(1, Ordering::SeqCst);
        ShutdownGuard(self.clone())
    }

    /// Waits until no graceful shutdown is in flight.
    pub(crate) async fn finished(&self) {
        loop {
            let (count, done) = &*self.0;
            let mut notified = std::pin::pin!(done.notified());
            notified.as_mut().enable();
            if count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Longest wait for telemetry delivery before a freeze.
const TELEMETRY_FLUSH: Duration = Duration::from_millis(200);
