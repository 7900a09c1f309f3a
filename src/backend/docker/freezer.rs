//! Freezing a container between invocations, as Lambda freezes an execution environment.
//!
//! With the daemon on this host the container's cgroup freezer is written directly
//! (`freezer.state` on cgroup v1, `cgroup.freeze` on v2): a few microseconds, where
//! `docker pause` / `unpause` costs a daemon round trip (~10 ms measured here) on every
//! invocation. Otherwise (a remote daemon) the API's pause and unpause are used, ordered by
//! an epoch so that a pause decided before a thaw never lands after it. Docker does not
//! know about a freeze it did not make, so every removal thaws first ([`thaw_cgroup`]): a
//! frozen process cannot even take SIGKILL.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;
use futures::future::BoxFuture;

/// A cgroup freezer control file and what to write to it.
#[derive(Debug, Clone)]
struct Control {
    path: PathBuf,
    frozen: &'static str,
    thawed: &'static str,
}

/// The freezer control of container `id`, if its cgroup is on this host.
fn control(id: &str) -> Option<Control> {
    let v1 = |path: String| Control {
        path: path.into(),
        frozen: "FROZEN",
        thawed: "THAWED",
    };
    let v2 = |path: String| Control {
        path: path.into(),
        frozen: "1",
        thawed: "0",
    };
    [
        v1(format!("/sys/fs/cgroup/freezer/docker/{id}/freezer.state")),
        v1(format!(
            "/sys/fs/cgroup/freezer/system.slice/docker-{id}.scope/freezer.state"
        )),
        v2(format!(
            "/sys/fs/cgroup/system.slice/docker-{id}.scope/cgroup.freeze"
        )),
        v2(format!("/sys/fs/cgroup/docker/{id}/cgroup.freeze")),
    ]
    .into_iter()
    .find(|c| c.path.exists())
}

/// Thaws container `id` through its cgroup if it is frozen there (before removing it).
pub(super) fn thaw_cgroup(id: &str) {
    if let Some(control) = control(id) {
        let _ = std::fs::write(&control.path, control.thawed);
    }
}

/// Freezes and thaws one container.
pub(super) struct Freezer {
    docker: Docker,
    id: String,
    /// `None`: through the API.
    control: Option<Control>,
    /// Bumped by every thaw: an API pause decided under an older epoch is dropped.
    epoch: Arc<AtomicU64>,
    /// Serialises API pauses and unpauses; `true` while paused through the API.
    paused: Arc<tokio::sync::Mutex<bool>>,
}

impl Freezer {
    pub(super) fn new(docker: Docker, id: String) -> Freezer {
        Freezer {
            control: control(&id),
            docker,
            id,
            epoch: Arc::default(),
            paused: Arc::default(),
        }
    }

    /// Freezes the container now (cgroup) or soon (API).
    pub(super) fn freeze(&self) {
        if let Some(control) = &self.control {
            let _ = std::fs::write(&control.path, control.frozen);
            return;
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let (docker, id, paused, epochs) = (
            self.docker.clone(),
            self.id.clone(),
            self.paused.clone(),
            self.epoch.clone(),
        );
        tokio::spawn(async move {
            let mut paused = paused.lock().await;
            if epochs.load(Ordering::SeqCst) == epoch && !*paused {
                *paused = docker.pause_container(&id).await.is_ok();
            }
        });
    }

    /// Thaws the container; the future resolves once it runs again.
    pub(super) fn thaw(&self) -> BoxFuture<'static, ()> {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(control) = &self.control {
            let _ = std::fs::write(&control.path, control.thawed);
            return Box::pin(async {});
        }
        let (docker, id, paused) = (self.docker.clone(), self.id.clone(), self.paused.clone());
        let unpause = tokio::spawn(async move {
            let mut paused = paused.lock().await;
            if *paused {
                let _ = docker.unpause_container(&id).await;
                *paused = false;
            }
        });
        Box::pin(async move {
            let _ = unpause.await;
        })
    }
}
