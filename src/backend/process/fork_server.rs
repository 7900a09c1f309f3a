//! The Python fork server: one per interpreter, with awslambdaric's imports preloaded, that
//! forks a process per execution environment instead of starting an interpreter.
//!
//! A `python3.X` cold start spends most of its time before the handler is imported:
//! interpreter start-up and `import awslambdaric` (about 28-45 ms here, `cargo bench
//! --bench invoke -- "cold start"`). The server ([`SCRIPT`], run as `<python> -c`) pays that
//! once; each environment is then a `fork` of it that makes itself what a fresh
//! `python -m awslambdaric <handler>` is when it imports the handler: its own process group
//! (or the extensions' one), the environment's pipe as stdout and stderr, `/dev/null` as
//! stdin, the task root as working directory, exactly the environment's variables in
//! `os.environ` (in the order a spawn gives them), `sys.path` as the interpreter builds it
//! from `PYTHONPATH`, no module in `sys.modules` that a fresh interpreter would not have at
//! that point (awslambdaric's own modules and its `runtime_client` extension are imported
//! afresh in the child, as they read the environment at import), and `sys.argv` /
//! `sys.orig_argv` / `__main__` as `-m` sets them. `tests/python_fork_server.rs` compares
//! what a handler sees in both.
//!
//! When a fork cannot be told apart from a spawn the environment gets a plain spawn:
//! variables read at interpreter start differ from the server's ([`startup_variable`], decided
//! here), or a directory at the front of the new `sys.path` holds a module named like a
//! preloaded one, or the new `LD_LIBRARY_PATH` adds a directory with shared libraries (the
//! dynamic loader reads it only at exec) — those two are decided in the child, which then
//! execs the plain command in place. What stays different: the parent process (the server,
//! not the test process), `/proc/self/environ` and `/proc/self/cmdline` (the server's), and
//! the string-hash seed (shared by the children of one server; every spawn draws its own).
//!
//! An interpreter's server starts in the background at its second cold start (the first
//! two spawn): a test process that cold-starts Python once pays nothing for it. Each
//! request is served by a spare child the server forked ahead of it, and the next spare is
//! forked after the answer. The server keeps awslambdaric's modules that read neither the
//! environment nor `runtime_client` (the package, its exceptions and log utilities).
//!
//! Measured with `cargo bench --bench python_cold` (interleaved rounds, same function,
//! 2 vCPUs shared with other builds, load average 4-6): python3.11 p50 9.3-13.1 ms, p99
//! 39-87 ms forked vs p50 35.5-55.8 ms, p99 96-153 ms spawned (3.8-4.3x); python3.13 p50
//! 16.4 vs 61.9 ms. Before the spare child and the kept modules: p50 14.2 vs 52.0 ms. In a
//! child, awslambdaric's import still costs ~4 ms (runtime_client's dlopen ~1.5 ms of it).
//!
//! A server that exits while its owner lives (killed from outside, crashed) takes the
//! runtimes it forked with it; the cold start that finds it gone (or whose request it never
//! answered) spawns, and starts its replacement in the background, so the cold starts after
//! that fork again.
//!
//! The server dies with its owner: end of file on its control socket (the backend dropped it,
//! or the test process died) makes it kill every child's process group and exit. It and its
//! children carry the owner variable, so `reap_orphaned_runtimes` finds them too.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

/// The server's Python source.
pub(crate) const SCRIPT: &str = include_str!("fork_server.py");

/// The server's `sys.argv[1]`, so that it can be told apart in `/proc/<pid>/cmdline`
/// (its children show the same command line until they exec).
pub(crate) const MARKER: &str = "lambda-testkit-fork-server";

