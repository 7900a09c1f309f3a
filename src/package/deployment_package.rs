//! A built deployment package: the zip bytes plus the `CodeSha256` and `CodeSize` Lambda
//! reports for them.

use std::io::Cursor;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::PackageError;

/// A zip archive ready to deploy: what `CreateFunction`'s `Code.ZipFile` or
/// `PublishLayerVersion`'s `Content.ZipFile` carries (AWS: "Lambda deployment packages",
/// "Packaging your layer content").
///
/// Obtained from [`CodeZip::build`](super::CodeZip::build) or, for a zip made elsewhere,
/// [`DeploymentPackage::from_zip`]. Cloning is cheap: the bytes are shared.
#[derive(Debug, Clone)]
pub struct DeploymentPackage {
    bytes: Bytes,
    code_sha256: String,
    code_size: u64,
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
        let code_sha256 = STANDARD.encode(Sha256::digest(&bytes));
        let code_size = bytes.len() as u64;
        Self {
            bytes,
            code_sha256,
            code_size,
        }
    }

    /// The zip archive, byte for byte as it would be uploaded.
    pub fn zip_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Lambda's `CodeSha256` for this package: the standard, padded base64 encoding of the
    /// SHA-256 digest of the zip bytes (44 characters).
    pub fn code_sha256(&self) -> &str {
        &self.code_sha256
    }

    /// Lambda's `CodeSize` for this package: the size of the zip in bytes.
    pub fn code_size(&self) -> u64 {
        self.code_size
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
