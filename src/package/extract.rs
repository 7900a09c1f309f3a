//! Safe, all-or-nothing extraction of deployment packages into a directory.
//!
//! Extraction runs in three steps:
//!
//! 1. **Plan** ([`plan`]): parse the central directory, normalise every entry name, read
//!    symlink targets and reject anything unsafe. Nothing touches the disk until the whole
//!    archive has passed.
//! 2. **Apply** ([`journal`]): create directories and files, counting the bytes actually
//!    decompressed against the [`UnzippedBudget`] and each entry's ratio, then symlinks,
//!    then directory modes. Every path created and every pre-existing path replaced is
//!    journalled.
//! 3. **Commit or roll back**: on success the replaced paths are discarded and the budget
//!    charged; on any error (or panic) everything created is removed and everything
//!    replaced is put back, so a rejected zip leaves `dest` exactly as it was.

#[cfg(test)]
mod hostile;
mod journal;
mod plan;

use std::cell::Cell;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use zip::ZipArchive;

use super::{DeploymentPackage, PackageError};

/// Caps that Lambda applies to unzipped content; shared across a function's code and all
/// its layers.
///
/// AWS "Lambda quotas": the unzipped deployment package, including layers and a custom
/// runtime, may not exceed 250 MB. The ratio check is this crate's own zip-bomb guard; a
/// legitimate package stays far below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Most bytes that the unzipped files of the code and all layers may add up to.
    /// Default [`ExtractLimits::DEFAULT_MAX_UNZIPPED_BYTES`] (250 MiB).
    pub max_unzipped_bytes: u64,
    /// Largest allowed `uncompressed / compressed` ratio for a single entry, measured on
    /// the bytes actually read and produced so far. Default 100.
    pub max_ratio: u64,
    /// The ratio is only checked once an entry has produced more than this many bytes, so
    /// small, very compressible files (a page of zeros) pass. Default 1 MiB.
    pub ratio_floor_bytes: u64,
}

impl ExtractLimits {
    /// 250 MiB: AWS "Lambda quotas", 250 MB unzipped including layers.
    pub const DEFAULT_MAX_UNZIPPED_BYTES: u64 = 250 * 1024 * 1024;
    /// Default for [`max_ratio`](Self::max_ratio).
    pub const DEFAULT_MAX_RATIO: u64 = 100;
    /// Default for [`ratio_floor_bytes`](Self::ratio_floor_bytes): 1 MiB.
    pub const DEFAULT_RATIO_FLOOR_BYTES: u64 = 1024 * 1024;
}

impl Default for ExtractLimits {
    fn default() -> Self {
        Self {
            max_unzipped_bytes: Self::DEFAULT_MAX_UNZIPPED_BYTES,
            max_ratio: Self::DEFAULT_MAX_RATIO,
            ratio_floor_bytes: Self::DEFAULT_RATIO_FLOOR_BYTES,
        }
    }
}

/// Tracks the unzipped bytes used so far across several extractions (a function's code and
/// each of its layers), against one [`ExtractLimits`].
///
/// Only regular file contents are counted, as actually decompressed; directories and
/// symlinks are free. A failed [`extract()`] leaves the budget unchanged.
#[derive(Debug)]
pub struct UnzippedBudget {
    limits: ExtractLimits,
    used: u64,
}

impl UnzippedBudget {
    /// A budget with nothing used yet.
    #[must_use]
    pub fn new(limits: ExtractLimits) -> Self {
        Self { limits, used: 0 }
    }

    /// Bytes charged by successful extractions so far.
    #[must_use]
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The limits this budget enforces.
    #[must_use]
    pub fn limits(&self) -> &ExtractLimits {
        &self.limits
    }
}

