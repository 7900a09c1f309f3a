//! The runtime-facing side of one execution environment: the [`Lifecycle`] machine under
//! one lock, with the channels its transitions act on (the parked `/next`, the caller
//! waiting for its answer, the stream sink). The Runtime API handlers, the exit watcher
//! and the caller-facing [`super::Environment`] all go through here; this file performs
//! the I/O a transition asks for and nothing else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::lifecycle::{Dispatch, Exit, Lifecycle, Next, Refusal};
use super::log;
use super::runtime_api::Connections;
use crate::backend::{Instance, OutputSink};
use crate::invoke::FunctionError;
use crate::invoke::stream::StreamSink;
use crate::stats::{EventKind, Recorder};

/// An invocation as the runtime receives it from `/next`.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) request_id: String,
    pub(crate) payload: Bytes,
    /// `Lambda-Runtime-Deadline-Ms`, set when the runtime takes the invocation.
    pub(crate) deadline_ms: u128,
    pub(crate) function_arn: String,
    pub(crate) trace_id: String,
    pub(crate) client_context: Option<String>,
}

/// How an invocation ended, from the environment's point of view.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// `/response` with these bytes.
    Response(Bytes),
    /// `/error`, `/init/error`, or a platform error (exit, size).
    Error(FunctionError),
    /// The deadline passed; the environment has been terminated.
    Timeout,
    /// The environment died before the runtime took the invocation: safe to retry elsewhere.
    NotDelivered,
}

/// The caller's end of the invocation in flight.
pub(crate) struct Caller {
    pub(crate) cold_start: bool,
    /// Where the outcome goes.
    pub(crate) reply: oneshot::Sender<Outcome>,
    /// Told the moment the runtime takes the invocation.
    pub(crate) delivered: Option<oneshot::Sender<Instant>>,
    /// Where a streamed response goes, for a streaming invoke.
    pub(crate) stream: Option<StreamSink>,
    /// The invocation, until the runtime takes it.
    pub(crate) delivery: Option<Delivery>,
}

struct Slot {
    lifecycle: Lifecycle,
    /// The runtime's parked `/next` call.
    parked: Option<oneshot::Sender<Delivery>>,
    caller: Option<Caller>,
    init_duration: Option<Duration>,
}

/// The part of an environment the Runtime API handlers and the exit watcher share.
pub(crate) struct EnvironmentState {
    pub(crate) id: String,
    pub(crate) timeout: Duration,
    launched_at: Instant,
    slot: Mutex<Slot>,
    pub(crate) output: Arc<OutputSink>,
    pub(crate) instance: OnceLock<Box<dyn Instance>>,
    pub(crate) recorder: Recorder,
    /// Set once the environment's end was recorded (retired), so its exit is not.
    gone: AtomicBool,
    /// The Runtime API's open connections (to acknowledge streamed chunks at once).
    pub(crate) connections: Arc<Connections>,
}

