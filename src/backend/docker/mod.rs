//! The Docker backend: every execution environment is a container of the runtime's image.
//!
//! The container runs the image's entrypoint with the handler as its command (the AWS
//! base-image contract: `/lambda-entrypoint.sh <handler>` execs `/var/runtime/bootstrap`
//! when `AWS_LAMBDA_RUNTIME_API` is set). Code goes to `/var/task` and layers to `/opt`
//! through the archive upload API, so a remote daemon works without bind mounts.
//!
//! Every container carries labels naming the emulator session and the owner process, so
//! dropping the emulator removes exactly its containers, and a later emulator removes the
//! containers of an owner that died without cleaning up (a SIGKILLed test).

mod archive;
mod code;
mod container;
mod fence;
mod freezer;
mod images;
mod janitor;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;

use super::{Backend, Instance, LaunchSpec, RuntimeView};
use crate::deploy::{Deployment, Runtime};
use crate::error::BackendError;
pub(crate) use images::ImageInfo;
use janitor::{Connector, Janitor, Owner};

/// Label: the emulator session (a fresh UUID per [`crate::Emulator`]).
pub const LABEL_SESSION: &str = "lambda-testkit.session";
/// Label: the process id of the test process that owns the container.
pub const LABEL_OWNER_PID: &str = "lambda-testkit.owner-pid";
/// Label: the owner's start time (clock ticks since boot), telling a reused pid apart.
pub const LABEL_OWNER_START: &str = "lambda-testkit.owner-start";
/// Label: the owner's host (hostname and boot id); only owners on this host are reaped.
pub const LABEL_OWNER_HOST: &str = "lambda-testkit.owner-host";
/// Label: the function's name.
pub const LABEL_FUNCTION: &str = "lambda-testkit.function";
/// Label: the deploy id (identity of the code, layers and settings that run).
pub const LABEL_DEPLOY_ID: &str = "lambda-testkit.deploy-id";
/// Label: the execution environment's id, e.g. `greeter-env-1`.
pub const LABEL_ENVIRONMENT: &str = "lambda-testkit.environment";

/// AWS's public base image for `runtime`, e.g. `public.ecr.aws/lambda/python:3.12`.
///
/// ```
/// use lambda_testkit::{Runtime, docker::default_image};
/// assert_eq!(default_image(Runtime::ProvidedAl2023), "public.ecr.aws/lambda/provided:al2023");
/// ```
pub fn default_image(runtime: Runtime) -> String {
    // `nodejs<major>.x` → `nodejs:<major>`.
    let (repo, tag) = match runtime.as_str().split_once('.') {
        Some(("provided", tag)) => ("provided", tag.to_string()),
        _ => match (runtime.python_minor(), runtime.node_major()) {
            (Some(minor), _) => ("python", format!("3.{minor}")),
            (_, Some(major)) => ("nodejs", major.to_string()),
            _ => ("provided", "al2023".to_string()),
        },
    };
    format!("public.ecr.aws/lambda/{repo}:{tag}")
}

/// This project's stand-in image for `runtime`, built without any registry by
/// `images/build` (see `images/README.md`): `lambda-testkit/provided:al2023`,
/// `lambda-testkit/python:3.<minor>`, `lambda-testkit/nodejs:<major>`. Used for every
/// runtime when stand-ins are switched on ([`crate::EmulatorBuilder::standin_images`],
/// `LAMBDA_TESTKIT_IMAGES=standin`).
///
/// ```
/// use lambda_testkit::{Runtime, docker::standin_image};
/// assert_eq!(standin_image(Runtime::Python312), "lambda-testkit/python:3.12");
/// assert_eq!(standin_image(Runtime::ProvidedAl2), "lambda-testkit/provided:al2023");
/// ```
pub fn standin_image(runtime: Runtime) -> String {
    match (runtime.python_minor(), runtime.node_major()) {
        (Some(minor), _) => format!("lambda-testkit/python:3.{minor}"),
        (_, Some(major)) => format!("lambda-testkit/nodejs:{major}"),
        // Both OS-only runtimes run on the one al2023 stand-in.
        _ => "lambda-testkit/provided:al2023".to_string(),
    }
}

