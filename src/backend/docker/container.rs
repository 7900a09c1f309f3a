//! One execution environment as a container: create (with the code volumes mounted,
//! loaded meanwhile), attach, start; then its output (attach stream → sink, fences cut
//! out) and its exit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, UploadToContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use std::future::Future;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::fence::{self, FenceFilter};
use super::images::ImageInfo;
use super::janitor::{Janitor, JanitorHandle};
use crate::backend::{Instance, LaunchSpec, OutputSink, Settle, Source};
use crate::error::BackendError;

/// Longest wait for a fence to come back from a live container.
const FENCE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the rest of a stopped (or stopping) container's output.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// `seen` value once the output stream has ended.
const EOF: u64 = u64::MAX;

/// What the backend decided for one container.
pub(super) struct Plan {
    pub(super) name: String,
    pub(super) image: Arc<ImageInfo>,
    pub(super) labels: HashMap<String, String>,
    pub(super) host_network: bool,
    /// `/var/task` and `/opt`.
    pub(super) mounts: Vec<Mount>,
    /// For OS-only runtimes, the bootstrap to link at `/var/runtime/bootstrap`.
    pub(super) bootstrap: Option<&'static str>,
    /// Replaces the image's entrypoint (an image function's `ImageConfig.EntryPoint`).
    pub(super) entrypoint: Option<Vec<String>>,
    /// The entrypoint's arguments: the handler, or an image function's `CMD`.
    pub(super) cmd: Vec<String>,
    /// Replaces the image's working directory.
    pub(super) working_dir: Option<String>,
}

fn docker_error(action: &str, e: DockerError) -> BackendError {
    BackendError::Docker {
        action: action.to_string(),
        source: Box::new(e),
    }
}

/// Creates and starts the container for `spec`; `load` (the code volumes' upload, done
/// once per code) runs while the container is created and must succeed before it starts.
/// On failure nothing is left behind.
pub(super) async fn launch(
    docker: &Docker,
    janitor: &Janitor,
    plan: Plan,
    spec: LaunchSpec,
    load: impl Future<Output = Result<(), BackendError>>,
) -> Result<Box<dyn Instance>, BackendError> {
    let memory = i64::from(spec.deployment.config.memory_mb) << 20;
    let image = &plan.image;
    let host_config = HostConfig {
        network_mode: plan.host_network.then(|| "host".to_string()),
        extra_hosts: (!plan.host_network)
            .then(|| vec!["host.docker.internal:host-gateway".to_string()]),
        memory: Some(memory),
        memory_swap: Some(memory),
        mounts: Some(plan.mounts),
        // Output is read from the attach stream; a log file would only cost disk and time.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_string()),
            config: None,
        }),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(image.name.clone()),
        entrypoint: if image.fence {
            let entrypoint = plan.entrypoint.as_ref().unwrap_or(&image.entrypoint);
            Some(fence::wrap_entrypoint(entrypoint, plan.bootstrap))
        } else {
            plan.entrypoint
        },
        // Always given: an explicit entrypoint makes Docker drop the image's CMD.
        cmd: Some(plan.cmd),
        working_dir: plan.working_dir,
        env: Some(
            spec.variables
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        labels: Some(plan.labels),
        attach_stdin: Some(image.fence),
        open_stdin: Some(image.fence),
        stdin_once: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    };
    let janitor = janitor.handle().clone();
    janitor.created();
    let options = CreateContainerOptionsBuilder::default()
        .name(&plan.name)
        .build();
    let (created, loaded) = tokio::join!(docker.create_container(Some(options), body), load);
    let id = created.map_err(|e| docker_error("create container", e))?.id;
    // An image without a shell cannot link the bootstrap itself: upload the link.
    let link = plan.bootstrap.filter(|_| !image.fence).map(|target| {
        super::archive::bootstrap_link(target).map_err(|source| BackendError::Archive {
            what: "the bootstrap link",
            source,
        })
    });
    let started = match (loaded, link.transpose()) {
        (Ok(()), Ok(link)) => start(docker, &janitor, &id, link, image.fence, spec).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    if started.is_err() {
        janitor.remove(id);
    }
    started
}

async fn start(
    docker: &Docker,
    janitor: &JanitorHandle,
    id: &str,
    link: Option<Vec<u8>>,
    fence: bool,
    spec: LaunchSpec,
) -> Result<Box<dyn Instance>, BackendError> {
    if let Some(link) = link {
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        docker
            .upload_to_container(id, Some(options), bollard::body_full(Bytes::from(link)))
            .await
            .map_err(|e| docker_error("upload the bootstrap link", e))?;
    }
    let attach = async {
        let options = AttachContainerOptionsBuilder::default()
            .stdin(fence)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        docker
            .attach_container(id, Some(options))
            .await
            .map_err(|e| docker_error("attach", e))
    };
    let attached = attach.await?;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let container = Arc::new(Container {
        id: id.to_string(),
        janitor: janitor.clone(),
        stdin: tokio::sync::Mutex::new(attached.input),
        filter_token: token.clone(),
        fence,
        fences: AtomicU64::new(0),
        seen: watch::Sender::new(0),
        terminated: AtomicBool::new(false),
        memory_file: OnceLock::new(),
    });
    spec.output.set_settler(container.clone());
    tokio::spawn(read_output(
        attached.output,
        FenceFilter::new(&token),
        spec.output.clone(),
        container.clone(),
    ));
    docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .map_err(|e| docker_error("start container", e))?;
    tokio::spawn(watch_exit(docker.clone(), container.clone(), spec.on_exit));
    Ok(Box::new(ContainerHandle(container)))
}

