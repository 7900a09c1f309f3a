//! Freezing a container between invocations, as Lambda freezes an execution environment.
//!
//! With the daemon on this host the container's cgroup freezer is written directly
//! (`freezer.state` on cgroup v1, `cgroup.freeze` on v2): a few microseconds, where
//! `docker pause` / `unpause` costs a daemon round trip (~10 ms measured here) on every
//! invocation. The cgroup exists once the container has started, so it is looked up at the
//! first freeze (an environment freezes only once its runtime waits in `/next`).
//! Otherwise (a remote daemon) the API's pause and unpause are used, ordered by an epoch so
//! that a pause decided before a thaw never lands after it. Docker does not know about a
//! freeze it did not make, so every removal thaws first ([`thaw_cgroup`]): a frozen process
//! cannot even take SIGKILL.
//!
//! The daemon's own record of a pause lags it: dockerd (20.10) marks a container paused
//! when containerd's event for the pause arrives, after `pause` has returned, and refuses
//! an `unpause` before that as "is not paused", leaving the container frozen. An invocation
//! handed to it then times out (the soak test's Docker case did, in about half its runs,
//! while the cgroup was looked up too early and every freeze went through the API). So a
//! thaw through the API tries again while the daemon says so, until the event has landed
//! ([`UNPAUSE_RETRIES`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

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

/// How many times, [`UNPAUSE_BACKOFF`] apart, an unpause the daemon refused as "not
/// paused" is tried again (up to 1 s: its pause event lands within milliseconds).
const UNPAUSE_RETRIES: u32 = 200;
const UNPAUSE_BACKOFF: Duration = Duration::from_millis(5);

/// Freezes and thaws one container.
pub(super) struct Freezer {
    docker: Docker,
    id: String,
    /// Looked up at first use (after the container started); `None`: through the API.
    control: OnceLock<Option<Control>>,
    /// Bumped by every thaw: an API pause decided under an older epoch is dropped.
    epoch: Arc<AtomicU64>,
    /// Serialises API pauses and unpauses; `true` while paused through the API.
    paused: Arc<tokio::sync::Mutex<bool>>,
}

impl Freezer {
    pub(super) fn new(docker: Docker, id: String) -> Freezer {
        Freezer {
            control: OnceLock::new(),
            docker,
            id,
            epoch: Arc::default(),
            paused: Arc::default(),
        }
    }

    fn control(&self) -> Option<&Control> {
        self.control.get_or_init(|| control(&self.id)).as_ref()
    }

    /// Freezes the container now (cgroup) or soon (API).
    pub(super) fn freeze(&self) {
        if let Some(control) = self.control() {
            let _ = std::fs::write(&control.path, control.frozen);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let epoch = self.epoch.load(Ordering::SeqCst);
        let (docker, id, paused, epochs) = (
            self.docker.clone(),
            self.id.clone(),
            self.paused.clone(),
            self.epoch.clone(),
        );
        runtime.spawn(async move {
            let mut paused = paused.lock().await;
            if epochs.load(Ordering::SeqCst) == epoch && !*paused {
                *paused = docker.pause_container(&id).await.is_ok();
            }
        });
    }

    /// Thaws the container; the future resolves once it runs again. Outside a Tokio
    /// runtime (an emulator dropped there) only a cgroup is thawed: the removal that
    /// follows takes a container the daemon paused as it is (`docker rm -f`).
    pub(super) fn thaw(&self) -> BoxFuture<'static, ()> {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(control) = self.control() {
            let _ = std::fs::write(&control.path, control.thawed);
            return Box::pin(async {});
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Box::pin(async {});
        };
        let (docker, id, paused) = (self.docker.clone(), self.id.clone(), self.paused.clone());
        let unpause = runtime.spawn(async move {
            let mut paused = paused.lock().await;
            if *paused {
                unpause(&docker, &id).await;
                *paused = false;
            }
        });
        Box::pin(async move {
            let _ = unpause.await;
        })
    }
}

