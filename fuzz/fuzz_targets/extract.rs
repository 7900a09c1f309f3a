//! Zip extraction (`lambda_testkit::package::extract`) on hostile archives.
//!
//! Inputs are raw bytes, zips written from a structured description (names made of `..`,
//! `.`, empty, absolute, backslash and drive-prefixed pieces; symlinks with such targets;
//! duplicate names; directories; stored and deflated entries) and then optionally
//! corrupted byte by byte (declared sizes, CRCs, offsets, zip64 fields), and packages
//! built with `CodeZip` from arbitrary names and contents.
//!
//! Invariant: either a clean error, after which nothing is left on disk (the destination,
//! which did not exist, does not exist), or a tree entirely inside the destination —
//! regular files, directories and symlinks whose targets stay inside — whose file bytes
//! are exactly what the budget charged, within its limit.

#![no_main]

use std::io::{Cursor, Write as _};
use std::path::{Component, Path, PathBuf};

use arbitrary::Arbitrary;
use lambda_testkit::package::{ExtractLimits, UnzippedBudget, extract};
use lambda_testkit::{CodeZip, DeploymentPackage};
use libfuzzer_sys::fuzz_target;
use zip::write::SimpleFileOptions;

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Written {
        entries: Vec<Entry>,
        corruptions: Vec<(u16, u8)>,
    },
    Built(Vec<(Name, Vec<u8>, bool)>),
}

#[derive(Arbitrary, Debug)]
enum Entry {
    File {
        name: Name,
        data: Vec<u8>,
        mode: u16,
        deflate: bool,
        zeros: u16,
    },
    Dir {
        name: Name,
        mode: u16,
    },
    Symlink {
        name: Name,
        target: Name,
    },
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Word(u8),
    Dot,
    DotDot,
    Empty,
    Root,
    Backslash,
    Drive,
    Nul,
    Text(String),
}

#[derive(Arbitrary, Debug)]
struct Name(Vec<Piece>);

impl Name {
    fn render(&self) -> String {
        let pieces: Vec<String> = self
            .0
            .iter()
            .map(|p| match p {
                Piece::Word(w) => format!("w{}", w % 4),
                Piece::Dot => ".".into(),
                Piece::DotDot => "..".into(),
                Piece::Empty => String::new(),
                Piece::Root => "/".into(),
                Piece::Backslash => "a\\..".into(),
                Piece::Drive => "C:".into(),
                Piece::Nul => "\0".into(),
                Piece::Text(t) => t.clone(),
            })
            .collect();
        pieces.join("/")
    }
}

fn written(entries: &[Entry], corruptions: &[(u16, u8)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for entry in entries {
        // The writer refuses some inputs (e.g. a name used twice): skip those entries.
        let _ = match entry {
            Entry::File {
                name,
                data,
                mode,
                deflate,
                zeros,
            } => {
                let method = if *deflate {
                    zip::CompressionMethod::Deflated
                } else {
                    zip::CompressionMethod::Stored
                };
                let options = SimpleFileOptions::default()
                    .compression_method(method)
                    .unix_permissions(u32::from(*mode));
                writer.start_file(name.render(), options).and_then(|()| {
                    writer.write_all(data)?;
                    // Runs of zeros: what compresses best, for the ratio check.
                    writer.write_all(&vec![0; usize::from(*zeros) * 64])?;
                    Ok(())
                })
            }
            Entry::Dir { name, mode } => writer.add_directory(
                name.render(),
                SimpleFileOptions::default().unix_permissions(u32::from(*mode)),
            ),
            Entry::Symlink { name, target } => {
                writer.add_symlink(name.render(), target.render(), SimpleFileOptions::default())
            }
        };
    }
    let mut bytes = writer.finish().map(Cursor::into_inner).unwrap_or_default();
    for &(at, value) in corruptions {
        if !bytes.is_empty() {
            let i = usize::from(at) % bytes.len();
            bytes[i] = value;
        }
    }
    bytes
}

fn package(input: &Input) -> Option<DeploymentPackage> {
    match input {
        Input::Raw(bytes) => DeploymentPackage::from_zip(bytes.clone()).ok(),
        Input::Written {
            entries,
            corruptions,
        } => DeploymentPackage::from_zip(written(entries, corruptions)).ok(),
        Input::Built(files) => {
            let mut zip = CodeZip::new();
            for (name, data, executable) in files {
                zip = if *executable {
                    zip.executable(name.render(), data.clone())
                } else {
                    zip.bytes(name.render(), data.clone())
                };
            }
            zip.build().ok()
        }
    }
}

/// Every path under `dest`, checked; returns the bytes of regular files.
fn check_tree(root: &Path, dir: &Path) -> u64 {
    let mut bytes = 0;
    for child in std::fs::read_dir(dir).expect("readable") {
        let path = child.expect("entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).expect("readlink");
            let resolved = lexical(&path.parent().unwrap().join(&target));
            assert!(
                resolved.starts_with(root),
                "symlink {} -> {} leaves the destination",
                path.display(),
                target.display()
            );
        } else if kind.is_dir() {
            // Extraction may leave directories without the search bit: restore to walk.
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
            bytes += check_tree(root, &path);
        } else {
            assert!(kind.is_file(), "{} is not a regular file", path.display());
            bytes += meta.len();
        }
    }
    bytes
}

/// `path` with `.` and `..` resolved without the filesystem.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fuzz_target!(|input: Input| {
    let Some(package) = package(&input) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let dest = scratch.path().join("task");
    let limits = ExtractLimits {
        max_unzipped_bytes: 1 << 20,
        max_ratio: 100,
        ratio_floor_bytes: 64 << 10,
    };
    let max = limits.max_unzipped_bytes;
    let mut budget = UnzippedBudget::new(limits);
    match extract(&package, &dest, &mut budget) {
        Ok(()) => {
            let root = std::fs::canonicalize(&dest).expect("dest exists");
            let bytes = check_tree(&root, &root);
            assert_eq!(bytes, budget.used(), "the budget charged what was written");
            assert!(bytes <= max, "{bytes} bytes over the {max} budget");
        }
        Err(_) => {
            assert!(!dest.exists(), "a rejected archive left {}", dest.display());
            assert_eq!(budget.used(), 0, "a rejected archive charged the budget");
            let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
            assert!(left.is_empty(), "a rejected archive left {left:?}");
        }
    }
});