type OutputStream = Pin<Box<dyn futures::Stream<Item = Result<LogOutput, DockerError>> + Send>>;

/// Copies the attach stream into the sink until it ends, cutting out fence markers and
/// publishing the fences seen.
async fn read_output(
    mut output: OutputStream,
    mut filter: FenceFilter,
    sink: Arc<OutputSink>,
    container: Arc<Container>,
) {
    while let Some(item) = output.next().await {
        let message = match item {
            Ok(
                LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message },
            ) => message,
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(_) => break,
        };
        // One stream for the runtime and the extensions: all of it is the function's.
        if let Some(seq) = sink.append(Source::Runtime, |buffer| filter.feed(&message, buffer)) {
            container.seen.send_modify(|seen| *seen = (*seen).max(seq));
        }
    }
    sink.append(Source::Runtime, |buffer| filter.finish(buffer));
    container.seen.send_replace(EOF);
}

/// Waits for the container to stop, lets its output drain, reports the exit, and removes
/// the container.
async fn watch_exit(
    docker: Docker,
    container: Arc<Container>,
    on_exit: Box<dyn FnOnce(String) + Send>,
) {
    // `not-running` after start: returns at once if the runtime already exited.
    let options = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let reason = match docker
        .wait_container(&container.id, Some(options))
        .next()
        .await
    {
        Some(Ok(response)) => describe_exit(response.status_code),
        Some(Err(DockerError::DockerContainerWaitError { code, .. })) => describe_exit(code),
        Some(Err(e)) => format!("container lost: {e}"),
        None => "container lost".to_string(),
    };
    container.drain().await;
    on_exit(reason);
    container.terminate();
}

/// `exit status 3`, or `signal: killed` for 137 (SIGKILL: `docker kill`, the OOM killer),
/// as Lambda words `Runtime exited with error: …`.
fn describe_exit(code: i64) -> String {
    match code {
        137 => "signal: killed".to_string(),
        code => format!("exit status {code}"),
    }
}

struct Container {
    id: String,
    janitor: JanitorHandle,
    stdin: tokio::sync::Mutex<Pin<Box<dyn AsyncWrite + Send>>>,
    filter_token: String,
    /// The image has the fence loop.
    fence: bool,
    /// Fences sent.
    fences: AtomicU64,
    /// Highest fence seen on the output, [`EOF`] once the stream ended.
    seen: watch::Sender<u64>,
    terminated: AtomicBool,
    memory_file: OnceLock<Option<PathBuf>>,
}

impl Container {
    /// Waits (bounded) for the output stream to end.
    async fn drain(&self) {
        let mut seen = self.seen.subscribe();
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, seen.wait_for(|s| *s == EOF)).await;
    }

    async fn fence(&self) {
        if *self.seen.borrow() == EOF {
            return;
        }
        if self.terminated.load(Ordering::SeqCst) {
            return self.drain().await;
        }
        if !self.fence {
            return;
        }
        let seq = self.fences.fetch_add(1, Ordering::SeqCst) + 1;
        // Subscribe before sending: the answer may beat the write's return.
        let mut seen = self.seen.subscribe();
        let sent = {
            let mut stdin = self.stdin.lock().await;
            match stdin
                .write_all(&fence::request(&self.filter_token, seq))
                .await
            {
                Ok(()) => stdin.flush().await,
                Err(e) => Err(e),
            }
        };
        if sent.is_err() {
            return self.drain().await;
        }
        if tokio::time::timeout(FENCE_TIMEOUT, seen.wait_for(|s| *s >= seq))
            .await
            .is_err()
        {
            tracing::warn!(
                "lambda-testkit: container {} did not echo an output fence within {FENCE_TIMEOUT:?}",
                self.id
            );
        }
    }

    fn terminate(&self) {
        if !self.terminated.swap(true, Ordering::SeqCst) {
            self.janitor.remove(self.id.clone());
        }
    }

    /// The container's peak memory from its cgroup, when the daemon is on this host.
    fn max_memory_used_mb(&self) -> Option<u64> {
        let file = self.memory_file.get_or_init(|| {
            let id = &self.id;
            [
                format!("/sys/fs/cgroup/memory/docker/{id}/memory.max_usage_in_bytes"),
                format!(
                    "/sys/fs/cgroup/memory/system.slice/docker-{id}.scope/memory.max_usage_in_bytes"
                ),
                format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.peak"),
                format!("/sys/fs/cgroup/docker/{id}/memory.peak"),
            ]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        });
        let bytes: u64 = std::fs::read_to_string(file.as_ref()?)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(bytes.div_ceil(1 << 20))
    }
}

impl Settle for Container {
    fn settle(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.fence())
    }
}

struct ContainerHandle(Arc<Container>);

impl Instance for ContainerHandle {
    fn flush_output(&self) {
        // Output is copied into the sink as it arrives; ordering against Runtime API
        // calls is what `Settle` is for.
    }

    fn terminate(&self) {
        self.0.terminate();
    }

    fn pid(&self) -> Option<u32> {
        None
    }

    fn max_memory_used_mb(&self) -> Option<u64> {
        self.0.max_memory_used_mb()
    }
}

impl Drop for ContainerHandle {
    fn drop(&mut self) {
        self.0.terminate();
    }
}