/// Extracts `package` into `dest`, the way Lambda unpacks code into `/var/task` and layers,
/// in order, into `/opt` (AWS "Packaging your layer content").
///
/// `dest` is created if missing. It may already hold earlier layers: a file in this package
/// replaces whatever is at the same path, as a later layer does in `/opt`. Unix permissions
/// come from each entry's external attributes (setuid, setgid and sticky bits dropped);
/// entries without them get `0o644` (files) or `0o755` (directories). Directory modes are
/// applied last, so a read-only directory can still be filled, and only to directories
/// this call creates: directories an earlier layer made keep their mode.
///
/// Symlink entries are created as symlinks when their target is relative and stays inside
/// `dest`: no absolute target, and `..` only as leading components, no more of them than
/// the link's depth below `dest`. Files are never written through a symlink that the same
/// archive creates, nor through any symlink that leads outside `dest`.
///
/// All or nothing: on any error, every file, directory and symlink this call created
/// (including `dest` and its missing parents) is removed, every pre-existing path it
/// replaced is restored, and `budget` is left as it was. `dest` is assumed not to be
/// written by anyone else meanwhile.
///
/// # Errors
///
/// - [`PackageError::UnsafeEntry`], before anything is written: an entry name with `..`,
///   an absolute path, a drive prefix, a backslash or NUL; a symlink with an absolute,
///   escaping or over-long target; a device, FIFO or socket entry; entries that disagree on
///   whether a path is a file or a directory, or that name the same path twice.
/// - [`PackageError::MalformedZip`]: unreadable central directory, duplicate raw names,
///   encrypted entries, compression other than stored or deflate (all before anything is
///   written), or an entry whose data is truncated or corrupt (found while writing; rolled
///   back).
/// - [`PackageError::UnzippedTooLarge`]: the bytes actually decompressed would take
///   `budget` over [`ExtractLimits::max_unzipped_bytes`]. Extraction stops at that point.
/// - [`PackageError::CompressionRatioExceeded`]: an entry past
///   [`ExtractLimits::ratio_floor_bytes`] has produced more than
///   [`ExtractLimits::max_ratio`] times the compressed bytes it consumed. Extraction stops
///   at that point.
/// - [`PackageError::Io`]: the destination filesystem refused an operation.
pub fn extract(
    package: &DeploymentPackage,
    dest: &Path,
    budget: &mut UnzippedBudget,
) -> Result<(), PackageError> {
    if let Some(files) = package.files() {
        // Built by CodeZip: written straight from memory, no zip encoded or read back.
        let plan = plan::plan_files(files)?;
        return apply(dest, &mut journal::Bodies::Memory(files), &plan, budget);
    }
    let consumed = Rc::new(Cell::new(0));
    let reader = CountingReader {
        inner: Cursor::new(package.zip_bytes().clone()),
        consumed: Rc::clone(&consumed),
    };
    let mut archive = ZipArchive::new(reader).map_err(|e| malformed(e.to_string()))?;
    let plan = plan::plan(&mut archive)?;
    let mut bodies = journal::Bodies::Archive {
        archive: &mut archive,
        consumed: &consumed,
    };
    apply(dest, &mut bodies, &plan, budget)
}

/// Steps 2 and 3: writes `plan` into `dest`, all or nothing.
fn apply(
    dest: &Path,
    bodies: &mut journal::Bodies<'_>,
    plan: &[plan::PlannedEntry],
    budget: &mut UnzippedBudget,
) -> Result<(), PackageError> {
    let mut journal = journal::Journal::begin(dest)?;
    let charged = journal.apply(bodies, plan, budget)?;
    journal.commit();
    budget.used += charged;
    Ok(())
}

/// The archive type extraction reads.
type Archive = ZipArchive<CountingReader>;

