//! One execution environment, as the pool and the invoker see it: a runtime (process or
//! container) launched on a backend, its own Runtime API listener, and the invocation
//! it is running. The lifecycle itself is [`super::lifecycle`]; this file launches,
//! enforces the init limit and the function timeout, and frames each invocation's log.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use super::log::ReportLine;
use super::state::{Caller, Delivery, EnvironmentState, FunctionInfo, Outcome, Setup};
use super::telemetry::{Telemetry, TelemetryFeed, record};
use super::variables::{self, Platform};
use crate::backend::{Backend, LaunchSpec, OutputSink, Source};
use crate::deploy::Deployment;
use crate::error::BackendError;
use crate::invoke::{FunctionError, InvokeRequest};
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
    /// The invocation's extension phase, when extensions are still working on it: the
    /// environment is free only once it ends.
    pub(crate) extension_phase: Option<ExtensionPhase>,
}

/// The rest of an invocation after the runtime's answer: `INVOKE` subscribers still
/// working. The function's timeout covers it.
pub(crate) struct ExtensionPhase {
    state: Arc<EnvironmentState>,
    request_id: String,
    released: oneshot::Receiver<()>,
    deadline: Instant,
    answered: Instant,
}

impl std::fmt::Debug for ExtensionPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionPhase").finish_non_exhaustive()
    }
}

impl ExtensionPhase {
    /// Waits until every `INVOKE` subscriber has called next, or the function's deadline
    /// passes (the environment is then reset: `SHUTDOWN` reason `timeout`). Returns why
    /// the environment must not serve again, if so.
    pub(crate) async fn end(self) -> Option<EvictionReason> {
        let ended = tokio::time::timeout_at(self.deadline.into(), self.released).await;
        let evict = match ended {
            Ok(Ok(())) => None,
            Ok(Err(_)) => Some(EvictionReason::RuntimeExited),
            Err(_) => {
                self.state.abandon(&self.request_id);
                Some(EvictionReason::Timeout)
            }
        };
        self.state.recorder.record(EventKind::ExtensionPhaseEnded {
            environment: self.state.id.clone(),
            request_id: self.request_id,
            duration: self.answered.elapsed(),
        });
        evict
    }
}

/// One execution environment. Dropping it terminates the runtime and the listener.
pub(crate) struct Environment {
    state: Arc<EnvironmentState>,
    pub(crate) deployment: Arc<Deployment>,
    invocations: AtomicU64,
    /// Launched ahead of invokes (provisioned concurrency): its first invoke is warm.
    pub(crate) provisioned: bool,
    /// Set by an explicit eviction of a busy environment: retire it once free.
    retiring: AtomicBool,
    last_used: Mutex<Instant>,
    spin_wait: Option<Duration>,
}

