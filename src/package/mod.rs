//! Lambda deployment packages: building code and layer zips, and extracting them safely.
//!
//! A deployment package is the `.zip` archive that `CreateFunction`'s `Code.ZipFile`,
//! `UpdateFunctionCode`'s `ZipFile` and `PublishLayerVersion`'s `Content.ZipFile` carry
//! (AWS: "Lambda deployment packages", "Packaging your layer content").
//!
//! - [`CodeZip`] builds a package from inline sources, host files, host directories and
//!   executables. Builds are deterministic: the same inputs give byte-identical zips and so
//!   the same `CodeSha256`.
//! - [`DeploymentPackage`] is a built or user-supplied zip together with the `CodeSha256`
//!   and `CodeSize` Lambda would report for it.
//! - [`extract()`] unpacks a package into a directory the way Lambda unpacks code into
//!   `/var/task` and layers into `/opt`, refusing path traversal, unsafe symlinks and zip
//!   bombs, and charging every byte to an [`UnzippedBudget`] shared by a function's code
//!   and its layers (AWS "Lambda quotas": 250 MB unzipped, including layers).
//!
//! Every failure is a [`PackageError`].

mod cargo;
mod code_zip;
mod deployment_package;
mod encode;
mod extract;

use std::io;
use std::path::PathBuf;

pub use code_zip::CodeZip;
pub use deployment_package::DeploymentPackage;
pub use extract::{ExtractLimits, UnzippedBudget, extract};

/// Everything that can go wrong while building, validating or extracting a deployment package.
///
/// Each variant carries what is needed to fix the input: the offending entry name, the
/// limit and the actual size, or the host path that could not be read. Where Lambda itself
/// rejects the same input, the variant's doc names the AWS behaviour it mirrors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// A path given to [`CodeZip`] cannot be a zip entry name.
    ///
    /// Entry names must be relative, `/`-separated and normalised: not empty, no leading
    /// `/` or drive prefix (`C:`), no `\`, no NUL, and no empty, `.` or `..` components.
    /// A path that is both a file and the parent directory of another entry is also
    /// rejected here.
    #[error("invalid zip entry path {path:?}: {reason}")]
    InvalidEntryPath {
        /// The path as given to the builder.
        path: String,
        /// Why it was rejected.
        reason: String,
    },

    /// Building a handler from a cargo package failed ([`CodeZip::cargo_bin`]): no
    /// manifest, a compile error (cargo's output is in `detail`), or no such binary.
    #[error("could not build `{bin}` from {manifest}: {detail}", manifest = .manifest.display())]
    Cargo {
        /// The binary asked for.
        bin: String,
        /// The package's `Cargo.toml`.
        manifest: std::path::PathBuf,
        /// What went wrong, with cargo's output for a compile error.
        detail: String,
    },

    /// Two [`CodeZip`] entries resolve to the same entry name.
    ///
    /// The builder refuses rather than silently letting one win, so that what is deployed is
    /// exactly what the test wrote.
    #[error("duplicate zip entry {path:?}: it was added more than once")]
    DuplicateEntry {
        /// The entry name that was added twice.
        path: String,
    },

    /// A host file or directory given to [`CodeZip::file`] or [`CodeZip::dir`] could not be
    /// read when [`CodeZip::build`] ran.
    #[error("cannot read host path {}: {source}", path.display())]
    ReadHostPath {
        /// The host path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// The zip writer refused an entry while building (for example an entry too large for
    /// the zip format).
    #[error("cannot write zip entry {path:?}: {reason}")]
    ZipWrite {
        /// The entry being written.
        path: String,
        /// The zip writer's explanation.
        reason: String,
    },

    /// The zipped package is larger than Lambda accepts for a direct upload.
    ///
    /// AWS "Lambda quotas": 50 MB zipped for a deployment package or layer uploaded
    /// directly through the API (`RequestEntityTooLargeException` in Lambda); this crate
    /// uses 50 MiB ([`DeploymentPackage::MAX_ZIPPED_BYTES`]).
    #[error(
        "deployment package is {actual} bytes zipped; the limit for a direct upload is {limit} bytes"
    )]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
        /// The package's size in bytes.
        actual: u64,
    },

    /// The bytes are not a readable zip archive: no central directory, a truncated entry,
    /// a corrupt deflate stream, a CRC mismatch, an encrypted entry or an unsupported
    /// compression method.
    ///
    /// Lambda rejects such uploads with `InvalidParameterValueException`
    /// ("Could not unzip uploaded file").
    #[error("malformed zip: {reason}")]
    MalformedZip {
        /// The underlying reason, as reported by the zip reader.
        reason: String,
    },

    /// An archive entry would be written outside the destination, or is a kind of entry
    /// that is never extracted: a name with `..`, an absolute path, a drive prefix, a
    /// backslash or NUL; a symlink whose target is absolute or leaves the destination; a
    /// device, FIFO or socket; or two entries that disagree about whether a path is a
    /// file or a directory.
    ///
    /// Detected before anything is written.
    #[error("unsafe zip entry {name:?}: {reason}")]
    UnsafeEntry {
        /// The entry name as stored in the archive.
        name: String,
        /// Why it was refused.
        reason: String,
    },

    /// Extracting would take the unzipped total of a function's code and layers past the
    /// budget (AWS "Lambda quotas": 250 MB unzipped, including layers).
    ///
    /// Counted from bytes actually decompressed, never from the sizes the archive declares.
    #[error(
        "unzipped size limit exceeded while extracting {entry:?}: at least {attempted} bytes \
         needed in total, limit is {limit} bytes"
    )]
    UnzippedTooLarge {
        /// The entry being written when the limit was crossed.
        entry: String,
        /// The budget's limit in bytes.
        limit: u64,
        /// Bytes the budget would have had to hold (earlier extractions included) at the
        /// moment extraction stopped; the full archive would need at least this much.
        attempted: u64,
    },

    /// An entry decompresses to more than `max_ratio` times its compressed size: treated as
    /// a zip bomb. Only checked once an entry is past
    /// `ExtractLimits::ratio_floor_bytes`, so small, highly compressible files are fine.
    #[error(
        "zip entry {entry:?} expands more than {max_ratio}x: {compressed} compressed bytes \
         produced at least {uncompressed} bytes"
    )]
    CompressionRatioExceeded {
        /// The entry being decompressed.
        entry: String,
        /// The allowed ratio (uncompressed / compressed).
        max_ratio: u64,
        /// The entry's compressed size in bytes.
        compressed: u64,
        /// Bytes decompressed when extraction stopped.
        uncompressed: u64,
    },

    /// The destination filesystem refused an operation during extraction.
    #[error("cannot extract to {}: {source}", path.display())]
    Io {
        /// The destination path involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}
