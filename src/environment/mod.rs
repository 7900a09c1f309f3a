//! One execution environment: a runtime (process or container), its own Runtime API
//! listener, and the state of the invocation it is handling.
//!
//! State machine: `Starting` (launched, no `/next` yet) → `Ready` (polled `/next` at least
//! once; idle or busy as the pool hands it invocations) → `Dead` (exited, timed out or
//! terminated). One invocation at a time, as in Lambda.

mod log;
pub(crate) mod variables;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backend::{Backend, BackendError, Instance, LaunchSpec, OutputSink};
use crate::deploy::Deployment;
use crate::invoke::{FunctionError, InvokeRequest};
use crate::stats::{EventKind, EvictionReason, InvocationResult, Recorder};
use crate::stream::StreamSink;
pub(crate) use log::ReportLine;

/// Lambda's init phase limit for on-demand functions.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// An invocation as the runtime receives it from `/next`.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) request_id: String,
    pub(crate) payload: Bytes,
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

/// Why a Runtime API call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No invocation with this id is in flight here.
    UnknownRequest,
    /// The invocation was already answered.
    AlreadyAnswered,
    /// The environment is shutting down.
    Gone,
}

struct InFlight {
    request_id: String,
    cold_start: bool,
    reply: Option<oneshot::Sender<Outcome>>,
    /// Told the moment the runtime takes the invocation.
    delivered: Option<oneshot::Sender<Instant>>,
    /// Where a streamed response goes, for a streaming invoke.
    stream: Option<StreamSink>,
}

#[derive(Default)]
struct State {
    dead: bool,
    /// A `/next` call waiting for work.
    parked: Option<oneshot::Sender<Delivery>>,
    /// Dispatched but not yet taken by `/next`.
    pending: Option<Delivery>,
    current: Option<InFlight>,
    last_answered: Option<String>,
    init_duration: Option<Duration>,
    init_error: Option<FunctionError>,
}

/// The part of an environment the Runtime API handlers and the exit watcher share.
pub(crate) struct Shared {
    pub(crate) id: String,
    function_arn: String,
    timeout: Duration,
    launched_at: Instant,
    state: Mutex<State>,
    output: Arc<OutputSink>,
    instance: OnceLock<Box<dyn Instance>>,
    recorder: Recorder,
    gone: AtomicBool,
    /// The Runtime API's open connections (to acknowledge streamed chunks at once).
    pub(crate) connections: Arc<crate::runtime_api::Connections>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flush_output(&self) {
        if let Some(instance) = self.instance.get() {
            instance.flush_output();
        }
    }

    /// `GET /runtime/invocation/next`: the next invocation, waiting as long as it takes.
    pub(crate) async fn next(&self) -> Result<Delivery, Refusal> {
        // The first `/next` ends init: let init output arrive so it precedes `START`.
        let init_ended = self
            .state()
            .init_duration
            .is_none()
            .then(|| self.launched_at.elapsed());
        if init_ended.is_some() {
            self.output.settle().await;
        }
        let parked = {
            let mut st = self.state();
            if st.dead {
                return Err(Refusal::Gone);
            }
            if st.init_duration.is_none() {
                let init = init_ended.unwrap_or_else(|| self.launched_at.elapsed());
                st.init_duration = Some(init);
                self.recorder.record(EventKind::EnvironmentReady {
                    environment: self.id.clone(),
                    init_duration: init,
                });
            }
            match st.pending.take() {
                Some(delivery) => {
                    self.mark_delivered(&mut st, &delivery);
                    return Ok(delivery);
                }
                None => {
                    let (tx, rx) = oneshot::channel();
                    st.parked = Some(tx);
                    rx
                }
            }
        };
        parked.await.map_err(|_| Refusal::Gone)
    }

    /// Starts the invocation's clock: the deadline counts from delivery, not from launch,
    /// so init time is not charged to the function's timeout (as in Lambda).
    fn mark_delivered(&self, st: &mut State, delivery: &Delivery) {
        // Once per invocation: a delivery handed back by a vanished `/next` is marked
        // again when the next `/next` takes it.
        let Some(current) = st.current.as_mut() else {
            return;
        };
        let Some(delivered) = current.delivered.take() else {
            return;
        };
        self.flush_output();
        self.output
            .fill(|buf| log::start(buf, &delivery.request_id));
        self.recorder.record(EventKind::InvocationStarted {
            environment: self.id.clone(),
            request_id: current.request_id.clone(),
            cold_start: current.cold_start,
        });
        let _ = delivered.send(Instant::now());
    }