impl Environment {
    /// Binds a Runtime API listener and starts the runtime on `backend`.
    pub(crate) async fn launch(
        backend: &dyn Backend,
        deployment: Arc<Deployment>,
        id: String,
        platform: &Platform,
        recorder: crate::stats::Recorder,
        feed: TelemetryFeed,
        provisioned: bool,
    ) -> Result<Arc<Environment>, BackendError> {
        let listener = std::net::TcpListener::bind(SocketAddr::new(backend.bind_addr(), 0))
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(BackendError::Listener)?;
        let addr = listener.local_addr().map_err(BackendError::Listener)?;
        let output = Arc::new(OutputSink::default());
        let extensions = external_extensions(deployment.opt_dir());
        let (gate_tx, gate_rx) = oneshot::channel();
        let gated = !extensions.is_empty();
        let config = &deployment.config;
        let info = FunctionInfo {
            function_name: config.name.clone(),
            function_version: config.version.clone(),
            handler: config.handler.clone(),
            account_id: config.arn.split(':').nth(4).unwrap_or_default().to_string(),
            memory_mb: config.memory_mb,
        };
        let telemetry = Telemetry::new(IpAddr::from([127, 0, 0, 1]), feed);
        let init_type = if provisioned {
            record::InitType::ProvisionedConcurrency
        } else {
            record::InitType::OnDemand
        };
        telemetry.emit(record::init_start(
            init_type,
            record::InitPhase::Init,
            config
                .runtime_version
                .as_ref()
                .map(|v| v.to_string())
                .as_deref(),
            None,
        ));
        let tap = telemetry.clone();
        output.set_tap(Box::new(move |source, bytes| match source {
            Source::Runtime => tap.function_output(bytes),
            Source::Extension(name) => tap.extension_output(name, bytes),
        }));
        let state = EnvironmentState::new(Setup {
            id: id.clone(),
            timeout: deployment.config.timeout,
            output: output.clone(),
            recorder: recorder.clone(),
            info,
            external: extensions.clone(),
            runtime_gate: gated.then_some(gate_tx),
            freeze: platform.freeze,
            telemetry,
            shutdowns: platform.shutdowns.clone(),
            init_type,
        });
        recorder.record(EventKind::EnvironmentLaunched {
            environment: id.clone(),
        });
        let server = tokio::spawn(super::runtime_api::serve(listener, state.clone()));
        // The listener lives until the environment is terminated: a shutdown's extensions
        // still need it after the environment left the pool.
        state.set_server(server.abort_handle());

        let view = backend.view(addr, &deployment);
        let vars = variables::build(
            &deployment.config,
            &view,
            platform,
            &variables::log_stream_name(),
            if provisioned {
                variables::PROVISIONED
            } else {
                variables::ON_DEMAND
            },
        );
        let weak: Weak<EnvironmentState> = Arc::downgrade(&state);
        let weak_ext = weak.clone();
        let spec = LaunchSpec {
            environment_id: id,
            deployment: deployment.clone(),
            extensions: extensions
                .iter()
                .map(|name| format!("{}/extensions/{name}", view.opt))
                .collect(),
            extension_variables: variables::for_extensions(&vars),
            runtime_gate: gated.then_some(gate_rx),
            view,
            variables: vars,
            output,
            on_exit: Box::new(move |reason| {
                if let Some(state) = weak.upgrade() {
                    state.exited(reason);
                }
            }),
            on_extension_exit: Arc::new(move |name, reason| {
                if let Some(state) = weak_ext.upgrade() {
                    state.extension_exited(name, reason);
                }
            }),
        };
        let instance = match backend.launch(spec).await {
            Ok(instance) => instance,
            Err(e) => {
                server.abort();
                state.retire(false);
                recorder.record(EventKind::EnvironmentEvicted {
                    environment: state.id.clone(),
                    reason: EvictionReason::LaunchFailed,
                });
                return Err(e);
            }
        };
        if let Some(address) = instance.address() {
            state.telemetry.set_sandbox(address);
            state.connections.admit_only(address);
        }
        let _ = state.instance.set(instance);
        Ok(Arc::new(Environment {
            state,
            deployment,
            invocations: AtomicU64::new(0),
            provisioned,
            retiring: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
            spin_wait: platform.spin_wait,
        }))
    }

