//! A built deployment package: the zip bytes plus the `CodeSha256` and `CodeSize` Lambda
//! reports for them.

use std::fmt;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::PackageError;
use super::encode::{PackedFile, STORE_FROM_BYTES, write_zip, zipped_size_bound};

/// A zip archive ready to deploy: what `CreateFunction`'s `Code.ZipFile` or
/// `PublishLayerVersion`'s `Content.ZipFile` carries (AWS: "Lambda deployment packages",
/// "Packaging your layer content").
///
/// Obtained from [`CodeZip::build`](super::CodeZip::build) or, for a zip made elsewhere,
/// [`DeploymentPackage::from_zip`]. Cloning is cheap: the bytes are shared.
///
/// Two packages are equal when their zip bytes are.
#[derive(Clone)]
pub struct DeploymentPackage {
    inner: Arc<Inner>,
}

struct Inner {
    /// The files of a package [`CodeZip`](super::CodeZip) built, kept so that deploying
    /// writes them out directly; `None` for a zip made elsewhere.
    files: Option<Vec<PackedFile>>,
    /// The zip: given, or encoded from `files` on first use. Deploying a built package
    /// needs neither the zip nor its CRC-32s: writing it and reading it back cost ~2 ms
    /// of a 4.4 ms deploy of a 2.4 MB bootstrap (release, `cargo bench --bench deploy`).
    zip: OnceLock<Bytes>,
    /// Computed on first use: SHA-256 of a multi-MB zip costs ~72 ms per 2.4 MB in a
    /// dependent crate's unoptimised build (the dependency's `opt-level` is the
    /// dependent's), and deploying needs no digest (see [`DeploymentPackage::instance`]).
    code_sha256: OnceLock<String>,
    /// Distinct for every package built or wrapped in this process.
    instance: u64,
}

impl DeploymentPackage {
    /// The largest zip accepted, in bytes: 50 MiB.
    ///
    /// AWS "Lambda quotas" gives 50 MB (zipped) for a deployment package or layer uploaded
    /// directly through the Lambda API; larger packages must go through S3, which this
    /// crate does not emulate.
    pub const MAX_ZIPPED_BYTES: u64 = 50 * 1024 * 1024;

    /// Wraps a zip produced outside this crate (for example by `cargo lambda` or `zip -r`).
    ///
    /// The bytes are kept as given, so [`code_sha256`](Self::code_sha256) is exactly what
    /// Lambda would report for the same upload. Only the archive's structure is checked
    /// here; entry names and contents are checked when the package is extracted.
    ///
    /// # Errors
    ///
    /// - [`PackageError::TooLarge`] if the zip is over [`MAX_ZIPPED_BYTES`](Self::MAX_ZIPPED_BYTES)
    ///   (Lambda: `RequestEntityTooLargeException`).
    /// - [`PackageError::MalformedZip`] if the bytes are not a zip whose central directory can
    ///   be read (Lambda: `InvalidParameterValueException`, "Could not unzip uploaded file").
    pub fn from_zip(bytes: impl Into<Bytes>) -> Result<Self, PackageError> {
        let bytes = bytes.into();
        check_zipped_size(bytes.len())?;
        zip::ZipArchive::new(Cursor::new(bytes.clone())).map_err(|e| {
            PackageError::MalformedZip {
                reason: e.to_string(),
            }
        })?;
        Ok(Self::new_unchecked(bytes))
    }

    /// Wraps bytes already known to be a well-formed zip within the size limit.
    pub(super) fn new_unchecked(bytes: Bytes) -> Self {
        Self::new(None, OnceLock::from(bytes))
    }

    /// A package of `files` (entry names validated, no two the same), encoded as a zip
    /// only when one is needed; encoded now when it might not fit the 50 MiB limit with
    /// large files stored, so that the limit is checked at build.
    pub(super) fn from_files(files: Vec<PackedFile>) -> Result<Self, PackageError> {
        if zipped_size_bound(&files) <= Self::MAX_ZIPPED_BYTES {
            return Ok(Self::new(Some(files), OnceLock::new()));
        }
        let mut bytes = write_zip(&files, STORE_FROM_BYTES)?;
        if bytes.len() as u64 > Self::MAX_ZIPPED_BYTES {
            // Stored large files made it too big: compress everything, as a zip tool would.
            bytes = write_zip(&files, usize::MAX)?;
        }
        check_zipped_size(bytes.len())?;
        Ok(Self::new_unchecked(Bytes::from(bytes)))
    }

    fn new(files: Option<Vec<PackedFile>>, zip: OnceLock<Bytes>) -> Self {
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        Self {
            inner: Arc::new(Inner {
                files,
                zip,
                code_sha256: OnceLock::new(),
                instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            }),
        }
    }

    /// The zip archive, byte for byte as it would be uploaded (for a built package,
    /// encoded on the first call).
    pub fn zip_bytes(&self) -> &Bytes {
        self.inner.zip.get_or_init(|| {
            let files = self.inner.files.as_deref().unwrap_or_default();
            // Infallible here: entry names were validated at build, and the writer only
            // refuses names and sizes the builder rejects.
            Bytes::from(write_zip(files, STORE_FROM_BYTES).expect("a built package encodes"))
        })
    }