    /// `/response`, `/error`: ends the invocation `request_id` with `outcome`.
    pub(crate) fn complete(&self, request_id: &str, outcome: Outcome) -> Result<(), Refusal> {
        let mut st = self.state();
        match &st.current {
            Some(c) if c.request_id == request_id && st.pending.is_none() => {}
            _ if st.last_answered.as_deref() == Some(request_id) => {
                return Err(Refusal::AlreadyAnswered);
            }
            _ => return Err(Refusal::UnknownRequest),
        }
        let mut current = st.current.take().expect("checked above");
        st.last_answered = Some(current.request_id.clone());
        if let Some(reply) = current.reply.take() {
            let _ = reply.send(outcome);
        }
        Ok(())
    }

    /// Whether `request_id` is the invocation in flight (checked before reading a body).
    pub(crate) fn is_current(&self, request_id: &str) -> Result<(), Refusal> {
        let st = self.state();
        match &st.current {
            Some(c) if c.request_id == request_id && st.pending.is_none() => Ok(()),
            _ if st.last_answered.as_deref() == Some(request_id) => Err(Refusal::AlreadyAnswered),
            _ => Err(Refusal::UnknownRequest),
        }
    }

    /// A streamed `/response` begins: where its frames go (`None` for a plain invoke,
    /// which collects them into one payload).
    pub(crate) fn take_stream(&self, request_id: &str) -> Result<Option<StreamSink>, Refusal> {
        let mut st = self.state();
        let st = &mut *st;
        match st.current.as_mut() {
            Some(c) if c.request_id == request_id && st.pending.is_none() => Ok(c.stream.take()),
            _ if st.last_answered.as_deref() == Some(request_id) => Err(Refusal::AlreadyAnswered),
            _ => Err(Refusal::UnknownRequest),
        }
    }

    /// `/init/error`: served as the result of the invocation that triggered init.
    pub(crate) fn init_error(&self, error: FunctionError) -> Result<(), Refusal> {
        let mut st = self.state();
        if st.init_duration.is_some() {
            return Err(Refusal::AlreadyAnswered);
        }
        if let Some(mut current) = st.current.take() {
            st.pending = None;
            st.last_answered = Some(current.request_id.clone());
            let error = FunctionError {
                request_id: current.request_id.clone(),
                ..error.clone()
            };
            if let Some(reply) = current.reply.take() {
                let _ = reply.send(Outcome::Error(error));
            }
        }
        st.init_error = Some(error);
        Ok(())
    }

    /// The runtime exited: fail what it was doing and never hand it work again.
    fn exited(&self, reason: String) {
        let mut st = self.state();
        st.dead = true;
        st.parked = None;
        let initialized = st.init_duration.is_some();
        let never_delivered = st.pending.take().is_some();
        if let Some(mut current) = st.current.take() {
            let outcome = if never_delivered && initialized {
                Outcome::NotDelivered
            } else {
                Outcome::Error(FunctionError::platform(
                    "Runtime.ExitError",
                    format!(
                        "RequestId: {} Error: Runtime exited with error: {reason}",
                        current.request_id
                    ),
                    &current.request_id,
                ))
            };
            if let Some(reply) = current.reply.take() {
                let _ = reply.send(outcome);
            }
        }
        drop(st);
        if !self.gone.load(Ordering::SeqCst) {
            self.recorder.record(EventKind::EnvironmentDead {
                environment: self.id.clone(),
                reason,
            });
        }
    }
}

/// A finished invocation with its framed log.
#[derive(Debug)]
pub(crate) struct Completed {
    pub(crate) outcome: Outcome,
    pub(crate) log: String,
    pub(crate) duration: Duration,
    pub(crate) cold_start: bool,
    /// Why the environment must not serve again (timeout, exit, init failure), if so.
    pub(crate) evict: Option<EvictionReason>,
}

/// One execution environment. Dropping it terminates the runtime and the listener.
pub(crate) struct Environment {
    shared: Arc<Shared>,
    pub(crate) deployment: Arc<Deployment>,
    server: JoinHandle<()>,
    invocations: std::sync::atomic::AtomicU64,
    /// Set by an explicit eviction of a busy environment: retire it once free.
    retiring: AtomicBool,
    memory_mb: u32,
    last_used: Mutex<Instant>,
}