/// How containers reach their environment's Runtime API listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DockerNetwork {
    /// The host's network (`--network host`): the listener stays on `127.0.0.1` and
    /// `AWS_LAMBDA_RUNTIME_API` is `127.0.0.1:<port>`. The default on Linux.
    Host,
    /// The default bridge, with `host.docker.internal` mapped to the host
    /// (`host-gateway`): `AWS_LAMBDA_RUNTIME_API` is `host.docker.internal:<port>`, and
    /// the listener binds only to the bridge's gateway address (or to `127.0.0.1` where
    /// the daemon forwards `host.docker.internal` there, as Docker Desktop does) — never
    /// to all interfaces. The default where host networking is not available.
    HostGateway,
}

impl Default for DockerNetwork {
    fn default() -> Self {
        if cfg!(target_os = "linux") {
            DockerNetwork::Host
        } else {
            DockerNetwork::HostGateway
        }
    }
}

/// What the emulator builder configures for the Docker backend.
#[derive(Debug, Clone, Default)]
pub(crate) struct DockerSettings {
    /// Images set in code, by runtime.
    pub(crate) images: HashMap<Runtime, String>,
    /// Runtimes without an image of their own use the stand-ins, not AWS's images.
    pub(crate) standin: bool,
    /// Extra labels on every container.
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) network: Option<DockerNetwork>,
    /// A user-defined network to join (wins over `network`).
    pub(crate) network_name: Option<String>,
    /// Extra network aliases by function name (on `network_name`).
    pub(crate) aliases: HashMap<String, Vec<String>>,
    pub(crate) session_id: String,
}

/// Network mode resolved against the daemon at start.
#[derive(Debug, Clone)]
enum Network {
    /// `--network host`.
    Host,
    /// A bridge network: Docker's default one (`name` is `None`) or a user-defined one.
    Bridge {
        /// The user-defined network joined, and whether its containers get aliases
        /// (Docker refuses aliases on its default `bridge`).
        name: Option<(String, bool)>,
        /// Where the Runtime API listeners bind: the network's gateway on this host.
        bind: IpAddr,
        /// What `host.docker.internal` maps to in the containers: the gateway's address,
        /// or `host-gateway` (the daemon's own choice, e.g. Docker Desktop's forwarder).
        host: String,
    },
}

/// A client of the daemon the backend would use (`DOCKER_HOST`, else the default sockets),
/// the API version negotiated, and its address: for checks that are not an emulator
/// (`lambda-testkit doctor`).
pub(crate) async fn daemon() -> Result<(Docker, String), BackendError> {
    let connector = Connector::discover().await?;
    Ok((connector.client()?, connector.host().to_string()))
}

/// Runs execution environments as Docker containers.
pub(crate) struct DockerBackend {
    docker: Docker,
    settings: DockerSettings,
    network: Network,
    owner: Owner,
    images: images::ImageCache,
    code: code::CodeCache,
    janitor: Janitor,
    launches: AtomicU64,
}

impl DockerBackend {
    /// Connects to the daemon (`DOCKER_HOST`, else the default sockets), negotiates the
    /// API version, and resolves the network mode.
    pub(crate) async fn connect(settings: DockerSettings) -> Result<DockerBackend, BackendError> {
        let connector = Connector::discover().await?;
        let docker = connector.client()?;
        let owner = Owner::current();
        let network = match (&settings.network_name, settings.network.unwrap_or_default()) {
            (Some(name), _) => named_network(&docker, name).await?,
            (None, DockerNetwork::Host) => Network::Host,
            (None, DockerNetwork::HostGateway) => Network::Bridge {
                name: None,
                bind: gateway_bind_addr(&docker, "bridge")
                    .await
                    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                host: "host-gateway".to_string(),
            },
        };
        let janitor = Janitor::spawn(connector, settings.session_id.clone());
        Ok(DockerBackend {
            docker,
            settings,
            network,
            owner,
            images: images::ImageCache::default(),
            code: code::CodeCache::default(),
            janitor,
            launches: AtomicU64::new(1),
        })
    }

