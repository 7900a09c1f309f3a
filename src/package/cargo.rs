//! The user's own Rust crate as a handler: `cargo build --release --bin <bin>` of a cargo
//! package, once per test process, and the path of the binary cargo reports.
//!
//! Built once per (manifest, bin) per process even when many tests deploy it at once;
//! concurrent test binaries are serialised by cargo's own lock on the target directory, so
//! the second finds the build done. The binary is found from cargo's JSON messages
//! (`compiler-artifact` with an executable), so custom target directories and workspaces
//! need no guessing. Cargo runs in the package's directory, as `cargo build` there would:
//! the package's own `.cargo/config.toml` (a `target-dir`, a linker) applies. Cargo looks
//! for configuration from its working directory, not from `--manifest-path`.

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
    let manifest = std::path::absolute(manifest).map_err(|e| e.to_string())?;
    let package_dir = manifest.parent().unwrap_or(Path::new("/"));
    let mut command = Command::new(cargo);
    // A test process inherits the variables cargo sets for the test's own crate. Build
    // scripts that declare `rerun-if-env-changed` for one (ring's, for
    // `CARGO_MANIFEST_DIR`) would otherwise be rerun, and everything above them rebuilt,
    // whenever the handler crate was last built from a shell: ~2 minutes here for
    // `fixtures/rust` after `scripts/setup` had built it.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_for_the_test_s_crate) {
            command.env_remove(name);
        }
    }
    let output = command
        .current_dir(package_dir)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--bin")
        .arg(bin)
        .arg("--manifest-path")
        .arg(&manifest)
        // The handler crate is built with its own settings.
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

/// The variables cargo sets when it runs a crate's tests, binaries or build script
/// (cargo's "Environment variables Cargo sets for crates"), as opposed to the user's own
/// (`CARGO_HOME`, `CARGO` itself).
fn set_for_the_test_s_crate(name: &str) -> bool {
    ["CARGO_PKG_", "CARGO_BIN_", "CARGO_CFG_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_s_own_cargo_config_applies() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path();
        std::fs::write(
            package.join("Cargo.toml"),
            "[package]\nname = \"configured\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
        )
        .unwrap();
        std::fs::create_dir_all(package.join("src")).unwrap();
        std::fs::write(package.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::create_dir_all(package.join(".cargo")).unwrap();
        std::fs::write(
            package.join(".cargo/config.toml"),
            "[build]\ntarget-dir = \"built-here\"\n",
        )
        .unwrap();
        let binary = binary(package, "configured").unwrap();
        let expected = package
            .canonicalize()
            .unwrap()
            .join("built-here/release/configured");
        assert_eq!(binary.canonicalize().unwrap(), expected);
    }

    #[test]
    fn only_the_variables_cargo_sets_for_a_crate_are_left_out() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_BIN_EXE_x",
            "OUT_DIR",
        ] {
            assert!(set_for_the_test_s_crate(name), "{name}");
        }
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_NET_OFFLINE",
            "PATH",
            "RUSTUP_TOOLCHAIN",
        ] {
            assert!(!set_for_the_test_s_crate(name), "{name}");
        }
    }
}
