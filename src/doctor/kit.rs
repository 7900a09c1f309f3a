//! The recipes `--fix` runs, embedded in the crate: `images/build` and what it reads, and
//! the scripts it calls. These are the files of this repository themselves (one source of
//! truth: `images/build` in a checkout and `doctor --fix` run the same bytes), written out
//! once per content hash to `<cache>/kit-<hash>/` in the repository's layout, so the
//! scripts find each other as they do in a checkout.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config;

/// One embedded file: its path in the repository, its bytes, its mode.
struct File {
    path: &'static str,
    bytes: &'static [u8],
    mode: u32,
}

macro_rules! embed {
    ($($path:literal $mode:literal),* $(,)?) => {
        &[$(File {
            path: $path,
            bytes: include_bytes!(concat!("../../", $path)),
            mode: $mode,
        }),*]
    };
}

/// Every file of `images/` but its README, and what `images/build` and `--fix` run from
/// the rest of the repository (the in-file test checks that nothing under `images/` is
/// left out, and that the modes are the checkout's: `images/build` hashes them).
const FILES: &[File] = embed![
    "images/build" 0o755,
    "images/common/lambda-entrypoint.sh" 0o755,
    "images/nodejs/bootstrap" 0o755,
    "images/nodejs/packages" 0o644,
    "images/provided/bootstrap" 0o755,
    "images/provided/packages" 0o644,
    "images/python/bootstrap" 0o755,
    "images/python/packages" 0o644,
    "images/python/requirements.txt" 0o644,
    "images/python-prefix/packages" 0o644,
    "images/python-prefix/requirements.txt" 0o644,
    "scripts/docker-up" 0o755,
    "scripts/setup-node" 0o755,
    "fixtures/node/runtime/versions" 0o644,
    "fixtures/node/runtime/aws-lambda-ric-3.3.0/package.json" 0o644,
    "fixtures/node/runtime/aws-lambda-ric-3.3.0/package-lock.json" 0o644,
    "fixtures/node/runtime/aws-lambda-ric-4.0.2/package.json" 0o644,
    "fixtures/node/runtime/aws-lambda-ric-4.0.2/package-lock.json" 0o644,
    "fixtures/python/runtime-requirements.txt" 0o644,
];

/// The pinned runtime client of the per-version venvs, as `scripts/setup` installs it.
pub(super) const PYTHON_REQUIREMENTS: &str = "fixtures/python/runtime-requirements.txt";

/// The embedded file `path`'s text (a path of [`FILES`]).
pub(super) fn text(path: &str) -> &'static str {
    FILES
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| std::str::from_utf8(f.bytes).ok())
        .unwrap_or_default()
}

/// sha256 over every file's path, mode and bytes.
fn digest() -> String {
    let mut hash = Sha256::new();
    for f in FILES {
        hash.update(format!("{} {:o} {}\n", f.path, f.mode, f.bytes.len()));
        hash.update(f.bytes);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The kit's directory, written out if it is not there yet.
pub(super) fn extract() -> io::Result<PathBuf> {
    let base = config::cache_dir().unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("kit-{}", &digest()[..16]));
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&base)?;
    let staging = tempfile::Builder::new().prefix(".kit-").tempdir_in(&base)?;
    write_all(staging.path())?;
    std::fs::write(staging.path().join(".complete"), "")?;
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, &dir) {
        let _ = std::fs::remove_dir_all(&staged);
        // Another doctor got there first.
        if !dir.join(".complete").is_file() {
            return Err(e);
        }
    }
    Ok(dir)
}

fn write_all(root: &Path) -> io::Result<()> {
    for f in FILES {
        let path = root.join(f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, f.bytes)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn listed(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                listed(&path, out);
            } else if path.extension().is_none_or(|e| e != "md") {
                let rel = path.strip_prefix(repo()).unwrap();
                out.push(rel.to_str().unwrap().to_string());
            }
        }
    }

    #[test]
    fn every_image_recipe_is_embedded_with_the_checkouts_mode() {
        let mut on_disk = Vec::new();
        listed(&repo().join("images"), &mut on_disk);
        for path in &on_disk {
            assert!(
                FILES.iter().any(|f| f.path == path),
                "{path} is not embedded in src/doctor/kit.rs"
            );
        }
        for f in FILES {
            let mode = std::fs::metadata(repo().join(f.path))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o111 != 0,
                f.mode & 0o111 != 0,
                "{} is embedded with mode {:o}, the checkout has {mode:o}",
                f.path,
                f.mode
            );
        }
    }

    #[test]
    fn the_kit_is_the_repositorys_files_in_its_layout() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path()).unwrap();
        for f in FILES {
            let written = dir.path().join(f.path);
            assert_eq!(
                std::fs::read(&written).unwrap(),
                std::fs::read(repo().join(f.path)).unwrap()
            );
            let mode = std::fs::metadata(&written).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, f.mode, "{}", f.path);
        }
        assert!(text(PYTHON_REQUIREMENTS).contains("awslambdaric=="));
    }
}