/// How long the server may take to import awslambdaric and answer (Lambda's init limit).
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest message either side sends (a request carries the environment's variables,
/// at most 4 KB of the function's own plus Lambda's).
const MAX_MESSAGE: usize = 256 * 1024;

/// The wait status of a process killed by SIGKILL.
const KILLED: i32 = libc::SIGKILL;

/// Variables an interpreter reads as it starts (or that shape what the preloaded modules
/// captured at import: `TZ` for `time.tzname`, the locale for the standard streams'
/// encoding): a fork only stands in for a spawn when the environment's values of these
/// equal the server's. `PYTHONPATH` is applied in the child; `LD_LIBRARY_PATH` is checked
/// there.
pub(crate) fn startup_variable(name: &str) -> bool {
    if name == "PYTHONPATH" || name == "LD_LIBRARY_PATH" {
        return false;
    }
    ["PYTHON", "LC_", "LD_", "MALLOC_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || ["LANG", "LANGUAGE", "TZ", "HOME", "GLIBC_TUNABLES"].contains(&name)
}

/// Whether an environment with `variables` can be forked from a server started with
/// `server`: every [`startup_variable`] has the same value in both.
pub(crate) fn fits(server: &[(String, String)], variables: &[(String, String)]) -> bool {
    let get = |vars: &[(String, String)], name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    server
        .iter()
        .chain(variables)
        .filter(|(k, _)| startup_variable(k))
        .all(|(k, _)| get(server, k) == get(variables, k))
}

/// What the interpreter added to the environment it was started with (PEP 538's
/// `LC_CTYPE=C.UTF-8` when the locale is not available), or why the server cannot stand in
/// for a spawn: it changed or removed a variable, or added one a spawn would not get the
/// same way (a wrapper script setting `PYTHONPATH`).
pub(crate) fn additions(
    given: &[(String, String)],
    started: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let mut added = Vec::new();
    for (k, v) in started {
        match given.iter().find(|(gk, _)| gk == k) {
            Some((_, gv)) if gv == v => {}
            Some((_, gv)) => {
                return Err(format!("the interpreter changed {k} from {gv:?} to {v:?}"));
            }
            None if k == "LC_CTYPE" => added.push((k.clone(), v.clone())),
            None => {
                return Err(format!(
                    "the interpreter added {k}={v:?} to its environment"
                ));
            }
        }
    }
    if let Some((k, _)) = given
        .iter()
        .find(|(k, _)| !started.iter().any(|(s, _)| s == k))
    {
        return Err(format!("the interpreter removed {k} from its environment"));
    }
    Ok(added)
}

/// A forked runtime: its pid, and its wait status once it exits.
pub(crate) struct Forked {
    pub(crate) pid: u32,
    pub(crate) exit: oneshot::Receiver<i32>,
}

/// One environment's request to the server.
pub(crate) struct Request<'a> {
    /// The process group to join (the extensions'); `None`: a new one the runtime leads.
    pub(crate) group: Option<u32>,
    /// The interpreter as a spawn would run it (for `sys.orig_argv` and the exec fallback).
    pub(crate) program: &'a Path,
    pub(crate) cwd: &'a Path,
    pub(crate) handler: &'a str,
    /// Every variable, in the order a spawn gives them (sorted by name).
    pub(crate) variables: &'a [(String, String)],
    /// What the interpreter adds as it starts ([`ForkServer::added`]): set after
    /// `variables` in a fork, left to the interpreter when the child execs instead.
    pub(crate) added: &'a [(String, String)],
    /// The write end of the environment's output pipe.
    pub(crate) output: &'a OwnedFd,
}

#[derive(Default)]
struct State {
    next_id: u64,
    pending: HashMap<u64, oneshot::Sender<Result<Forked, String>>>,
    exits: HashMap<u32, oneshot::Sender<i32>>,
    dead: bool,
}

struct Inner {
    socket: AsyncFd<OwnedFd>,
    state: Mutex<State>,
}

/// A running fork server; dropping it ends the server and the runtimes it still has.
pub(crate) struct ForkServer {
    inner: Arc<Inner>,
    /// The variables it was started with, and those the interpreter added.
    variables: Vec<(String, String)>,
    added: Vec<(String, String)>,
    reader: tokio::task::AbortHandle,
    _process: tokio::process::Child,
}

impl std::fmt::Debug for ForkServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForkServer")
            .field("pid", &self._process.id())
            .finish_non_exhaustive()
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        // The reader holds the socket too; without it the last reference goes, the socket
        // closes, and the server ends its children and exits.
        self.reader.abort();
    }
}

