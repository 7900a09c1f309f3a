//! The runtime-facing side of one execution environment: the [`Lifecycle`] machine under
//! one lock, with the channels its transitions act on (the parked `/next`, the caller
//! waiting for its answer, the stream sink). The Runtime API handlers, the exit watcher
//! and the caller-facing [`super::Environment`] all go through here; this file performs
//! the I/O a transition asks for and nothing else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::lifecycle::{Dispatch, Effects, Lifecycle, Next, Refusal};
use super::log;
use super::runtime_api::Connections;
use super::telemetry::{Telemetry, record};
use crate::backend::{Instance, OutputSink};
use crate::invoke::FunctionError;
use crate::invoke::stream::StreamSink;
use crate::stats::{EventKind, Recorder};

mod extensions;
mod shutdown;

pub(crate) use shutdown::Shutdowns;

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
    /// Told when the invocation's phase ends (after its extension phase, if any).
    release: Option<oneshot::Sender<()>>,
    /// The invocation the runtime took, while extensions may still need its `INVOKE`.
    current: Option<Delivery>,
    /// When the runtime took the invocation in flight.
    delivered_at: Option<Instant>,
    /// Counts thaws: a freeze decided before one must not land after it.
    freeze_epoch: u64,
    /// Whether the invocation in flight started this environment.
    cold_start: bool,
    /// From dispatch until the invocation's log is framed: a freeze waits for that (a
    /// container's output fence needs it running).
    framing: bool,
    /// A freeze came while framing: done once framed, unless a thaw came first.
    freeze_deferred: bool,
    /// The last invocation the runtime answered.
    answered: Option<Answered>,
    /// Extensions parked in `/extension/event/next`, by identifier.
    extensions_parked: HashMap<String, oneshot::Sender<Bytes>>,
    /// Starts the runtime once every external extension has registered.
    runtime_gate: Option<oneshot::Sender<()>>,
}

/// What an environment starts with.
pub(crate) struct Setup {
    pub(crate) id: String,
    pub(crate) timeout: Duration,
    pub(crate) output: Arc<OutputSink>,
    pub(crate) recorder: Recorder,
    pub(crate) info: FunctionInfo,
    /// The external extensions' file names; with any, the runtime starts only when
    /// `runtime_gate` fires.
    pub(crate) external: Vec<String>,
    pub(crate) runtime_gate: Option<oneshot::Sender<()>>,
    /// Freeze between invocations.
    pub(crate) freeze: bool,
    pub(crate) telemetry: Arc<Telemetry>,
    pub(crate) shutdowns: Shutdowns,
    /// `initializationType` of the init records.
    pub(crate) init_type: record::InitType,
}

/// What an extension's register response says about the function.
#[derive(Debug, Clone, Default)]
pub(crate) struct FunctionInfo {
    pub(crate) function_name: String,
    pub(crate) function_version: String,
    pub(crate) handler: String,
    pub(crate) account_id: String,
    /// `MemorySize` in MB (for `platform.report`).
    pub(crate) memory_mb: u32,
}

/// How the runtime answered the invocation last answered here: what its
/// `platform.report` (emitted when the invocation's phase ends) and `REPORT` line say.
#[derive(Debug, Clone)]
struct Answered {
    request_id: String,
    status: record::Status,
    error_type: Option<String>,
    /// Delivery to answer.
    duration: Duration,
    max_memory_used_mb: Option<u64>,
    cold_start: bool,
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
    info: FunctionInfo,
    /// Woken when an extension exits (a shutdown waits for them).
    extension_exits: tokio::sync::Notify,
    /// Freeze between invocations.
    freeze: bool,
    /// The Telemetry API of this environment.
    pub(crate) telemetry: Arc<Telemetry>,
    /// The Runtime API listener's task, aborted at termination.
    server: OnceLock<tokio::task::AbortHandle>,
    shutdowns: Shutdowns,
    init_type: record::InitType,
    /// This state, for work that outlives a call (a freeze after a telemetry flush).
    me: std::sync::Weak<EnvironmentState>,
}