impl EnvironmentState {
    pub(crate) fn new(
        id: String,
        timeout: Duration,
        output: Arc<OutputSink>,
        recorder: Recorder,
    ) -> EnvironmentState {
        EnvironmentState {
            id,
            timeout,
            launched_at: Instant::now(),
            slot: Mutex::new(Slot {
                lifecycle: Lifecycle::default(),
                parked: None,
                caller: None,
                init_duration: None,
            }),
            output,
            instance: OnceLock::new(),
            recorder,
            gone: AtomicBool::new(false),
            connections: Arc::default(),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn flush_output(&self) {
        if let Some(instance) = self.instance.get() {
            instance.flush_output();
        }
    }

    /// True once the environment has exited, timed out or been retired.
    pub(crate) fn is_dead(&self) -> bool {
        self.slot().lifecycle.is_dead()
    }

    /// True once init failed: the environment must be replaced.
    pub(crate) fn init_failed(&self) -> bool {
        self.slot().lifecycle.init_failed()
    }

    /// How long init took, once it ended.
    pub(crate) fn init_duration(&self) -> Option<Duration> {
        self.slot().init_duration
    }

    /// `GET /runtime/invocation/next`: the next invocation, waiting as long as it takes.
    pub(crate) async fn next(&self) -> Result<Delivery, Refusal> {
        // The first `/next` ends init: let init output arrive so it precedes `START`.
        let ends_init = self.slot().init_duration.is_none();
        let init = ends_init.then(|| self.launched_at.elapsed());
        if ends_init {
            self.output.settle().await;
        }
        let parked = {
            let mut slot = self.slot();
            let next = slot.lifecycle.next()?;
            if let Next::Deliver {
                init_ended: true, ..
            }
            | Next::Wait { init_ended: true } = next
            {
                let init = init.unwrap_or_else(|| self.launched_at.elapsed());
                slot.init_duration = Some(init);
                self.recorder.record(EventKind::EnvironmentReady {
                    environment: self.id.clone(),
                    init_duration: init,
                });
            }
            match next {
                Next::Deliver { .. } => {
                    let caller = slot.caller.as_mut().expect("an invocation is in flight");
                    let delivery = caller.delivery.take().expect("not yet delivered");
                    return Ok(self.delivered(caller, delivery));
                }
                Next::Wait { .. } => {
                    let (tx, rx) = oneshot::channel();
                    slot.parked = Some(tx);
                    rx
                }
            }
        };
        parked.await.map_err(|_| Refusal::Gone)
    }

    /// The runtime takes `delivery`: its deadline starts now (init time is not charged
    /// to the function's timeout, as in Lambda), `START` is logged, the caller is told.
    fn delivered(&self, caller: &mut Caller, mut delivery: Delivery) -> Delivery {
        let now = SystemTime::now();
        delivery.deadline_ms = now
            .checked_add(self.timeout)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis())
            .unwrap_or_default();
        // Once per invocation: a delivery handed back by a vanished `/next` is not
        // started again when the next `/next` takes it.
        if let Some(delivered) = caller.delivered.take() {
            self.flush_output();
            self.output
                .fill(|buf| log::start(buf, &delivery.request_id));
            self.recorder.record(EventKind::InvocationStarted {
                environment: self.id.clone(),
                request_id: delivery.request_id.clone(),
                cold_start: caller.cold_start,
            });
            let _ = delivered.send(Instant::now());
        }
        delivery
    }

    /// Hands the environment one invocation (the pool guarantees one at a time).
    pub(crate) fn dispatch(&self, delivery: Delivery, mut caller: Caller) {
        let mut slot = self.slot();
        match slot.lifecycle.dispatch(&delivery.request_id) {
            Dispatch::NotDelivered => {
                let _ = caller.reply.send(Outcome::NotDelivered);
            }
            Dispatch::InitFailed(error) => {
                let _ = caller.reply.send(Outcome::Error(error));
            }
            Dispatch::Queued => {
                caller.delivery = Some(delivery);
                slot.caller = Some(caller);
            }
            Dispatch::Deliver => {
                let parked = slot.parked.take();
                // A `/next` that went away gets nothing: the invocation waits for the
                // runtime's next `/next` instead.
                let delivery = self.delivered(&mut caller, delivery);
                let returned = match parked {
                    Some(parked) => parked.send(delivery).err(),
                    None => Some(delivery),
                };
                if let Some(delivery) = returned {
                    slot.lifecycle.delivery_returned();
                    caller.delivery = Some(delivery);
                }
                slot.caller = Some(caller);
            }
        }
    }

    /// Checks that `request_id` may be answered now (before reading a body).
    pub(crate) fn check(&self, request_id: &str) -> Result<(), Refusal> {
        self.slot().lifecycle.check(request_id)
    }

    /// A streamed `/response` begins: where its frames go (`None` for a plain invoke,
    /// which collects them into one payload).
    pub(crate) fn take_stream(&self, request_id: &str) -> Result<Option<StreamSink>, Refusal> {
        let mut slot = self.slot();
        slot.lifecycle.check(request_id)?;
        Ok(slot.caller.as_mut().and_then(|c| c.stream.take()))
    }

    /// `/response`, `/error`: ends the invocation `request_id` with `outcome`.
    pub(crate) fn complete(&self, request_id: &str, outcome: Outcome) -> Result<(), Refusal> {
        let mut slot = self.slot();
        slot.lifecycle.answer(request_id)?;
        if let Some(caller) = slot.caller.take() {
            let _ = caller.reply.send(outcome);
        }
        Ok(())
    }

    /// `/init/error`: served as the result of the invocation that triggered init, and of
    /// any later one.
    pub(crate) fn init_error(&self, error: FunctionError) -> Result<(), Refusal> {
        let mut slot = self.slot();
        if let Some(request_id) = slot.lifecycle.init_error(error)? {
            let error = slot
                .lifecycle
                .init_error_for(&request_id)
                .expect("just set");
            if let Some(caller) = slot.caller.take() {
                let _ = caller.reply.send(Outcome::Error(error));
            }
        }
        Ok(())
    }

    /// The runtime exited: fail what it was doing and never hand it work again.
    pub(crate) fn exited(&self, reason: String) {
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
    }

    /// The caller gave up on `request_id` (deadline, init limit): the runtime's state is
    /// unknown, so the environment ends here.
    pub(crate) fn abandon(&self, request_id: &str) {
        {
            let mut slot = self.slot();
            slot.lifecycle.abandon(request_id);
            slot.parked = None;
            slot.caller = None;
        }
        self.terminate();
    }

    /// Retires the environment; returns false if it was already retired. A busy
    /// invocation is ended by the runtime's exit, which the termination causes.
    pub(crate) fn retire(&self) -> bool {
        let first = !self.gone.swap(true, Ordering::SeqCst);
        {
            let mut slot = self.slot();
            slot.lifecycle.retire();
            slot.parked = None;
        }
        self.terminate();
        first
    }

    fn terminate(&self) {
        if let Some(instance) = self.instance.get() {
            instance.terminate();
        }
    }
}
