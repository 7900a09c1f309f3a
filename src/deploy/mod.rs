//! Deploy: function and layer definitions, validation, and turning them into a
//! [`Deployment`] — code and layers extracted once, identified by a deploy id.
//!
//! [`Registry`] makes deployments; which one is current for a function is held by that
//! function's pool (`execution`), looked up by name in the core (`service`).

pub(crate) mod arn;
mod deployment;
mod durable;
mod function;
mod layer;
mod registry;
mod runtime;
mod versions;
mod workdir;

use std::time::Duration;

pub(crate) use deployment::{CodeIdentity, Deployment};
pub use deployment::{FunctionConfig, RuntimeVersion};
pub use durable::{DEFAULT_RETENTION_DAYS, DurableConfig, MAX_EXECUTION_TIMEOUT};
pub use function::{
    DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, Function, ImageConfig, LayerSource, MAX_ENVIRONMENT_BYTES,
    MAX_LAYERS, MAX_TIMEOUT, MEMORY_RANGE_MB, PackageType,
};
pub use layer::{Layer, LayerVersion};
pub(crate) use registry::{Registry, ResolvedImage};
pub use runtime::Runtime;
pub(crate) use versions::Versions;
pub use versions::{Alias, LATEST, VersionError};
pub(crate) use workdir::reap_in_background as reap_abandoned_workdirs;

use crate::error::BackendError;
use crate::package::PackageError;

/// Why a function or layer could not be deployed. Each variant names what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The runtime identifier is not one this crate runs.
    #[error(
        "unknown runtime `{0}`: supported runtimes are provided.al2023, provided.al2, python3.9 to python3.13, nodejs20.x, nodejs22.x, nodejs24.x"
    )]
    UnknownRuntime(String),
    /// A runtime that needs a handler (every `python3.*`) was given none.
    #[error("function `{function}` on {runtime} needs a handler, e.g. `app.handler`")]
    MissingHandler {
        /// The function being deployed.
        function: String,
        /// Its runtime.
        runtime: Runtime,
    },
    /// Function names are 1-64 characters of letters, digits, `-` and `_`.
    #[error("invalid function name `{0}`: use 1-64 characters of letters, digits, `-` and `_`")]
    InvalidFunctionName(String),
    /// Layer names follow the same rule as function names.
    #[error("invalid layer name `{0}`: use 1-64 characters of letters, digits, `-` and `_`")]
    InvalidLayerName(String),
    /// More than 5 layers.
    #[error("{0} layers attached; Lambda allows at most {MAX_LAYERS}")]
    TooManyLayers(usize),
    /// Environment keys and values add up to more than 4 KB.
    #[error("environment variables take {0} bytes; Lambda allows at most {MAX_ENVIRONMENT_BYTES}")]
    EnvironmentTooLarge(usize),
    /// A key not matching `[a-zA-Z]([a-zA-Z0-9_])+`.
    #[error("invalid environment variable name `{0}`: it must match [a-zA-Z]([a-zA-Z0-9_])+")]
    InvalidEnvironmentKey(String),
    /// A key Lambda reserves for itself (e.g. `AWS_REGION`).
    #[error("environment variable `{0}` is reserved by Lambda and cannot be set")]
    ReservedEnvironmentKey(String),
    /// Timeout outside 1-900 s.
    #[error("timeout {0:?} is out of range: Lambda allows 1 to 900 seconds")]
    TimeoutOutOfRange(Duration),
    /// Memory outside 128-10240 MB.
    #[error("memory size {0} MB is out of range: Lambda allows 128 to 10240 MB")]
    MemoryOutOfRange(u32),
    /// A layer version ARN that was never published (or was deleted).
    #[error("layer version {0} does not exist")]
    LayerNotFound(String),
    /// No function with this name exists.
    #[error("function not found: {0}")]
    FunctionNotFound(String),
    /// `CreateFunction` for a name that is taken (`ResourceConflictException`).
    #[error("function already exists: {0}")]
    FunctionExists(String),
    /// An update named a `RevisionId` that is no longer current
    /// (`PreconditionFailedException`).
    #[error(
        "function `{function}` is at revision {current}, not {expected}: it changed since it was read"
    )]
    RevisionMismatch {
        /// The function.
        function: String,
        /// The revision the caller expected.
        expected: String,
        /// The current revision.
        current: String,
    },
    /// An empty `Code.ImageUri`.
    #[error("invalid image URI `{0}`: give a reference such as `repo/name:tag`")]
    InvalidImageUri(String),
    /// Layers attached to a function packaged as a container image (Lambda refuses them:
    /// the image carries everything).
    #[error(
        "function `{function}` is packaged as a container image, and Lambda does not allow layers on image functions: add the layer's files to the image instead"
    )]
    LayersOnImage {
        /// The function.
        function: String,
    },
    /// `ImageConfig` given for a function packaged as a .zip archive.
    #[error(
        "function `{function}` is packaged as a .zip archive: ImageConfig applies only to functions made with Function::image (PackageType Image)"
    )]
    ImageConfigOnZip {
        /// The function.
        function: String,
    },
    /// `DurableConfig` out of the model's ranges.
    #[error("{0}")]
    InvalidDurableConfig(String),
    /// `DurableConfig` on an update of a function created without it (Lambda enables
    /// durable execution only at creation).
    #[error(
        "function `{0}` was created without DurableConfig; durable execution can only be enabled when a function is created"
    )]
    NotDurable(String),
    /// A description over 256 characters.
    #[error("description is {0} characters; Lambda allows at most 256")]
    DescriptionTooLong(usize),
    /// Building or extracting the code or a layer failed (malformed zip, zip-slip, size caps).
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The backend cannot run this runtime (e.g. `awslambdaric` missing, image missing).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Writing the extracted code failed.
    #[error("could not prepare the code directory: {0}")]
    Io(#[from] std::io::Error),
    /// The emulator was shut down.
    #[error("the emulator has been shut down")]
    ShutDown,
    /// A version or alias operation was refused (unknown version or alias, bad routing).
    #[error(transparent)]
    Version(#[from] VersionError),
    /// A parameter Lambda refuses, in its words (e.g. a stale `CodeSha256`).
    #[error("{0}")]
    Invalid(String),
    /// No provisioned concurrency is configured for this version or alias
    /// (`ProvisionedConcurrencyConfigNotFoundException`).
    #[error("No Provisioned Concurrency Config found for this function: {0}")]
    ProvisionedConcurrencyNotFound(String),
}

/// Now, formatted as Lambda formats `LastModified` and `CreatedDate`:
/// `2020-04-10T19:06:32.563+0000`.
pub(crate) fn timestamp_now() -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    time::OffsetDateTime::now_utc()
        .format(FORMAT)
        .unwrap_or_default()
}