/// Unpauses container `id`, again while the daemon has not yet recorded its pause.
async fn unpause(docker: &Docker, id: &str) {
    for _ in 0..UNPAUSE_RETRIES {
        match docker.unpause_container(id).await {
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("is not paused") =>
            {
                tokio::time::sleep(UNPAUSE_BACKOFF).await;
            }
            _ => return,
        }
    }
    tracing::warn!(
        container = id,
        "the daemon never recorded the container's pause; it may stay frozen"
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::RemoveContainerOptionsBuilder;

    use super::*;
    use crate::backend::docker::janitor::Owner;
    use crate::backend::docker::{LABEL_OWNER_HOST, LABEL_OWNER_PID, LABEL_OWNER_START};

    /// An image every provisioned machine has (`doctor --fix` builds it) with `sleep`.
    const IMAGE: &str = "lambda-testkit/provided:al2023";

    /// The local daemon and [`IMAGE`], or `None` (a skip) where they are missing and
    /// `LAMBDA_TESTKIT_REQUIRE_ALL` is unset (or `0`), as the integration tests skip.
    async fn daemon() -> Option<Docker> {
        let docker = Docker::connect_with_local_defaults().ok();
        let ready = match &docker {
            Some(d) => d.inspect_image(IMAGE).await.map_err(|e| e.to_string()),
            None => Err("no client".to_string()),
        };
        match ready {
            Ok(_) => docker,
            Err(e) if std::env::var_os("LAMBDA_TESTKIT_REQUIRE_ALL").is_some_and(|v| v != "0") => {
                panic!("Docker with {IMAGE} is required: {e}")
            }
            Err(e) => {
                eprintln!("skipped: Docker with {IMAGE}: {e}");
                None
            }
        }
    }

    /// A running container that only sleeps, labelled as the emulator labels its own (so a
    /// later emulator reaps it if this test dies before removing it).
    async fn sleeper(docker: &Docker) -> String {
        let owner = Owner::current();
        let mut labels = HashMap::from([
            (LABEL_OWNER_PID.to_string(), owner.pid.to_string()),
            (LABEL_OWNER_START.to_string(), owner.start),
            (LABEL_OWNER_HOST.to_string(), owner.host),
        ]);
        if let Ok(run) = std::env::var("LAMBDA_TESTKIT_TEST_RUN") {
            labels.insert("lambda-testkit.test-run".to_string(), run);
        }
        let body = ContainerCreateBody {
            image: Some(IMAGE.to_string()),
            entrypoint: Some(vec!["sleep".to_string(), "600".to_string()]),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some("none".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .unwrap()
            .id;
        docker
            .start_container(
                &id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .unwrap();
        id
    }

    #[test]
    fn the_cgroup_is_looked_up_at_first_use_not_at_creation() {
        let freezer = Freezer::new(Docker::connect_with_local_defaults().unwrap(), "c".into());
        assert!(
            freezer.control.get().is_none(),
            "before the container started"
        );
    }

    /// An emulator dropped outside a runtime thaws its containers on the way out.
    #[test]
    fn freezing_and_thawing_through_the_api_outside_a_runtime_does_nothing() {
        let freezer = Freezer {
            control: OnceLock::from(None),
            ..Freezer::new(Docker::connect_with_local_defaults().unwrap(), "c".into())
        };
        freezer.freeze();
        futures::executor::block_on(freezer.thaw());
    }

    /// Pauses and unpauses `id` through the API `cycles` times, each unpause as soon as
    /// the pause returned; the first cycle whose thaw left it frozen (its cgroup says so).
    async fn cycle(docker: Docker, id: String, cycles: usize) -> Option<usize> {
        let state = control(&id).expect("the started container's cgroup on this host");
        let read = || std::fs::read_to_string(&state.path).unwrap_or_default();
        let freezer = Freezer {
            control: OnceLock::from(None),
            ..Freezer::new(docker, id)
        };
        for cycle in 0..cycles {
            freezer.freeze();
            // Until the pause has been made (the thaw then waits for the daemon's answer).
            let frozen = std::time::Instant::now();
            while read().trim() != state.frozen && frozen.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            freezer.thaw().await;
            if read().trim() != state.thawed {
                return Some(cycle);
            }
        }
        None
    }

    /// Eight containers paused and unpaused through the API at once, as eight busy
    /// environments are (the daemon's pause events then lag): every thaw leaves its
    /// container running, although the daemon refuses some of those unpauses at first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thaw_through_the_api_right_after_a_pause_always_thaws() {
        let Some(docker) = daemon().await else {
            return;
        };
        let ids = futures::future::join_all((0..8).map(|_| sleeper(&docker))).await;
        let runs: Vec<_> = ids
            .iter()
            .map(|id| tokio::spawn(cycle(docker.clone(), id.clone(), 25)))
            .collect();
        let mut stuck = Vec::new();
        for (id, run) in ids.iter().zip(runs) {
            if let Some(cycle) = run.await.unwrap() {
                stuck.push((id[..12].to_string(), cycle));
            }
            thaw_cgroup(id);
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            docker.remove_container(id, Some(options)).await.unwrap();
        }
        assert!(
            stuck.is_empty(),
            "thaws that left a container frozen: {stuck:?}"
        );
    }
}