/// Counts the archive bytes read, so the ratio check can use what an entry really
/// consumed instead of the compressed size it declares.
struct CountingReader {
    inner: Cursor<Bytes>,
    consumed: Rc<Cell<u64>>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

impl Seek for CountingReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

fn malformed(reason: String) -> PackageError {
    PackageError::MalformedZip { reason }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::{PermissionsExt as _, symlink};
    use std::time::Instant;

    use zip::ZipArchive;

    use super::hostile::{Hostile, deflated, snapshot, zero_bomb};
    use super::journal::COPY_BUFFER_BYTES;
    use super::*;
    use crate::package::CodeZip;

    fn default_budget() -> UnzippedBudget {
        UnzippedBudget::new(ExtractLimits::default())
    }

    fn budget_of(max_unzipped_bytes: u64) -> UnzippedBudget {
        UnzippedBudget::new(ExtractLimits {
            max_unzipped_bytes,
            ..ExtractLimits::default()
        })
    }

    fn assert_unsafe(err: PackageError, expected_name: &str) {
        match err {
            PackageError::UnsafeEntry { name, .. } => assert_eq!(name, expected_name),
            other => panic!("expected UnsafeEntry for {expected_name:?}, got {other}"),
        }
    }

    /// Extracts a small first layer into `dest` and returns the resulting tree.
    fn layer_one(dest: &Path) -> BTreeMap<String, String> {
        let layer = CodeZip::new()
            .source("python/shared.py", "LAYER = 1")
            .executable("bin/tool", b"#!/bin/sh\n".to_vec())
            .build()
            .unwrap();
        extract(&layer, dest, &mut default_budget()).unwrap();
        snapshot(dest)
    }

    // ---- round trip -------------------------------------------------------------------

    #[test]
    fn built_package_round_trips_contents_and_exec_bits() {
        let dest = tempfile::tempdir().unwrap();
        let package = CodeZip::new()
            .source("index.mjs", "export const handler = 1;")
            .executable("bootstrap", b"#!/bin/sh\necho ok\n".to_vec())
            .bytes("lib/deep/data.bin", b"bin".to_vec())
            .build()
            .unwrap();
        let mut budget = default_budget();
        extract(&package, dest.path(), &mut budget).unwrap();
        let files = snapshot(dest.path());
        assert_eq!(files["index.mjs"], "file 644 export const handler = 1;");
        assert_eq!(files["bootstrap"], "file 755 #!/bin/sh\necho ok\n");
        assert_eq!(files["lib"], "dir 755");
        assert_eq!(files["lib/deep/data.bin"], "file 644 bin");
        assert_eq!(budget.used(), 25 + 18 + 3);
    }

    #[test]
    fn host_executable_keeps_its_exec_bit_through_build_and_extract() {
        let host = tempfile::tempdir().unwrap();
        let script = host.path().join("run.sh");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o750)).unwrap();
        let package = CodeZip::new().file("bootstrap", &script).build().unwrap();
        let dest = tempfile::tempdir().unwrap();
        extract(&package, dest.path(), &mut default_budget()).unwrap();
        let mode = fs::metadata(dest.path().join("bootstrap"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn destination_that_is_a_file_is_an_io_error_and_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("not-a-dir");
        fs::write(&dest, "keep me").unwrap();
        let package = CodeZip::new().source("f.txt", "x").build().unwrap();
        let err = extract(&package, &dest, &mut default_budget()).unwrap_err();
        assert!(
            matches!(&err, PackageError::Io { path, .. } if *path == dest),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&dest).unwrap(), "keep me");
    }

