//! One execution environment, as the pool and the invoker see it: a runtime (process or
//! container) launched on a backend, its own Runtime API listener, and the invocation
//! it is running. The lifecycle itself is [`super::lifecycle`]; this file launches,
//! enforces the init limit and the function timeout, and frames each invocation's log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::log::ReportLine;
use super::state::{Caller, Delivery, EnvironmentState, Outcome};
use super::variables::{self, Platform};
use crate::backend::{Backend, LaunchSpec, OutputSink};
use crate::deploy::Deployment;
use crate::error::BackendError;
use crate::invoke::InvokeRequest;
use crate::stats::{EventKind, EvictionReason, InvocationResult};

/// Lambda's init phase limit for on-demand functions.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

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
    state: Arc<EnvironmentState>,
    pub(crate) deployment: Arc<Deployment>,
    server: JoinHandle<()>,
    invocations: AtomicU64,
    /// Set by an explicit eviction of a busy environment: retire it once free.
    retiring: AtomicBool,
    last_used: Mutex<Instant>,
}

impl Environment {
    /// Binds a Runtime API listener and starts the runtime on `backend`.
    pub(crate) async fn launch(
        backend: &dyn Backend,
        deployment: Arc<Deployment>,
        id: String,
        platform: &Platform,
        recorder: crate::stats::Recorder,
    ) -> Result<Arc<Environment>, BackendError> {
        let listener = std::net::TcpListener::bind(SocketAddr::new(backend.bind_addr(), 0))
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(BackendError::Listener)?;
        let addr = listener.local_addr().map_err(BackendError::Listener)?;
        let output = Arc::new(OutputSink::default());
        let state = Arc::new(EnvironmentState::new(
            id.clone(),
            deployment.config.timeout,
            output.clone(),
            recorder.clone(),
        ));
        recorder.record(EventKind::EnvironmentLaunched {
            environment: id.clone(),
        });
        let server = tokio::spawn(super::runtime_api::serve(listener, state.clone()));

        let view = backend.view(addr, &deployment);
        let vars = variables::build(
            &deployment.config,
            &view,
            platform,
            &variables::log_stream_name(),
        );
        let weak: Weak<EnvironmentState> = Arc::downgrade(&state);
        let spec = LaunchSpec {
            environment_id: id,
            deployment: deployment.clone(),
            view,
            variables: vars,
            output,
            on_exit: Box::new(move |reason| {
                if let Some(state) = weak.upgrade() {
                    state.exited(reason);
                }
            }),
        };
        let instance = match backend.launch(spec).await {
            Ok(instance) => instance,
            Err(e) => {
                server.abort();
                state.retire();
                recorder.record(EventKind::EnvironmentEvicted {
                    environment: state.id.clone(),
                    reason: EvictionReason::LaunchFailed,
                });
                return Err(e);
            }
        };
        let _ = state.instance.set(instance);
        Ok(Arc::new(Environment {
            state,
            deployment,
            server,
            invocations: AtomicU64::new(0),
            retiring: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
        }))
    }

    /// The environment's id, e.g. `greeter-env-3`.
    pub(crate) fn id(&self) -> &str {
        &self.state.id
    }

    /// The runtime's OS process id, when it has one on this host.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.state.instance.get().and_then(|i| i.pid())
    }

    /// True once the runtime has exited or been terminated.
    pub(crate) fn is_dead(&self) -> bool {
        self.state.is_dead()
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
            function_arn: self.deployment.config.arn.clone(),
            trace_id: request.trace_id.clone().unwrap_or_else(trace_id),
            client_context: request.client_context.clone(),
        };
        self.state.dispatch(
            delivery,
            Caller {
                cold_start,
                reply: reply_tx,
                delivered: Some(delivered_tx),
                stream: request.response_stream.clone(),
                delivery: None,
            },
        );

        let waited_since = Instant::now();
        let timeout = self.state.timeout;
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
            self.state.abandon(&request_id);
            Outcome::Timeout
        });
        let duration = started
            .map(|s| s.elapsed())
            .unwrap_or_else(|| waited_since.elapsed());
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        // Output written before the answer must precede `END` (a no-op for pipes).
        self.state.output.settle().await;
        let log = self.frame_log(&request_id, &outcome, duration, cold_start);
        self.record_end(&request_id, &outcome, started.is_some(), cold_start);
        let evict = match outcome {
            Outcome::Timeout => Some(EvictionReason::Timeout),
            _ if self.state.is_dead() || self.state.init_failed() => {
                Some(EvictionReason::RuntimeExited)
            }
            _ => None,
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
        let recorder = &self.state.recorder;
        let environment = self.state.id.clone();
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

    fn frame_log(
        &self,
        request_id: &str,
        outcome: &Outcome,
        duration: Duration,
        cold_start: bool,
    ) -> String {
        self.state.flush_output();
        let report = ReportLine {
            request_id,
            duration,
            memory_mb: self.deployment.config.memory_mb,
            max_memory_used_mb: self
                .state
                .instance
                .get()
                .and_then(|i| i.max_memory_used_mb()),
            init_duration: cold_start.then(|| self.state.init_duration()).flatten(),
            timed_out: matches!(outcome, Outcome::Timeout).then_some(self.state.timeout),
        };
        let bytes = self.state.output.fill(|buf| {
            report.write_end(buf);
            std::mem::take(buf)
        });
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Retires the environment: records why and terminates the runtime. Idempotent.
    pub(crate) fn retire(&self, reason: EvictionReason) {
        if self.state.retire() {
            self.state.recorder.record(EventKind::EnvironmentEvicted {
                environment: self.state.id.clone(),
                reason,
            });
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.retire(EvictionReason::Shutdown);
        self.server.abort();
    }
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