    /// The files of a built package, for extraction without the zip.
    pub(super) fn files(&self) -> Option<&[PackedFile]> {
        self.inner.files.as_deref()
    }

    /// Lambda's `CodeSha256` for this package: the standard, padded base64 encoding of the
    /// SHA-256 digest of the zip bytes (44 characters). Computed on the first call.
    pub fn code_sha256(&self) -> &str {
        self.inner
            .code_sha256
            .get_or_init(|| STANDARD.encode(Sha256::digest(self.zip_bytes())))
    }

    /// Lambda's `CodeSize` for this package: the size of the zip in bytes.
    pub fn code_size(&self) -> u64 {
        self.zip_bytes().len() as u64
    }

    /// A number that tells this package apart from every other one built or wrapped in
    /// this process (clones share it): what a deploy id hashes instead of the content,
    /// so that deploying needs no digest of the code. Equal content in two instances is
    /// found by comparing bytes ([`PartialEq`]), which costs a `memcmp`.
    pub(crate) fn instance(&self) -> u64 {
        self.inner.instance
    }
}

impl PartialEq for DeploymentPackage {
    fn eq(&self, other: &Self) -> bool {
        if Arc::ptr_eq(&self.inner, &other.inner) {
            return true;
        }
        match (self.files(), other.files()) {
            (Some(a), Some(b)) => a == b,
            _ => self.zip_bytes() == other.zip_bytes(),
        }
    }
}

impl Eq for DeploymentPackage {}

impl fmt::Debug for DeploymentPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeploymentPackage")
            .field("files", &self.files().map(<[PackedFile]>::len))
            .field("code_size", &self.inner.zip.get().map(Bytes::len))
            .field("code_sha256", &self.inner.code_sha256.get())
            .finish_non_exhaustive()
    }
}

/// Fails with [`PackageError::TooLarge`] for a zip over the direct-upload limit.
pub(super) fn check_zipped_size(len: usize) -> Result<(), PackageError> {
    let actual = len as u64;
    if actual > DeploymentPackage::MAX_ZIPPED_BYTES {
        return Err(PackageError::TooLarge {
            limit: DeploymentPackage::MAX_ZIPPED_BYTES,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn independent_code_sha256(bytes: &[u8]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(bytes);
        STANDARD.encode(hasher.finalize())
    }

    fn one_entry_zip() -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        writer
            .start_file("index.mjs", zip::write::SimpleFileOptions::default())
            .unwrap();
        writer
            .write_all(b"export const handler = async () => 1;")
            .unwrap();
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn code_sha256_of_empty_input_matches_known_answer() {
        let package = DeploymentPackage::new_unchecked(Bytes::new());
        assert_eq!(
            package.code_sha256(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(package.code_size(), 0);
    }

    #[test]
    fn foreign_zip_keeps_its_bytes_and_reports_their_sha256_and_size() {
        let zip = one_entry_zip();
        let package = DeploymentPackage::from_zip(zip.clone()).unwrap();
        assert_eq!(package.zip_bytes().as_ref(), zip.as_slice());
        assert_eq!(package.code_sha256(), independent_code_sha256(&zip));
        assert_eq!(package.code_size(), zip.len() as u64);
    }

    #[test]
    fn packages_are_equal_by_bytes_and_tell_instances_apart() {
        let zip = one_entry_zip();
        let a = DeploymentPackage::from_zip(zip.clone()).unwrap();
        let b = DeploymentPackage::from_zip(zip).unwrap();
        assert_eq!(a, b, "same bytes");
        assert_ne!(a.instance(), b.instance(), "two wraps are two instances");
        assert_eq!(
            a.clone().instance(),
            a.instance(),
            "clones share the instance"
        );
        let empty = DeploymentPackage::new_unchecked(Bytes::new());
        assert_ne!(a, empty);
    }

    #[test]
    fn bytes_that_are_not_a_zip_are_malformed() {
        let err = DeploymentPackage::from_zip(&b"definitely not a zip archive"[..]).unwrap_err();
        assert!(matches!(err, PackageError::MalformedZip { .. }), "{err}");
    }

    #[test]
    fn zip_cut_short_before_its_central_directory_is_malformed() {
        let zip = one_entry_zip();
        let err = DeploymentPackage::from_zip(zip[..zip.len() / 2].to_vec()).unwrap_err();
        assert!(matches!(err, PackageError::MalformedZip { .. }), "{err}");
    }

    #[test]
    fn zip_over_fifty_mebibytes_is_too_large() {
        // The size check runs before parsing, so zeros are enough to exercise it.
        let over = vec![0u8; DeploymentPackage::MAX_ZIPPED_BYTES as usize + 1];
        let err = DeploymentPackage::from_zip(over).unwrap_err();
        match err {
            PackageError::TooLarge { limit, actual } => {
                assert_eq!(limit, 50 * 1024 * 1024);
                assert_eq!(actual, limit + 1);
            }
            other => panic!("expected TooLarge, got {other}"),
        }
    }
}
