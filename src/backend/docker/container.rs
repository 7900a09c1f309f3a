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
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, HostConfigLogConfig, Mount, NetworkingConfig,
};
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
use super::freezer::Freezer;
use super::images::ImageInfo;
use super::janitor::{Janitor, JanitorHandle};
use crate::backend::{
    ExitHook, ExtensionExitHook, Instance, LaunchSpec, OutputSink, Settle, Source,
};
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
    pub(super) network: NetworkPlan,
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

/// How one container is networked.
#[derive(Debug, Clone)]
pub(super) enum NetworkPlan {
    /// The host's network.
    Host,
    /// A bridge network, with `host.docker.internal` mapped to `host` (an address, or
    /// `host-gateway`).
    Bridge {
        host: String,
        /// A user-defined network and the container's aliases on it; `None`: Docker's
        /// default bridge.
        network: Option<(String, Vec<String>)>,
    },
}

impl NetworkPlan {
    fn is_host(&self) -> bool {
        matches!(self, NetworkPlan::Host)
    }
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
    if !spec.extensions.is_empty() && !image.fence {
        return Err(BackendError::Other(format!(
            "image {} has no /bin/sh to start the extensions in /opt/extensions with",
            image.name
        )));
    }
    // Fences and the extensions' exit markers carry this token.
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut env: Vec<String> = spec
        .variables
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if image.fence {
        env.push(format!("_LTK_TOKEN={token}"));
    }
    if !spec.extensions.is_empty() {
        let withheld: Vec<&str> = spec
            .variables
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !spec.extension_variables.iter().any(|(e, _)| e == k))
            .collect();
        env.push("_LTK_EXTENSIONS=1".to_string());
        env.push(format!("_LTK_WITHHELD={}", withheld.join(" ")));
    }
    let (network_mode, extra_hosts, endpoints) = match &plan.network {
        NetworkPlan::Host => (Some("host".to_string()), None, None),
        NetworkPlan::Bridge { host, network } => (
            network.as_ref().map(|(name, _)| name.clone()),
            Some(vec![format!("host.docker.internal:{host}")]),
            network.as_ref().map(|(name, aliases)| {
                let endpoint = EndpointSettings {
                    aliases: (!aliases.is_empty()).then(|| aliases.clone()),
                    ..Default::default()
                };
                HashMap::from([(name.clone(), endpoint)])
            }),
        ),
    };
    let host_network = plan.network.is_host();
    let host_config = HostConfig {
        network_mode,
        extra_hosts,
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
        env: Some(env),
        labels: Some(plan.labels),
        attach_stdin: Some(image.fence),
        open_stdin: Some(image.fence),
        stdin_once: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        host_config: Some(host_config),
        networking_config: endpoints.map(|endpoints_config| NetworkingConfig {
            endpoints_config: Some(endpoints_config),
        }),
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
        (Ok(()), Ok(link)) => {
            let started = Started {
                id: &id,
                token,
                fence: image.fence,
                host_network,
            };
            start(docker, &janitor, started, link, spec).await
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    if started.is_err() {
        janitor.remove(id);
    }
    started
}

/// What [`start`] needs to know about the created container.
struct Started<'a> {
    id: &'a str,
    token: String,
    fence: bool,
    host_network: bool,
}

