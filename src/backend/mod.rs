//! Backends: how an execution environment's runtime is started and stopped.
//!
//! Everything identical across backends (Runtime API, invocation state, timeouts, logs,
//! pool) lives above this trait; a backend only launches, terminates and reports output
//! and exit. Source of the split: fakecloud's Lambda runtime (facade + backend trait).

pub(crate) mod process;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use crate::deploy::{Deployment, Runtime};

/// Why a backend could not run a runtime or an execution environment.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The Python runtime interface client is not importable by the configured interpreter.
    #[error(
        "`{interpreter} -m awslambdaric` cannot run: {detail}. Install the runtime client with `{interpreter} -m pip install awslambdaric`, or point the emulator at an interpreter that has it (EmulatorBuilder::python or LAMBDA_TESTKIT_PYTHON)"
    )]
    RuntimeClientMissing {
        /// The interpreter that was tried.
        interpreter: String,
        /// What it printed.
        detail: String,
    },
    /// A `provided.*` function without a `bootstrap` in its code or layers
    /// (Lambda: `Runtime.InvalidEntrypoint`).
    #[error(
        "Runtime.InvalidEntrypoint: couldn't find a valid bootstrap: neither {task} nor {opt} is an executable file"
    )]
    NoBootstrap {
        /// The code's bootstrap path that was checked.
        task: String,
        /// The layers' bootstrap path that was checked.
        opt: String,
    },
    /// Starting the runtime failed.
    #[error("could not start `{program}`: {message}")]
    Spawn {
        /// What was being started.
        program: String,
        /// The OS error.
        message: String,
    },
    /// Binding the environment's Runtime API listener failed.
    #[error("could not bind the Runtime API listener: {0}")]
    Listener(String),
    /// A backend-specific failure (e.g. the Docker daemon refused a request).
    #[error("{0}")]
    Other(String),
}

/// Where the runtime finds things, as seen from inside its execution environment.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeView {
    /// `AWS_LAMBDA_RUNTIME_API`: bare `host:port`.
    pub(crate) runtime_api: String,
    /// `LAMBDA_TASK_ROOT` (the code).
    pub(crate) task_root: String,
    /// Where layers are (`/opt`).
    pub(crate) opt: String,
    /// `LAMBDA_RUNTIME_DIR`.
    pub(crate) runtime_dir: String,
}

/// Everything a backend needs to start one execution environment.
pub(crate) struct LaunchSpec {
    pub(crate) environment_id: String,
    pub(crate) deployment: Arc<Deployment>,
    pub(crate) view: RuntimeView,
    /// The complete set of variables the runtime sees (reserved ones + the function's).
    pub(crate) variables: Vec<(String, String)>,
    /// Where the runtime's stdout and stderr go, interleaved as written.
    pub(crate) output: Arc<OutputSink>,
    /// Called once when the runtime exits, with a reason like `exit status 3`.
    pub(crate) on_exit: Box<dyn FnOnce(String) + Send>,
}

/// A started runtime: one process or container.
pub(crate) trait Instance: Send + Sync {
    /// Reads whatever output the runtime has written so far into the sink. Called before
    /// framing log lines, so output written before a Runtime API call lands before it.
    fn flush_output(&self);
    /// Stops the runtime now (and anything it started). Idempotent; callable from `Drop`.
    fn terminate(&self);
    /// The OS process id, when there is one on this host.
    fn pid(&self) -> Option<u32>;
    /// Peak memory use so far, in MB, when the backend can tell.
    fn max_memory_used_mb(&self) -> Option<u64>;
}

/// A way to run execution environments.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// The address the Runtime API listener binds to: only where the runtime can reach it.
    fn bind_addr(&self) -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }
    /// Paths and the Runtime API address as the runtime will see them.
    fn view(&self, runtime_api: SocketAddr, deployment: &Deployment) -> RuntimeView;
    /// Checks once, at deploy, that this backend can run `runtime`.
    async fn check_runtime(&self, runtime: Runtime) -> Result<(), BackendError>;
    /// Starts one execution environment.
    async fn launch(&self, spec: LaunchSpec) -> Result<Box<dyn Instance>, BackendError>;
}

/// A buffer the backend appends runtime output to and the environment frames into
/// per-invocation logs. Reading and appending happen under one lock so that output read
/// by different threads stays in the order it was written.
#[derive(Debug, Default)]
pub(crate) struct OutputSink {
    buffer: Mutex<Vec<u8>>,
}

impl OutputSink {
    /// Runs `fill` with the buffer locked (e.g. to read a pipe into it).
    pub(crate) fn fill<R>(&self, fill: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        fill(&mut self.buffer.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
