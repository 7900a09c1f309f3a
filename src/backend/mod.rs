//! Backends: how an execution environment's runtime is started and stopped.
//!
//! [`Backend`] is the one seam a backend implements: check what it can run, `launch` an
//! environment (an [`Instance`]), `terminate` it, hand over its output and report its
//! exit, `reap` what killed test processes left, wait at `shutdown`. Everything identical
//! across backends (Runtime API, lifecycle, timeouts, logs, pool) lives above it, in
//! `execution`, so a third backend (Kubernetes: one Pod per environment) is one more
//! implementation and touches nothing else. Source of the split: fakecloud's Lambda
//! runtime (facade + backend trait).

#[cfg(feature = "docker")]
pub(crate) mod docker;
pub(crate) mod process;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use futures::future::BoxFuture;

use crate::deploy::{Deployment, Runtime, RuntimeVersion};
use crate::error::BackendError;

/// Where execution environments run.
///
/// ```no_run
/// # async fn demo() -> Result<(), lambda_testkit::EmulatorError> {
/// use lambda_testkit::{BackendKind, Emulator};
/// let emu = Emulator::builder().backend(BackendKind::Docker).start().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum BackendKind {
    /// Each execution environment is a local child process (fast; needs the runtime's
    /// tools on this machine, e.g. a Python with `awslambdaric`).
    #[default]
    Process,
    /// Each execution environment is a Docker container of the runtime's image (AWS's
    /// base images by default), removed when the emulator goes.
    Docker,
}

impl BackendKind {
    /// The backend named by `LAMBDA_TESTKIT_BACKEND` (`process` or `docker`, any case),
    /// else [`BackendKind::Process`].
    pub fn from_env() -> BackendKind {
        match crate::config::backend().as_deref() {
            Some("docker") => BackendKind::Docker,
            _ => BackendKind::Process,
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Process => "process",
            BackendKind::Docker => "docker",
        })
    }
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

impl RuntimeView {
    /// The view of a runtime running on this host: the deployment's own directories.
    pub(crate) fn on_host(runtime_api: SocketAddr, deployment: &Deployment) -> RuntimeView {
        RuntimeView {
            runtime_api: runtime_api.to_string(),
            task_root: deployment.task_dir().display().to_string(),
            opt: deployment.opt_dir().display().to_string(),
            runtime_dir: deployment.task_dir().display().to_string(),
        }
    }
}

/// Called once with why the runtime exited.
pub(crate) type ExitHook = Box<dyn FnOnce(String) + Send>;

/// Called with an extension's name and why it exited.
pub(crate) type ExtensionExitHook = Arc<dyn Fn(&str, String) + Send + Sync>;

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
    pub(crate) on_exit: ExitHook,
    /// External extensions to start before the runtime (paths in the view,
    /// `/opt/extensions/<name>`); each runs with `extension_variables`.
    pub(crate) extensions: Vec<String>,
    pub(crate) extension_variables: Vec<(String, String)>,
    /// With external extensions, the runtime starts only when this fires (every one has
    /// registered); `None`: start it at once.
    pub(crate) runtime_gate: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Called when an extension's process exits: its name (the file name) and a reason.
    pub(crate) on_extension_exit: ExtensionExitHook,
}

