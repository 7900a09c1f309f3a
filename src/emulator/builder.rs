//! `EmulatorBuilder`: the settings of one emulator, and starting it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Emulator, sweep_idle};
use crate::backend::process::{ProcessBackend, PythonSettings};
use crate::backend::{Backend, BackendKind};
use crate::deploy::Registry;
use crate::error::BackendError;
use crate::execution::{LaunchContext, Platform};
use crate::service::{Core, Settings};

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
    #[cfg(feature = "api")]
    #[error("could not bind the Lambda API listener on {host}:{port}: {source}")]
    ApiListener {
        /// The address asked for (`127.0.0.1` unless [`EmulatorBuilder::api_host`]).
        host: std::net::IpAddr,
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
    python: PythonSettings,
    max_environments: usize,
    idle_ttl: Option<Duration>,
    freeze: bool,
    routing_seed: Option<u64>,
    spin_wait: Option<Duration>,
    history_limit: usize,
    clock: crate::durable::Clock,
    workdir: PathBuf,
    #[cfg(feature = "api")]
    api_port: u16,
    #[cfg(feature = "api")]
    api_host: std::net::IpAddr,
    backend: BackendKind,
    #[cfg(feature = "docker")]
    docker: DockerOptions,
    /// Set by [`EmulatorBuilder::without_runtimes`]: overrides `backend`.
    #[cfg(any(test, feature = "fuzzing"))]
    no_runtimes: Option<Arc<crate::fuzzing::NoRuntimes>>,
}

