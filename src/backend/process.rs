//! The process backend: each execution environment is a local child process in its own
//! process group.
//!
//! `provided.*` runs `bootstrap` from the code (or `/opt/bootstrap` from a layer);
//! `python3.X` runs `<a Python 3.X> -m awslambdaric <handler>` (see [`python`] for which
//! interpreter, resolved to an absolute path at deploy); `nodejs<major>.x` runs
//! `<node of that major> <aws-lambda-ric>/index.mjs <handler>` (see [`node`]). Stdout and
//! stderr share one pipe so their lines interleave as written, like a Lambda log stream.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;

use super::{Backend, Instance, LaunchSpec, OutputSink, RuntimeView};
use crate::deploy::{Deployment, Runtime, RuntimeVersion};
use crate::error::BackendError;

pub(crate) mod node;
pub(crate) mod python;

pub(crate) use python::PythonSettings;

/// Marks every runtime process with the pid of the process that started it, so a later
/// emulator can find the runtimes of a test process that was killed before its emulator
/// could drop (see [`crate::process::reap_orphaned_runtimes`]). Spawning without a pre-exec hook
/// (such as `PR_SET_PDEATHSIG`) lets std use `posix_spawn`, about 1 ms faster per cold
/// start than `fork` here.
const OWNER_VARIABLE: &str = "_LAMBDA_TESTKIT_OWNER_PID";

/// Runs execution environments as local processes.
#[derive(Debug, Clone)]
pub(crate) struct ProcessBackend {
    python: PythonSettings,
    /// Each Python runtime's interpreter, resolved once (at its first deploy) so that every
    /// environment runs the one that was checked.
    pythons: Arc<Mutex<HashMap<Runtime, PythonResolution>>>,
}

type PythonResolution = Result<Arc<python::PythonRuntime>, python::Unavailable>;

impl ProcessBackend {
    pub(crate) fn new(python: PythonSettings) -> Self {
        ProcessBackend {
            python,
            pythons: Arc::default(),
        }
    }

    /// The interpreter of a `python3.*` runtime. Blocking the first time (it runs
    /// interpreters).
    fn python(&self, runtime: Runtime) -> Result<Arc<python::PythonRuntime>, BackendError> {
        let mut pythons = self.pythons.lock().unwrap_or_else(|e| e.into_inner());
        pythons
            .entry(runtime)
            .or_insert_with(|| python::resolve(runtime, &self.python).map(Arc::new))
            .clone()
            .map_err(|unavailable| unavailable.error())
    }

    fn command(&self, spec: &LaunchSpec) -> Result<(PathBuf, Vec<OsString>), BackendError> {
        let deployment = &spec.deployment;
        let Some(runtime) = deployment.config.runtime else {
            return Err(BackendError::ImagesUnsupported {
                image: deployment.config.image_uri.clone().unwrap_or_default(),
            });
        };
        if runtime.is_provided() {
            let candidates = [
                deployment.task_dir().join("bootstrap"),
                deployment.opt_dir().join("bootstrap"),
            ];
            return candidates
                .iter()
                .find(|p| is_executable(p))
                .map(|p| (p.clone(), Vec::new()))
                .ok_or_else(|| BackendError::NoBootstrap {
                    task: candidates[0].display().to_string(),
                    opt: candidates[1].display().to_string(),
                });
        }
        if let Some(major) = runtime.node_major() {
            let node = node::resolve(major)?;
            let args = node.arguments(deployment.config.memory_mb, &deployment.config.handler);
            return Ok((node.node.clone(), args));
        }
        let args = vec![
            "-m".into(),
            "awslambdaric".into(),
            deployment.config.handler.clone().into(),
        ];
        Ok((self.python(runtime)?.interpreter.clone(), args))
    }
}

