//! The `Emulator`: one isolated Lambda per test, torn down on drop.

mod handle;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use handle::FunctionHandle;

use crate::api::ApiServer;
use crate::backend::docker::{DockerBackend, DockerNetwork, DockerSettings};
use crate::backend::process::ProcessBackend;
use crate::backend::{Backend, BackendKind};
use crate::deploy::{DeployError, Function, Layer, LayerVersion, Registry, Runtime};
use crate::error::BackendError;
use crate::execution::{LaunchContext, Platform};
use crate::service::{Core, Settings};
use crate::stats::{Event, Stats};

/// Default cap on execution environments per function.
pub const DEFAULT_MAX_ENVIRONMENTS: usize = 10;

/// Why an emulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// The working directory for extracted code could not be created.
    #[error("could not create the emulator's working directory: {0}")]
    Workdir(#[from] std::io::Error),
    /// The REST API listener could not bind its port.
    #[error("could not bind the Lambda API listener on 127.0.0.1:{port}: {source}")]
    ApiListener {
        /// The port asked for (0: any).
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
    /// The backend cannot run (e.g. no Docker daemon answers).
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Configures and starts an [`Emulator`].
///
/// ```
/// # async fn demo() -> Result<(), lambda_testkit::EmulatorError> {
/// use std::time::Duration;
/// let emu = lambda_testkit::Emulator::builder()
///     .region("eu-west-1")
///     .max_environments(4)
///     .idle_ttl(Duration::from_millis(200))
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    region: String,
    account_id: String,
    python: PathBuf,
    max_environments: usize,
    idle_ttl: Option<Duration>,
    workdir: PathBuf,
    api_port: u16,
    backend: BackendKind,
    images: HashMap<Runtime, String>,
    docker_labels: Vec<(String, String)>,
    docker_network: Option<DockerNetwork>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        EmulatorBuilder {
            region: "us-east-1".to_string(),
            account_id: "123456789012".to_string(),
            python: ProcessBackend::default_python(),
            max_environments: DEFAULT_MAX_ENVIRONMENTS,
            idle_ttl: None,
            workdir: std::env::temp_dir(),
            api_port: 0,
            backend: BackendKind::from_env(),
            images: HashMap::new(),
            docker_labels: Vec::new(),
            docker_network: None,
        }
    }
}

impl EmulatorBuilder {
    /// The region in ARNs and `AWS_REGION` (default `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// The account id in ARNs (default `123456789012`).
    pub fn account_id(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = account_id.into();
        self
    }

    /// The Python interpreter for `python3.*` functions on the process backend; it must
    /// have `awslambdaric` installed. Default: `LAMBDA_TESTKIT_PYTHON`, else `python3`.
    pub fn python(mut self, interpreter: impl Into<PathBuf>) -> Self {
        self.python = interpreter.into();
        self
    }

    /// Most execution environments per function (default 10); a function's own
    /// [`Function::max_environments`] wins.
    pub fn max_environments(mut self, cap: usize) -> Self {
        self.max_environments = cap;
        self
    }

    /// Retire environments idle for longer than `ttl` (default: never).
    pub fn idle_ttl(mut self, ttl: Duration) -> Self {
        self.idle_ttl = Some(ttl);
        self
    }