impl ForkServer {
    /// Starts `interpreter -c SCRIPT` with exactly `variables` and waits until it has
    /// imported awslambdaric.
    pub(crate) async fn start(
        interpreter: &Path,
        variables: Vec<(String, String)>,
    ) -> Result<ForkServer, String> {
        let (ours, theirs) = seqpacket_pair().map_err(|e| format!("socketpair: {e}"))?;
        set_nonblocking(&ours).map_err(|e| format!("fcntl: {e}"))?;
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged while the AsyncFd owns it.
        let socket = unsafe {
            AsyncFd::register_with_interest(ours, Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(|e| format!("registering the socket: {e}"))?;
        let mut command = tokio::process::Command::new(interpreter);
        let fd = theirs.as_raw_fd();
        command
            .args(["-c", SCRIPT, MARKER])
            .env_clear()
            .envs(variables.iter().cloned())
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        // SAFETY: dup2 and fcntl are async-signal-safe; the hook only moves the socket to
        // fd 3, where the server expects it, without close-on-exec.
        unsafe {
            command.pre_exec(move || {
                if fd == 3 {
                    let flags = libc::fcntl(3, libc::F_GETFD);
                    libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                } else if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut process = super::unbusy(|| command.spawn())
            .map_err(|e| format!("{} does not start: {e}", interpreter.display()))?;
        drop(command);
        drop(theirs);
        // Its stderr says why it failed to start (a traceback); later, anything it writes
        // (it writes nothing while healthy) goes to tracing.
        let mut stderr = process.stderr.take();
        let ready = tokio::time::timeout(START_TIMEOUT, receive(&socket)).await;
        let started = match ready {
            Ok(Ok(Some(message))) if message.starts_with(b"ready") => {
                parse_variables(&message[b"ready".len()..])
            }
            Ok(Ok(_)) => {
                let _ = process.wait().await;
                let mut text = String::new();
                if let Some(stderr) = stderr.as_mut() {
                    let _ = tokio::io::AsyncReadExt::read_to_string(stderr, &mut text).await;
                }
                return Err(format!(
                    "it exited before it was ready: {}",
                    text.trim().lines().last().unwrap_or("no output")
                ));
            }
            Ok(Err(e)) => return Err(format!("reading its socket: {e}")),
            Err(_) => {
                let _ = process.start_kill();
                return Err(format!("not ready after {START_TIMEOUT:?}"));
            }
        };
        if let Some(mut stderr) = stderr {
            tokio::spawn(async move {
                let mut text = String::new();
                let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
                if !text.trim().is_empty() {
                    tracing::warn!("the Python fork server wrote: {}", text.trim());
                }
            });
        }
        let added = additions(&variables, &started)?;
        let inner = Arc::new(Inner {
            socket,
            state: Mutex::default(),
        });
        let reader = tokio::spawn(read_replies(inner.clone())).abort_handle();
        Ok(ForkServer {
            inner,
            variables,
            added,
            reader,
            _process: process,
        })
    }

    /// Whether it still answers (it has not exited or closed its socket).
    pub(crate) fn alive(&self) -> bool {
        !self.inner.lock().dead
    }

    /// Whether an environment with these variables can be forked (see [`fits`]).
    pub(crate) fn fits(&self, variables: &[(String, String)]) -> bool {
        fits(&self.variables, variables)
    }

    /// The variables the interpreter adds as it starts: a forked environment gets them
    /// after its own, where a spawned interpreter would put them.
    pub(crate) fn added(&self) -> &[(String, String)] {
        &self.added
    }

    /// Forks a runtime for one environment.
    pub(crate) async fn spawn(&self, request: Request<'_>) -> Result<Forked, String> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut state = self.inner.lock();
            if state.dead {
                return Err("the fork server has exited".to_string());
            }
            state.next_id += 1;
            let id = state.next_id;
            state.pending.insert(id, tx);
            id
        };
        let message = encode(id, &request);
        if let Err(e) = self.send(&message, request.output.as_raw_fd()).await {
            // A socket we cannot write to has no server behind it (EPIPE, ECONNRESET): not
            // used again, even before its reader sees the end of file.
            let mut state = self.inner.lock();
            state.pending.remove(&id);
            state.dead = true;
            return Err(format!("sending to the fork server: {e}"));
        }
        rx.await
            .map_err(|_| "the fork server has exited".to_string())?
    }

    async fn send(&self, message: &[u8], fd: RawFd) -> std::io::Result<()> {
        loop {
            let mut guard = self.inner.socket.writable().await?;
            match guard.try_io(|socket| send_with_fd(socket.as_raw_fd(), message, fd)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `spawn\0<id>\0<pgid>\0<program>\0<cwd>\0<handler>\0<added>\0K=V\0...` (the last
/// `<added>` variables are the interpreter's additions).
fn encode(id: u64, request: &Request<'_>) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut message = format!("spawn\0{id}\0{}\0", request.group.unwrap_or(0)).into_bytes();
    for field in [request.program.as_os_str(), request.cwd.as_os_str()] {
        message.extend_from_slice(field.as_bytes());
        message.push(0);
    }
    message.extend_from_slice(request.handler.as_bytes());
    message.extend_from_slice(format!("\0{}", request.added.len()).as_bytes());
    for (k, v) in request.variables.iter().chain(request.added) {
        message.push(0);
        message.extend_from_slice(k.as_bytes());
        message.push(b'=');
        message.extend_from_slice(v.as_bytes());
    }
    message
}

/// `\0K=V\0K=V...` (a `ready` message's rest).
fn parse_variables(rest: &[u8]) -> Vec<(String, String)> {
    rest.split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .filter_map(|f| {
            let text = String::from_utf8_lossy(f);
            let (k, v) = text.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Dispatches the server's answers until its socket closes; then every runtime it still
/// had is killed and reported killed, and every request waiting fails.
async fn read_replies(inner: Arc<Inner>) {
    while let Ok(Some(message)) = receive(&inner.socket).await {
        dispatch(&inner, &message);
    }
    let mut state = inner.lock();
    state.dead = true;
    state.pending.clear();
    for (pid, exit) in state.exits.drain() {
        // SAFETY: signals a runtime this server forked (its group, or itself when it
        // joined the extensions' group); it is orphaned now, so no one else will.
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGKILL);
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
        let _ = exit.send(KILLED);
    }
}

fn dispatch(inner: &Inner, message: &[u8]) {
    let fields: Vec<&[u8]> = message.splitn(3, |b| *b == 0).collect();
    let number =
        |i: usize| -> Option<i64> { std::str::from_utf8(fields.get(i)?).ok()?.parse().ok() };
    let mut state = inner.lock();
    match fields[0] {
        b"pid" => {
            let (Some(id), Some(pid)) = (number(1), number(2)) else {
                return;
            };
            let (tx, exit) = oneshot::channel();
            state.exits.insert(pid as u32, tx);
            if let Some(waiter) = state.pending.remove(&(id as u64)) {
                let _ = waiter.send(Ok(Forked {
                    pid: pid as u32,
                    exit,
                }));
            }
        }
        b"fail" => {
            let why = fields
                .get(2)
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .unwrap_or_default();
            if let Some(waiter) = number(1).and_then(|id| state.pending.remove(&(id as u64))) {
                let _ = waiter.send(Err(format!("the fork server could not fork: {why}")));
            }
        }
        b"exit" => {
            if let (Some(pid), Some(status)) = (number(1), number(2))
                && let Some(exit) = state.exits.remove(&(pid as u32))
            {
                let _ = exit.send(status as i32);
            }
        }
        _ => {}
    }
}

/// One message from the socket; `None` at end of file.
async fn receive(socket: &AsyncFd<OwnedFd>) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        let mut guard = socket.readable().await?;
        let result = guard.try_io(|socket| {
            let mut buffer = vec![0u8; MAX_MESSAGE];
            // SAFETY: receives into a buffer we own, of the length given.
            let n = unsafe {
                libc::recv(
                    socket.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    0,
                )
            };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            buffer.truncate(n as usize);
            Ok(buffer)
        });
        match result {
            Ok(Ok(buffer)) if buffer.is_empty() => return Ok(None),
            Ok(Ok(buffer)) => return Ok(Some(buffer)),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

/// Sends `message` with `fd` attached (SCM_RIGHTS).
fn send_with_fd(socket: RawFd, message: &[u8], fd: RawFd) -> std::io::Result<()> {
    // SAFETY: builds a msghdr over buffers that outlive the call; CMSG_* compute offsets
    // inside `control`, which is sized with CMSG_SPACE for one descriptor.
    unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut control = vec![0u8; space];
        let mut iov = libc::iovec {
            iov_base: message.as_ptr() as *mut libc::c_void,
            iov_len: message.len(),
        };
        let mut header: libc::msghdr = std::mem::zeroed();
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&header);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        loop {
            if libc::sendmsg(socket, &header, libc::MSG_NOSIGNAL) >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// A connected pair of close-on-exec `SOCK_SEQPACKET` Unix sockets (message boundaries kept).
fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills both descriptors on success; we own them from here on.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The launch of an interpreter's environment that starts its fork server (in the
/// background; the launches before it and until it is ready spawn). Not the first: a test
/// process that cold-starts a Python function once (one nextest test) would pay a server
/// start (about a spawn) and a fork for nothing; from the second cold start on, the server
/// pays for itself after one more (`cargo bench --bench python_cold`).
const START_AT_LAUNCH: u64 = 2;

/// The fork servers of one backend, one per interpreter path, each started at its
/// interpreter's [`START_AT_LAUNCH`]th launch. A server that cannot start is not retried:
/// those launches spawn. One that started and has exited is replaced, in the background, by
/// the first launch that finds it gone ([`ForkServers::get`], [`ForkServers::failed`]).
#[derive(Debug, Default)]
pub(crate) struct ForkServers {
    servers: Mutex<HashMap<PathBuf, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    launches: u64,
    server: Arc<tokio::sync::OnceCell<Option<Arc<ForkServer>>>>,
}

impl Entry {
    /// Whether its server started and has exited since.
    fn exited(&self) -> bool {
        self.server
            .get()
            .is_some_and(|server| server.as_ref().is_some_and(|s| !s.alive()))
    }

    /// Starts a server in the background, in place of the one it had.
    fn start(&mut self, interpreter: &Path, variables: Vec<(String, String)>) {
        let cell = Arc::new(tokio::sync::OnceCell::new());
        self.server = cell.clone();
        let interpreter = interpreter.to_path_buf();
        tokio::spawn(async move {
            cell.get_or_init(|| start_logged(&interpreter, variables))
                .await;
        });
    }
}

impl ForkServers {
    /// The running server of `interpreter`, if it is ready; starts it (with `variables`)
    /// at the [`START_AT_LAUNCH`]th call for that interpreter, and again at the first call
    /// after it has exited. `None` (spawn) until it is ready, and when it cannot start or
    /// has exited.
    pub(crate) fn get(
        &self,
        interpreter: &Path,
        variables: impl FnOnce() -> Vec<(String, String)>,
    ) -> Option<Arc<ForkServer>> {
        let cell = {
            let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
            let entry = servers.entry(interpreter.to_path_buf()).or_default();
            entry.launches += 1;
            if entry.launches == START_AT_LAUNCH || entry.exited() {
                entry.start(interpreter, variables());
            }
            entry.server.clone()
        };
        let server = cell.get()?.clone()?;
        server.alive().then_some(server)
    }

    /// A fork request to `interpreter`'s server failed (the launch spawns instead): when
    /// the server has exited, starts its replacement now rather than at the next launch.
    pub(crate) fn failed(
        &self,
        interpreter: &Path,
        variables: impl FnOnce() -> Vec<(String, String)>,
    ) {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = servers.get_mut(interpreter)
            && entry.exited()
        {
            entry.start(interpreter, variables());
        }
    }
}

async fn start_logged(
    interpreter: &Path,
    variables: Vec<(String, String)>,
) -> Option<Arc<ForkServer>> {
    match ForkServer::start(interpreter, variables).await {
        Ok(server) => {
            tracing::debug!(
                "fork server of {} started: Python cold starts fork it",
                interpreter.display()
            );
            Some(Arc::new(server))
        }
        Err(why) => {
            tracing::warn!(
                "the fork server of {} is unavailable ({why}); Python environments start a fresh interpreter each",
                interpreter.display()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn variables_read_at_interpreter_start_must_match_the_servers() {
        let server = vars(&[
            ("PATH", "/usr/bin"),
            ("LANG", "en_US.UTF-8"),
            ("TZ", ":UTC"),
            ("PYTHONUNBUFFERED", "1"),
        ]);
        let environment = vars(&[
            ("PATH", "/opt/bin:/usr/bin"),
            ("PYTHONPATH", "/var/task"),
            ("LD_LIBRARY_PATH", "/opt/lib"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("LANG", "en_US.UTF-8"),
            ("TZ", ":UTC"),
            ("PYTHONUNBUFFERED", "1"),
        ]);
        assert!(fits(&server, &environment));
        for (name, value) in [
            ("PYTHONWARNINGS", "error"),
            ("PYTHONHASHSEED", "0"),
            ("LC_ALL", "C"),
            ("TZ", "Europe/Paris"),
            ("LD_PRELOAD", "/x.so"),
            ("HOME", "/tmp"),
        ] {
            let mut changed = environment.clone();
            changed.push((name.to_string(), value.to_string()));
            assert!(!fits(&server, &changed), "{name} read at start");
        }
        let unbuffered = vars(&[("LANG", "en_US.UTF-8"), ("TZ", ":UTC")]);
        assert!(!fits(&server, &unbuffered), "a server variable missing");
    }

    #[test]
    fn only_the_locale_coercion_may_be_added_by_the_interpreter() {
        let given = vars(&[("LANG", "en_US.UTF-8"), ("PATH", "/usr/bin")]);
        let coerced = vars(&[
            ("LANG", "en_US.UTF-8"),
            ("PATH", "/usr/bin"),
            ("LC_CTYPE", "C.UTF-8"),
        ]);
        assert_eq!(
            additions(&given, &coerced).unwrap(),
            vars(&[("LC_CTYPE", "C.UTF-8")])
        );
        assert_eq!(additions(&given, &given).unwrap(), vec![]);
        let wrapper = vars(&[
            ("LANG", "en_US.UTF-8"),
            ("PATH", "/usr/bin"),
            ("PYTHONPATH", "/site"),
        ]);
        assert!(
            additions(&given, &wrapper)
                .unwrap_err()
                .contains("added PYTHONPATH")
        );
        let changed = vars(&[("LANG", "C"), ("PATH", "/usr/bin")]);
        assert!(
            additions(&given, &changed)
                .unwrap_err()
                .contains("changed LANG")
        );
    }

    #[test]
    fn a_request_carries_the_environment_in_order() {
        let (output, _other) = seqpacket_pair().unwrap();
        let variables = vars(&[("A", "1"), ("B", "x=y")]);
        let added = vars(&[("LC_CTYPE", "C.UTF-8")]);
        let message = encode(
            7,
            &Request {
                group: Some(42),
                program: Path::new("/venv/bin/python"),
                cwd: Path::new("/task"),
                handler: "app.handler",
                variables: &variables,
                added: &added,
                output: &output,
            },
        );
        assert_eq!(
            message,
            b"spawn\x007\x0042\x00/venv/bin/python\x00/task\x00app.handler\x001\x00A=1\x00B=x=y\x00LC_CTYPE=C.UTF-8"
        );
    }
}