/// Path variables the process backend sets itself, in Lambda's order but with the host's
/// entries appended so host interpreters and tools keep working.
fn path_variables(spec: &LaunchSpec) -> Vec<(String, String)> {
    let view = &spec.view;
    let host = |name: &str| {
        std::env::var(name)
            .map(|v| format!(":{v}"))
            .unwrap_or_default()
    };
    let mut vars = vec![
        (
            "PATH".to_string(),
            format!(
                "{}/bin:/usr/local/bin:/usr/bin:/bin{}",
                view.opt,
                host("PATH")
            ),
        ),
        (
            "LD_LIBRARY_PATH".to_string(),
            format!(
                "{}/lib:{}:{}/lib{}",
                view.opt,
                view.task_root,
                view.task_root,
                host("LD_LIBRARY_PATH")
            ),
        ),
        ("LANG".to_string(), "en_US.UTF-8".to_string()),
    ];
    if let Some(minor) = spec
        .deployment
        .config
        .runtime
        .and_then(Runtime::python_minor)
    {
        let opt = &view.opt;
        vars.push((
            "PYTHONPATH".to_string(),
            format!(
                "{}:{opt}/python:{opt}/python/lib/python3.{minor}/site-packages",
                view.task_root
            ),
        ));
        // Lambda's Python runtimes write unbuffered so log lines keep their order.
        vars.push(("PYTHONUNBUFFERED".to_string(), "1".to_string()));
    }
    // Lambda's Node bootstrap keeps a NODE_PATH the function sets itself.
    if let Some(major) = spec.deployment.config.runtime.and_then(Runtime::node_major)
        && !spec.variables.iter().any(|(k, _)| k == "NODE_PATH")
        && let Ok(node) = node::resolve(major)
    {
        vars.push(("NODE_PATH".to_string(), node.node_path(major, view)));
    }
    vars
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[async_trait::async_trait]
impl Backend for ProcessBackend {
    async fn reap(&self) {
        // Once per process, off the start path: a scan of /proc costs milliseconds.
        static REAPED: std::sync::Once = std::sync::Once::new();
        REAPED.call_once(|| {
            std::thread::spawn(reap_orphans);
        });
    }

    fn view(&self, runtime_api: SocketAddr, deployment: &Deployment) -> RuntimeView {
        RuntimeView::on_host(runtime_api, deployment)
    }

    async fn check_runtime(
        &self,
        runtime: Runtime,
    ) -> Result<Option<RuntimeVersion>, BackendError> {
        if let Some(major) = runtime.node_major() {
            return tokio::task::spawn_blocking(move || node::resolve(major).map(|_| None))
                .await
                .map_err(|e| BackendError::Other(e.to_string()))?;
        }
        if runtime.python_minor().is_none() {
            return Ok(None);
        }
        let backend = self.clone();
        tokio::task::spawn_blocking(move || {
            backend
                .python(runtime)
                .map(|python| Some(python.version.clone()))
        })
        .await
        .map_err(|e| BackendError::Other(e.to_string()))?
    }

    async fn launch(&self, spec: LaunchSpec) -> Result<Box<dyn Instance>, BackendError> {
        let (program, args) = self.command(&spec)?;
        if let Some(note) = spec
            .deployment
            .config
            .runtime
            .filter(|r| r.python_minor().is_some())
            .and_then(|r| self.python(r).ok()?.fallback_note.clone())
        {
            // Part of the init output: the cold start's log says which version runs.
            spec.output.fill(|buffer| {
                buffer.extend_from_slice(note.as_bytes());
                buffer.push(b'\n');
            });
        }
        let (reader, writer) = output_pipe().map_err(|e| spawn_error(&program, e))?;
        let stderr = writer.try_clone().map_err(|e| spawn_error(&program, e))?;
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&args)
            .current_dir(spec.deployment.task_dir())
            .env_clear()
            .envs(spec.variables.iter().cloned())
            .envs(path_variables(&spec))
            .env(OWNER_VARIABLE, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(stderr))
            .process_group(0);
        let mut child = unbusy(|| command.spawn()).map_err(|e| spawn_error(&program, e))?;
        drop(command); // closes our copies of the pipe's write end
        let pid = child
            .id()
            .ok_or_else(|| spawn_error(&program, std::io::Error::other("exited at once")))?;
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged while the AsyncFd owns it.
        let reader =
            unsafe { AsyncFd::register_with_interest(reader, tokio::io::Interest::READABLE) }
                .map_err(|e| spawn_error(&program, std::io::Error::other(e.to_string())))?;
        let process = Arc::new(Process {
            pid,
            reader,
            output: spec.output,
            terminated: AtomicBool::new(false),
        });

        let watcher = process.clone();
        let on_exit = spec.on_exit;
        tokio::spawn(async move {
            let status = child.wait().await;
            // The leader is gone: end anything it started, as Lambda resets the environment.
            watcher.terminate();
            // Take what it wrote before dying, then report the exit.
            watcher.read_available();
            on_exit(match status {
                Ok(s) => describe_exit(s),
                Err(e) => format!("wait failed: {e}"),
            });
        });
        let reader_task = process.clone();
        tokio::spawn(async move {
            loop {
                let Ok(mut guard) = reader_task.reader.readable().await else {
                    return;
                };
                if !reader_task.read_available() {
                    return;
                }
                guard.clear_ready();
            }
        });
        Ok(Box::new(ProcessHandle(process)))
    }
}