    /// Where extracted code and layers go (a fresh subdirectory per emulator, removed when
    /// it stops). Default: the system temp directory.
    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = dir.into();
        self
    }

    /// The port of the Lambda REST API on 127.0.0.1 (default 0: any free port; see
    /// [`Emulator::endpoint_url`]).
    pub fn api_port(mut self, port: u16) -> Self {
        self.api_port = port;
        self
    }

    /// Where execution environments run (default: `LAMBDA_TESTKIT_BACKEND`, else
    /// [`BackendKind::Process`]).
    pub fn backend(mut self, backend: BackendKind) -> Self {
        self.backend = backend;
        self
    }

    /// Runs execution environments as Docker containers: shorthand for
    /// `.backend(BackendKind::Docker)`.
    pub fn docker(self) -> Self {
        self.backend(BackendKind::Docker)
    }

    /// The image for `runtime`'s containers on the Docker backend. Without it, the image
    /// comes from `LAMBDA_TESTKIT_IMAGE_<RUNTIME>` (see [`crate::docker::image_env_var`],
    /// e.g. `LAMBDA_TESTKIT_IMAGE_PYTHON3_12`), else AWS's public base image
    /// ([`crate::docker::default_image`]). The image must honour the AWS base-image
    /// contract: its entrypoint takes the handler and runs `/var/runtime/bootstrap`
    /// against `AWS_LAMBDA_RUNTIME_API`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), lambda_testkit::EmulatorError> {
    /// use lambda_testkit::{Emulator, Runtime};
    /// let emu = Emulator::builder()
    ///     .docker()
    ///     .image(Runtime::Python312, "registry.example.com/mirror/lambda-python:3.12")
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn image(mut self, runtime: Runtime, image: impl Into<String>) -> Self {
        self.images.insert(runtime, image.into());
        self
    }

    /// An extra label on every container this emulator starts (Docker backend), e.g. to
    /// find a CI job's containers. The crate's own labels are in [`crate::docker`].
    pub fn docker_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.docker_labels.push((key.into(), value.into()));
        self
    }

    /// How containers reach the Runtime API (default: [`DockerNetwork::Host`] on Linux,
    /// [`DockerNetwork::HostGateway`] elsewhere).
    pub fn docker_network(mut self, network: DockerNetwork) -> Self {
        self.docker_network = Some(network);
        self
    }

    /// Starts the emulator. Must be called inside a Tokio runtime.
    ///
    /// With the Docker backend this connects to the daemon (`DOCKER_HOST`, else the
    /// default sockets) and first removes containers left by test processes that died
    /// without cleaning up; [`EmulatorError::Backend`] if no daemon answers.
    pub async fn start(self) -> Result<Emulator, EmulatorError> {
        let settings = Settings {
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            max_environments: self.max_environments,
        };
        let registry = Registry::new(self.region.clone(), self.account_id.clone(), self.workdir);
        let backend: Arc<dyn Backend> = match self.backend {
            BackendKind::Process => Arc::new(ProcessBackend::new(self.python)),
            BackendKind::Docker => Arc::new(
                DockerBackend::connect(DockerSettings {
                    images: self.images,
                    labels: self.docker_labels,
                    network: self.docker_network,
                    session_id: uuid::Uuid::new_v4().simple().to_string(),
                })
                .await?,
            ),
        };
        let launch = LaunchContext {
            backend,
            platform: Platform {
                region: self.region,
            },
        };
        static REAPED: std::sync::Once = std::sync::Once::new();
        REAPED.call_once(|| {
            std::thread::spawn(reap_orphaned_runtimes);
        });
        let core = Arc::new(Core::new(settings, registry, launch));
        let api = std::sync::OnceLock::new();
        // A fixed port is bound now, so a taken port fails here; the default (any free
        // port) is bound at the first `endpoint_url()`: most tests never use REST, and a
        // listener whose task is only aborted on drop would hold its socket until the
        // runtime next runs.
        if self.api_port != 0 {
            let server =
                ApiServer::start(Arc::downgrade(&core), self.api_port).map_err(|source| {
                    EmulatorError::ApiListener {
                        port: self.api_port,
                        source,
                    }
                })?;
            let _ = api.set(server);
        }
        let sweeper = self
            .idle_ttl
            .map(|ttl| tokio::spawn(sweep_idle(Arc::downgrade(&core), ttl)));
        Ok(Emulator {
            core,
            sweeper,
            api,
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

/// Kills runtime processes left by test processes that were killed (SIGKILL) before
/// their emulator could drop, and returns how many. Every emulator start does this once
/// per process in the background; call it directly to reap at a known moment.
///
/// Runtimes are found by a marker variable naming their owner's pid; only those whose
/// owner no longer exists are touched.
pub fn reap_orphaned_runtimes() -> usize {
    crate::backend::process::reap_orphans()
}

/// Checks for expired idle environments a few times per TTL.
async fn sweep_idle(core: std::sync::Weak<Core>, ttl: Duration) {
    let period = (ttl / 4).max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(period).await;
        match core.upgrade() {
            Some(core) => core.evict_expired(ttl),
            None => return,
        }
    }
}

/// An isolated, in-process Lambda: functions, layers, execution environments, stats.
///
/// Runtime API listeners bind to 127.0.0.1 on ephemeral ports; nothing is shared between
/// emulators, so many run in parallel in one test binary. When the emulator and every
/// [`FunctionHandle`] from it are dropped (also during a panic, and inside a
/// current-thread runtime), every execution environment it started is terminated and its
/// files are removed; [`Emulator::shutdown`] does this at once, handles or not.
///
/// ```no_run
/// use lambda_testkit::{Emulator, Function, Runtime};
///
/// # async fn demo() -> anyhow::Result<()> {
/// let emu = Emulator::start().await?;
/// let f = emu
///     .deploy(
///         Function::new("greeter", Runtime::Python312)
///             .handler("app.handler")
///             .source("app.py", "def handler(event, ctx):\n    return {'hi': event['name']}\n"),
///     )
///     .await?;
/// let out: serde_json::Value = f.invoke_json(&serde_json::json!({"name": "ada"})).await?;
/// assert_eq!(out["hi"], "ada");
/// assert_eq!(f.stats().cold_starts, 1);
/// # Ok(()) }
/// ```
pub struct Emulator {
    core: Arc<Core>,
    sweeper: Option<tokio::task::JoinHandle<()>>,
    api: std::sync::OnceLock<ApiServer>,
    /// The runtime the emulator started in; the REST listener is served on it.
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("functions", &self.core.function_names())
            .finish()
    }
}

impl Emulator {
    /// Starts an emulator with default settings (process backend, unless
    /// `LAMBDA_TESTKIT_BACKEND=docker`).
    pub async fn start() -> Result<Emulator, EmulatorError> {
        EmulatorBuilder::default().start().await
    }

    /// A builder for non-default settings.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// Deploys `function`: validates it, builds its code zip, publishes inline layers,
    /// extracts everything, and returns a handle. Deploying a name that exists replaces
    /// its code and configuration; its old environments retire once free.
    pub async fn deploy(&self, function: Function) -> Result<FunctionHandle, DeployError> {
        let config = self.core.deploy(function).await?;
        Ok(FunctionHandle {
            core: self.core.clone(),
            name: config.name,
        })
    }

    /// Publishes a new version of `layer` (`PublishLayerVersion`).
    pub async fn publish_layer(&self, layer: Layer) -> Result<LayerVersion, DeployError> {
        self.core.publish_layer(layer).await
    }

    /// A handle to the function called `name`, if deployed.
    pub fn function(&self, name: &str) -> Option<FunctionHandle> {
        self.core.function(name).map(|_| FunctionHandle {
            core: self.core.clone(),
            name: name.to_string(),
        })
    }

    /// Deletes a function, terminating the execution environments it has now.
    pub fn delete_function(&self, name: &str) -> Result<(), DeployError> {
        self.core.delete_function(name)
    }

    /// The Lambda REST API endpoint, `http://127.0.0.1:<port>`: point aws-sdk-lambda,
    /// boto3 or the AWS CLI at it (`--endpoint-url`) with any credentials and region.
    /// It serves the same functions, layers and environments as this Rust API.
    ///
    /// The listener starts at the first call (unless [`EmulatorBuilder::api_port`] fixed a
    /// port, which binds at start).
    ///
    /// # Panics
    /// If no port on 127.0.0.1 can be bound (e.g. the process is out of file descriptors).
    pub fn endpoint_url(&self) -> &str {
        self.api
            .get_or_init(|| {
                let _entered = self.runtime.enter();
                ApiServer::start(Arc::downgrade(&self.core), 0)
                    .expect("could not bind the Lambda API listener on 127.0.0.1")
            })
            .url()
    }

    /// An `aws_sdk_lambda` client configuration for [`Emulator::endpoint_url`]: dummy
    /// credentials, the emulator's region, plain HTTP. Adjust it (e.g. retries) and build.
    ///
    /// ```no_run
    /// # async fn demo(emu: &lambda_testkit::Emulator) {
    /// use lambda_testkit::aws_sdk_lambda::config::retry::RetryConfig;
    /// let conf = emu.lambda_config().retry_config(RetryConfig::disabled()).build();
    /// let client = lambda_testkit::aws_sdk_lambda::Client::from_conf(conf);
    /// # }
    /// ```
    #[cfg(feature = "sdk")]
    pub fn lambda_config(&self) -> aws_sdk_lambda::config::Builder {
        use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
        aws_sdk_lambda::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.core.settings.region.clone()))
            .credentials_provider(Credentials::new(
                "lambda-testkit",
                "lambda-testkit",
                None,
                None,
                "lambda-testkit",
            ))
            .endpoint_url(self.endpoint_url())
            // The endpoint is plain HTTP on loopback: no TLS stack needed.
            .http_client(aws_smithy_http_client::Builder::new().build_http())
    }

    /// A ready `aws_sdk_lambda::Client` for this emulator (feature `sdk`).
    ///
    /// ```no_run
    /// # async fn demo(emu: &lambda_testkit::Emulator) -> anyhow::Result<()> {
    /// let client = emu.lambda_client();
    /// let functions = client.list_functions().send().await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sdk")]
    pub fn lambda_client(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::from_conf(self.lambda_config().build())
    }

    /// Counters over every function of this emulator.
    pub fn stats(&self) -> Stats {
        self.core.timeline.stats(None)
    }

    /// Every event of this emulator, oldest first.
    pub fn timeline(&self) -> Vec<Event> {
        self.core.timeline.events(None)
    }

    /// OS process ids of every live execution environment (process backend).
    pub fn environment_pids(&self) -> Vec<u32> {
        self.core.pids()
    }

    /// Terminates every execution environment now and stops the emulator; handles to its
    /// functions then refuse invokes with [`crate::InvokeError::ShutDown`].
    pub async fn shutdown(self) {
        self.core.shutdown();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(sweeper) = self.sweeper.take() {
            sweeper.abort();
        }
    }
}