    /// The image for `runtime`: set in code, else from its variable, else the stand-in
    /// when stand-ins are on, else AWS's.
    fn image_name(&self, runtime: Runtime) -> String {
        self.settings
            .images
            .get(&runtime)
            .cloned()
            .or_else(|| crate::config::image(runtime))
            .unwrap_or_else(|| match self.settings.standin {
                true => standin_image(runtime),
                false => default_image(runtime),
            })
    }

    async fn image(&self, runtime: Runtime) -> Result<Arc<ImageInfo>, BackendError> {
        let name = self.image_name(runtime);
        self.images
            .ensure(&self.docker, &name, Some(runtime), &self.labels_for_probe())
            .await
    }

    fn base_labels(&self) -> Vec<(String, String)> {
        let mut labels = vec![
            (LABEL_SESSION.to_string(), self.settings.session_id.clone()),
            (LABEL_OWNER_PID.to_string(), self.owner.pid.to_string()),
            (LABEL_OWNER_START.to_string(), self.owner.start.clone()),
            (LABEL_OWNER_HOST.to_string(), self.owner.host.clone()),
        ];
        labels.extend(self.settings.labels.iter().cloned());
        labels
    }

    fn labels_for_probe(&self) -> HashMap<String, String> {
        self.base_labels().into_iter().collect()
    }

    /// The container for `spec` of `image`, for a zip function: the image's entrypoint
    /// with the handler as its command, and no code mounted yet.
    fn plan(&self, spec: &LaunchSpec, image: Arc<ImageInfo>) -> container::Plan {
        let mut labels = self.labels_for_probe();
        labels.insert(
            LABEL_FUNCTION.to_string(),
            spec.deployment.config.name.clone(),
        );
        labels.insert(
            LABEL_DEPLOY_ID.to_string(),
            spec.deployment.deploy_id.clone(),
        );
        labels.insert(LABEL_ENVIRONMENT.to_string(), spec.environment_id.clone());
        container::Plan {
            // Environment ids restart when a function is deleted and deployed again, while
            // the old container may still be being removed: a counter keeps names unique.
            name: format!(
                "lambda-testkit-{}-{}-{}",
                &self.settings.session_id[..8],
                spec.environment_id,
                self.launches.fetch_add(1, Ordering::Relaxed)
            ),
            image,
            labels,
            network: self.container_network(&spec.deployment.config.name),
            mounts: Vec::new(),
            bootstrap: None,
            entrypoint: None,
            cmd: vec![spec.deployment.config.handler.clone()],
            working_dir: None,
        }
    }
}

