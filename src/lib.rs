//! # lambda-testkit
//!
//! A real, isolated AWS Lambda environment per test, the way testcontainers gives tests a
//! real database. Start an [`Emulator`] (or take the `fixtures::emulator` rstest
//! fixture), deploy [`Function`]s and [`Layer`]s built from inline sources, invoke them —
//! typed or raw — and assert on what the platform did ([`Stats`], the event timeline).
//! When the emulator is dropped, every process it started is gone.
//!
//! The emulator serves the Lambda Runtime API (2018-06-01) itself: every execution
//! environment gets its own listener on `127.0.0.1`, and the real runtime client runs
//! against it (`lambda_runtime` for Rust `bootstrap` binaries, `awslambdaric` for
//! Python). Timeouts, errors, logs and concurrency are therefore exact.
//!
//! ## The pipeline
//!
//! ```text
//! package    code zips from inline sources, files, binaries; safe extraction; CodeSha256
//! deploy     Function, Layer, Runtime, validation; the registry that makes Deployments
//! execution  per function a pool of execution environments; each environment's lifecycle
//!            as a pure state machine; its Runtime API; deadlines, logs
//! backend    where a runtime runs: a local process, or a Docker container (feature docker)
//! service    the core both front doors call
//! api        the Lambda REST API (feature api)      emulator  the Rust API
//! ```
//!
//! Two front doors share that core. The Rust API ([`Emulator`], [`FunctionHandle`]),
//! including streamed responses ([`FunctionHandle::invoke_stream`] → [`ResponseStream`],
//! chunk boundaries kept as the handler flushed them). And, with the `api` feature, the
//! Lambda REST API at `Emulator::endpoint_url`, for aws-sdk-lambda (a ready client with
//! the `sdk` feature: `Emulator::lambda_client`), boto3 and the AWS CLI — also
//! standalone, as `lambda-testkit serve --port 9001`.
//!
//! ## Features (on by default but `sdk`)
//!
//! - `docker`: the Docker backend (bollard): [`BackendKind::Docker`], the `docker` module.
//! - `api`: the Lambda REST API and the `lambda-testkit serve` binary.
//! - `rstest`: ready rstest fixtures (`fixtures`).
//! - `sdk` (implies `api`): a ready `aws_sdk_lambda::Client` for the REST API.
//! - `doctor`: checks and provisions what the runtimes need (`doctor`, and the
//!   `lambda-testkit doctor [--fix]` command).
//!
//! `--no-default-features` builds the process backend and the Rust API alone.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Parts of the core serve only the REST API or the Docker backend; with those features
// off they are unused, not dead. The full build (CI's clippy) still checks for dead code.
#![cfg_attr(not(all(feature = "api", feature = "docker")), allow(dead_code))]

#[cfg(feature = "api")]
mod api;
mod assertions;
mod backend;
mod config;
mod deploy;
#[cfg(feature = "docker")]
#[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
pub mod docker;
#[cfg(feature = "doctor")]
#[cfg_attr(docsrs, doc(cfg(feature = "doctor")))]
pub mod doctor;
pub mod durable;
mod emulator;
pub mod error;
mod execution;
#[cfg(feature = "rstest")]
#[cfg_attr(docsrs, doc(cfg(feature = "rstest")))]
pub mod fixtures;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod invoke;
pub mod package;
mod request_id;
mod service;
pub mod stats;
pub mod telemetry;
#[cfg(feature = "testcontainers")]
#[cfg_attr(docsrs, doc(cfg(feature = "testcontainers")))]
pub mod testcontainers;
pub mod urls;

/// The AWS SDK for Lambda, as used by `Emulator::lambda_client` (feature `sdk`).
#[cfg(feature = "sdk")]
#[cfg_attr(docsrs, doc(cfg(feature = "sdk")))]
pub use aws_sdk_lambda;

pub use backend::BackendKind;
pub use deploy::{
    DeployError, DurableConfig, Function, FunctionConfig, Layer, LayerVersion, Runtime,
    RuntimeVersion,
};
pub use emulator::{DurableExecution, Emulator, EmulatorBuilder, EmulatorError, FunctionHandle};
pub use invoke::stream::ResponseStream;
pub use invoke::{FunctionError, InvokeError, InvokeOutput, InvokeRequest};
pub use package::{CodeZip, DeploymentPackage};
pub use stats::Stats;

/// The details of a function's definition beyond the [`Function`] builder itself.
pub mod function {
    pub use crate::deploy::{Alias, ImageConfig, LATEST, LayerSource, PackageType, VersionError};
    pub use crate::service::ProvisionedConcurrency;
}

/// Streamed responses ([`crate::FunctionHandle::invoke_stream`]): chunks, the
/// HTTP-integration prelude, how the stream ended.
pub mod stream {
    pub use crate::invoke::stream::{
        CollectedStream, HttpPrelude, ResponseStream, StreamChunk, StreamCompletion,
    };
}

/// Lambda's quotas and defaults as this crate enforces them (AWS "Lambda quotas").
pub mod limits {
    pub use crate::deploy::{
        DEFAULT_MEMORY_MB, DEFAULT_RETENTION_DAYS, DEFAULT_TIMEOUT, MAX_ENVIRONMENT_BYTES,
        MAX_EXECUTION_TIMEOUT, MAX_LAYERS, MAX_TIMEOUT, MEMORY_RANGE_MB,
    };
    pub use crate::emulator::DEFAULT_MAX_ENVIRONMENTS;
    pub use crate::invoke::stream::MAX_STREAM_BYTES;
    pub use crate::invoke::{LOG_TAIL_BYTES, MAX_ASYNC_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES};
}

/// The process backend: runtimes as local child processes.
pub mod process {
    pub use crate::config::{
        BACKEND_ENV, PYTHON_ENV, PYTHON_FALLBACK_ENV, PYTHON_VERSION_ENV_PREFIX,
        python_version_env_var,
    };
    pub use crate::emulator::reap_orphaned_runtimes;
}
