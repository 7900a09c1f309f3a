//! Shared test support: where the provisioned prerequisites are, and skip-or-fail.
//!
//! `scripts/setup` provisions a Python venv with awslambdaric (`target/testkit/venv`) and
//! builds the Rust handler fixtures (`target/fixtures/release`). A missing prerequisite
//! skips a test on a developer machine; with `LAMBDA_TESTKIT_REQUIRE_ALL=1` (set by CI)
//! it fails the test instead.
#![allow(dead_code)]

use std::path::PathBuf;

use lambda_testkit::{CodeZip, Emulator, EmulatorBuilder, Function, Runtime};

/// Set by CI: a missing prerequisite is a failure, not a skip.
pub const REQUIRE_ALL: &str = "LAMBDA_TESTKIT_REQUIRE_ALL";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Skips the calling test (returns `Ok(())` from it) unless prerequisites are required.
#[macro_export]
macro_rules! require {
    ($check:expr) => {
        match $check {
            Ok(value) => value,
            Err(reason) => {
                $crate::support::skip(&reason);
                return Ok(());
            }
        }
    };
}

pub fn skip(reason: &str) {
    if std::env::var_os(REQUIRE_ALL).is_some_and(|v| v != "0") {
        panic!("required prerequisite missing ({REQUIRE_ALL} is set): {reason}");
    }
    eprintln!("SKIPPED: {reason} (run scripts/setup)");
}

/// The venv interpreter with awslambdaric.
pub fn python() -> Result<PathBuf, String> {
    let path = std::env::var_os(lambda_testkit::PYTHON_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/testkit/venv/bin/python"));
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("no Python with awslambdaric at {}", path.display()))
    }
}

/// A Rust handler binary from `fixtures/rust`, built by scripts/setup.
pub fn rust_fixture(name: &str) -> Result<Vec<u8>, String> {
    let dir = std::env::var_os("LAMBDA_TESTKIT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/fixtures/release"));
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| format!("Rust fixture {} unavailable: {e}", path.display()))
}

/// A `provided.al2023` function whose bootstrap is the Rust fixture `name`.
pub fn rust_function(function: &str, fixture: &str) -> Result<Function, String> {
    let binary = rust_fixture(fixture)?;
    Ok(Function::new(function, Runtime::ProvidedAl2023)
        .handler(fixture)
        .executable("bootstrap", binary))
}

/// A Python function whose code is `fixtures/python/<module>.py`, handler `<module>.handler`.
pub fn python_function(function: &str, module: &str) -> Function {
    let file = format!("{module}.py");
    let source = std::fs::read_to_string(repo().join("fixtures/python").join(&file))
        .expect("fixture source");
    Function::new(function, Runtime::Python311)
        .handler(format!("{module}.handler"))
        .source(file, source)
}

/// The layer content in `fixtures/python/layer`.
pub fn python_layer_zip() -> CodeZip {
    CodeZip::new().dir("", repo().join("fixtures/python/layer"))
}

/// An emulator builder using the provisioned interpreter when there is one.
pub fn builder() -> EmulatorBuilder {
    let builder = Emulator::builder();
    match python() {
        Ok(p) => builder.python(p),
        Err(_) => builder,
    }
}

/// Whether a process is gone (or a zombie awaiting its parent's reap).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Waits up to 2 s for every pid to be gone.
pub async fn wait_gone(pids: &[u32]) -> Vec<u32> {
    for _ in 0..200 {
        if pids.iter().all(|p| process_gone(*p)) {
            return Vec::new();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    pids.iter().copied().filter(|p| !process_gone(*p)).collect()
}
