//! rstest fixtures: one isolated emulator per test.
//!
//! ```no_run
//! use lambda_testkit::{Emulator, fixtures::emulator};
//! use rstest::rstest;
//!
//! #[rstest]
//! #[tokio::test]
//! async fn starts(#[future] emulator: Emulator) {
//!     let emu = emulator.await;
//!     assert_eq!(emu.stats().invocations, 0);
//! }
//! ```

use rstest::fixture;

use crate::emulator::Emulator;

/// A fresh emulator with default settings (process backend), dropped — with every
/// execution environment it started — when the test ends.
///
/// # Panics
/// If the emulator cannot start (its working directory cannot be created).
#[fixture]
pub async fn emulator() -> Emulator {
    Emulator::start()
        .await
        .expect("lambda-testkit emulator failed to start")
}