/// Where the Runtime API listener binds on a bridge network (`network`: `bridge` for
/// [`DockerNetwork::HostGateway`]): the network's gateway when it is an address of this
/// host (Linux), else `None` (Docker Desktop, a remote daemon: the caller binds loopback,
/// where Docker Desktop forwards `host.docker.internal`). Some daemons report no gateway;
/// the subnet's first address is then tried.
async fn gateway_bind_addr(docker: &Docker, network: &str) -> Option<IpAddr> {
    let configs = docker
        .inspect_network(
            network,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .ok()
        .and_then(|n| n.ipam?.config)
        .unwrap_or_default();
    bindable_gateway(&configs)
}

/// The first gateway (or subnet's first address) of `configs` this host can bind.
fn bindable_gateway(configs: &[bollard::models::IpamConfig]) -> Option<IpAddr> {
    let candidates = configs.iter().flat_map(|c| {
        let gateway = c.gateway.as_deref().and_then(|g| g.parse::<IpAddr>().ok());
        let first = c.subnet.as_deref().and_then(first_host);
        gateway.into_iter().chain(first)
    });
    // Binding succeeds only for an address of this host.
    candidates
        .into_iter()
        .find(|ip| std::net::TcpListener::bind(SocketAddr::new(*ip, 0)).is_ok())
}

/// The user-defined network `name`, resolved: it must exist, and be one a container can
/// reach this host from. `host` is Docker's host network.
async fn named_network(docker: &Docker, name: &str) -> Result<Network, BackendError> {
    let refuse = |reason: String| BackendError::Network {
        network: name.to_string(),
        reason,
    };
    let inspected = docker
        .inspect_network(
            name,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => refuse("no such network".to_string()),
            e => refuse(format!("inspecting it failed: {e}")),
        })?;
    let driver = inspected.driver.as_deref().unwrap_or("bridge");
    match driver {
        "host" => return Ok(Network::Host),
        "null" => {
            return Err(refuse(
                "a container on it has no network, so it cannot reach the Runtime API".to_string(),
            ));
        }
        _ => {}
    }
    let configs = inspected
        .ipam
        .and_then(|ipam| ipam.config)
        .unwrap_or_default();
    // The containers reach the Runtime API at the network's gateway, an address of this
    // host on the network's bridge; only there does the listener bind. Where the gateway
    // is not this host's (Docker Desktop, a remote daemon), `host-gateway` is the daemon's
    // way to the host, and loopback is where Docker Desktop forwards it.
    let (bind, host) = match bindable_gateway(&configs) {
        Some(ip) => (ip, ip.to_string()),
        None => (IpAddr::V4(Ipv4Addr::LOCALHOST), "host-gateway".to_string()),
    };
    let canonical = inspected.name.unwrap_or_else(|| name.to_string());
    // Docker's default bridge takes no aliases.
    let aliases = canonical != "bridge";
    Ok(Network::Bridge {
        name: Some((canonical, aliases)),
        bind,
        host,
    })
}

impl DockerBackend {
    /// How `function`'s containers are networked.
    fn container_network(&self, function: &str) -> container::NetworkPlan {
        match &self.network {
            Network::Host => container::NetworkPlan::Host,
            Network::Bridge { name, host, .. } => container::NetworkPlan::Bridge {
                host: host.clone(),
                network: name.as_ref().map(|(network, aliased)| {
                    let mut aliases = Vec::new();
                    if *aliased {
                        aliases.push(function.to_string());
                        if let Some(extra) = self.settings.aliases.get(function) {
                            aliases.extend(extra.iter().cloned());
                        }
                    }
                    (network.clone(), aliases)
                }),
            },
        }
    }
}

/// `172.17.0.0/16` → `172.17.0.1`.
fn first_host(subnet: &str) -> Option<IpAddr> {
    let (net, _) = subnet.split_once('/')?;
    let net: Ipv4Addr = net.parse().ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(u32::from(net) + 1)))
}

#[async_trait::async_trait]
impl Backend for DockerBackend {
    async fn reap(&self) {
        janitor::reap_dead_owners(&self.docker, &self.owner).await;
    }

    fn bind_addr(&self) -> IpAddr {
        match self.network {
            Network::Host => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Network::Bridge { bind, .. } => bind,
        }
    }

    fn view(&self, runtime_api: SocketAddr, _deployment: &Deployment) -> RuntimeView {
        let runtime_api = match self.network {
            Network::Host => runtime_api.to_string(),
            Network::Bridge { .. } => format!("host.docker.internal:{}", runtime_api.port()),
        };
        RuntimeView {
            runtime_api,
            task_root: "/var/task".to_string(),
            opt: "/opt".to_string(),
            runtime_dir: "/var/runtime".to_string(),
        }
    }

    async fn check_runtime(
        &self,
        runtime: Runtime,
    ) -> Result<Option<crate::deploy::RuntimeVersion>, BackendError> {
        // The image decides which version runs.
        self.image(runtime).await.map(|_| None)
    }

