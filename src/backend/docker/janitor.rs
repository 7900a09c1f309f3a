//! Finding the daemon, and removing containers: one by one as environments end, all of a
//! session when the emulator goes, and those of owners that died (the reaper).
//!
//! Removal runs on a dedicated thread with its own current-thread runtime and its own
//! client, as testcontainers does for drop: `terminate()` and `Drop` are synchronous and
//! may run inside a current-thread runtime (blocked while it waits), so the work must not
//! need the caller's runtime — not even a pooled connection driven by it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::{ClientVersion, Docker};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{LABEL_OWNER_HOST, LABEL_OWNER_PID, LABEL_OWNER_START, LABEL_SESSION};
use crate::error::BackendError;

/// Seconds bollard waits for one request.
const REQUEST_TIMEOUT_S: u64 = 120;
/// Longest a shutdown waits for its containers to be gone.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a removal waits for a removal already in progress elsewhere.
const REMOVING_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the daemon: the address and the negotiated API version.
#[derive(Debug, Clone)]
pub(super) struct Connector {
    host: String,
    version: ClientVersion,
}

impl Connector {
    /// `DOCKER_HOST`, else the first default socket that exists (the system socket, then
    /// rootless and Docker Desktop ones, in testcontainers' order); negotiates the API
    /// version, so an older daemon (e.g. Debian's 20.10, API 1.41) works.
    pub(super) async fn discover() -> Result<Connector, BackendError> {
        let host = match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.trim().is_empty() => host.trim().to_string(),
            _ => default_sockets()
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .map(|p| format!("unix://{p}"))
                .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string()),
        };
        let unavailable = |e: bollard::errors::Error| BackendError::DockerUnavailable {
            host: host.clone(),
            source: Box::new(e),
        };
        let docker = connect(&host, bollard::API_DEFAULT_VERSION).map_err(unavailable)?;
        let docker = docker.negotiate_version().await.map_err(unavailable)?;
        Ok(Connector {
            version: docker.client_version(),
            host,
        })
    }

    /// The daemon's address, e.g. `unix:///var/run/docker.sock`.
    pub(super) fn host(&self) -> &str {
        &self.host
    }

    /// A new client (its own connections, driven by the runtime that uses it).
    pub(super) fn client(&self) -> Result<Docker, BackendError> {
        connect(&self.host, &self.version).map_err(|e| BackendError::DockerUnavailable {
            host: self.host.clone(),
            source: Box::new(e),
        })
    }
}

fn connect(host: &str, version: &ClientVersion) -> Result<Docker, DockerError> {
    if host.starts_with("unix://") || host.starts_with('/') {
        Docker::connect_with_unix(host, REQUEST_TIMEOUT_S, version)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, REQUEST_TIMEOUT_S, version)
    } else {
        Docker::connect_with_host(host)
    }
}

fn default_sockets() -> Vec<String> {
    let mut sockets = vec!["/var/run/docker.sock".to_string()];
    if let Ok(dir) = std::env::var("XDG_RUNTIME_DIR") {
        sockets.push(format!("{dir}/docker.sock"));
    }
    if let Ok(home) = std::env::var("HOME") {
        sockets.push(format!("{home}/.docker/run/docker.sock"));
        sockets.push(format!("{home}/.docker/desktop/docker.sock"));
    }
    // SAFETY: getuid has no preconditions.
    sockets.push(format!("/run/user/{}/docker.sock", unsafe {
        libc::getuid()
    }));
    sockets
}

/// The process that owns containers: pid, start time and host, as labels carry them.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    pub(super) pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22); empty where
    /// there is no `/proc`.
    pub(super) start: String,
    /// `<hostname>/<boot id>`: pids only mean something on the host (and boot) they
    /// came from.
    pub(super) host: String,
}

impl Owner {
    pub(super) fn current() -> Owner {
        let pid = std::process::id();
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".to_string());
        Owner {
            pid,
            start: start_time(pid).unwrap_or_default(),
            host: format!("{hostname}/{}", read("/proc/sys/kernel/random/boot_id")),
        }
    }
}

fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); the start time is field 22.
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return Some("dead".to_string());
    }
    fields.get(19).map(|s| s.to_string())
}

/// Whether the owner described by `pid` and `start` still runs on this host.
fn owner_alive(pid: u32, start: &str) -> bool {
    if std::path::Path::new("/proc/self/stat").exists() {
        match start_time(pid) {
            None => false,
            Some(now) => now != "dead" && (start.is_empty() || now == start),
        }
    } else {
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
        alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

/// Whether `labels` name an owner other than `me` that is no longer alive.
fn orphaned(labels: &HashMap<String, String>, me: &Owner) -> bool {
    let Some(pid) = labels
        .get(LABEL_OWNER_PID)
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return false;
    };
    let start = labels
        .get(LABEL_OWNER_START)
        .map(String::as_str)
        .unwrap_or("");
    let mine = pid == me.pid && start == me.start;
    !mine && !owner_alive(pid, start)
}

/// Removes the containers, then the code volumes, of owners on this host that are no
/// longer alive (a test process that was SIGKILLed never ran its drop).
pub(super) async fn reap_dead_owners(docker: &Docker, me: &Owner) {
    let filters = HashMap::from([("label", vec![format!("{LABEL_OWNER_HOST}={}", me.host)])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let containers = match docker.list_containers(Some(options)).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("lambda-testkit: could not list containers to reap: {e}");
            return;
        }
    };
    let orphans: Vec<String> = containers
        .into_iter()
        .filter(|c| orphaned(&c.labels.clone().unwrap_or_default(), me))
        .filter_map(|c| c.id)
        .collect();
    if !orphans.is_empty() {
        tracing::info!(
            "lambda-testkit: removing {} container(s) left by test processes that died",
            orphans.len()
        );
        futures::future::join_all(orphans.into_iter().map(|id| remove(docker.clone(), id))).await;
    }
    let volumes = list_volumes(docker, &filters).await;
    let orphans = volumes.into_iter().filter(|v| orphaned(&v.labels, me));
    futures::future::join_all(orphans.map(|v| remove_volume(docker.clone(), v.name))).await;
}

async fn list_volumes(
    docker: &Docker,
    filters: &HashMap<&str, Vec<String>>,
) -> Vec<bollard::models::Volume> {
    let options = ListVolumesOptionsBuilder::default()
        .filters(filters)
        .build();
    match docker.list_volumes(Some(options)).await {
        Ok(list) => list.volumes.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("lambda-testkit: could not list volumes: {e}");
            Vec::new()
        }
    }
}

async fn remove_volume(docker: Docker, name: String) {
    let options = RemoveVolumeOptionsBuilder::default().force(true).build();
    match docker.remove_volume(&name, Some(options)).await {
        Ok(())
        | Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => tracing::warn!("lambda-testkit: could not remove volume {name}: {e}"),
    }
}

/// Removes one container, whatever its state; done when it is gone.
pub(super) async fn remove(docker: Docker, id: String) {
    // A container frozen through its cgroup cannot take the SIGKILL Docker sends.
    super::freezer::thaw_cgroup(&id);
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(&id, Some(options)).await {
        Ok(())
        | Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(DockerError::DockerResponseServerError {
            status_code: 409, ..
        }) => {
            // Another removal is under way (a sweep racing a terminate): wait for it.
            let options = WaitContainerOptionsBuilder::default()
                .condition("removed")
                .build();
            let mut wait = docker.wait_container(&id, Some(options));
            let _ = tokio::time::timeout(REMOVING_TIMEOUT, wait.next()).await;
        }
        Err(e) => tracing::warn!("lambda-testkit: could not remove container {id}: {e}"),
    }
}

enum Command {
    Remove(String),
    Sweep(std::sync::mpsc::SyncSender<()>),
    /// Finish queued removals, then end the thread.
    Stop,
}