    /// Waits (bounded, event-driven: init's end and an exit are both recorded) until init
    /// has ended — the runtime and every extension called next — or the environment died.
    pub(crate) async fn wait_ready(&self, limit: Duration) {
        let state = &self.state;
        state
            .recorder
            .wait_until(limit, || state.init_duration().is_some() || state.is_dead())
            .await;
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
    pub(crate) async fn invoke(
        &self,
        request: &InvokeRequest,
        request_id: String,
        invoked_arn: Option<&str>,
    ) -> Completed {
        let cold_start = self.invocations.fetch_add(1, Ordering::SeqCst) == 0 && !self.provisioned;
        let (reply_tx, mut reply) = oneshot::channel();
        let (delivered_tx, mut delivered) = oneshot::channel();
        let (release_tx, mut released) = oneshot::channel();
        let delivery = Delivery {
            request_id: request_id.clone(),
            payload: request.payload.clone(),
            deadline_ms: 0,
            function_arn: invoked_arn
                .unwrap_or(&self.deployment.config.arn)
                .to_string(),
            trace_id: request.trace_id.clone().unwrap_or_else(trace_id),
            client_context: request.client_context.clone(),
        };
        self.state.thaw().await;
        self.state.dispatch(
            delivery,
            Caller {
                cold_start,
                reply: reply_tx,
                delivered: Some(delivered_tx),
                stream: request.response_stream.clone(),
                delivery: None,
            },
            release_tx,
        );

        let waited_since = Instant::now();
        let timeout = self.state.timeout;
        let mut started = None;
        // Not on a cold start: a spin there takes the vCPU the runtime's init needs.
        let spin = self.spin_wait.filter(|_| !cold_start);
        let outcome = super::spin::wait(spin, async {
            tokio::select! {
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
            _ = tokio::time::sleep(INIT_TIMEOUT) => self.init_timed_out(&request_id),
            }
        })
        .await;
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
        self.state.framed();
        self.record_end(&request_id, &outcome, started.is_some(), cold_start);
        let evict = match outcome {
            Outcome::Timeout => Some(EvictionReason::Timeout),
            _ if self.state.is_dead() || self.state.init_failed() => {
                Some(EvictionReason::RuntimeExited)
            }
            _ => None,
        };
        // Free at once (no extension took INVOKE), or once the extension phase ends.
        let extension_phase = match (&evict, released.try_recv()) {
            (None, Err(oneshot::error::TryRecvError::Empty)) => Some(ExtensionPhase {
                state: self.state.clone(),
                request_id: request_id.clone(),
                released,
                deadline: started.unwrap_or(waited_since) + timeout,
                answered: Instant::now(),
            }),
            _ => None,
        };
        Completed {
            outcome,
            log,
            duration,
            cold_start,
            evict,
            extension_phase,
        }
    }

    /// The init limit passed before the runtime took the invocation. When extensions held
    /// init up, the invocation fails naming them; otherwise it is a timeout.
    fn init_timed_out(&self, request_id: &str) -> Option<Outcome> {
        let awaited = self.state.awaited_extensions();
        if awaited.is_empty() {
            return None;
        }
        self.state.abandon(request_id);
        Some(Outcome::Error(FunctionError::platform(
            "Sandbox.Timedout",
            format!(
                "RequestId: {request_id} Error: init did not finish within {} seconds: extensions {} never registered or never called next",
                INIT_TIMEOUT.as_secs(),
                awaited.join(", ")
            ),
            request_id,
        )))
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
        // Answered by the runtime: its peak memory was taken then, and its
        // `platform.report` is emitted when the invocation's phase ends.
        let answered = self.state.answered(request_id);
        let report = ReportLine {
            request_id,
            duration,
            memory_mb: self.deployment.config.memory_mb,
            max_memory_used_mb: answered.unwrap_or_else(|| {
                self.state
                    .instance
                    .get()
                    .and_then(|i| i.max_memory_used_mb())
            }),
            init_duration: cold_start.then(|| self.state.init_duration()).flatten(),
            timed_out: matches!(outcome, Outcome::Timeout).then_some(self.state.timeout),
        };
        if answered.is_none() {
            self.emit_report(&report, outcome);
        }
        let bytes = self.state.output.fill(|buf| {
            report.write_end(buf);
            // The next invocation's buffer starts with room for its START/END/REPORT lines
            // (~270 bytes): an empty one grew four times per invoke (callgrind over
            // `benches/pool.rs`: 240k reallocations in 60k invokes).
            std::mem::replace(buf, Vec::with_capacity(LOG_CAPACITY))
        });
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// `platform.report` (and, for a timeout, the `platform.runtimeDone` the runtime never
    /// sent) for the Telemetry API.
    fn emit_report(&self, report: &ReportLine<'_>, outcome: &Outcome) {
        let (status, error_type) = match outcome {
            Outcome::Response(_) => (record::Status::Success, None),
            Outcome::Error(e) => (record::Status::Error, Some(e.error_type.clone())),
            Outcome::Timeout => (record::Status::Timeout, None),
            Outcome::NotDelivered => (record::Status::Failure, None),
        };
        let telemetry = &self.state.telemetry;
        if matches!(outcome, Outcome::Timeout) {
            telemetry.emit(record::runtime_done(record::RuntimeDone {
                request_id: report.request_id.into(),
                status,
                error_type: None,
                duration: report.duration,
                produced_bytes: 0,
                response_latency: None,
                response_duration: None,
            }));
        }
        telemetry.emit(record::report(record::Report {
            request_id: report.request_id.into(),
            status,
            error_type,
            duration: report.duration,
            billed_duration_ms: report.billed_ms(),
            memory_size_mb: u64::from(report.memory_mb),
            max_memory_used_mb: report.used_mb(),
            init_duration: report.init_duration,
        }));
    }

    /// Retires the environment: records why and shuts it down (extensions get `SHUTDOWN`
    /// first, except when the emulator is dropped). Idempotent.
    pub(crate) fn retire(&self, reason: EvictionReason) {
        self.retire_with(reason, reason != EvictionReason::Shutdown);
    }

    /// [`Environment::retire`], `graceful` or not.
    pub(crate) fn retire_with(&self, reason: EvictionReason, graceful: bool) {
        if self.state.retire(graceful) {
            self.state.recorder.record(EventKind::EnvironmentEvicted {
                environment: self.state.id.clone(),
                reason,
            });
        }
    }
}

impl Drop for Environment {
    /// Kills an environment nobody retired; one already shutting down (its extensions in
    /// their `SHUTDOWN` budget) finishes that on its own.
    fn drop(&mut self) {
        if !self.state.is_retired() {
            self.retire(EvictionReason::Shutdown);
        }
    }
}

/// The external extensions in `opt/extensions`: every executable file, by name, in
/// name order (AWS starts them all before the runtime).
fn external_extensions(opt: impl AsRef<std::path::Path>) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(opt.as_ref().join("extensions")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| {
            std::fs::metadata(e.path())
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The initial capacity of an invocation's log buffer, in bytes.
const LOG_CAPACITY: usize = 512;

/// An X-Ray trace header: `Root=1-<8 hex epoch s>-<24 hex>;Parent=<16 hex>;Sampled=0`.
fn trace_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    // 96 random bits for the root's id, 64 for the parent: one draw, written as hex (two
    // UUIDs formatted and cut were 3% of the warm path's instructions, callgrind; `format!`
    // of the three numbers another 2.8%, ~2,200 instructions per invoke).
    let (id, parent): (u128, u64) = rand::random();
    let mut out = String::with_capacity(81);
    out.push_str("Root=1-");
    push_hex(&mut out, secs.into(), 8);
    out.push('-');
    push_hex(&mut out, id >> 32, 24);
    out.push_str(";Parent=");
    push_hex(&mut out, parent.into(), 16);
    out.push_str(";Sampled=0");
    out
}

/// The low `digits` hex digits of `value`, zero-padded, lower case.
fn push_hex(out: &mut String, value: u128, digits: u32) {
    for i in (0..digits).rev() {
        out.push(char::from(
            b"0123456789abcdef"[(value >> (4 * i)) as usize & 0xf],
        ));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_trace_id_is_an_x_ray_root_with_a_parent_and_new_every_time() {
        let id = super::trace_id();
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        let rest = id.strip_prefix("Root=1-").expect(&id);
        let (root, rest) = rest.split_once(';').expect(&id);
        let (secs, random) = root.split_once('-').expect(&id);
        let parent = rest.strip_prefix("Parent=").expect(&id);
        let parent = parent.strip_suffix(";Sampled=0").expect(&id);
        assert!(hex(secs, 8) && hex(random, 24) && hex(parent, 16), "{id}");
        assert_ne!(super::trace_id(), id);
    }
}
