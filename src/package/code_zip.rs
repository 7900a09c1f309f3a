//! The deployment-package builder.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::encode::PackedFile;
use super::{DeploymentPackage, PackageError};

const REGULAR_MODE: u32 = 0o644;
const EXECUTABLE_MODE: u32 = 0o755;

/// A zip built from inline sources, host files, whole directories and executables: the
/// code of a function or the content of a layer (AWS: "Lambda deployment packages",
/// "Packaging your layer content").
///
/// Entries are written in insertion order (a [`dir`](Self::dir)'s files in sorted order) with
/// fixed timestamps (1980-01-01 00:00:00), explicit unix permissions and deflate
/// compression, so the same inputs always give the same bytes and the same `CodeSha256`.
/// Host files are read only when [`build`](Self::build) runs; the builder itself never fails.
///
/// Every file is written with mode `0o644`, or `0o755` when it must be executable
/// (`executable`, or a host file with any execute bit set). Lambda runs code as a user that
/// does not own the files, so they must be world-readable, and a custom runtime's
/// `bootstrap` must be executable (AWS "Lambda deployment packages").
///
/// Directories are implied by file paths; empty directories are not stored.
///
/// # Example
///
/// ```
/// use lambda_testkit::CodeZip;
///
/// let package = CodeZip::new()
///     .source("index.mjs", "export const handler = async (event) => event;")
///     .executable("bootstrap", "#!/bin/sh\nexec node index.mjs\n")
///     .bytes("data/table.bin", vec![0u8, 1, 2, 3])
///     .build()?;
///
/// // Lambda's CodeSha256: base64 of the SHA-256 of the zip, 44 characters.
/// assert_eq!(package.code_sha256().len(), 44);
/// assert_eq!(package.code_size(), package.zip_bytes().len() as u64);
///
/// // Deterministic: building the same inputs again gives the same package.
/// let again = CodeZip::new()
///     .source("index.mjs", "export const handler = async (event) => event;")
///     .executable("bootstrap", "#!/bin/sh\nexec node index.mjs\n")
///     .bytes("data/table.bin", vec![0u8, 1, 2, 3])
///     .build()?;
/// assert_eq!(package.code_sha256(), again.code_sha256());
/// # Ok::<(), lambda_testkit::error::PackageError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct CodeZip {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    path: String,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    Inline {
        bytes: Bytes,
        mode: u32,
    },
    HostFile(PathBuf),
    HostDir(PathBuf),
    /// A binary of a cargo package, built at `build` time.
    CargoBin {
        manifest_dir: PathBuf,
        bin: String,
    },
}

impl CodeZip {
    /// An empty builder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a UTF-8 text file at `path` (a `/`-separated entry name such as
    /// `"src/index.mjs"`) with mode `0o644`.
    #[must_use]
    pub fn source(self, path: impl Into<String>, text: impl Into<String>) -> Self {
        self.bytes(path, text.into().into_bytes())
    }

    /// Adds a file with arbitrary contents at `path`, mode `0o644`. A `Vec<u8>` is taken
    /// without a copy; a [`Bytes`] is shared (one buffer for many deploys).
    #[must_use]
    pub fn bytes(self, path: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        self.push(
            path,
            Source::Inline {
                bytes: bytes.into(),
                mode: REGULAR_MODE,
            },
        )
    }

    /// Adds an executable file at `path`, mode `0o755`: a custom runtime's `bootstrap`
    /// (AWS "Building a custom runtime") or a script a handler runs. A `Vec<u8>` is taken
    /// without a copy; a [`Bytes`] is shared (one buffer for many deploys: the package
    /// keeps its files for `GetFunction` and Docker uploads).
    #[must_use]
    pub fn executable(self, path: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        self.push(
            path,
            Source::Inline {
                bytes: bytes.into(),
                mode: EXECUTABLE_MODE,
            },
        )
    }