/// Runs `start` (a spawn), again while it fails with `ETXTBSY`. An executable written a
/// moment ago (an extracted `bootstrap`) is "busy" while any process forked in between
/// still holds a copy of its write descriptor — another thread's child between fork and
/// exec. That lasts microseconds, so a few short retries end it (Go's os/exec and cargo
/// retry the same way). Seen in CI: `Text file busy (os error 26)` from a just-written file.
pub(super) fn unbusy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut attempts = 0;
    loop {
        match start() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 20 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            result => return result,
        }
    }
}

fn spawn_error(program: &Path, e: std::io::Error) -> BackendError {
    BackendError::Spawn {
        program: program.display().to_string(),
        source: e,
    }
}

/// `exit status 3` or `signal: killed`, as Lambda words `Runtime exited with error: …`.
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(libc::SIGKILL)) => "signal: killed".to_string(),
        (None, Some(sig)) => format!("signal: {sig}"),
        (None, None) => status.to_string(),
    }
}

/// A close-on-exec pipe whose read end is non-blocking.
fn output_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills both descriptors on success; we own them from here on.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(read.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(read.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    Ok((read, write))
}

struct Process {
    pid: u32,
    reader: AsyncFd<OwnedFd>,
    output: Arc<OutputSink>,
    terminated: AtomicBool,
}

impl Process {
    /// Reads everything available now into the sink. False at end of file.
    fn read_available(&self) -> bool {
        let mut file = std::mem::ManuallyDrop::new(
            // SAFETY: borrows our descriptor for the duration of the read; ManuallyDrop keeps
            // the File from closing it.
            unsafe { std::fs::File::from_raw_fd(self.reader.get_ref().as_raw_fd()) },
        );
        self.output.fill(|buffer| {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match file.read(&mut chunk) {
                    Ok(0) => return false,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return true,
                }
            }
        })
    }

    fn terminate(&self) {
        if !self.terminated.swap(true, Ordering::SeqCst) {
            // SAFETY: signals the process group we created for this environment.
            unsafe { libc::killpg(self.pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

struct ProcessHandle(Arc<Process>);

impl Instance for ProcessHandle {
    fn flush_output(&self) {
        self.0.read_available();
    }

    fn terminate(&self) {
        self.0.terminate();
    }

    fn pid(&self) -> Option<u32> {
        Some(self.0.pid)
    }

    fn max_memory_used_mb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.pid)).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb.div_ceil(1024))
    }
}

impl Drop for ProcessHandle {
    fn drop(&mut self) {
        self.0.terminate();
    }
}

/// Kills runtime processes whose owner process is gone; returns how many. Blocking: it
/// reads `/proc`.
pub(crate) fn reap_orphans() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let marker = format!("{OWNER_VARIABLE}=");
    let mut reaped = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let owner = environ.split(|b| *b == 0).find_map(|var| {
            std::str::from_utf8(var)
                .ok()?
                .strip_prefix(&marker)?
                .parse::<u32>()
                .ok()
        });
        if let Some(owner) = owner
            && !Path::new(&format!("/proc/{owner}")).exists()
        {
            // SAFETY: signals a runtime's process group (it leads one) and the runtime.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
            reaped += 1;
        }
    }
    reaped
}