async fn start(
    docker: &Docker,
    janitor: &JanitorHandle,
    started: Started<'_>,
    link: Option<Vec<u8>>,
    spec: LaunchSpec,
) -> Result<Box<dyn Instance>, BackendError> {
    let Started {
        id,
        token,
        fence,
        host_network,
    } = started;
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
        freezer: Freezer::new(docker.clone(), id.to_string()),
        address: OnceLock::new(),
        docker: docker.clone(),
        extensions: !spec.extensions.is_empty(),
    });
    spec.output.set_settler(container.clone());
    let on_exit = ExitOnce::new(spec.on_exit);
    let extensions = Extensions {
        names: spec
            .extensions
            .iter()
            .filter_map(|p| p.rsplit('/').next().map(str::to_string))
            .collect(),
        on_exit: spec.on_extension_exit.clone(),
    };
    tokio::spawn(read_output(
        attached.output,
        FenceFilter::new(&token),
        spec.output.clone(),
        container.clone(),
        on_exit.clone(),
        extensions.clone(),
    ));
    docker
        .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
        .await
        .map_err(|e| docker_error("start container", e))?;
    // The container's address: the only peer its Runtime API admits on a bridge, and
    // where its extensions listen (the Telemetry API's destination). On the host's
    // network it is this host's loopback.
    if !host_network {
        let inspected = docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map_err(|e| docker_error("inspect container", e))?;
        let address = inspected
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|networks| {
                networks
                    .into_values()
                    .find_map(|n| n.ip_address.filter(|ip| !ip.is_empty()))
            })
            .and_then(|ip| ip.parse().ok());
        if let Some(address) = address {
            let _ = container.address.set(address);
        }
    }
    // Set only with extensions: the runtime starts once they have registered.
    if let Some(gate) = spec.runtime_gate {
        let starter = container.clone();
        tokio::spawn(async move {
            if gate.await.is_ok() {
                let mut stdin = starter.stdin.lock().await;
                let _ = stdin.write_all(fence::START).await;
                let _ = stdin.flush().await;
            }
        });
    }
    tokio::spawn(watch_exit(
        docker.clone(),
        container.clone(),
        on_exit,
        extensions,
    ));
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
    on_exit: ExitOnce,
    extensions: Extensions,
) {
    while let Some(item) = output.next().await {
        let message = match item {
            // With extensions, theirs is the container's stderr (the runtime's is merged
            // into stdout): the `extension` stream.
            Ok(LogOutput::StdErr { message }) if !extensions.names.is_empty() => {
                sink.append(Source::Extension(EXTENSIONS), |buffer| {
                    buffer.extend_from_slice(&message)
                });
                continue;
            }
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
        for (name, status) in filter.exits() {
            if !container.terminated.load(Ordering::SeqCst) {
                (extensions.on_exit)(&name, describe_exit(status));
            }
        }
        if let Some(status) = filter.runtime_exit() {
            on_exit.call(describe_exit(status));
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
    on_exit: ExitOnce,
    extensions: Extensions,
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
    on_exit.call(reason.clone());
    // Whatever still ran in the container ended with it.
    for name in &extensions.names {
        (extensions.on_exit)(name, reason.clone());
    }
    container.terminate();
}

/// The name extension output is buffered under on Docker, where all extensions share the
/// container's stderr.
const EXTENSIONS: &str = "extensions";

/// The container's external extensions and where their exits are reported.
#[derive(Clone)]
struct Extensions {
    names: Vec<String>,
    on_exit: ExtensionExitHook,
}

/// The runtime's exit hook, called once: by its exit marker (with extensions) or by the
/// container's end.
#[derive(Clone)]
struct ExitOnce(Arc<std::sync::Mutex<Option<ExitHook>>>);

impl ExitOnce {
    fn new(hook: ExitHook) -> ExitOnce {
        ExitOnce(Arc::new(std::sync::Mutex::new(Some(hook))))
    }

    fn call(&self, reason: String) {
        let hook = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(hook) = hook {
            hook(reason);
        }
    }
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
    freezer: Freezer,
    /// The container's address on its network (for extensions' listeners).
    address: OnceLock<std::net::IpAddr>,
    docker: Docker,
    /// It runs external extensions (the wrapper is its main process).
    extensions: bool,
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
            // Thawed first: a frozen container cannot take the SIGKILL.
            drop(self.freezer.thaw());
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

    fn freeze(&self) {
        self.0.freezer.freeze();
    }

    fn interrupt(&self) {
        // With extensions the container's main process is the wrapper, which passes
        // SIGTERM on to the runtime.
        if self.0.extensions {
            let (docker, id) = (self.0.docker.clone(), self.0.id.clone());
            tokio::spawn(async move {
                let options = bollard::query_parameters::KillContainerOptionsBuilder::default()
                    .signal("SIGTERM")
                    .build();
                let _ = docker.kill_container(&id, Some(options)).await;
            });
        }
    }

    fn thaw(&self) -> BoxFuture<'static, ()> {
        self.0.freezer.thaw()
    }

    fn address(&self) -> Option<std::net::IpAddr> {
        self.0.address.get().copied()
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