    /// Adds the release binary `bin` of the cargo package at `manifest_dir` (its
    /// directory, e.g. `env!("CARGO_MANIFEST_DIR")`, or its `Cargo.toml`) at `path`, mode
    /// `0o755`. Built with `cargo build --release --bin <bin>` when [`build`](Self::build)
    /// runs, once per process; a compile error is [`PackageError::Cargo`](super::PackageError::Cargo)
    /// with cargo's output. For a zip cargo-lambda already made, use
    /// [`crate::DeploymentPackage::from_zip`] instead.
    #[must_use]
    pub fn cargo_bin(
        self,
        path: impl Into<String>,
        manifest_dir: impl Into<PathBuf>,
        bin: impl Into<String>,
    ) -> Self {
        self.push(
            path,
            Source::CargoBin {
                manifest_dir: manifest_dir.into(),
                bin: bin.into(),
            },
        )
    }

    /// Adds the host file `host_path` at entry `path`, read when [`build`](Self::build)
    /// runs. Symlinks are followed. The file is stored `0o755` if any of its execute bits
    /// is set on the host, else `0o644`.
    #[must_use]
    pub fn file(self, path: impl Into<String>, host_path: impl Into<PathBuf>) -> Self {
        self.push(path, Source::HostFile(host_path.into()))
    }

    /// Adds every file under the host directory `host_dir`, recursively, at its relative
    /// path below `prefix` (`""` puts them at the zip's root, `"python"` gives the layout a
    /// Python layer needs; AWS "Packaging your layer content").
    ///
    /// The directory is read when [`build`](Self::build) runs; files are added in sorted
    /// path order so the result does not depend on directory listing order. Symlinks are
    /// followed and stored as the contents they point to (a symlink cycle is an error).
    /// Execute bits are kept as for [`file`](Self::file). Empty directories are skipped.
    #[must_use]
    pub fn dir(self, prefix: impl Into<String>, host_dir: impl Into<PathBuf>) -> Self {
        self.push(prefix, Source::HostDir(host_dir.into()))
    }

    fn push(mut self, path: impl Into<String>, source: Source) -> Self {
        self.entries.push(Entry {
            path: path.into(),
            source,
        });
        self
    }

    /// Reads the host files and directories, checks every entry name and writes the zip.
    ///
    /// # Errors
    ///
    /// - [`PackageError::InvalidEntryPath`] for an entry name that is empty, absolute, has a
    ///   drive prefix, a `\`, a NUL, or an empty, `.` or `..` component; or a path used
    ///   both as a file and as a directory (`"lib"` and `"lib/x.js"`).
    /// - [`PackageError::DuplicateEntry`] when two entries have the same name.
    /// - [`PackageError::ReadHostPath`] when a host file or directory cannot be read.
    /// - [`PackageError::TooLarge`] when the zip exceeds
    ///   [`DeploymentPackage::MAX_ZIPPED_BYTES`] (AWS "Lambda quotas": 50 MB zipped).
    /// - [`PackageError::ZipWrite`] if the zip writer refuses an entry.
    pub fn build(&self) -> Result<DeploymentPackage, PackageError> {
        let files = self.collect_files()?;
        check_layout(&files)?;
        DeploymentPackage::from_files(files)
    }

    fn collect_files(&self) -> Result<Vec<PackedFile>, PackageError> {
        let mut files = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            match &entry.source {
                Source::Inline { bytes, mode } => files.push(PackedFile {
                    path: entry.path.clone(),
                    bytes: bytes.clone(),
                    mode: *mode,
                }),
                Source::CargoBin { manifest_dir, bin } => {
                    let binary = super::cargo::binary(manifest_dir, bin)?;
                    let (bytes, _) = read_host_file(&binary)?;
                    files.push(PackedFile {
                        path: entry.path.clone(),
                        bytes: Bytes::from(bytes),
                        mode: EXECUTABLE_MODE,
                    });
                }
                Source::HostFile(host_path) => {
                    let (bytes, mode) = read_host_file(host_path)?;
                    files.push(PackedFile {
                        path: entry.path.clone(),
                        bytes: Bytes::from(bytes),
                        mode,
                    });
                }
                Source::HostDir(host_dir) => {
                    let prefix = entry.path.trim_end_matches('/');
                    if !prefix.is_empty() {
                        validate_entry_path(prefix)?;
                    }
                    let mut ancestors = Vec::new();
                    walk_host_dir(host_dir, prefix, &mut ancestors, &mut files)?;
                }
            }
        }
        Ok(files)
    }
}