/// The Docker backend's settings, as given to the builder.
#[cfg(feature = "docker")]
#[derive(Debug, Clone, Default)]
struct DockerOptions {
    images: std::collections::HashMap<crate::deploy::Runtime, String>,
    standin: Option<bool>,
    labels: Vec<(String, String)>,
    network: Option<crate::docker::DockerNetwork>,
    network_name: Option<String>,
    aliases: std::collections::HashMap<String, Vec<String>>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        EmulatorBuilder {
            region: "us-east-1".to_string(),
            account_id: "123456789012".to_string(),
            python: PythonSettings::default(),
            max_environments: DEFAULT_MAX_ENVIRONMENTS,
            idle_ttl: None,
            freeze: true,
            routing_seed: None,
            spin_wait: std::env::var("LAMBDA_TESTKIT_SPIN_WAIT_US")
                .ok()
                .and_then(|us| us.parse().ok())
                .map(Duration::from_micros),
            history_limit: crate::stats::TIMELINE_CAPACITY,
            clock: crate::durable::Clock::real(),
            workdir: std::env::temp_dir(),
            #[cfg(feature = "api")]
            api_port: 0,
            #[cfg(feature = "api")]
            api_host: std::net::Ipv4Addr::LOCALHOST.into(),
            backend: BackendKind::from_env(),
            #[cfg(feature = "docker")]
            docker: DockerOptions::default(),
            #[cfg(any(test, feature = "fuzzing"))]
            no_runtimes: None,
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

    /// A Python interpreter for `python3.*` functions on the process backend (in place of
    /// `LAMBDA_TESTKIT_PYTHON`): it runs the `python3.X` runtime whose version it is, and
    /// must have `awslambdaric` installed.
    ///
    /// Each `python3.X` runtime runs a Python 3.X, the first of: [`Self::python_for`], else
    /// `LAMBDA_TESTKIT_PYTHON_3_X` (the only candidate when given); this interpreter (or
    /// `LAMBDA_TESTKIT_PYTHON`) if it is 3.X; `python3.X`, then `python3`, on this
    /// process's `PATH` (an activated venv); the venv `lambda-testkit doctor --fix` makes,
    /// `~/.cache/lambda-testkit/python/venv-3.X`; pyenv's `~/.pyenv/versions/3.X.*` (or
    /// `$PYENV_ROOT`); uv-managed interpreters. Each must import `awslambdaric`. It is
    /// resolved to an absolute path at the first deploy, and that is what runs. With none,
    /// deploy fails naming what was tried, unless [`Self::python_fallback`] allows the
    /// nearest version.
    pub fn python(mut self, interpreter: impl Into<PathBuf>) -> Self {
        self.python.any = Some(interpreter.into());
        self
    }

    /// The interpreter for one Python runtime (process backend), e.g. a Python 3.12 venv
    /// for [`crate::Runtime::Python312`]; it wins over `LAMBDA_TESTKIT_PYTHON_3_12`, and it
    /// must be that version with `awslambdaric`, or that runtime's deploys fail. Ignored for
    /// other runtimes.
    pub fn python_for(
        mut self,
        runtime: crate::deploy::Runtime,
        interpreter: impl Into<PathBuf>,
    ) -> Self {
        if let Some(minor) = runtime.python_minor() {
            self.python.by_minor.insert(minor, interpreter.into());
        }
        self
    }

    /// Whether a `python3.X` function may run on the nearest other Python version when no
    /// 3.X interpreter with `awslambdaric` is found (default: `LAMBDA_TESTKIT_PYTHON_FALLBACK`
    /// is `nearest`, else no: deploy fails). When it does, each cold start's log starts with
    /// a line saying which version runs, and [`crate::FunctionConfig::runtime_version`] and
    /// [`crate::Stats::runtime_fallback`] say so too.
    pub fn python_fallback(mut self, allow: bool) -> Self {
        self.python.fallback = Some(allow);
        self
    }

    /// Whether `python3.*` environments on the process backend start as forks of a fork
    /// server (default: on, unless `LAMBDA_TESTKIT_PYTHON_FORK_SERVER=off`).
    ///
    /// A server per interpreter (started in the background at its second cold start: a
    /// test that cold-starts once pays nothing) imports awslambdaric once; each cold
    /// start then forks it
    /// and applies the environment's variables, working directory, `sys.path` and handler,
    /// so the handler sees what a fresh `python -m awslambdaric` gives it (no module of the
    /// function imported, `os.environ` exactly the environment's variables), a few
    /// milliseconds after the launch instead of tens (`cargo bench --bench python_cold`:
    /// p50 ~9-13 ms vs ~36-56 ms on a loaded 2-vCPU machine). Environments a fork cannot stand in
    /// for (variables an interpreter reads at start set differently, a module of the
    /// function's shadowing one awslambdaric imports, shared libraries in a new
    /// `LD_LIBRARY_PATH` directory) start a fresh interpreter, as do all of them when the
    /// server cannot start or has exited. What a forked runtime shows differently: its
    /// parent process, `/proc/self/environ` and `/proc/self/cmdline` (the server's), and
    /// the string-hash seed (shared between environments of one server). `false` starts
    /// a fresh interpreter every time.
    pub fn python_fork_server(mut self, on: bool) -> Self {
        self.python.fork_server = Some(on);
        self
    }

    /// Most execution environments per function (default 10); a function's own
    /// [`crate::Function::max_environments`] wins.
    pub fn max_environments(mut self, cap: usize) -> Self {
        self.max_environments = cap;
        self
    }

    /// Busy-wait up to `budget` on each invocation's answer before parking (default: park
    /// at once). On a VM whose idle vCPUs halt, every thread wake-up costs ~200 µs, and a
    /// warm invoke takes four; spinning removes the emulator's side of them: warm p50
    /// 954 → see README "Performance" (`cargo bench --bench peers`). It costs a vCPU while
    /// an invoke is in flight, which slows the runtimes of a loaded machine: turn it on for
    /// latency-bound suites that invoke one function at a time. `LAMBDA_TESTKIT_SPIN_WAIT_US`
    /// sets it for every emulator that does not set it here.
    pub fn spin_wait(mut self, budget: Duration) -> Self {
        self.spin_wait = Some(budget);
        self
    }

    /// How much history the emulator keeps for assertions: the last `events` events of
    /// its timeline ([`crate::Emulator::timeline`]; default 100,000, older ones are
    /// dropped and counted) and the last `events` records of each function's telemetry
    /// feed (default and most 10,000). An invoke adds three of each: an event takes 112
    /// bytes, a record ~210. A long soak test sets a small limit so that its memory stays
    /// flat.
    pub fn history_limit(mut self, events: usize) -> Self {
        self.history_limit = events;
        self
    }

    /// Retire environments idle for longer than `ttl` (default: never).
    pub fn idle_ttl(mut self, ttl: Duration) -> Self {
        self.idle_ttl = Some(ttl);
        self
    }

    /// Freeze each execution environment between invocations (default `true`, as Lambda
    /// does): its runtime and extensions are stopped (SIGSTOP of the process group on the
    /// process backend, `docker pause` on Docker) from the moment they all wait for the
    /// next event until the next event arrives, so background threads make no progress
    /// in between. `false` leaves them running.
    pub fn freeze(mut self, freeze: bool) -> Self {
        self.freeze = freeze;
        self
    }

    /// The clock durable executions measure their timers on (waits, retry delays,
    /// callback timeouts, `ExecutionTimeout`); default [`Clock::real`](crate::durable::Clock::real).
    /// Pass [`Clock::frozen_at`](crate::durable::Clock::frozen_at) to move time only by
    /// [`Emulator::clock`](crate::Emulator::clock)`().advance(..)`, or turn on
    /// auto-advance to skip every wait.
    pub fn clock(mut self, clock: crate::durable::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Seeds the choice between an alias's two versions (`RoutingConfig`): the same seed
    /// gives the same sequence of versions over the same invokes. Default: a random seed.
    pub fn routing_seed(mut self, seed: u64) -> Self {
        self.routing_seed = Some(seed);
        self
    }

    /// Where extracted code and layers go (a fresh subdirectory per emulator, removed when
    /// it stops). Default: the system temp directory. At start, the emulator removes the
    /// subdirectories there whose emulator died without removing them (its process was
    /// killed): each holds a lock while its emulator lives.
    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = dir.into();
        self
    }

    /// The port of the Lambda REST API on 127.0.0.1 (feature `api`) (default 0: any free port; see
    /// [`Emulator::endpoint_url`]).
    #[cfg(feature = "api")]
    #[cfg_attr(docsrs, doc(cfg(feature = "api")))]
    pub fn api_port(mut self, port: u16) -> Self {
        self.api_port = port;
        self
    }

    /// The address the Lambda REST API listens on (feature `api`; default `127.0.0.1`).
    /// Another address binds at start (like a fixed [`Self::api_port`]);
    /// [`Emulator::endpoint_url`] names it, or `127.0.0.1` for `0.0.0.0`. Only for an
    /// emulator inside a container (`lambda-testkit serve --host 0.0.0.0`, where every
    /// address is the container's own and the port mapping needs one): on a host, any
    /// other address exposes the unauthenticated API to that network.
    #[cfg(feature = "api")]
    #[cfg_attr(docsrs, doc(cfg(feature = "api")))]
    pub fn api_host(mut self, host: std::net::IpAddr) -> Self {
        self.api_host = host;
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
    #[cfg(feature = "docker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
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
    #[cfg(feature = "docker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
    pub fn image(mut self, runtime: crate::deploy::Runtime, image: impl Into<String>) -> Self {
        self.docker.images.insert(runtime, image.into());
        self
    }

    /// Every runtime without an image of its own (from [`EmulatorBuilder::image`] or
    /// `LAMBDA_TESTKIT_IMAGE_<RUNTIME>`) runs in this project's stand-in image
    /// ([`crate::docker::standin_image`], built locally by `images/build` without any
    /// registry) instead of AWS's public base image. Default: `LAMBDA_TESTKIT_IMAGES=standin`
    /// switches it on.
    #[cfg(feature = "docker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
    pub fn standin_images(mut self, on: bool) -> Self {
        self.docker.standin = Some(on);
        self
    }

    /// An extra label on every container this emulator starts (Docker backend), e.g. to
    /// find a CI job's containers. The crate's own labels are in [`crate::docker`].
    #[cfg(feature = "docker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
    pub fn docker_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.docker.labels.push((key.into(), value.into()));
        self
    }

    /// How containers reach the Runtime API (default: [`crate::docker::DockerNetwork::Host`] on Linux,
    /// [`crate::docker::DockerNetwork::HostGateway`] elsewhere). [`Self::network`] joins a
    /// user-defined network instead.
    #[cfg(feature = "docker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
    pub fn docker_network(mut self, network: crate::docker::DockerNetwork) -> Self {
        self.docker.network = Some(network);
        self
    }

    /// Every function container joins the user-defined Docker network `name` (Docker
    /// backend), so functions reach the containers on it by their names and aliases
    /// (a database a test started with testcontainers on that network, as `db:5432`),
    /// and those containers reach each function's containers by the function's name, plus
    /// any [`Self::network_alias`]. Replaces [`Self::docker_network`]; `"host"` is the
    /// host's network ([`crate::docker::DockerNetwork::Host`]).
    ///
    /// The network must exist when the emulator starts (create it with `docker network
    /// create`, bollard, or as testcontainers' `ImageExt::with_network` does for the first
    /// container on it), else [`EmulatorError::Backend`] with
    /// [`crate::error::BackendError::Network`]; the emulator neither creates nor removes
    /// it. The containers reach their Runtime API listener at the network's gateway (an
    /// address of this host on the network's bridge, where the listener binds, never on
    /// all interfaces), named `host.docker.internal` inside them; where the gateway is
    /// not this host's address (Docker Desktop, a remote daemon), at the daemon's
    /// `host-gateway`, with the listener on loopback. The process backend ignores this
    /// setting: its functions run on this host and reach host ports directly.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), lambda_testkit::EmulatorError> {
    /// use lambda_testkit::Emulator;
    /// let emu = Emulator::builder()
    ///     .docker()
    ///     .network("my-net")
    ///     .network_alias("orders", "orders-api")
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "docker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
    pub fn network(mut self, name: impl Into<String>) -> Self {
        self.docker.network_name = Some(name.into());
        self
    }

    /// One more network alias for the containers of the function named `function` on the
    /// [`Self::network`] (each has the function's name as an alias already); several
    /// environments of one function share it, and Docker's DNS answers with all of them.
    /// Docker's default `bridge` network takes no aliases: there only container names work.
    #[cfg(feature = "docker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
    pub fn network_alias(mut self, function: impl Into<String>, alias: impl Into<String>) -> Self {
        self.docker
            .aliases
            .entry(function.into())
            .or_default()
            .push(alias.into());
        self
    }

    /// Test support for `fuzz/` (feature `fuzzing`; not part of the API): environments
    /// start no runtime, and the caller plays it at each launched environment's Runtime
    /// API (see [`crate::fuzzing`]).
    #[cfg(any(test, feature = "fuzzing"))]
    #[doc(hidden)]
    pub fn without_runtimes(mut self) -> (Self, crate::fuzzing::RuntimeApis) {
        let (backend, apis) = crate::fuzzing::NoRuntimes::new();
        self.no_runtimes = Some(backend);
        (self, apis)
    }

    /// Starts the emulator. Must be called inside a Tokio runtime.
    ///
    /// With the Docker backend this connects to the daemon (`DOCKER_HOST`, else the
    /// default sockets) and first removes containers left by test processes that died
    /// without cleaning up; [`EmulatorError::Backend`] if no daemon answers.
    pub async fn start(self) -> Result<Emulator, EmulatorError> {
        let settings = Settings {
            max_environments: self.max_environments,
            clock: self.clock,
            history_limit: self.history_limit,
        };
        crate::deploy::reap_abandoned_workdirs(&self.workdir);
        let registry = Registry::new(self.region.clone(), self.account_id.clone(), self.workdir);
        #[cfg(any(test, feature = "fuzzing"))]
        let no_runtimes = self.no_runtimes.map(|b| b as Arc<dyn Backend>);
        #[cfg(not(any(test, feature = "fuzzing")))]
        let no_runtimes: Option<Arc<dyn Backend>> = None;
        let backend: Arc<dyn Backend> = match (no_runtimes, self.backend) {
            (Some(backend), _) => backend,
            (None, BackendKind::Process) => Arc::new(ProcessBackend::new(self.python)),
            #[cfg(feature = "docker")]
            (None, BackendKind::Docker) => Arc::new(
                crate::backend::docker::DockerBackend::connect(
                    crate::backend::docker::DockerSettings {
                        images: self.docker.images,
                        standin: self
                            .docker
                            .standin
                            .unwrap_or_else(crate::config::standin_images),
                        labels: self.docker.labels,
                        network: self.docker.network,
                        network_name: self.docker.network_name,
                        aliases: self.docker.aliases,
                        session_id: uuid::Uuid::new_v4().simple().to_string(),
                    },
                )
                .await?,
            ),
            #[cfg(not(feature = "docker"))]
            (None, BackendKind::Docker) => {
                return Err(EmulatorError::Backend(BackendError::Other(
                    "the Docker backend is not compiled in: enable lambda-testkit's `docker` feature (on by default)".to_string(),
                )));
            }
        };
        let launch = LaunchContext {
            backend,
            platform: Platform {
                region: self.region,
                freeze: self.freeze,
                shutdowns: Default::default(),
                lambda_endpoint: Default::default(),
                spin_wait: self.spin_wait,
            },
        };
        launch.backend.reap().await;
        let core = Arc::new(Core::new(settings, registry, launch));
        if let Some(seed) = self.routing_seed {
            core.seed_routing(seed);
        }
        #[cfg(feature = "api")]
        let api = Arc::new(std::sync::OnceLock::new());
        // A durable handler checkpoints over the REST API: however a function becomes
        // durable, the listener must be up before its environments get the address.
        #[cfg(feature = "api")]
        core.on_durable_deploy(super::rest::listener_starter(
            &api,
            &core,
            tokio::runtime::Handle::current(),
        ));
        // A fixed port is bound now, so a taken port fails here; the default (any free
        // port) is bound at the first `endpoint_url()`: most tests never use REST, and a
        // listener whose task is only aborted on drop would hold its socket until the
        // runtime next runs.
        #[cfg(feature = "api")]
        if self.api_port != 0 || self.api_host != std::net::Ipv4Addr::LOCALHOST {
            let addr = std::net::SocketAddr::new(self.api_host, self.api_port);
            let server =
                crate::api::ApiServer::start(Arc::downgrade(&core), addr).map_err(|source| {
                    EmulatorError::ApiListener {
                        host: self.api_host,
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
            #[cfg(feature = "api")]
            api,
            #[cfg(feature = "api")]
            runtime: tokio::runtime::Handle::current(),
        })
    }
}
