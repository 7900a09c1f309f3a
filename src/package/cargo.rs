//! The user's own Rust crate as a handler: `cargo build --release --bin <bin>` of a cargo
//! package, once per test process, and the path of the binary cargo reports.
//!
//! Built once per (manifest, bin) per process even when many tests deploy it at once;
//! concurrent test binaries are serialised by cargo's own lock on the target directory, so
//! the second finds the build done. The binary is found from cargo's JSON messages
//! (`compiler-artifact` with an executable), so custom target directories and workspaces
//! need no guessing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use super::PackageError;

type Key = (PathBuf, String);
/// One build's result (the error as text: a build fails the same way for every caller).
type Build = Arc<OnceLock<Result<PathBuf, String>>>;

/// The release binary `bin` of the cargo package at `manifest_dir` (its directory or its
/// `Cargo.toml`), built if needed. Blocking: it runs cargo.
pub(crate) fn binary(manifest_dir: &Path, bin: &str) -> Result<PathBuf, PackageError> {
    static BUILT: OnceLock<Mutex<HashMap<Key, Build>>> = OnceLock::new();
    let manifest = if manifest_dir.ends_with("Cargo.toml") {
        manifest_dir.to_path_buf()
    } else {
        manifest_dir.join("Cargo.toml")
    };
    if !manifest.is_file() {
        return Err(PackageError::Cargo {
            bin: bin.to_string(),
            manifest,
            detail: "no Cargo.toml there: pass the handler crate's directory (e.g. env!(\"CARGO_MANIFEST_DIR\"))".to_string(),
        });
    }
    let slot = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((manifest.clone(), bin.to_string()))
        .or_default()
        .clone();
    slot.get_or_init(|| build(&manifest, bin))
        .clone()
        .map_err(|detail| PackageError::Cargo {
            bin: bin.to_string(),
            manifest,
            detail,
        })
}

fn build(manifest: &Path, bin: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--bin")
        .arg(bin)
        .arg("--manifest-path")
        .arg(manifest)
        // A test process inherits the variables `cargo test` set for its own crate; the
        // handler crate is built with its own settings.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("cargo build failed:\n{}", stderr.trim_end()));
    }
    let reader = std::io::BufReader::new(output.stdout.as_slice());
    for message in cargo_metadata::Message::parse_stream(reader).flatten() {
        if let cargo_metadata::Message::CompilerArtifact(artifact) = message
            && artifact.target.name == bin
            && let Some(executable) = artifact.executable
        {
            return Ok(executable.into_std_path_buf());
        }
    }
    Err(format!(
        "cargo built the package but reported no executable named `{bin}`: is there a [[bin]] (or src/main.rs / src/bin/{bin}.rs) of that name?"
    ))
}