fn read_host_file(host_path: &Path) -> Result<(Vec<u8>, u32), PackageError> {
    let unreadable = |source| PackageError::ReadHostPath {
        path: host_path.to_path_buf(),
        source,
    };
    let metadata = fs::metadata(host_path).map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(unreadable(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let bytes = fs::read(host_path).map_err(unreadable)?;
    // Normalise to two modes: host umasks and owner-only bits would otherwise make builds
    // irreproducible, or produce files Lambda's runtime user cannot read.
    let mode = if metadata.permissions().mode() & 0o111 != 0 {
        EXECUTABLE_MODE
    } else {
        REGULAR_MODE
    };
    Ok((bytes, mode))
}

fn walk_host_dir(
    dir: &Path,
    prefix: &str,
    ancestors: &mut Vec<PathBuf>,
    out: &mut Vec<PackedFile>,
) -> Result<(), PackageError> {
    let unreadable = |path: &Path, source| PackageError::ReadHostPath {
        path: path.to_path_buf(),
        source,
    };
    // Following symlinks means a link to an ancestor would recurse forever.
    let canonical = fs::canonicalize(dir).map_err(|e| unreadable(dir, e))?;
    if ancestors.contains(&canonical) {
        return Err(unreadable(
            dir,
            io::Error::new(io::ErrorKind::InvalidInput, "symlink cycle"),
        ));
    }
    ancestors.push(canonical);

    let mut children = fs::read_dir(dir)
        .map_err(|e| unreadable(dir, e))?
        .map(|child| child.map(|c| c.file_name()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(dir, e))?;
    children.sort();

    for name in children {
        let host_path = dir.join(&name);
        let Some(name) = name.to_str() else {
            return Err(PackageError::InvalidEntryPath {
                path: host_path.to_string_lossy().into_owned(),
                reason: "host file name is not valid UTF-8".to_owned(),
            });
        };
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let metadata = fs::metadata(&host_path).map_err(|e| unreadable(&host_path, e))?;
        if metadata.is_dir() {
            walk_host_dir(&host_path, &path, ancestors, out)?;
        } else {
            let (bytes, mode) = read_host_file(&host_path)?;
            out.push(PackedFile {
                path,
                bytes: Bytes::from(bytes),
                mode,
            });
        }
    }
    ancestors.pop();
    Ok(())
}

/// Rejects names that could not be extracted to the same place on every unzip tool.
fn validate_entry_path(path: &str) -> Result<(), PackageError> {
    let invalid = |reason: &str| {
        Err(PackageError::InvalidEntryPath {
            path: path.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if path.is_empty() {
        return invalid("empty path");
    }
    if path.starts_with('/') {
        return invalid("absolute path; entry names are relative to the zip root");
    }
    if path.contains('\\') {
        return invalid("contains a backslash; use '/' as the separator");
    }
    if path.contains('\0') {
        return invalid("contains a NUL byte");
    }
    if path.len() > usize::from(u16::MAX) {
        return invalid("longer than 65,535 bytes, the most a zip entry name can hold");
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return invalid("starts with a drive prefix");
    }
    for component in path.split('/') {
        match component {
            "" => return invalid("empty path component (leading, trailing or doubled '/')"),
            "." => return invalid("'.' component; write the normalised path"),
            ".." => return invalid("'..' component would escape the extraction directory"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks names, duplicates and file-versus-directory clashes across all entries.
fn check_layout(files: &[PackedFile]) -> Result<(), PackageError> {
    let mut file_paths: HashSet<&str> = HashSet::with_capacity(files.len());
    let mut dir_paths: HashSet<&str> = HashSet::new();
    for file in files {
        validate_entry_path(&file.path)?;
        if !file_paths.insert(&file.path) {
            return Err(PackageError::DuplicateEntry {
                path: file.path.clone(),
            });
        }
        for (i, _) in file.path.match_indices('/') {
            dir_paths.insert(&file.path[..i]);
        }
    }
    if let Some(clash) = files.iter().find(|f| dir_paths.contains(f.path.as_str())) {
        return Err(PackageError::InvalidEntryPath {
            path: clash.path.clone(),
            reason: "is a file but other entries use it as a directory".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::os::unix::fs::symlink;

    use base64::Engine as _;
    use sha2::{Digest as _, Sha256};
    use std::io::Cursor;

    use zip::{CompressionMethod, ZipArchive};

    use super::super::encode::STORE_FROM_BYTES;
    use super::*;

    struct Unzipped {
        name: String,
        mode: u32,
        bytes: Vec<u8>,
    }

    fn unzip(package: &DeploymentPackage) -> Vec<Unzipped> {
        let mut archive = ZipArchive::new(Cursor::new(package.zip_bytes().clone())).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut file = archive.by_index(i).unwrap();
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes).unwrap();
                Unzipped {
                    name: file.name().unwrap().into_owned(),
                    mode: file.unix_mode().unwrap(),
                    bytes,
                }
            })
            .collect()
    }

    fn write_host_file(path: &Path, contents: &[u8], mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn invalid_path_reason(zip: CodeZip) -> String {
        match zip.build().unwrap_err() {
            PackageError::InvalidEntryPath { reason, .. } => reason,
            other => panic!("expected InvalidEntryPath, got {other}"),
        }
    }

    #[test]
    fn entries_keep_insertion_order_contents_and_modes() {
        let package = CodeZip::new()
            .source("index.mjs", "export const handler = async () => 'ok';")
            .executable("bootstrap", b"#!/bin/sh\n".to_vec())
            .bytes("data/blob.bin", vec![0u8, 255, 7])
            .build()
            .unwrap();
        let entries = unzip(&package);
        let summary: Vec<_> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.mode & 0o7777, e.bytes.as_slice()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "index.mjs",
                    0o644,
                    &b"export const handler = async () => 'ok';"[..]
                ),
                ("bootstrap", 0o755, &b"#!/bin/sh\n"[..]),
                ("data/blob.bin", 0o644, &[0u8, 255, 7][..]),
            ]
        );
        assert!(entries.iter().all(|e| e.mode & 0o170_000 == 0o100_000));
    }

    #[test]
    fn files_of_a_megabyte_or_more_are_stored_and_still_round_trip() {
        let big: Vec<u8> = (0..STORE_FROM_BYTES + 7).map(|i| (i % 251) as u8).collect();
        let package = CodeZip::new()
            .executable("bootstrap", big.clone())
            .source("small.txt", "lambda ".repeat(10_000))
            .build()
            .unwrap();
        let mut archive = ZipArchive::new(Cursor::new(package.zip_bytes().clone())).unwrap();
        let mut stored = archive.by_name("bootstrap").unwrap();
        assert_eq!(stored.compression(), CompressionMethod::Stored);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut stored, &mut back).unwrap();
        assert_eq!(back, big);
        drop(stored);
        let small = archive.by_name("small.txt").unwrap();
        assert_eq!(small.compression(), CompressionMethod::Deflated);
    }

    #[test]
    fn entries_are_deflate_compressed() {
        let package = CodeZip::new()
            .source("big.txt", "lambda ".repeat(10_000))
            .build()
            .unwrap();
        let mut archive = ZipArchive::new(Cursor::new(package.zip_bytes().clone())).unwrap();
        let file = archive.by_index(0).unwrap();
        assert_eq!(file.compression(), CompressionMethod::Deflated);
        assert!(file.compressed_size() < file.size() / 10);
    }

    #[test]
    fn same_inputs_build_identical_bytes_and_code_sha256() {
        let host = tempfile::tempdir().unwrap();
        write_host_file(
            &host.path().join("lib/util.js"),
            b"module.exports = 1;",
            0o600,
        );
        let build = || {
            CodeZip::new()
                .source("index.js", "exports.handler = async () => 1;")
                .dir("", host.path())
                .build()
                .unwrap()
        };
        let first = build();
        // Different mtimes on the host must not leak into the zip.
        std::thread::sleep(std::time::Duration::from_millis(5));
        fs::write(host.path().join("lib/util.js"), b"module.exports = 1;").unwrap();
        let second = build();
        assert_eq!(first.zip_bytes(), second.zip_bytes());
        assert_eq!(first.code_sha256(), second.code_sha256());
    }

    #[test]
    fn different_contents_give_different_code_sha256() {
        let a = CodeZip::new().source("a.txt", "1").build().unwrap();
        let b = CodeZip::new().source("a.txt", "2").build().unwrap();
        assert_ne!(a.code_sha256(), b.code_sha256());
    }

    #[test]
    fn code_sha256_and_size_match_an_independent_digest_of_the_zip() {
        let package = CodeZip::new()
            .source("lambda_function.py", "def handler(e, c):\n    return e\n")
            .build()
            .unwrap();
        let digest = Sha256::digest(package.zip_bytes());
        let expected = base64::engine::general_purpose::STANDARD.encode(digest);
        assert_eq!(package.code_sha256(), expected);
        assert_eq!(package.code_size(), package.zip_bytes().len() as u64);
    }

    #[test]
    fn host_file_keeps_exec_bit_and_normalises_other_bits() {
        let host = tempfile::tempdir().unwrap();
        write_host_file(&host.path().join("run"), b"#!/bin/sh\n", 0o700);
        write_host_file(&host.path().join("secret.txt"), b"s", 0o600);
        let package = CodeZip::new()
            .file("bootstrap", host.path().join("run"))
            .file("secret.txt", host.path().join("secret.txt"))
            .build()
            .unwrap();
        let modes: Vec<_> = unzip(&package)
            .iter()
            .map(|e| (e.name.clone(), e.mode & 0o777))
            .collect();
        assert_eq!(
            modes,
            vec![
                ("bootstrap".to_owned(), 0o755),
                ("secret.txt".to_owned(), 0o644)
            ]
        );
    }

    #[test]
    fn dir_adds_files_recursively_in_sorted_order_under_prefix() {
        let host = tempfile::tempdir().unwrap();
        write_host_file(&host.path().join("zeta.py"), b"z", 0o644);
        write_host_file(&host.path().join("alpha/__init__.py"), b"", 0o644);
        write_host_file(&host.path().join("alpha/bin/tool"), b"#!", 0o755);
        fs::create_dir(host.path().join("empty")).unwrap();
        let package = CodeZip::new().dir("python", host.path()).build().unwrap();
        let entries: Vec<_> = unzip(&package)
            .into_iter()
            .map(|e| (e.name, e.mode & 0o777))
            .collect();
        assert_eq!(
            entries,
            vec![
                ("python/alpha/__init__.py".to_owned(), 0o644),
                ("python/alpha/bin/tool".to_owned(), 0o755),
                ("python/zeta.py".to_owned(), 0o644),
            ]
        );
    }

    #[test]
    fn dir_stores_symlinked_files_as_their_contents() {
        let host = tempfile::tempdir().unwrap();
        write_host_file(&host.path().join("real.txt"), b"target contents", 0o644);
        symlink("real.txt", host.path().join("link.txt")).unwrap();
        let package = CodeZip::new().dir("", host.path()).build().unwrap();
        let link = unzip(&package)
            .into_iter()
            .find(|e| e.name == "link.txt")
            .unwrap();
        assert_eq!(link.bytes, b"target contents");
        assert_eq!(link.mode & 0o170_000, 0o100_000, "stored as a regular file");
    }

    #[test]
    fn dir_with_a_symlink_cycle_is_an_error_not_a_hang() {
        let host = tempfile::tempdir().unwrap();
        fs::create_dir(host.path().join("a")).unwrap();
        symlink("..", host.path().join("a/up")).unwrap();
        let err = CodeZip::new().dir("", host.path()).build().unwrap_err();
        assert!(matches!(err, PackageError::ReadHostPath { .. }), "{err}");
    }

    #[test]
    fn missing_host_file_names_the_path_that_could_not_be_read() {
        let missing = PathBuf::from("/definitely/not/here.js");
        match CodeZip::new().file("x.js", &missing).build().unwrap_err() {
            PackageError::ReadHostPath { path, source } => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected ReadHostPath, got {other}"),
        }
    }

    #[test]
    fn host_directory_given_as_a_file_is_unreadable() {
        let host = tempfile::tempdir().unwrap();
        let err = CodeZip::new().file("x", host.path()).build().unwrap_err();
        assert!(matches!(err, PackageError::ReadHostPath { .. }), "{err}");
    }

    #[test]
    fn unsafe_or_unnormalised_entry_paths_are_rejected() {
        for path in [
            "",
            "/abs.js",
            "../evil",
            "a/../../evil",
            "a\\b",
            "nul\0byte",
            "C:/x",
            "a//b",
            "./a",
            "dir/",
        ] {
            let err = CodeZip::new().source(path, "x").build().unwrap_err();
            match err {
                PackageError::InvalidEntryPath { path: reported, .. } => {
                    assert_eq!(reported, path)
                }
                other => panic!("{path:?}: expected InvalidEntryPath, got {other}"),
            }
        }
    }

    #[test]
    fn an_entry_name_longer_than_a_zip_can_hold_is_rejected_at_build() {
        let long = "a/".repeat(40_000) + "x";
        let err = CodeZip::new().source(long, "x").build().unwrap_err();
        assert!(
            err.to_string().contains("longer than 65,535 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_built_package_is_encoded_only_when_its_zip_is_asked_for_and_then_once() {
        let package = CodeZip::new().source("a.txt", "a").build().unwrap();
        assert!(package.files().is_some(), "kept as files");
        let first = package.zip_bytes().as_ptr();
        assert_eq!(package.zip_bytes().as_ptr(), first, "encoded once");
        assert_eq!(package.code_size(), package.zip_bytes().len() as u64);
    }

    #[test]
    fn dir_prefix_is_validated_like_an_entry_path() {
        let host = tempfile::tempdir().unwrap();
        write_host_file(&host.path().join("f"), b"", 0o644);
        let reason = invalid_path_reason(CodeZip::new().dir("../up", host.path()));
        assert!(reason.contains(".."), "{reason}");
    }

    #[test]
    fn duplicate_entry_is_an_error() {
        let err = CodeZip::new()
            .source("index.js", "1")
            .source("index.js", "2")
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, PackageError::DuplicateEntry { path } if path == "index.js"),
            "{err}"
        );
    }

    #[test]
    fn path_used_as_both_file_and_directory_is_an_error() {
        let reason = invalid_path_reason(CodeZip::new().source("lib/x.js", "1").source("lib", "2"));
        assert!(reason.contains("directory"), "{reason}");
    }

    #[test]
    fn empty_builder_builds_an_empty_but_valid_zip() {
        let package = CodeZip::new().build().unwrap();
        assert!(unzip(&package).is_empty());
        DeploymentPackage::from_zip(package.zip_bytes().clone()).unwrap();
    }
}