impl EnvironmentState {
    pub(crate) fn new(setup: Setup) -> Arc<EnvironmentState> {
        Arc::new_cyclic(|me| EnvironmentState {
            me: me.clone(),
            server: OnceLock::new(),
            id: setup.id,
            timeout: setup.timeout,
            launched_at: Instant::now(),
            slot: Mutex::new(Slot {
                lifecycle: Lifecycle::new(setup.external),
                parked: None,
                caller: None,
                init_duration: None,
                release: None,
                current: None,
                delivered_at: None,
                freeze_epoch: 0,
                cold_start: false,
                framing: false,
                freeze_deferred: false,
                answered: None,
                extensions_parked: HashMap::new(),
                runtime_gate: setup.runtime_gate,
            }),
            output: setup.output,
            instance: OnceLock::new(),
            recorder: setup.recorder,
            gone: AtomicBool::new(false),
            connections: Arc::default(),
            info: setup.info,
            extension_exits: tokio::sync::Notify::new(),
            freeze: setup.freeze,
            telemetry: setup.telemetry,
            shutdowns: setup.shutdowns,
            init_type: setup.init_type,
        })
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

    /// True once the environment was retired.
    pub(crate) fn is_retired(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }

    /// True once init failed: the environment must be replaced.
    pub(crate) fn init_failed(&self) -> bool {
        self.slot().lifecycle.init_failed()
    }

    /// The extensions init still waits for.
    pub(crate) fn awaited_extensions(&self) -> Vec<String> {
        self.slot().lifecycle.awaited_extensions()
    }

    /// How long init took, once it ended.
    pub(crate) fn init_duration(&self) -> Option<Duration> {
        self.slot().init_duration
    }

    /// `GET /runtime/invocation/next`: the next invocation, waiting as long as it takes.
    pub(crate) async fn next(&self) -> Result<Delivery, Refusal> {
        // The first `/next` may end init: let init output arrive so it precedes `START`.
        if self.slot().init_duration.is_none() {
            self.output.settle().await;
        }
        let parked = {
            let mut slot = self.slot();
            let next = slot.lifecycle.next()?;
            let effects = slot.lifecycle.take_effects();
            let result = match next {
                Next::Deliver { .. } => {
                    let caller = slot.caller.as_mut().expect("an invocation is in flight");
                    let delivery = caller.delivery.take().expect("not yet delivered");
                    Ok(self.delivered(&mut slot, delivery))
                }
                Next::Wait => {
                    let (tx, rx) = oneshot::channel();
                    slot.parked = Some(tx);
                    Err(rx)
                }
            };
            self.apply(&mut slot, effects);
            match result {
                Ok(delivery) => return Ok(delivery),
                Err(rx) => rx,
            }
        };
        parked.await.map_err(|_| Refusal::Gone)
    }

    /// Performs what a transition asks for, with the slot locked.
    fn apply(&self, slot: &mut Slot, effects: Effects) {
        if effects.init_ended && slot.init_duration.is_none() {
            let init = self.launched_at.elapsed();
            slot.init_duration = Some(init);
            self.recorder.record(EventKind::EnvironmentReady {
                environment: self.id.clone(),
                init_duration: init,
            });
            let (on_demand, init_phase) = (self.init_type, record::InitPhase::Init);
            self.telemetry.emit(record::init_runtime_done(
                on_demand,
                init_phase,
                record::Status::Success,
                None,
            ));
            self.telemetry
                .emit(record::init_report(on_demand, init_phase, init));
            self.telemetry.subscriptions_closed();
        }
        if effects.start_runtime
            && let Some(gate) = slot.runtime_gate.take()
        {
            let _ = gate.send(());
        }
        if effects.deliver {
            self.hand_to_runtime(slot);
        }
        for (id, event) in effects.events {
            let body = self.event_body(slot, event);
            if let Some(parked) = slot.extensions_parked.remove(&id) {
                let _ = parked.send(body);
            }
        }
        if let Some(instance) = self.instance.get() {
            if effects.thaw {
                slot.freeze_epoch += 1;
                slot.freeze_deferred = false;
                // Started now; completion is awaited only by [`Self::thaw`].
                drop(instance.thaw());
            }
            if effects.freeze && self.freeze {
                if slot.framing {
                    slot.freeze_deferred = true;
                } else {
                    self.freeze(slot, instance.as_ref());
                }
            }
        }
        if effects.released {
            self.report(slot);
        }
        if effects.released
            && let Some(release) = slot.release.take()
        {
            slot.current = None;
            let _ = release.send(());
        }
    }

    /// The invocation's log is framed: a freeze that waited for it happens now.
    pub(crate) fn framed(&self) {
        let mut slot = self.slot();
        slot.framing = false;
        if std::mem::take(&mut slot.freeze_deferred)
            && let Some(instance) = self.instance.get()
        {
            self.freeze(&slot, instance.as_ref());
        }
    }

    /// `platform.report` of the invocation whose phase just ended (before the environment
    /// may freeze, so subscribers get it first).
    fn report(&self, slot: &Slot) {
        let Some(answered) = &slot.answered else {
            return;
        };
        let init_duration = answered.cold_start.then_some(slot.init_duration).flatten();
        let billed = (answered.duration + init_duration.unwrap_or_default()).as_secs_f64() * 1000.0;
        self.telemetry.emit(record::report(record::Report {
            request_id: answered.request_id.as_str().into(),
            status: answered.status,
            error_type: answered.error_type.clone(),
            duration: answered.duration,
            billed_duration_ms: billed.ceil().max(1.0) as u64,
            memory_size_mb: u64::from(self.info.memory_mb),
            max_memory_used_mb: answered
                .max_memory_used_mb
                .unwrap_or(0)
                .min(u64::from(self.info.memory_mb)),
            init_duration,
        }));
    }

    /// The peak memory measured when the runtime answered `request_id`: `Some` when it
    /// did (its `platform.report` is the state's to emit), `None` otherwise.
    pub(crate) fn answered(&self, request_id: &str) -> Option<Option<u64>> {
        let slot = self.slot();
        slot.answered
            .as_ref()
            .filter(|a| a.request_id == request_id)
            .map(|a| a.max_memory_used_mb)
    }

    /// Hands the queued invocation to the runtime parked in `/next`; a `/next` that went
    /// away gets nothing, and the invocation waits for the runtime's next `/next`.
    fn hand_to_runtime(&self, slot: &mut Slot) {
        let parked = slot.parked.take();
        let Some(delivery) = slot.caller.as_mut().and_then(|c| c.delivery.take()) else {
            return;
        };
        let delivery = self.delivered(slot, delivery);
        let returned = match parked {
            Some(parked) => parked.send(delivery).err(),
            None => Some(delivery),
        };
        if let Some(delivery) = returned {
            slot.lifecycle.delivery_returned();
            if let Some(caller) = slot.caller.as_mut() {
                caller.delivery = Some(delivery);
            }
        }
    }

    /// The runtime takes `delivery`: its deadline starts now (init time is not charged
    /// to the function's timeout, as in Lambda), `START` is logged, the caller is told.
    fn delivered(&self, slot: &mut Slot, mut delivery: Delivery) -> Delivery {
        delivery.deadline_ms = epoch_ms(SystemTime::now() + self.timeout) as u128;
        if slot.lifecycle.has_extensions() {
            slot.current = Some(delivery.clone());
        }
        let caller = slot.caller.as_mut().expect("an invocation is in flight");
        let cold_start = caller.cold_start;
        // Once per invocation: a delivery handed back by a vanished `/next` is not
        // started again when the next `/next` takes it.
        if let Some(delivered) = caller.delivered.take() {
            slot.delivered_at = Some(Instant::now());
            slot.cold_start = cold_start;
            self.telemetry.emit(record::start(
                &delivery.request_id,
                &self.info.function_version,
            ));
            self.flush_output();
            self.output
                .fill(|buf| log::start(buf, &delivery.request_id, &self.info.function_version));
            self.recorder.record(EventKind::InvocationStarted {
                environment: self.id.clone(),
                request_id: delivery.request_id.clone(),
                cold_start,
            });
            let _ = delivered.send(Instant::now());
        }
        delivery
    }

    /// Hands the environment one invocation (the pool guarantees one at a time);
    /// `release` is told when the invocation's phase ends.
    pub(crate) fn dispatch(
        &self,
        delivery: Delivery,
        mut caller: Caller,
        release: oneshot::Sender<()>,
    ) {
        let mut slot = self.slot();
        match slot.lifecycle.dispatch(&delivery.request_id) {
            Dispatch::NotDelivered => {
                let _ = caller.reply.send(Outcome::NotDelivered);
            }
            Dispatch::InitFailed(error) => {
                let _ = caller.reply.send(Outcome::Error(error));
            }
            dispatch => {
                caller.delivery = Some(delivery);
                slot.caller = Some(caller);
                slot.release = Some(release);
                slot.framing = true;
                let mut effects = slot.lifecycle.take_effects();
                // The runtime is parked: hand it over first, then the extensions' INVOKE.
                effects.deliver = dispatch == Dispatch::Deliver;
                self.apply(&mut slot, effects);
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
        let (status, error_type, produced_bytes) = match &outcome {
            Outcome::Response(bytes) => (record::Status::Success, None, bytes.len() as u64),
            Outcome::Error(e) => (record::Status::Error, Some(e.error_type.clone()), 0),
            _ => (record::Status::Failure, None, 0),
        };
        let duration = slot.delivered_at.map(|t| t.elapsed()).unwrap_or_default();
        self.telemetry
            .emit(record::runtime_done(record::RuntimeDone {
                request_id: request_id.into(),
                status,
                error_type: error_type.clone(),
                duration,
                produced_bytes,
                response_latency: None,
                response_duration: None,
            }));
        slot.answered = Some(Answered {
            request_id: request_id.to_string(),
            status,
            error_type,
            duration,
            max_memory_used_mb: self.instance.get().and_then(|i| i.max_memory_used_mb()),
            cold_start: slot.cold_start,
        });
        if let Some(caller) = slot.caller.take() {
            let _ = caller.reply.send(outcome);
        }
        let effects = slot.lifecycle.take_effects();
        self.apply(&mut slot, effects);
        Ok(())
    }

    /// `/init/error`: served as the result of the invocation that triggered init, and of
    /// any later one.
    pub(crate) fn init_error(&self, error: FunctionError) -> Result<(), Refusal> {
        let mut slot = self.slot();
        let failed = slot.lifecycle.init_error(error)?;
        self.fail_with_init_error(&mut slot, failed);
        Ok(())
    }

    fn fail_with_init_error(&self, slot: &mut Slot, failed: Option<String>) {
        if let Some(request_id) = failed {
            let error = slot
                .lifecycle
                .init_error_for(&request_id)
                .expect("just set");
            if let Some(caller) = slot.caller.take() {
                let _ = caller.reply.send(Outcome::Error(error));
            }
        }
    }
}

/// `t` as milliseconds since the Unix epoch.
fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