impl Environment {
    /// Binds a Runtime API listener and starts the runtime on `backend`.
    pub(crate) async fn launch(
        backend: &dyn Backend,
        deployment: Arc<Deployment>,
        id: String,
        platform: &variables::Platform,
        recorder: Recorder,
    ) -> Result<Arc<Environment>, BackendError> {
        let listener = std::net::TcpListener::bind(SocketAddr::new(backend.bind_addr(), 0))
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| BackendError::Listener(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BackendError::Listener(e.to_string()))?;
        let output = Arc::new(OutputSink::default());
        let shared = Arc::new(Shared {
            id: id.clone(),
            function_arn: deployment.config.arn.clone(),
            timeout: deployment.config.timeout,
            launched_at: Instant::now(),
            state: Mutex::new(State::default()),
            output: output.clone(),
            instance: OnceLock::new(),
            recorder: recorder.clone(),
            gone: AtomicBool::new(false),
            connections: Arc::default(),
        });
        recorder.record(EventKind::EnvironmentLaunched {
            environment: id.clone(),
        });
        let server = tokio::spawn(crate::runtime_api::serve(listener, shared.clone()));

        let view = backend.view(addr, &deployment);
        let vars = variables::build(
            &deployment.config,
            &view,
            platform,
            &variables::log_stream_name(),
        );
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let spec = LaunchSpec {
            environment_id: id,
            deployment: deployment.clone(),
            view,
            variables: vars,
            output,
            on_exit: Box::new(move |reason| {
                if let Some(shared) = weak.upgrade() {
                    shared.exited(reason);
                }
            }),
        };
        let instance = match backend.launch(spec).await {
            Ok(instance) => instance,
            Err(e) => {
                server.abort();
                shared.gone.store(true, Ordering::SeqCst);
                recorder.record(EventKind::EnvironmentEvicted {
                    environment: shared.id.clone(),
                    reason: EvictionReason::LaunchFailed,
                });
                return Err(e);
            }
        };
        let _ = shared.instance.set(instance);
        Ok(Arc::new(Environment {
            memory_mb: deployment.config.memory_mb,
            shared,
            deployment,
            server,
            invocations: Default::default(),
            retiring: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
        }))
    }

    /// The environment's id, e.g. `greeter-env-3`.
    pub(crate) fn id(&self) -> &str {
        &self.shared.id
    }

