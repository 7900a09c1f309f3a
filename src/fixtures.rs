//! rstest fixtures: one isolated emulator per test, dropped — with every execution
//! environment it started — when the test ends.
//!
//! - [`emulator()`]: default settings (the backend `LAMBDA_TESTKIT_BACKEND` names, else
//!   the process backend);
//! - [`docker_emulator()`]: the Docker backend (feature `docker`);
//! - [`emulator_from()`]: from an [`EmulatorBuilder`] the test passes with rstest's
//!   `#[with(...)]` (region, idle TTL, images, ...).
//!
//! ```no_run
//! use std::time::Duration;
//! use lambda_testkit::fixtures::{emulator, emulator_from};
//! use lambda_testkit::Emulator;
//! use rstest::rstest;
//!
//! #[rstest]
//! #[tokio::test]
//! async fn starts(#[future] emulator: Emulator) {
//!     let emu = emulator.await;
//!     assert_eq!(emu.stats().invocations, 0);
//! }
//!
//! #[rstest]
//! #[tokio::test]
//! async fn configured(
//!     #[future]
//!     #[with(Emulator::builder().region("eu-west-1").idle_ttl(Duration::from_secs(1)))]
//!     emulator_from: Emulator,
//! ) {
//!     let emu = emulator_from.await;
//!     assert_eq!(emu.stats().environments, 0);
//! }
//! ```

use rstest::fixture;

use crate::emulator::{Emulator, EmulatorBuilder};

/// A fresh emulator with default settings.
///
/// # Panics
/// If the emulator cannot start (its working directory cannot be created, or the backend
/// `LAMBDA_TESTKIT_BACKEND` names is unavailable).
#[fixture]
pub async fn emulator() -> Emulator {
    Emulator::start()
        .await
        .expect("lambda-testkit emulator failed to start")
}

/// A fresh emulator on the Docker backend (AWS's base images unless
/// `LAMBDA_TESTKIT_IMAGE_<RUNTIME>` or the stand-ins say otherwise).
///
/// # Panics
/// If no Docker daemon answers.
#[cfg(feature = "docker")]
#[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
#[fixture]
pub async fn docker_emulator() -> Emulator {
    Emulator::builder()
        .docker()
        .start()
        .await
        .expect("lambda-testkit emulator (Docker backend) failed to start")
}

/// A fresh emulator from `builder` (default: [`Emulator::builder()`]); pass yours with
/// `#[with(Emulator::builder()...)]` on the test's argument.
///
/// # Panics
/// If the emulator cannot start.
#[fixture]
pub async fn emulator_from(
    #[default(EmulatorBuilder::default())] builder: EmulatorBuilder,
) -> Emulator {
    builder
        .start()
        .await
        .expect("lambda-testkit emulator failed to start")
}