/// A started runtime: one process or container.
pub(crate) trait Instance: Send + Sync {
    /// Reads whatever output the runtime has written so far into the sink. Called before
    /// framing log lines, so output written before a Runtime API call lands before it.
    fn flush_output(&self);
    /// Stops the runtime now (and anything it started). Idempotent; callable from `Drop`.
    fn terminate(&self);
    /// Asks the runtime to stop (SIGTERM), as Lambda does before `SHUTDOWN` reaches the
    /// extensions. Backends where the runtime's exit ends the whole environment (a
    /// container's main process) leave it running until [`Instance::terminate`].
    fn interrupt(&self) {}
    /// The environment's own address, where its processes listen (a container's on its
    /// network); `None`: this host's loopback.
    fn address(&self) -> Option<std::net::IpAddr> {
        None
    }
    /// Freezes every process of the environment between invocations (SIGSTOP of its
    /// process group; `docker pause`), as Lambda does. Returns at once; a backend that
    /// freezes asynchronously must let a later [`Instance::thaw`] win.
    fn freeze(&self) {}
    /// Resumes a frozen environment (SIGCONT; `docker unpause`); resolves once it runs.
    /// A no-op when it is not frozen.
    fn thaw(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
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
    /// Checks once, at deploy, that this backend can run `runtime`; returns what runs it
    /// when the backend chooses that (the process backend's Python interpreter), `None`
    /// when the runtime's image or the code decides.
    async fn check_runtime(&self, runtime: Runtime)
    -> Result<Option<RuntimeVersion>, BackendError>;
    /// Checks once, at deploy, that this backend can run a function packaged as the
    /// container image `image`; returns the image's id (`sha256:…`). Only the Docker
    /// backend runs images.
    async fn check_image(&self, image: &str) -> Result<String, BackendError> {
        Err(BackendError::ImagesUnsupported {
            image: image.to_string(),
        })
    }
    /// Starts one execution environment.
    async fn launch(&self, spec: LaunchSpec) -> Result<Box<dyn Instance>, BackendError>;
    /// Removes what emulators of test processes killed before they could clean up left on
    /// this backend (runtime processes; containers and code volumes), so a killed test
    /// run leaks nothing past the next start. Called once as the emulator starts.
    async fn reap(&self) {}
    /// The emulator is shutting down and has terminated every instance: wait (blocking,
    /// bounded) until everything this backend started is gone. Callable from `Drop`, also
    /// inside a current-thread runtime.
    fn shutdown(&self) {}
}

/// Waits until output written by the runtime before the call has reached an
/// [`OutputSink`]. A backend whose output arrives asynchronously (Docker's attach stream)
/// installs one; for pipes read synchronously, [`Instance::flush_output`] is enough.
pub(crate) trait Settle: Send + Sync {
    /// Resolves once the sink holds everything written before the call (bounded wait).
    fn settle(&self) -> BoxFuture<'_, ()>;
}

/// Whose output a chunk is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// The runtime (the function's code).
    Runtime,
    /// The external extension with this name.
    Extension(&'a str),
}

/// Sees every chunk of output as it is appended (the Telemetry API's `function` and
/// `extension` streams).
pub(crate) type Tap = Box<dyn Fn(Source<'_>, &[u8]) + Send + Sync>;

/// A buffer the backend appends runtime output to and the environment frames into
/// per-invocation logs. Reading and appending happen under one lock so that output read
/// by different threads stays in the order it was written.
#[derive(Default)]
pub(crate) struct OutputSink {
    buffer: Mutex<Vec<u8>>,
    settler: OnceLock<Arc<dyn Settle>>,
    tap: OnceLock<Tap>,
    /// Each extension's last partial line.
    partial: Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

impl std::fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputSink")
            .field("settles", &self.settler.get().is_some())
            .finish_non_exhaustive()
    }
}

impl OutputSink {
    /// Runs `fill` with the buffer locked (e.g. to read a pipe into it).
    pub(crate) fn fill<R>(&self, fill: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        fill(&mut self.buffer.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Appends output of `source`: `fill` appends to the buffer, locked; the tap sees
    /// what it appended. An extension's output reaches the buffer a whole line at a time
    /// (its partial line waits for the rest), so that lines of the runtime and of the
    /// extensions, written concurrently to pipes of their own, never interleave mid-line.
    pub(crate) fn append<R>(&self, source: Source<'_>, fill: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let tap = |bytes: &[u8]| {
            if let Some(tap) = self.tap.get()
                && !bytes.is_empty()
            {
                tap(source, bytes);
            }
        };
        match source {
            Source::Runtime => {
                let start = buffer.len();
                let result = fill(&mut buffer);
                tap(&buffer[start..]);
                result
            }
            Source::Extension(name) => {
                let mut chunk = Vec::new();
                let result = fill(&mut chunk);
                tap(&chunk);
                let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
                let pending = partial.entry(name.to_string()).or_default();
                pending.extend_from_slice(&chunk);
                if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                    buffer.extend(pending.drain(..=end));
                }
                result
            }
        }
    }

    /// Installs the tap (once, before the runtime starts).
    pub(crate) fn set_tap(&self, tap: Tap) {
        let _ = self.tap.set(tap);
    }

    /// Installs the backend's [`Settle`] (once, before the runtime starts).
    pub(crate) fn set_settler(&self, settler: Arc<dyn Settle>) {
        let _ = self.settler.set(settler);
    }

    /// Waits until output the runtime wrote before this call is in the buffer: a no-op
    /// unless the backend delivers output asynchronously. Call before framing log lines
    /// that must follow that output (`END`, and `START` after init).
    pub(crate) async fn settle(&self) {
        if let Some(settler) = self.settler.get() {
            settler.settle().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extensions_partial_line_waits_so_lines_never_interleave() {
        let sink = OutputSink::default();
        let put = |source, bytes: &[u8]| sink.append(source, |b| b.extend_from_slice(bytes));
        put(Source::Extension("ext"), b"probe");
        put(Source::Runtime, b"sleeping 300\n");
        put(Source::Extension("ext"), b" INVOKE 1\nnext ");
        put(Source::Extension("other"), b"other line\n");
        let text = sink.fill(|b| String::from_utf8(std::mem::take(b)).unwrap());
        assert_eq!(text, "sleeping 300\nprobe INVOKE 1\nother line\n");
        put(Source::Extension("ext"), b"part\n");
        let text = sink.fill(|b| String::from_utf8(std::mem::take(b)).unwrap());
        assert_eq!(text, "next part\n");
    }
}
