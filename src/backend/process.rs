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
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::unix::AsyncFd;

use super::{Backend, Instance, LaunchSpec, OutputSink, RuntimeView, Source};
use crate::deploy::{Deployment, Runtime, RuntimeVersion};
use crate::error::BackendError;

pub(crate) mod fork_server;
pub(crate) mod node;
mod peak_memory;
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
    /// The Python fork servers (one per interpreter), when they are on (see
    /// [`fork_server`]; `EmulatorBuilder::python_fork_server`).
    fork_servers: Option<Arc<fork_server::ForkServers>>,
}

type PythonResolution = Result<Arc<python::PythonRuntime>, python::Unavailable>;

impl ProcessBackend {
    pub(crate) fn new(python: PythonSettings) -> Self {
        let fork = python
            .fork_server
            .unwrap_or_else(crate::config::python_fork_server);
        ProcessBackend {
            python,
            pythons: Arc::default(),
            fork_servers: fork.then(Arc::default),
        }
    }

    /// The fork server of the Python interpreter `program` to fork a runtime with
    /// `variables` from, when it is ready and a fork can stand in for a spawn (see
    /// [`fork_server`]); `None`: spawn it.
    fn fork_server(
        &self,
        program: &Path,
        variables: &[(String, String)],
    ) -> Option<Arc<fork_server::ForkServer>> {
        let servers = self.fork_servers.as_ref()?;
        let server = servers.get(program, server_variables)?;
        server.fits(variables).then_some(server)
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
            format!("{}{}", library_path(view), host("LD_LIBRARY_PATH")),
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

/// Lambda's library directories of the code and its layers (`/opt/lib:/var/task:
/// /var/task/lib`, in that order), without those that do not exist: the code and the
/// layers are complete and read-only before the runtime starts, so one missing now never
/// holds a library. The dynamic loader probes every listed directory for each library
/// with a dozen hardware-capability subdirectories; the two that are usually missing
/// cost ~46 µs of every native cold start on the 2-vCPU VM (a Rust `bootstrap` started
/// 300 times each way, interleaved: p50 1,176 µs with all three, 1,130 µs with the task
/// directory only, 1,099 µs with none).
fn library_path(view: &super::RuntimeView) -> String {
    let task = &view.task_root;
    let (opt_lib, task_lib) = (format!("{}/lib", view.opt), format!("{task}/lib"));
    let existing = |dir: &String| Path::new(dir).is_dir();
    [
        Some(&opt_lib).filter(|d| existing(d)),
        Some(task),
        Some(&task_lib).filter(|d| existing(d)),
    ]
    .into_iter()
    .flatten()
    .map(String::as_str)
    .collect::<Vec<_>>()
    .join(":")
}

/// What a Python fork server starts with: the variables of [`path_variables`] and
/// `variables::build` that an interpreter reads as it starts, with the values every
/// environment gets (an environment whose values differ is spawned, see
/// [`fork_server::fits`]), and the owner tag that its runtimes inherit in
/// `/proc/<pid>/environ` for the reaper. No `PYTHONPATH`: each child applies its own.
fn server_variables() -> Vec<(String, String)> {
    let mut vars = vec![
        (
            "PATH".to_string(),
            format!(
                "/usr/local/bin:/usr/bin:/bin{}",
                std::env::var("PATH")
                    .map(|v| format!(":{v}"))
                    .unwrap_or_default()
            ),
        ),
        ("LANG".to_string(), "en_US.UTF-8".to_string()),
        ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        ("TZ".to_string(), ":UTC".to_string()),
        (OWNER_VARIABLE.to_string(), std::process::id().to_string()),
    ];
    if let Ok(libraries) = std::env::var("LD_LIBRARY_PATH") {
        vars.push(("LD_LIBRARY_PATH".to_string(), libraries));
    }
    vars
}

/// Every variable of the runtime, as a spawn with `Command::env_clear().envs(..)` gives
/// them: the later of equal names wins, sorted by name (std's `CommandEnv` is a BTreeMap).
fn spawn_variables(spec: &LaunchSpec) -> Vec<(String, String)> {
    let mut map = std::collections::BTreeMap::new();
    for (k, v) in spec
        .variables
        .iter()
        .cloned()
        .chain(path_variables(spec))
        .chain([(OWNER_VARIABLE.to_string(), std::process::id().to_string())])
    {
        map.insert(k, v);
    }
    map.into_iter().collect()
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
        // External extensions start first; the first process leads the environment's
        // process group, so freeze, SIGKILL and the reaper reach every process in it.
        let mut leader = None;
        let mut extension_children = Vec::new();
        for path in &spec.extensions {
            let name = Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Each extension writes to a pipe of its own: its lines are `extension`
            // records in the Telemetry API (and part of the function's log, as in Lambda).
            let (ext_reader, ext_writer) =
                registered_pipe().map_err(|e| spawn_error(Path::new(path), e))?;
            let mut command = tokio::process::Command::new(path);
            command
                .current_dir(spec.deployment.opt_dir())
                .env_clear()
                .envs(spec.extension_variables.iter().cloned())
                .envs(path_variables(&spec))
                .env(OWNER_VARIABLE, std::process::id().to_string());
            let child = spawn_into(&mut command, &ext_writer, leader)
                .map_err(|e| spawn_error(Path::new(path), e))?;
            drop(command);
            drop(ext_writer);
            tokio::spawn(copy_pipe(ext_reader, spec.output.clone(), name.clone()));
            leader = leader.or(child.id());
            extension_children.push((name, child));
        }
        // Python: fork the runtime from the interpreter's fork server when one can stand in
        // for a spawn. Saves the interpreter's start and awslambdaric's import on every
        // cold start: p50 ~9-13 ms instead of ~36-56 ms (figures in fork_server.rs, from
        // `cargo bench --bench python_cold`).
        let fork = match self.fork_servers {
            Some(_)
                if spec
                    .deployment
                    .config
                    .runtime
                    .is_some_and(|r| r.python_minor().is_some()) =>
            {
                let variables = spawn_variables(&spec);
                self.fork_server(&program, &variables)
                    .map(|server| (server, variables))
            }
            _ => None,
        };
        let mut command = tokio::process::Command::new(&program);
        command
            .args(&args)
            .current_dir(spec.deployment.task_dir())
            .env_clear()
            .envs(spec.variables.iter().cloned())
            .envs(path_variables(&spec))
            .env(OWNER_VARIABLE, std::process::id().to_string());
        let task_dir = spec.deployment.task_dir().to_path_buf();
        let handler = spec.deployment.config.handler.clone();
        let interpreter = program.clone();
        let servers = self.fork_servers.clone();
        let spawn_runtime = move |leader: Option<u32>| async move {
            if let Some((server, variables)) = fork {
                let added: Vec<_> = server
                    .added()
                    .iter()
                    .filter(|(k, _)| !variables.iter().any(|(name, _)| name == k))
                    .cloned()
                    .collect();
                let request = fork_server::Request {
                    group: leader,
                    program: &interpreter,
                    cwd: &task_dir,
                    handler: &handler,
                    variables: &variables,
                    added: &added,
                    output: &writer,
                };
                match server.spawn(request).await {
                    Ok(forked) => return Ok(RuntimeChild::Forked(forked)),
                    Err(why) => {
                        // No invocation fails for the fork server: this one spawns, and a
                        // server that is gone is replaced for the cold starts after it.
                        tracing::warn!("{why}; starting a fresh interpreter instead");
                        if let Some(servers) = &servers {
                            servers.failed(&interpreter, server_variables);
                        }
                    }
                }
            }
            let child = spawn_into(&mut command, &writer, leader);
            drop(command); // closes our copies of the pipe's write end
            child.map(RuntimeChild::Spawned)
        };
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged while the AsyncFd owns it.
        let reader =
            unsafe { AsyncFd::register_with_interest(reader, tokio::io::Interest::READABLE) }
                .map_err(|e| spawn_error(&program, std::io::Error::other(e.to_string())))?;
        let on_exit = spec.on_exit;
        let process = match (leader, spec.runtime_gate) {
            (Some(leader), Some(gate)) => {
                let process = Process::new(leader, reader, spec.output);
                // The runtime starts once every extension has registered; a gate dropped
                // unfired means the environment ended first.
                let starter = process.clone();
                tokio::spawn(async move {
                    if gate.await.is_err() || starter.terminated.load(Ordering::SeqCst) {
                        return;
                    }
                    match spawn_runtime(Some(leader)).await {
                        Ok(child) => starter.watch_runtime(child, on_exit, false),
                        Err(e) => on_exit(format!("runtime failed to start: {e}")),
                    }
                });
                process
            }
            _ => {
                let child = spawn_runtime(None)
                    .await
                    .map_err(|e| spawn_error(&program, e))?;
                let pid = child.id().ok_or_else(|| {
                    spawn_error(&program, std::io::Error::other("exited at once"))
                })?;
                let process = Process::new(pid, reader, spec.output);
                process.watch_runtime(child, on_exit, true);
                process
            }
        };
        for (name, mut child) in extension_children {
            let on_exit = spec.on_extension_exit.clone();
            let watcher = process.clone();
            tokio::spawn(async move {
                let status = child.wait().await;
                if !watcher.terminated.load(Ordering::SeqCst) {
                    watcher.read_available();
                    on_exit(
                        &name,
                        match status {
                            Ok(s) => describe_exit(s),
                            Err(e) => format!("wait failed: {e}"),
                        },
                    );
                }
            });
        }
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

/// A runtime process: spawned by us, or forked by a Python fork server (which reports its
/// exit).
enum RuntimeChild {
    Spawned(tokio::process::Child),
    Forked(fork_server::Forked),
}

impl RuntimeChild {
    fn id(&self) -> Option<u32> {
        match self {
            RuntimeChild::Spawned(child) => child.id(),
            RuntimeChild::Forked(forked) => Some(forked.pid),
        }
    }

    async fn wait(self) -> std::io::Result<std::process::ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        match self {
            RuntimeChild::Spawned(mut child) => child.wait().await,
            RuntimeChild::Forked(forked) => forked
                .exit
                .await
                .map(std::process::ExitStatus::from_raw)
                .map_err(|_| std::io::Error::other("the fork server has exited")),
        }
    }
}

/// Reads everything available now on `pipe` into `sink` as `source`'s output. False at
/// end of file.
fn read_pipe(pipe: &AsyncFd<OwnedFd>, sink: &OutputSink, source: Source<'_>) -> bool {
    // Plain `read`s into an uninitialised stack chunk: a zeroed chunk was a 16 KiB memset
    // twice per invocation (23% of the emulator's instructions under callgrind over
    // `benches/pool.rs`'s load), and `File::read_to_end` adds a `statx` and an `lseek`
    // per call for its size hint (2 of ~20 syscalls per warm invoke, `strace -c -f`).
    // An empty pipe, the usual case, is one `read` and no allocation.
    let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
    sink.append(source, |buffer| {
        loop {
            match rustix::io::read(pipe.get_ref(), &mut chunk) {
                // End of file: every writer is gone.
                Ok(([], _)) => return false,
                Ok((read, _)) => buffer.extend_from_slice(read),
                Err(rustix::io::Errno::INTR) => {}
                // Run dry (WouldBlock): the writers are still there.
                Err(_) => return true,
            }
        }
    })
}

/// Copies `pipe` into `sink` as `source`'s output until its writers are gone.
async fn copy_pipe(pipe: AsyncFd<OwnedFd>, sink: Arc<OutputSink>, source: String) {
    loop {
        let Ok(mut guard) = pipe.readable().await else {
            return;
        };
        if !read_pipe(&pipe, &sink, Source::Extension(&source)) {
            return;
        }
        guard.clear_ready();
    }
}

/// A close-on-exec pipe registered with the reactor for reading.
fn registered_pipe() -> std::io::Result<(AsyncFd<OwnedFd>, OwnedFd)> {
    let (reader, writer) = output_pipe()?;
    // SAFETY: an OwnedFd keeps its descriptor open and unchanged while the AsyncFd owns it.
    let reader = unsafe { AsyncFd::register_with_interest(reader, tokio::io::Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((reader, writer))
}

/// Spawns `command` with stdout and stderr on the output pipe `writer`, stdin closed,
/// in the process group `leader` (a new group it leads when `None`).
fn spawn_into(
    command: &mut tokio::process::Command,
    writer: &OwnedFd,
    leader: Option<u32>,
) -> std::io::Result<tokio::process::Child> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer.try_clone()?))
        .stderr(Stdio::from(writer.try_clone()?))
        .process_group(leader.map_or(0, |l| l as i32));
    unbusy(|| command.spawn())
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
    /// The process group: the runtime's pid, or the first extension's.
    pgid: u32,
    /// The runtime, once started.
    runtime: std::sync::OnceLock<u32>,
    /// The runtime's `/proc/<pid>/status`, opened on the first report.
    peak_memory: std::sync::OnceLock<Option<peak_memory::PeakMemory>>,
    reader: AsyncFd<OwnedFd>,
    output: Arc<OutputSink>,
    terminated: AtomicBool,
}

impl Process {
    fn new(pgid: u32, reader: AsyncFd<OwnedFd>, output: Arc<OutputSink>) -> Arc<Process> {
        Arc::new(Process {
            pgid,
            runtime: std::sync::OnceLock::new(),
            peak_memory: std::sync::OnceLock::new(),
            reader,
            output,
            terminated: AtomicBool::new(false),
        })
    }