/// A cheap handle that queues removals for the janitor thread.
#[derive(Clone)]
pub(super) struct JanitorHandle {
    tx: mpsc::UnboundedSender<Command>,
    /// Something may exist that a sweep has not seen yet.
    dirty: Arc<AtomicBool>,
}

impl JanitorHandle {
    /// A container is about to be created.
    pub(super) fn created(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    /// Removes container `id` in the background. Never blocks.
    pub(super) fn remove(&self, id: String) {
        self.dirty.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Command::Remove(id));
    }
}

/// The removal thread of one backend.
pub(super) struct Janitor {
    handle: JanitorHandle,
}

impl Janitor {
    pub(super) fn spawn(connector: Connector, session: String) -> Janitor {
        let (tx, rx) = mpsc::unbounded_channel();
        let spawned = std::thread::Builder::new()
            .name("lambda-testkit-docker-janitor".to_string())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(run(connector, session, rx)),
                    Err(e) => {
                        tracing::error!("lambda-testkit: janitor runtime failed to start: {e}")
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("lambda-testkit: janitor thread failed to start: {e}");
        }
        Janitor {
            handle: JanitorHandle {
                tx,
                dirty: Arc::default(),
            },
        }
    }

    pub(super) fn handle(&self) -> &JanitorHandle {
        &self.handle
    }

    /// Blocks until every queued removal is done and no container of the session is
    /// left (bounded by [`SWEEP_TIMEOUT`]). Cheap when nothing was created since the last
    /// sweep.
    pub(super) fn sweep(&self) {
        if !self.handle.dirty.swap(false, Ordering::SeqCst) {
            return;
        }
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        if self.handle.tx.send(Command::Sweep(ack)).is_ok()
            && done.recv_timeout(SWEEP_TIMEOUT).is_err()
        {
            tracing::warn!(
                "lambda-testkit: containers were still being removed after {SWEEP_TIMEOUT:?}"
            );
        }
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        // Not joined: container handles elsewhere (tasks of a runtime that may be the one
        // blocked in this drop) still hold senders. The owner sweeps before dropping.
        let _ = self.handle.tx.send(Command::Stop);
    }
}

async fn run(connector: Connector, session: String, mut rx: mpsc::UnboundedReceiver<Command>) {
    let docker = match connector.client() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("lambda-testkit: janitor cannot reach the daemon: {e}");
            while rx.recv().await.is_some() {}
            return;
        }
    };
    let mut removals = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                None | Some(Command::Stop) => break,
                Some(Command::Remove(id)) => {
                    removals.spawn(remove(docker.clone(), id));
                }
                Some(Command::Sweep(ack)) => {
                    while removals.join_next().await.is_some() {}
                    sweep_session(&docker, &session).await;
                    let _ = ack.send(());
                }
            },
            Some(_) = removals.join_next(), if !removals.is_empty() => {}
        }
    }
    while removals.join_next().await.is_some() {}
}

/// Removes every container labelled with `session` (those whose removal was never
/// queued, e.g. created by a launch the shutdown overtook).
async fn sweep_session(docker: &Docker, session: &str) {
    let filters = HashMap::from([("label", vec![format!("{LABEL_SESSION}={session}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    match docker.list_containers(Some(options)).await {
        Ok(containers) => {
            let ids = containers.into_iter().filter_map(|c| c.id);
            futures::future::join_all(ids.map(|id| remove(docker.clone(), id))).await;
        }
        Err(e) => tracing::warn!("lambda-testkit: could not list the session's containers: {e}"),
    }
    // The code volumes, now that no container uses them.
    let volumes = list_volumes(docker, &filters).await;
    futures::future::join_all(
        volumes
            .into_iter()
            .map(|v| remove_volume(docker.clone(), v.name)),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        let me = Owner::current();
        assert!(owner_alive(me.pid, &me.start));
        assert!(
            !owner_alive(me.pid, "1"),
            "same pid, other start time: a reused pid"
        );
        assert!(!owner_alive(u32::MAX / 2, ""));
    }
}