    #[test]
    fn missing_destination_and_its_parents_are_created() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("a/b/task");
        let package = CodeZip::new().source("f.txt", "x").build().unwrap();
        extract(&package, &dest, &mut default_budget()).unwrap();
        assert_eq!(fs::read_to_string(dest.join("f.txt")).unwrap(), "x");
    }

    #[test]
    fn entries_without_unix_attributes_get_default_modes() {
        let no_attributes = deflated().external_attributes(0);
        let package = Hostile::new()
            .dir_with("dir/", no_attributes)
            .file_with("dir/readme.txt", b"hi", no_attributes)
            .package();
        let dest = tempfile::tempdir().unwrap();
        extract(&package, dest.path(), &mut default_budget()).unwrap();
        let files = snapshot(dest.path());
        assert_eq!(files["dir"], "dir 755");
        assert_eq!(files["dir/readme.txt"], "file 644 hi");
    }

    #[test]
    fn windows_made_entries_get_modes_from_their_dos_attributes() {
        let dos = deflated().system(zip::System::Dos);
        let package = Hostile::new()
            .dir_with("dir/", dos)
            .file_with("dir/readme.txt", b"hi", dos)
            .package();
        let dest = tempfile::tempdir().unwrap();
        extract(&package, dest.path(), &mut default_budget()).unwrap();
        let files = snapshot(dest.path());
        // The zip crate maps DOS attributes to 0o775 / 0o664.
        assert_eq!(files["dir"], "dir 775");
        assert_eq!(files["dir/readme.txt"], "file 664 hi");
    }

    #[test]
    fn explicit_directory_modes_are_applied_after_the_files_inside_are_written() {
        let package = Hostile::new()
            .dir_with("ro/", deflated().unix_permissions(0o555))
            .file("ro/inside.txt", b"written before the dir became read-only")
            .package();
        let dest = tempfile::tempdir().unwrap();
        extract(&package, dest.path(), &mut default_budget()).unwrap();
        let files = snapshot(dest.path());
        assert_eq!(files["ro"], "dir 555");
        assert!(files["ro/inside.txt"].ends_with("read-only"));
        fs::set_permissions(dest.path().join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn setuid_bits_are_not_extracted() {
        let package = Hostile::new()
            .file_with("suid", b"x", deflated().unix_permissions(0o4755))
            .package();
        let dest = tempfile::tempdir().unwrap();
        extract(&package, dest.path(), &mut default_budget()).unwrap();
        let mode = fs::metadata(dest.path().join("suid"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[test]
    fn relative_symlink_inside_the_tree_is_created() {
        let package = Hostile::new()
            .file("node_modules/pkg/cli.js", b"console.log(1)")
            .symlink("node_modules/.bin/cli", "../pkg/cli.js")
            .package();
        let dest = tempfile::tempdir().unwrap();
        extract(&package, dest.path(), &mut default_budget()).unwrap();
        let link = dest.path().join("node_modules/.bin/cli");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../pkg/cli.js"));
        assert_eq!(fs::read_to_string(&link).unwrap(), "console.log(1)");
    }

    // ---- layers -----------------------------------------------------------------------

    #[test]
    fn later_layer_overwrites_earlier_files_and_keeps_the_rest() {
        let dest = tempfile::tempdir().unwrap();
        layer_one(dest.path());
        let layer_two = CodeZip::new()
            .source("python/shared.py", "LAYER = 2")
            .source("python/extra.py", "")
            .build()
            .unwrap();
        let mut budget = default_budget();
        extract(&layer_two, dest.path(), &mut budget).unwrap();
        let files = snapshot(dest.path());
        assert_eq!(files["python/shared.py"], "file 644 LAYER = 2");
        assert_eq!(files["python/extra.py"], "file 644 ");
        assert_eq!(files["bin/tool"], "file 755 #!/bin/sh\n");
        assert!(
            !files.keys().any(|k| k.contains(".lambda-testkit-replaced")),
            "staging left behind: {files:?}"
        );
    }

    #[test]
    fn budget_is_shared_across_code_and_layers() {
        let dest = tempfile::tempdir().unwrap();
        let mut budget = budget_of(10);
        let six = CodeZip::new().bytes("a", vec![1u8; 6]).build().unwrap();
        extract(&six, &dest.path().join("opt"), &mut budget).unwrap();
        assert_eq!(budget.used(), 6);
        let five = CodeZip::new().bytes("b", vec![2u8; 5]).build().unwrap();
        let err = extract(&five, &dest.path().join("task"), &mut budget).unwrap_err();
        match err {
            PackageError::UnzippedTooLarge {
                entry,
                limit,
                attempted,
            } => {
                assert_eq!((entry.as_str(), limit, attempted), ("b", 10, 11));
            }
            other => panic!("expected UnzippedTooLarge, got {other}"),
        }
        assert_eq!(
            budget.used(),
            6,
            "failed extraction must not charge the budget"
        );
        assert!(!dest.path().join("task").exists());
    }

    // ---- hostile names, rejected before anything is written ----------------------------

    #[test]
    fn zip_slip_entry_is_rejected_and_nothing_is_written() {
        for evil in [
            "../evil",
            "a/../../evil",
            "a/../b",
            "/abs",
            "C:/win",
            "..\\evil",
            "a\\b",
            "nul\0x",
        ] {
            let root = tempfile::tempdir().unwrap();
            let dest = root.path().join("dest");
            let package = Hostile::new()
                .file("innocent.txt", b"written first in the archive")
                .file(evil, b"pwned")
                .package();
            let err = extract(&package, &dest, &mut default_budget()).unwrap_err();
            assert_unsafe(err, evil);
            assert!(!dest.exists(), "{evil:?}: destination was created");
            assert_eq!(
                snapshot(root.path()).len(),
                0,
                "{evil:?}: something was written"
            );
        }
    }

    #[test]
    fn symlink_to_an_absolute_path_is_rejected_and_nothing_is_written() {
        let dest = tempfile::tempdir().unwrap();
        let package = Hostile::new()
            .file("a.txt", b"a")
            .symlink("passwd", "/etc/passwd")
            .package();
        let err = extract(&package, dest.path(), &mut default_budget()).unwrap_err();
        assert_unsafe(err, "passwd");
        assert!(snapshot(dest.path()).is_empty());
    }

    #[test]
    fn symlinks_that_climb_out_of_the_destination_are_rejected() {
        for (name, target) in [
            ("up", ".."),
            ("lib/up2", "../.."),
            ("lib/sneaky", "x/../../.."),
            ("lib/back", "../lib/../.."),
            ("win", "C:/x"),
            ("empty", ""),
        ] {
            let dest = tempfile::tempdir().unwrap();
            let package = Hostile::new().symlink(name, target).package();
            let err = extract(&package, dest.path(), &mut default_budget()).unwrap_err();
            assert_unsafe(err, name);
            assert!(snapshot(dest.path()).is_empty(), "{name} -> {target}");
        }
    }

    #[test]
    fn symlink_cannot_escape_through_an_earlier_layers_symlinked_directory() {
        let dest = tempfile::tempdir().unwrap();
        // Earlier layer: "alias" points at the root of dest, so "alias/x" lives at depth 0
        // even though its name suggests depth 1.
        let earlier = Hostile::new()
            .file("real/f", b"f")
            .symlink("alias", ".")
            .package();
        extract(&earlier, dest.path(), &mut default_budget()).unwrap();
        let before = snapshot(dest.path());

        let later = Hostile::new().symlink("alias/x", "../etc").package();
        let err = extract(&later, dest.path(), &mut default_budget()).unwrap_err();
        assert_unsafe(err, "alias/x");
        assert_eq!(snapshot(dest.path()), before);
    }

    #[test]
    fn device_fifo_and_socket_entries_are_rejected() {
        let dest = tempfile::tempdir().unwrap();
        let fifo_mode = deflated()
            .system(zip::System::Unix)
            .external_attributes(0o010_644 << 16);
        let fifo = Hostile::new().file_with("pipe", b"", fifo_mode).package();
        assert_unsafe(
            extract(&fifo, dest.path(), &mut default_budget()).unwrap_err(),
            "pipe",
        );
        assert!(snapshot(dest.path()).is_empty());
    }

    #[test]
    fn entries_disagreeing_on_file_or_directory_are_rejected() {
        let dest = tempfile::tempdir().unwrap();
        let package = Hostile::new()
            .file("lib", b"file")
            .file("lib/x", b"x")
            .package();
        assert_unsafe(
            extract(&package, dest.path(), &mut default_budget()).unwrap_err(),
            "lib/x",
        );
        let package = Hostile::new()
            .file("a/b", b"1")
            .file("./a//b", b"2")
            .package();
        assert_unsafe(
            extract(&package, dest.path(), &mut default_budget()).unwrap_err(),
            "./a//b",
        );
        assert!(snapshot(dest.path()).is_empty());
    }

    #[test]
    fn file_cannot_be_written_through_a_symlink_from_the_same_archive() {
        let dest = tempfile::tempdir().unwrap();
        let package = Hostile::new()
            .symlink("lib", "real")
            .file("lib/x", b"x")
            .package();
        assert_unsafe(
            extract(&package, dest.path(), &mut default_budget()).unwrap_err(),
            "lib/x",
        );
        assert!(snapshot(dest.path()).is_empty());
    }

    #[test]
    fn earlier_layers_symlink_at_a_file_path_is_replaced_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim.txt");
        fs::write(&victim, "untouched").unwrap();
        let dest = tempfile::tempdir().unwrap();
        symlink(&victim, dest.path().join("config.txt")).unwrap();

        let package = CodeZip::new().source("config.txt", "new").build().unwrap();
        extract(&package, dest.path(), &mut default_budget()).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(snapshot(dest.path())["config.txt"], "file 644 new");
    }

    // ---- malformed input --------------------------------------------------------------

    #[test]
    fn truncated_entry_data_is_malformed_and_rolled_back() {
        let dest = tempfile::tempdir().unwrap();
        let before = layer_one(dest.path());
        // Keep the central directory, corrupt the deflate stream of the second entry.
        let mut bytes = Hostile::new()
            .file("first.txt", b"fine")
            .file(
                "second.bin",
                &(0..50_000u32)
                    .flat_map(|i| i.to_le_bytes())
                    .collect::<Vec<_>>(),
            )
            .bytes();
        let archive = ZipArchive::new(Cursor::new(bytes.clone())).unwrap();
        let second_start = archive.by_index_data(1).unwrap().header_start() as usize;
        let central = archive.central_directory_start() as usize;
        for byte in &mut bytes[second_start + 80..central] {
            *byte = 0xFF;
        }
        let package = DeploymentPackage::from_zip(bytes).unwrap();
        let err = extract(&package, dest.path(), &mut default_budget()).unwrap_err();
        assert!(matches!(err, PackageError::MalformedZip { .. }), "{err}");
        assert_eq!(snapshot(dest.path()), before);
    }

    #[test]
    fn truncated_archive_is_malformed() {
        let bytes = Hostile::new().file("a.txt", b"aaaa").bytes();
        let err = DeploymentPackage::from_zip(bytes[..bytes.len() - 10].to_vec()).unwrap_err();
        assert!(matches!(err, PackageError::MalformedZip { .. }), "{err}");
    }

    // ---- budget, bombs and rollback ---------------------------------------------------

    #[test]
    fn budget_overflow_half_way_removes_what_was_written_and_keeps_earlier_layers() {
        let dest = tempfile::tempdir().unwrap();
        let before = layer_one(dest.path());
        let mut budget = budget_of(20_000);
        let package = CodeZip::new()
            .bytes("python/shared.py", b"overwritten, then restored".to_vec())
            .bytes("new/first.bin", vec![1u8; 15_000])
            .bytes("new/second.bin", vec![2u8; 15_000])
            .build()
            .unwrap();
        let err = extract(&package, dest.path(), &mut budget).unwrap_err();
        match err {
            PackageError::UnzippedTooLarge { entry, limit, .. } => {
                assert_eq!((entry.as_str(), limit), ("new/second.bin", 20_000));
            }
            other => panic!("expected UnzippedTooLarge, got {other}"),
        }
        assert_eq!(snapshot(dest.path()), before);
        assert_eq!(budget.used(), 0);
    }

    /// About 300 MiB of zeros (1 + 258 * 1_219_274 bytes) in a ~2 MB zip.
    const BOMB_MATCHES: u64 = 1_219_274;

    #[test]
    fn zip_bomb_is_stopped_by_the_ratio_check_and_leaves_nothing() {
        let started = Instant::now();
        let bomb = zero_bomb(BOMB_MATCHES);
        assert!(
            bomb.code_size() < 2 * 1024 * 1024,
            "bomb is {} bytes",
            bomb.code_size()
        );
        let build_time = started.elapsed();

        let dest = tempfile::tempdir().unwrap();
        let before = layer_one(dest.path());
        let mut budget = default_budget();
        let err = extract(&bomb, dest.path(), &mut budget).unwrap_err();
        match err {
            PackageError::CompressionRatioExceeded {
                entry,
                max_ratio,
                compressed,
                uncompressed,
            } => {
                assert_eq!((entry.as_str(), max_ratio), ("bomb.bin", 100));
                assert!(uncompressed > 100 * compressed);
                // Stopped long before the 300 MiB, by measuring what was really consumed.
                assert!(
                    uncompressed < 32 * 1024 * 1024,
                    "{uncompressed} bytes written"
                );
                eprintln!("bomb stopped after {uncompressed} bytes from {compressed} compressed");
            }
            other => panic!("expected CompressionRatioExceeded, got {other}"),
        }
        assert_eq!(snapshot(dest.path()), before);
        assert_eq!(budget.used(), 0);
        eprintln!(
            "bomb built in {build_time:?}, rejected in {:?}",
            started.elapsed() - build_time
        );
    }

    #[test]
    fn zip_bomb_is_stopped_by_the_budget_when_the_ratio_would_allow_it() {
        let bomb = zero_bomb(BOMB_MATCHES);
        let dest = tempfile::tempdir().unwrap();
        let mut budget = UnzippedBudget::new(ExtractLimits {
            max_unzipped_bytes: 4 * 1024 * 1024,
            max_ratio: u64::MAX,
            ratio_floor_bytes: 0,
        });
        let err = extract(&bomb, dest.path(), &mut budget).unwrap_err();
        match err {
            PackageError::UnzippedTooLarge {
                limit, attempted, ..
            } => {
                assert_eq!(limit, 4 * 1024 * 1024);
                assert!(attempted > limit && attempted <= limit + COPY_BUFFER_BYTES as u64);
            }
            other => panic!("expected UnzippedTooLarge, got {other}"),
        }
        assert!(snapshot(dest.path()).is_empty());
    }

    #[test]
    fn small_highly_compressible_file_is_below_the_ratio_floor() {
        let package = CodeZip::new()
            .bytes("zeros", vec![0u8; 512 * 1024])
            .build()
            .unwrap();
        let dest = tempfile::tempdir().unwrap();
        extract(&package, dest.path(), &mut default_budget()).unwrap();
        assert_eq!(
            fs::metadata(dest.path().join("zeros")).unwrap().len(),
            512 * 1024
        );
    }

    #[test]
    fn failure_after_replacing_an_earlier_directory_restores_it() {
        let dest = tempfile::tempdir().unwrap();
        let before = layer_one(dest.path());
        // "bin" is a directory from layer one; this archive replaces it with a file, then
        // fails on its budget.
        let package = CodeZip::new()
            .bytes("bin", b"now a file".to_vec())
            .bytes("big", vec![0u8; 100])
            .build()
            .unwrap();
        let err = extract(&package, dest.path(), &mut budget_of(50)).unwrap_err();
        assert!(
            matches!(err, PackageError::UnzippedTooLarge { .. }),
            "{err}"
        );
        assert_eq!(snapshot(dest.path()), before);
    }

    // ---- performance ------------------------------------------------------------------

    #[test]
    fn five_megabyte_binary_extracts_quickly() {
        // The first 5 MiB of this test executable: real machine code, compressing like a
        // Lambda `bootstrap` does.
        let mut binary = fs::read(std::env::current_exe().unwrap()).unwrap();
        binary.resize(5 * 1024 * 1024, 0);
        let package = CodeZip::new()
            .executable("bootstrap", binary)
            .build()
            .unwrap();
        let dest = tempfile::tempdir().unwrap();
        let started = Instant::now();
        extract(&package, dest.path(), &mut default_budget()).unwrap();
        let elapsed = started.elapsed();
        eprintln!(
            "extracted a 5 MiB single-binary zip ({} bytes zipped) in {elapsed:?}",
            package.code_size()
        );
        let extracted = dest.path().join("bootstrap");
        assert_eq!(fs::metadata(&extracted).unwrap().len(), 5 * 1024 * 1024);
        // Generous: unoptimised builds inflate several times slower than release ones.
        assert!(elapsed.as_millis() < 1000, "took {elapsed:?}");
    }
}