    /// The runtime's OS process id, when it has one on this host.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.shared.instance.get().and_then(|i| i.pid())
    }

    /// True once the runtime has exited or been terminated.
    pub(crate) fn is_dead(&self) -> bool {
        self.shared.state().dead
    }

    /// Marks the environment to be retired when its current invocation ends.
    pub(crate) fn retire_when_free(&self) {
        self.retiring.store(true, Ordering::SeqCst);
    }

    /// Whether [`Environment::retire_when_free`] was called.
    pub(crate) fn is_retiring(&self) -> bool {
        self.retiring.load(Ordering::SeqCst)
    }

    /// When the environment last finished an invocation (or launched).
    pub(crate) fn last_used(&self) -> Instant {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one invocation to its end: hands it to the runtime, enforces the init limit
    /// and the function timeout, and frames the log (`START` … `END`, `REPORT`).
    pub(crate) async fn invoke(&self, request: &InvokeRequest, request_id: String) -> Completed {
        let cold_start = self.invocations.fetch_add(1, Ordering::SeqCst) == 0;
        let (reply_tx, mut reply) = oneshot::channel();
        let (delivered_tx, mut delivered) = oneshot::channel();
        let delivery = Delivery {
            request_id: request_id.clone(),
            payload: request.payload.clone(),
            deadline_ms: 0,
            function_arn: self.shared.function_arn.clone(),
            trace_id: request.trace_id.clone().unwrap_or_else(trace_id),
            client_context: request.client_context.clone(),
        };
        self.dispatch(
            delivery,
            cold_start,
            reply_tx,
            delivered_tx,
            request.response_stream.clone(),
        );

        let waited_since = Instant::now();
        let timeout = self.shared.timeout;
        let mut started = None;
        let outcome = tokio::select! {
            biased;
            outcome = &mut reply => outcome.ok(),
            at = &mut delivered => match at {
                Ok(at) => {
                    started = Some(at);
                    tokio::select! {
                        biased;
                        outcome = &mut reply => outcome.ok(),
                        _ = tokio::time::sleep_until((at + timeout).into()) => None,
                    }
                }
                Err(_) => reply.await.ok(),
            },
            _ = tokio::time::sleep(INIT_TIMEOUT) => None,
        };
        // A fast answer can win the race with its own delivery notice.
        if started.is_none() {
            started = delivered.try_recv().ok();
        }
        // Whatever ended the wait, the invocation is over for this environment; anything
        // but an answer (deadline, lost runtime) means its state is unknown: end it.
        let outcome = outcome.unwrap_or_else(|| {
            self.abandon(&request_id);
            Outcome::Timeout
        });
        let duration = started
            .map(|s| s.elapsed())
            .unwrap_or_else(|| waited_since.elapsed());
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        // Output written before the answer must precede `END` (a no-op for pipes).
        self.shared.output.settle().await;
        let log = self.frame_log(&request_id, &outcome, duration, cold_start);
        self.record_end(&request_id, &outcome, started.is_some(), cold_start);
        let evict = {
            let st = self.shared.state();
            match outcome {
                Outcome::Timeout => Some(EvictionReason::Timeout),
                _ if st.dead || st.init_error.is_some() => Some(EvictionReason::RuntimeExited),
                _ => None,
            }
        };
        Completed {
            outcome,
            log,
            duration,
            cold_start,
            evict,
        }
    }

    /// Records the end of an invocation (and its start, when it failed before delivery,
    /// e.g. at init). An invocation that never reached the runtime is not recorded: it is
    /// retried elsewhere and counted there.
    fn record_end(&self, request_id: &str, outcome: &Outcome, delivered: bool, cold_start: bool) {
        let result = match outcome {
            Outcome::Response(_) => InvocationResult::Success,
            Outcome::Error(e) => InvocationResult::Error(e.error_type.clone()),
            Outcome::Timeout => InvocationResult::Timeout,
            Outcome::NotDelivered => return,
        };
        let recorder = &self.shared.recorder;
        let environment = self.shared.id.clone();
        if !delivered {
            recorder.record(EventKind::InvocationStarted {
                environment: environment.clone(),
                request_id: request_id.to_string(),
                cold_start,
            });
        }
        recorder.record(EventKind::InvocationEnded {
            environment,
            request_id: request_id.to_string(),
            result,
        });
    }

    fn dispatch(
        &self,
        mut delivery: Delivery,
        cold_start: bool,
        reply: oneshot::Sender<Outcome>,
        delivered: oneshot::Sender<Instant>,
        stream: Option<StreamSink>,
    ) {
        let shared = &self.shared;
        let mut st = shared.state();
        let mut current = InFlight {
            request_id: delivery.request_id.clone(),
            cold_start,
            reply: Some(reply),
            delivered: Some(delivered),
            stream,
        };
        if st.dead {
            let _ = current
                .reply
                .take()
                .expect("set")
                .send(Outcome::NotDelivered);
            return;
        }
        if let Some(error) = st.init_error.clone() {
            let error = FunctionError {
                request_id: delivery.request_id.clone(),
                ..error
            };
            let _ = current
                .reply
                .take()
                .expect("set")
                .send(Outcome::Error(error));
            return;
        }
        delivery.deadline_ms = epoch_ms(SystemTime::now() + shared.timeout);
        st.current = Some(current);
        match st.parked.take() {
            Some(parked) => {
                shared.mark_delivered(&mut st, &delivery);
                if let Err(delivery) = parked.send(delivery) {
                    // The `/next` call went away (runtime died while waiting): keep it queued.
                    st.pending = Some(delivery);
                }
            }
            None => st.pending = Some(delivery),
        }
    }

    /// Ends the in-flight invocation without an answer and terminates the runtime.
    fn abandon(&self, request_id: &str) {
        {
            let mut st = self.shared.state();
            st.dead = true;
            st.pending = None;
            st.parked = None;
            if st
                .current
                .as_ref()
                .is_some_and(|c| c.request_id == request_id)
            {
                st.current = None;
                st.last_answered = Some(request_id.to_string());
            }
        }
        self.terminate_instance();
    }

    fn frame_log(
        &self,
        request_id: &str,
        outcome: &Outcome,
        duration: Duration,
        cold_start: bool,
    ) -> String {
        self.shared.flush_output();
        let init_duration = if cold_start {
            self.shared.state().init_duration
        } else {
            None
        };
        let max_memory = self
            .shared
            .instance
            .get()
            .and_then(|i| i.max_memory_used_mb());
        let timeout = self.shared.timeout;
        let report = ReportLine {
            request_id,
            duration,
            memory_mb: self.memory_mb,
            max_memory_used_mb: max_memory,
            init_duration,
            timed_out: matches!(outcome, Outcome::Timeout).then_some(timeout),
        };
        let bytes = self.shared.output.fill(|buf| {
            report.write_end(buf);
            std::mem::take(buf)
        });
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Retires the environment: records why and terminates the runtime. Idempotent.
    pub(crate) fn retire(&self, reason: EvictionReason) {
        if !self.shared.gone.swap(true, Ordering::SeqCst) {
            self.shared.recorder.record(EventKind::EnvironmentEvicted {
                environment: self.shared.id.clone(),
                reason,
            });
        }
        self.shared.state().dead = true;
        self.terminate_instance();
    }

    fn terminate_instance(&self) {
        if let Some(instance) = self.shared.instance.get() {
            instance.terminate();
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.retire(EvictionReason::Shutdown);
        self.server.abort();
    }
}

fn epoch_ms(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// An X-Ray trace header: `Root=1-<8 hex epoch s>-<24 hex>;Parent=<16 hex>;Sampled=0`.
fn trace_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        &id[..24],
        &parent[..16]
    )
}
