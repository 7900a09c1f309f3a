//! # lambda-testkit
//!
//! A real, isolated AWS Lambda environment per test, the way testcontainers gives tests a
//! real database. Start an [`Emulator`] (or take the [`fixtures::emulator`] rstest
//! fixture), deploy [`Function`]s and [`Layer`]s built from inline sources, invoke them —
//! typed or raw — and assert on what the platform did ([`Stats`], the event timeline).
//! When the emulator is dropped, every process it started is gone.
//!
//! The emulator serves the Lambda Runtime API (2018-06-01) itself: every execution
//! environment gets its own listener on `127.0.0.1`, and the real runtime client runs
//! against it (`lambda_runtime` for Rust `bootstrap` binaries, `awslambdaric` for
//! Python). Timeouts, errors, logs and concurrency are therefore exact.
//!
//! The pipeline, module by module: [`package`] (code zips) → deploy (functions, layers) →
//! pool (warm environments) → environment (one runtime + its Runtime API) → backend
//! (process) → runtime_api.
//!
//! Two front doors share that core. The Rust API ([`Emulator`], [`FunctionHandle`]),
//! including streamed responses ([`FunctionHandle::invoke_stream`] → [`ResponseStream`],
//! chunk boundaries kept as the handler flushed them). And the Lambda REST API at
//! [`Emulator::endpoint_url`], for aws-sdk-lambda (a ready client with the `sdk`
//! feature: `Emulator::lambda_client`), boto3 and the AWS CLI — also standalone, as
//! `lambda-testkit serve --port 9001`.
#![deny(missing_docs)]

mod assertions;
/// The AWS SDK for Lambda, as used by [`Emulator::lambda_client`] (feature `sdk`).
#[cfg(feature = "sdk")]
pub use aws_sdk_lambda;

mod api;
mod backend;
mod deploy;
pub mod docker;
mod emulator;
mod error;
mod execution;
pub mod fixtures;
mod invoke;
pub mod package;
mod service;
mod stats;

pub use assertions::WaitTimeout;
pub use backend::process::PYTHON_ENV;
pub use backend::{BACKEND_ENV, BackendKind};
pub use deploy::{
    DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, DeployError, Function, FunctionConfig, ImageConfig, Layer,
    LayerSource, LayerVersion, MAX_ENVIRONMENT_BYTES, MAX_LAYERS, MAX_TIMEOUT, MEMORY_RANGE_MB,
    Runtime,
};
pub use emulator::{
    DEFAULT_MAX_ENVIRONMENTS, Emulator, EmulatorBuilder, EmulatorError, FunctionHandle,
    reap_orphaned_runtimes,
};
pub use error::BackendError;
pub use invoke::stream::{
    CollectedStream, HttpPrelude, MAX_STREAM_BYTES, ResponseStream, StreamChunk, StreamCompletion,
};
pub use invoke::{
    FunctionError, InvokeError, InvokeOutput, InvokeRequest, LOG_TAIL_BYTES,
    MAX_ASYNC_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES,
};
pub use package::{CodeZip, DeploymentPackage, PackageError};
pub use stats::{Event, EventKind, EvictionReason, InvocationResult, Stats};
