//! Writing a package's files as a deterministic zip: what [`CodeZip`](super::CodeZip)
//! builds, encoded when the zip itself is first needed (`CodeSha256`, the REST API's code
//! download, a Docker upload), not to deploy.

use std::io::{Cursor, Write as _};

use bytes::Bytes;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipWriter};

use super::PackageError;

/// One file of a package: its entry name (validated), contents and unix mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PackedFile {
    pub(super) path: String,
    pub(super) bytes: Bytes,
    pub(super) mode: u32,
}

/// Files this large or larger are stored, not deflated: deflating a multi-MB `bootstrap`
/// costs ~0.5 s in a test crate's unoptimised build (the dependency's `opt-level` is the
/// dependent's), storing it ~0.08 s (measured: 2.4 MB binary, debug profile, deflate level
/// 6 541-590 ms, level 1 396-411 ms, stored 78 ms). Lambda accepts both methods.
pub(super) const STORE_FROM_BYTES: usize = 1024 * 1024;

/// An upper bound on the size of [`write_zip`]'s output for `files` with any
/// `store_from`: each file's bytes plus its local and central headers (with zip64
/// extras), deflate's worst-case growth on incompressible input, and the end records.
pub(super) fn zipped_size_bound(files: &[PackedFile]) -> u64 {
    let per_file: u64 = files
        .iter()
        .map(|f| {
            let len = f.bytes.len() as u64;
            len + len / 1024 + 256 + 2 * f.path.len() as u64
        })
        .sum();
    per_file + 256
}

/// Writes `files` as a deterministic zip (fixed timestamps, explicit unix modes, insertion
/// order); files of `store_from` bytes or more are stored, the rest deflated.
///
/// # Errors
///
/// [`PackageError::ZipWrite`] if the zip writer refuses an entry.
pub(super) fn write_zip(files: &[PackedFile], store_from: usize) -> Result<Vec<u8>, PackageError> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for file in files {
        let (method, level) = if file.bytes.len() >= store_from {
            (CompressionMethod::Stored, None)
        } else {
            (CompressionMethod::Deflated, Some(6))
        };
        let options = SimpleFileOptions::DEFAULT
            .compression_method(method)
            .compression_level(level)
            .last_modified_time(DateTime::DEFAULT)
            .system(System::Unix)
            .unix_permissions(file.mode)
            .large_file(file.bytes.len() >= u32::MAX as usize);
        let zip_error = |e: &dyn std::fmt::Display| PackageError::ZipWrite {
            path: file.path.clone(),
            reason: e.to_string(),
        };
        writer
            .start_file(file.path.as_str(), options)
            .map_err(|e| zip_error(&e))?;
        writer.write_all(&file.bytes).map_err(|e| zip_error(&e))?;
    }
    Ok(writer
        .finish()
        .map_err(|e| PackageError::ZipWrite {
            path: String::new(),
            reason: e.to_string(),
        })?
        .into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: Vec<u8>) -> PackedFile {
        PackedFile {
            path: path.to_owned(),
            bytes: bytes.into(),
            mode: 0o644,
        }
    }

    #[test]
    fn the_bound_holds_for_incompressible_and_tiny_files_stored_or_deflated() {
        let mut x = 1u32;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        let files = vec![
            file("a/very/long/directory/name/noise.bin", noise),
            file("empty", Vec::new()),
            file("one", vec![7]),
        ];
        let bound = zipped_size_bound(&files);
        for store_from in [0, STORE_FROM_BYTES, usize::MAX] {
            let len = write_zip(&files, store_from).unwrap().len() as u64;
            assert!(len <= bound, "{len} > {bound} (store_from {store_from})");
        }
    }
}