    /// Reports the runtime's exit through `on_exit`. `ends_group`: the runtime leads the
    /// group, and its exit ends everything it started, as Lambda resets the environment
    /// (with extensions, the environment's shutdown decides when they go).
    fn watch_runtime(
        self: &Arc<Self>,
        child: RuntimeChild,
        on_exit: super::ExitHook,
        ends_group: bool,
    ) {
        if let Some(pid) = child.id() {
            let _ = self.runtime.set(pid);
        }
        let watcher = self.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            if ends_group {
                watcher.terminate();
            }
            // Take what it wrote before dying, then report the exit.
            watcher.read_available();
            on_exit(match status {
                Ok(s) => describe_exit(s),
                Err(e) => format!("wait failed: {e}"),
            });
        });
    }

    /// Reads everything available now into the sink. False at end of file.
    fn read_available(&self) -> bool {
        read_pipe(&self.reader, &self.output, Source::Runtime)
    }

    fn signal_group(&self, signal: libc::c_int) {
        if !self.terminated.load(Ordering::SeqCst) {
            // SAFETY: signals the process group we created for this environment.
            unsafe { libc::killpg(self.pgid as libc::pid_t, signal) };
        }
    }

    fn terminate(&self) {
        if !self.terminated.swap(true, Ordering::SeqCst) {
            // SAFETY: signals the process group we created for this environment.
            unsafe { libc::killpg(self.pgid as libc::pid_t, libc::SIGKILL) };
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

    fn freeze(&self) {
        self.0.signal_group(libc::SIGSTOP);
    }

    fn thaw(&self) -> futures::future::BoxFuture<'static, ()> {
        self.0.signal_group(libc::SIGCONT);
        Box::pin(async {})
    }

    fn interrupt(&self) {
        if let Some(pid) = self.0.runtime.get() {
            // SAFETY: signals the runtime, a child we have not reaped yet.
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGTERM) };
        }
    }

    fn pid(&self) -> Option<u32> {
        Some(self.0.runtime.get().copied().unwrap_or(self.0.pgid))
    }

    fn max_memory_used_mb(&self) -> Option<u64> {
        let Some(&pid) = self.0.runtime.get() else {
            // Extensions only so far: the group leader's, not kept.
            return peak_memory::PeakMemory::open(self.0.pgid)?.read_mb();
        };
        self.0
            .peak_memory
            .get_or_init(|| peak_memory::PeakMemory::open(pid))
            .as_ref()?
            .read_mb()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_path_lists_the_task_directory_and_only_existing_lib_directories() {
        let root = tempfile::tempdir().unwrap();
        let (task, opt) = (root.path().join("task"), root.path().join("opt"));
        std::fs::create_dir_all(&task).unwrap();
        std::fs::create_dir_all(&opt).unwrap();
        let view = super::super::RuntimeView {
            runtime_api: "127.0.0.1:9001".into(),
            task_root: task.display().to_string(),
            opt: opt.display().to_string(),
            runtime_dir: task.display().to_string(),
        };
        let shown = |p: &Path| p.display().to_string();
        assert_eq!(library_path(&view), shown(&task));
        std::fs::create_dir(task.join("lib")).unwrap();
        std::fs::create_dir(opt.join("lib")).unwrap();
        assert_eq!(
            library_path(&view),
            [opt.join("lib"), task.clone(), task.join("lib")]
                .iter()
                .map(|p| shown(p))
                .collect::<Vec<_>>()
                .join(":"),
            "Lambda's order: the layers' libraries, the code, the code's lib/"
        );
    }
}
