//! The errors below the front doors. Each front door has its own error type at the crate
//! root — [`crate::DeployError`] (deploy, update, publish), [`crate::InvokeError`]
//! (invoke), [`crate::EmulatorError`] (start) — and those keep these as their sources:
//! [`BackendError`] (a runtime could not be checked or started) and [`PackageError`] (a
//! zip could not be built or extracted).
//!
//! [`BackendError`] is defined here rather than in the backend module because deploy
//! reports it too (a runtime check fails at deploy) and the backend is built on deploy:
//! keeping it below both keeps the module graph acyclic.

pub use crate::package::PackageError;

/// A boxed error source (a Docker client error, say), kept for [`std::error::Error::source`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a backend could not run a runtime or an execution environment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// No interpreter of the version a `python3.X` runtime names, with `awslambdaric`, was
    /// found (process backend), and the nearest-version fallback is off.
    #[error(
        "{runtime} cannot run: no Python {version} interpreter with awslambdaric was found. Tried: {tried}. Provide one: `lambda-testkit doctor --fix` makes a venv with awslambdaric for each Python 3.X installed (found then without any variable), or set {variable} (or EmulatorBuilder::python_for) to a Python {version} that has awslambdaric, e.g. `python{version} -m venv venv-{version} && venv-{version}/bin/python -m pip install awslambdaric`, or allow the nearest version with EmulatorBuilder::python_fallback(true) or LAMBDA_TESTKIT_PYTHON_FALLBACK=nearest"
    )]
    PythonUnavailable {
        /// The runtime, as Lambda names it (`python3.12`).
        runtime: String,
        /// Its Python version (`3.12`).
        version: String,
        /// The variable naming its interpreter (`LAMBDA_TESTKIT_PYTHON_3_12`).
        variable: String,
        /// Each candidate interpreter and why it was passed over, `; `-separated.
        tried: String,
    },
    /// A `provided.*` function without a `bootstrap` in its code or layers
    /// (Lambda: `Runtime.InvalidEntrypoint`).
    #[error(
        "Runtime.InvalidEntrypoint: couldn't find a valid bootstrap: neither {task} nor {opt} is an executable file"
    )]
    NoBootstrap {
        /// The code's bootstrap path that was checked.
        task: String,
        /// The layers' bootstrap path that was checked.
        opt: String,
    },
    /// Starting the runtime failed.
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// What was being started.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Binding the environment's Runtime API listener failed.
    #[error("could not bind the Runtime API listener: {0}")]
    Listener(#[source] std::io::Error),
    /// No Docker daemon answered.
    #[error(
        "no Docker daemon answers at {host}: {source}. Start one (e.g. `dockerd`, Docker Desktop) or point DOCKER_HOST at it"
    )]
    DockerUnavailable {
        /// Where the daemon was looked for (`DOCKER_HOST` or the default socket).
        host: String,
        /// What failed (the Docker client's error).
        #[source]
        source: BoxError,
    },
    /// A runtime's image is neither present nor pullable.
    #[error(
        "the image `{image}` for {runtime} is not available: {message}. Pull or load it into the daemon, or use another image: EmulatorBuilder::image(Runtime::{variant}, \"name:tag\") or {env_var}=name:tag"
    )]
    ImageUnavailable {
        /// The image reference.
        image: String,
        /// The runtime it was wanted for, as Lambda names it (`python3.12`).
        runtime: String,
        /// The runtime's `Runtime` variant (`Python312`).
        variant: String,
        /// The environment variable that overrides the image.
        env_var: String,
        /// Why the pull failed.
        message: String,
    },
    /// A function packaged as a container image on a backend that cannot run images.
    #[error(
        "PackageType Image (`{image}`) needs the Docker backend, and this emulator runs functions as local processes: start it with EmulatorBuilder::backend(BackendKind::Docker) (or LAMBDA_TESTKIT_BACKEND=docker, `serve --backend docker`), or deploy a .zip archive"
    )]
    ImagesUnsupported {
        /// The function's image.
        image: String,
    },
    /// A function's container image is neither present nor pullable.
    #[error(
        "the function image `{image}` is not available: {message}. Build, pull or load it into the Docker daemon first"
    )]
    FunctionImageUnavailable {
        /// The image reference (`Code.ImageUri`).
        image: String,
        /// Why the pull failed.
        message: String,
    },
    /// The Docker network the functions were to join ([`crate::EmulatorBuilder::network`])
    /// does not exist, or is not one a container can reach the emulator from.
    #[error(
        "the Docker network `{network}` cannot be joined: {reason}. Create it before the emulator starts (`docker network create {network}`, bollard's create_network, or a testcontainers container started with ImageExt::with_network)"
    )]
    Network {
        /// The network's name, as given.
        network: String,
        /// What the daemon said (`no such network`) or why it cannot be used.
        reason: String,
    },
    /// The Docker daemon refused a request.
    #[error("docker {action} failed: {source}")]
    Docker {
        /// What was asked (`create container`, `start container`, ...).
        action: String,
        /// The daemon's answer (the Docker client's error).
        #[source]
        source: BoxError,
    },
    /// Packing code, layers or a link into an archive for a container failed.
    #[error("could not pack {what} for the container: {source}")]
    Archive {
        /// What was being packed.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A backend-specific failure.
    #[error("{0}")]
    Other(String),
}