    async fn check_image(&self, image: &str) -> Result<String, BackendError> {
        let info = self
            .images
            .ensure(&self.docker, image, None, &self.labels_for_probe())
            .await?;
        Ok(info.id.clone())
    }

    async fn launch(&self, spec: LaunchSpec) -> Result<Box<dyn Instance>, BackendError> {
        let config = &spec.deployment.config;
        if let Some(uri) = config.image_uri.clone() {
            // The image brings its code and runtime: no code volumes, and its own
            // ENTRYPOINT / CMD / WORKDIR unless ImageConfig overrides them.
            let image = self
                .images
                .ensure(&self.docker, &uri, None, &self.labels_for_probe())
                .await?;
            let overrides = &config.image_config;
            let plan = container::Plan {
                entrypoint: overrides.entry_point.clone(),
                cmd: overrides
                    .command
                    .clone()
                    .unwrap_or_else(|| image.cmd.clone()),
                working_dir: overrides.working_directory.clone(),
                mounts: Vec::new(),
                bootstrap: None,
                ..self.plan(&spec, image)
            };
            return container::launch(&self.docker, &self.janitor, plan, spec, async { Ok(()) })
                .await;
        }
        let runtime = config.runtime.expect("a zip function has a runtime");
        let image = self.image(runtime).await?;
        // Lambda's Runtime.InvalidEntrypoint before any container exists.
        let bootstrap = archive::bootstrap(&spec.deployment)?;
        let base = self.labels_for_probe();
        let janitor = self.janitor.handle();
        let volumes = self
            .code
            .volumes(
                &self.docker,
                janitor,
                &spec.deployment,
                &self.settings.session_id,
                &base,
            )
            .await?;
        let plan = container::Plan {
            mounts: volumes.mounts(true),
            bootstrap,
            ..self.plan(&spec, image.clone())
        };
        let deployment = spec.deployment.clone();
        let load = volumes.load(&self.docker, janitor, &deployment, &image.name, &base);
        container::launch(&self.docker, &self.janitor, plan, spec, load).await
    }

    fn shutdown(&self) {
        self.janitor.sweep();
    }
}

impl Drop for DockerBackend {
    fn drop(&mut self) {
        self.janitor.sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_images_are_aws_public_base_images() {
        assert_eq!(
            default_image(Runtime::Python312),
            "public.ecr.aws/lambda/python:3.12"
        );
        assert_eq!(
            default_image(Runtime::Python39),
            "public.ecr.aws/lambda/python:3.9"
        );
        assert_eq!(
            default_image(Runtime::ProvidedAl2),
            "public.ecr.aws/lambda/provided:al2"
        );
        assert_eq!(
            default_image(Runtime::ProvidedAl2023),
            "public.ecr.aws/lambda/provided:al2023"
        );
        assert_eq!(
            default_image(Runtime::Nodejs20),
            "public.ecr.aws/lambda/nodejs:20"
        );
        assert_eq!(
            default_image(Runtime::Nodejs24),
            "public.ecr.aws/lambda/nodejs:24"
        );
    }

    #[test]
    fn a_subnets_first_host_is_its_usual_gateway() {
        assert_eq!(
            first_host("172.17.0.0/16"),
            Some(IpAddr::V4(Ipv4Addr::new(172, 17, 0, 1)))
        );
        assert_eq!(first_host("fd00::/64"), None);
    }

    #[test]
    fn image_variables_are_named_after_the_runtime() {
        assert_eq!(
            crate::config::image_env_var(Runtime::Python312),
            "LAMBDA_TESTKIT_IMAGE_PYTHON3_12"
        );
        assert_eq!(
            crate::config::image_env_var(Runtime::ProvidedAl2),
            "LAMBDA_TESTKIT_IMAGE_PROVIDED_AL2"
        );
    }
}
