//! Safe, all-or-nothing extraction of deployment packages into a directory.
//!
//! Extraction runs in three steps:
//!
//! 1. **Plan**: parse the central directory, normalise every entry name, read symlink
//!    targets and reject anything unsafe. Nothing touches the disk until the whole archive
//!    has passed.
//! 2. **Apply**: create directories and files (counting the bytes actually decompressed
//!    against the [`UnzippedBudget`] and the per-entry ratio), then symlinks, then
//!    directory modes. Every path created and every pre-existing path replaced is
//!    journalled.
//! 3. **Commit or roll back**: on success the replaced paths are discarded and the budget
//!    charged; on any error (or panic) everything created is removed and everything
//!    replaced is put back, so a rejected zip leaves `dest` exactly as it was.

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Cursor, Read, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use zip::{CompressionMethod, ZipArchive};

use super::{DeploymentPackage, PackageError};

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const DEFAULT_FILE_MODE: u32 = 0o644;
const DEFAULT_DIR_MODE: u32 = 0o755;
/// Linux's `PATH_MAX` includes the terminating NUL.
const MAX_SYMLINK_TARGET_BYTES: u64 = 4095;
const COPY_BUFFER_BYTES: usize = 256 * 1024;

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
    /// Largest allowed `uncompressed / compressed` ratio for a single entry. Default 100.
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
/// Only regular file contents are counted, as actually decompressed. A failed [`extract`]
/// leaves the budget unchanged.
#[derive(Debug)]
pub struct UnzippedBudget {
    limits: ExtractLimits,
    used: u64,
}

impl UnzippedBudget {
    /// A budget with nothing used yet.
    pub fn new(limits: ExtractLimits) -> Self {
        Self { limits, used: 0 }
    }

    /// Bytes charged by successful extractions so far.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The limits this budget enforces.
    pub fn limits(&self) -> &ExtractLimits {
        &self.limits
    }
}

/// Extracts `package` into `dest`, the way Lambda unpacks code into `/var/task` and layers,
/// in order, into `/opt` (AWS "Packaging your layer content").
///
/// `dest` is created if missing. It may already hold earlier layers: a file in this package
/// replaces a file at the same path, as a later layer does in `/opt`. Unix permissions come
/// from each entry's external attributes (setuid, setgid and sticky bits dropped); entries
/// without them get `0o644` (files) or `0o755` (directories). Symlink entries are created
/// as symlinks when their target is relative and stays inside `dest`: no absolute target,
/// and `..` only as leading components, no more of them than the link's depth below `dest`.
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
///   whether a path is a file or directory, or that name the same path twice.
/// - [`PackageError::MalformedZip`]: unreadable central directory, duplicate raw names,
///   encrypted entries, compression other than stored or deflate, or an entry whose data is
///   truncated or corrupt (detected while writing; rolled back).
/// - [`PackageError::UnzippedTooLarge`]: the bytes actually decompressed would take
///   `budget` over [`ExtractLimits::max_unzipped_bytes`]. Extraction stops at that point.
/// - [`PackageError::CompressionRatioExceeded`]: an entry past
///   [`ExtractLimits::ratio_floor_bytes`] expands more than [`ExtractLimits::max_ratio`]
///   times its compressed size. Extraction stops at that point.
/// - [`PackageError::Io`]: the destination filesystem refused an operation.
pub fn extract(
    package: &DeploymentPackage,
    dest: &Path,
    budget: &mut UnzippedBudget,
) -> Result<(), PackageError> {
    let mut archive = ZipArchive::new(Cursor::new(package.zip_bytes().clone()))
        .map_err(|e| malformed(e.to_string()))?;
    let plan = plan(&mut archive)?;

    let mut journal = Journal::begin(dest)?;
    let charged = journal.apply(&mut archive, &plan, budget)?;
    journal.commit();
    budget.used += charged;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Plan: validation that needs no disk access.
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
enum Kind {
    Dir,
    File,
    Symlink {
        target: String,
        leading_parents: usize,
    },
}

#[derive(Debug)]
struct PlannedEntry {
    index: usize,
    name: String,
    components: Vec<String>,
    kind: Kind,
    mode: Option<u32>,
    compressed_size: u64,
}

fn plan(archive: &mut ZipArchive<Cursor<Bytes>>) -> Result<Vec<PlannedEntry>, PackageError> {
    if archive.has_duplicate_names() {
        return Err(malformed(
            "the central directory lists the same entry name more than once".to_owned(),
        ));
    }
    let mut entries = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let mut file = archive
            .by_index(index)
            .map_err(|e| malformed(format!("entry #{index}: {e}")))?;
        let name = String::from_utf8_lossy(file.name_raw()).into_owned();
        let unsafe_entry = |reason: String| PackageError::UnsafeEntry {
            name: name.clone(),
            reason,
        };
        if file.encrypted() {
            return Err(malformed(format!(
                "entry {name:?} is encrypted; Lambda cannot extract encrypted zips"
            )));
        }
        if !matches!(
            file.compression(),
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            return Err(malformed(format!(
                "entry {name:?} uses compression {:?}; only stored and deflate are supported",
                file.compression()
            )));
        }
        let components = normalise_entry_name(&name).map_err(unsafe_entry)?;
        let unix_mode = file.unix_mode();
        let kind = match unix_mode.map(|m| m & S_IFMT) {
            Some(S_IFLNK) => {
                let parent_depth = components.len().saturating_sub(1);
                let target = read_symlink_target(&mut file, &name)?;
                let leading_parents =
                    check_symlink_target(&target, parent_depth).map_err(unsafe_entry)?;
                Kind::Symlink {
                    target,
                    leading_parents,
                }
            }
            Some(S_IFDIR) => Kind::Dir,
            _ if name.ends_with('/') => Kind::Dir,
            None | Some(0) | Some(S_IFREG) => Kind::File,
            Some(_) => {
                return Err(unsafe_entry(
                    "is a device, FIFO or socket; only files, directories and symlinks are \
                     extracted"
                        .to_owned(),
                ));
            }
        };
        if components.is_empty() {
            match kind {
                // "./" or a bare root entry: nothing to create.
                Kind::Dir => continue,
                _ => return Err(unsafe_entry("names no file below the root".to_owned())),
            }
        }
        entries.push(PlannedEntry {
            index,
            name,
            components,
            kind,
            mode: unix_mode.map(|m| m & 0o777),
            compressed_size: file.compressed_size(),
        });
    }
    check_layout(&entries)?;
    Ok(entries)
}

fn malformed(reason: String) -> PackageError {
    PackageError::MalformedZip { reason }
}

/// Splits an entry name into normal components, refusing anything that could resolve
/// outside the destination on any platform.
fn normalise_entry_name(name: &str) -> Result<Vec<String>, String> {
    check_path_text(name)?;
    let mut components = Vec::new();
    for component in name.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err("'..' component would escape the destination".to_owned()),
            normal => components.push(normal.to_owned()),
        }
    }
    Ok(components)
}

/// Rejections shared by entry names and symlink targets.
fn check_path_text(path: &str) -> Result<(), String> {
    if path.contains('\0') {
        return Err("contains a NUL byte".to_owned());
    }
    if path.contains('\\') {
        // Windows tools write '\' as a separator; unzip on Linux would treat it as part of a
        // file name, and on Windows it could climb out with "..\".
        return Err("contains a backslash".to_owned());
    }
    if path.starts_with('/') {
        return Err("absolute path".to_owned());
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err("starts with a drive prefix".to_owned());
    }
    Ok(())
}

fn read_symlink_target(
    file: &mut zip::read::ZipFile<'_, Cursor<Bytes>>,
    name: &str,
) -> Result<String, PackageError> {
    let mut target = Vec::new();
    file.take(MAX_SYMLINK_TARGET_BYTES + 1)
        .read_to_end(&mut target)
        .map_err(|e| malformed(format!("entry {name:?}: {e}")))?;
    let unsafe_entry = |reason: &str| PackageError::UnsafeEntry {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if target.len() as u64 > MAX_SYMLINK_TARGET_BYTES {
        return Err(unsafe_entry("symlink target is longer than PATH_MAX"));
    }
    String::from_utf8(target).map_err(|_| unsafe_entry("symlink target is not valid UTF-8"))
}

/// Returns the number of leading `..` components of a symlink target that stays below the
/// destination when the link's parent is `parent_depth` directories deep.
///
/// `..` is only allowed before any normal component: the kernel resolves `a/..` through
/// `a`, which may itself be a symlink, so a later `..` could climb out of the tree even
/// when the text looks contained.
fn check_symlink_target(target: &str, parent_depth: usize) -> Result<usize, String> {
    if target.is_empty() {
        return Err("symlink target is empty".to_owned());
    }
    check_path_text(target).map_err(|reason| format!("symlink target {target:?}: {reason}"))?;
    let mut leading_parents = 0;
    let mut seen_normal = false;
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." if seen_normal => {
                return Err(format!(
                    "symlink target {target:?} has '..' after a normal component"
                ));
            }
            ".." => leading_parents += 1,
            _ => seen_normal = true,
        }
    }
    if leading_parents > parent_depth {
        return Err(format!("symlink target {target:?} escapes the destination"));
    }
    Ok(leading_parents)
}

/// Rejects entries that disagree on a path being a file or a directory, and duplicates.
fn check_layout(entries: &[PlannedEntry]) -> Result<(), PackageError> {
    #[derive(PartialEq)]
    enum Seen {
        Dir,
        Leaf,
    }
    let mut seen: HashMap<String, Seen> = HashMap::with_capacity(entries.len() * 2);
    for entry in entries {
        let clash = |reason: &str| PackageError::UnsafeEntry {
            name: entry.name.clone(),
            reason: reason.to_owned(),
        };
        let mut path = String::new();
        for (i, component) in entry.components.iter().enumerate() {
            if i > 0 {
                path.push('/');
            }
            path.push_str(component);
            let is_last = i + 1 == entry.components.len();
            let wanted = match (is_last, &entry.kind) {
                (true, Kind::File | Kind::Symlink { .. }) => Seen::Leaf,
                _ => Seen::Dir,
            };
            match (seen.get(&path), &wanted) {
                (None, _) => {
                    seen.insert(path.clone(), wanted);
                }
                (Some(Seen::Dir), Seen::Dir) => {}
                (Some(Seen::Leaf), Seen::Leaf) => {
                    return Err(clash("names the same path as an earlier entry"));
                }
                (Some(Seen::Leaf), Seen::Dir) => {
                    return Err(clash(&format!(
                        "needs {path:?} to be a directory, but another entry makes it a file \
                         or symlink"
                    )));
                }
                (Some(Seen::Dir), Seen::Leaf) => {
                    return Err(clash(
                        "is a file or symlink, but another entry uses it as a directory",
                    ));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Apply, with a journal for rollback.
// ---------------------------------------------------------------------------------------

/// Everything one extraction changed under `dest`, so it can be undone.
///
/// All paths are physical: symlinked directories that already existed in `dest` are
/// resolved once, so two names for the same location are recognised as one.
struct Journal {
    dest: PathBuf,
    created: Vec<PathBuf>,
    created_set: HashSet<PathBuf>,
    created_dir_modes: HashMap<PathBuf, u32>,
    displaced: Vec<(PathBuf, PathBuf)>,
    staging: Option<tempfile::TempDir>,
    dirs: HashMap<Vec<String>, PathBuf>,
    committed: bool,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Journal {
    /// Creates `dest` and any missing parents, journalling each.
    fn begin(dest: &Path) -> Result<Self, PackageError> {
        let mut journal = Self {
            dest: PathBuf::new(),
            created: Vec::new(),
            created_set: HashSet::new(),
            created_dir_modes: HashMap::new(),
            displaced: Vec::new(),
            staging: None,
            dirs: HashMap::new(),
            committed: false,
        };
        let mut missing = Vec::new();
        let mut probe = dest;
        loop {
            match fs::symlink_metadata(probe) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    missing.push(probe.to_path_buf());
                    match probe.parent() {
                        Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
                        _ => break,
                    }
                }
                Err(e) => return Err(io_error(probe)(e)),
            }
        }
        for dir in missing.into_iter().rev() {
            fs::create_dir(&dir).map_err(io_error(&dir))?;
            // Journal the physical spelling, as for everything derived from the root below,
            // or rollback would not recognise these paths.
            let real = fs::canonicalize(&dir).map_err(io_error(&dir))?;
            journal.record_created(real, Some(DEFAULT_DIR_MODE));
        }
        journal.dest = fs::canonicalize(dest).map_err(io_error(dest))?;
        if !journal.dest.is_dir() {
            return Err(io_error(dest)(io::Error::new(
                io::ErrorKind::NotADirectory,
                "destination is not a directory",
            )));
        }
        journal.dirs.insert(Vec::new(), journal.dest.clone());
        Ok(journal)
    }

    /// Writes every planned entry; returns the bytes to charge to the budget.
    fn apply(
        &mut self,
        archive: &mut ZipArchive<Cursor<Bytes>>,
        plan: &[PlannedEntry],
        budget: &UnzippedBudget,
    ) -> Result<u64, PackageError> {
        let mut written_total = 0u64;
        let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
        // Symlinks go last so that no file is ever written through a link this archive made.
        for entry in plan
            .iter()
            .filter(|e| !matches!(e.kind, Kind::Symlink { .. }))
        {
            match entry.kind {
                Kind::Dir => {
                    let dir = self.ensure_dir(&entry.name, &entry.components)?;
                    if let Some(mode) = entry.mode
                        && let Some(slot) = self.created_dir_modes.get_mut(&dir)
                    {
                        *slot = mode;
                    }
                }
                Kind::File => {
                    written_total +=
                        self.write_file(archive, entry, budget, written_total, &mut buffer)?;
                }
                Kind::Symlink { .. } => unreachable!("filtered out above"),
            }
        }
        for entry in plan {
            if let Kind::Symlink {
                target,
                leading_parents,
            } = &entry.kind
            {
                self.create_symlink(entry, target, *leading_parents)?;
            }
        }
        self.apply_dir_modes()?;
        Ok(written_total)
    }

    /// Returns the physical directory for `components`, creating what is missing.
    fn ensure_dir(&mut self, name: &str, components: &[String]) -> Result<PathBuf, PackageError> {
        if let Some(dir) = self.dirs.get(components) {
            return Ok(dir.clone());
        }
        let parent = match components.split_last() {
            Some((_, parents)) => self.ensure_dir(name, parents)?,
            None => return Ok(self.dest.clone()),
        };
        let path = parent.join(&components[components.len() - 1]);
        let physical = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.create_dir(&path)?;
                path
            }
            Err(e) => return Err(io_error(&path)(e)),
            Ok(meta) if meta.is_dir() => path,
            Ok(meta) if meta.file_type().is_symlink() => match self.contained_dir(&path) {
                // An earlier layer's symlinked directory: write through it, like unzip does.
                Some(real) => real,
                None => {
                    self.displace(name, &path)?;
                    self.create_dir(&path)?;
                    path
                }
            },
            Ok(_) => {
                self.displace(name, &path)?;
                self.create_dir(&path)?;
                path
            }
        };
        self.dirs.insert(components.to_vec(), physical.clone());
        Ok(physical)
    }

    /// Where the symlink at `path` leads, if that is a directory inside `dest`.
    fn contained_dir(&self, path: &Path) -> Option<PathBuf> {
        let real = fs::canonicalize(path).ok()?;
        (real.starts_with(&self.dest) && real.is_dir()).then_some(real)
    }

    fn create_dir(&mut self, path: &Path) -> Result<(), PackageError> {
        fs::create_dir(path).map_err(io_error(path))?;
        self.record_created(path.to_path_buf(), Some(DEFAULT_DIR_MODE));
        Ok(())
    }

    fn record_created(&mut self, path: PathBuf, dir_mode: Option<u32>) {
        if let Some(mode) = dir_mode {
            self.created_dir_modes.insert(path.clone(), mode);
        }
        self.created_set.insert(path.clone());
        self.created.push(path);
    }

    /// Moves a pre-existing path out of the way so it can be restored on rollback.
    fn displace(&mut self, name: &str, path: &Path) -> Result<(), PackageError> {
        if self.created_set.contains(path) {
            return Err(PackageError::UnsafeEntry {
                name: name.to_owned(),
                reason: format!(
                    "resolves to {}, which another entry of this archive already wrote",
                    path.display()
                ),
            });
        }
        if self.staging.is_none() {
            let staging = tempfile::Builder::new()
                .prefix(".lambda-testkit-replaced-")
                .tempdir_in(&self.dest)
                .map_err(io_error(&self.dest))?;
            self.staging = Some(staging);
        }
        let staging = self
            .staging
            .as_ref()
            .map(|s| s.path())
            .unwrap_or(&self.dest);
        let backup = staging.join(self.displaced.len().to_string());
        fs::rename(path, &backup).map_err(io_error(path))?;
        self.displaced.push((path.to_path_buf(), backup));
        Ok(())
    }

    /// Frees the final path component for a new file or symlink.
    fn prepare_leaf(&mut self, entry: &PlannedEntry) -> Result<PathBuf, PackageError> {
        let (leaf, parents) = entry
            .components
            .split_last()
            .expect("planned entries have at least one component");
        let parent = self.ensure_dir(&entry.name, parents)?;
        let path = parent.join(leaf);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path)(e)),
            // Replaced, never written through: a symlink here could point anywhere.
            Ok(_) => self.displace(&entry.name, &path)?,
        }
        Ok(path)
    }

    fn write_file(
        &mut self,
        archive: &mut ZipArchive<Cursor<Bytes>>,
        entry: &PlannedEntry,
        budget: &UnzippedBudget,
        written_before: u64,
        buffer: &mut [u8],
    ) -> Result<u64, PackageError> {
        let path = self.prepare_leaf(entry)?;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?;
        self.record_created(path.clone(), None);

        let corrupt = |e: io::Error| malformed(format!("entry {:?}: {e}", entry.name));
        let mut reader = archive
            .by_index(entry.index)
            .map_err(|e| corrupt(e.into()))?;
        let limits = &budget.limits;
        let ratio_cap = limits
            .max_ratio
            .saturating_mul(entry.compressed_size.max(1));
        let mut written = 0u64;
        loop {
            let n = match reader.read(buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(e)),
            };
            written += n as u64;
            // Checked before writing, so a bomb never puts more than the limit on disk.
            let attempted = budget.used + written_before + written;
            if attempted > limits.max_unzipped_bytes {
                return Err(PackageError::UnzippedTooLarge {
                    entry: entry.name.clone(),
                    limit: limits.max_unzipped_bytes,
                    attempted,
                });
            }
            if written > limits.ratio_floor_bytes && written > ratio_cap {
                return Err(PackageError::CompressionRatioExceeded {
                    entry: entry.name.clone(),
                    max_ratio: limits.max_ratio,
                    compressed: entry.compressed_size,
                    uncompressed: written,
                });
            }
            out.write_all(&buffer[..n]).map_err(io_error(&path))?;
        }
        let mode = entry.mode.unwrap_or(DEFAULT_FILE_MODE);
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_error(&path))?;
        Ok(written)
    }

    fn create_symlink(
        &mut self,
        entry: &PlannedEntry,
        target: &str,
        leading_parents: usize,
    ) -> Result<(), PackageError> {
        let path = self.prepare_leaf(entry)?;
        // The plan checked depth by name; an earlier layer's symlinked directory can put the
        // link higher up than its name says, so check the real location again.
        let depth = path
            .parent()
            .and_then(|p| p.strip_prefix(&self.dest).ok())
            .map_or(0, |rel| rel.components().count());
        if leading_parents > depth {
            return Err(PackageError::UnsafeEntry {
                name: entry.name.clone(),
                reason: format!(
                    "symlink target {target:?} escapes the destination from {}",
                    path.display()
                ),
            });
        }
        symlink(target, &path).map_err(io_error(&path))?;
        self.record_created(path, None);
        Ok(())
    }

    fn apply_dir_modes(&mut self) -> Result<(), PackageError> {
        // Deepest first: a parent losing its search bit must not block its children.
        let mut dirs: Vec<_> = self.created_dir_modes.iter().collect();
        dirs.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (path, mode) in dirs {
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).map_err(io_error(path))?;
        }
        Ok(())
    }

    fn commit(mut self) {
        self.committed = true;
        if let Some(staging) = self.staging.take() {
            // Best effort: the replaced content is garbage now; a leftover is harmless.
            let _ = staging.close();
        }
    }

    fn rollback(&mut self) {
        for dir in self.created_dir_modes.keys() {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
        for path in self.created.iter().rev() {
            let removed = match fs::symlink_metadata(path) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
                Ok(_) => fs::remove_file(path),
                Err(_) => Ok(()),
            };
            drop(removed);
        }
        for (original, backup) in self.displaced.iter().rev() {
            let _ = fs::rename(backup, original);
        }
        if let Some(staging) = self.staging.take() {
            let _ = staging.close();
        }
    }
}

impl Drop for Journal {
    /// Rolls back unless committed, so an error *or a panic* mid-extraction leaves `dest`
    /// as it was.
    fn drop(&mut self) {
        if !self.committed {
            self.rollback();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write as _;
    use std::time::Instant;

    use zip::ZipWriter;
    use zip::write::SimpleFileOptions;

    use super::*;
    use crate::package::CodeZip;

    /// Every path under `root` with its kind, mode and contents (or link target).
    fn snapshot(root: &Path) -> BTreeMap<String, String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
            for child in fs::read_dir(dir).unwrap() {
                let path = child.unwrap().path();
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let meta = fs::symlink_metadata(&path).unwrap();
                let mode = meta.permissions().mode() & 0o777;
                if meta.file_type().is_symlink() {
                    let target = fs::read_link(&path).unwrap();
                    out.insert(rel, format!("link -> {}", target.display()));
                } else if meta.is_dir() {
                    out.insert(rel, format!("dir {mode:o}"));
                    walk(root, &path, out);
                } else {
                    let body = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
                    out.insert(rel, format!("file {mode:o} {body}"));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        out
    }

    fn default_budget() -> UnzippedBudget {
        UnzippedBudget::new(ExtractLimits::default())
    }

    fn budget_of(max_unzipped_bytes: u64) -> UnzippedBudget {
        UnzippedBudget::new(ExtractLimits {
            max_unzipped_bytes,
            ..ExtractLimits::default()
        })
    }

    fn options() -> SimpleFileOptions {
        SimpleFileOptions::DEFAULT.compression_method(CompressionMethod::Deflated)
    }

    /// A zip written entry by entry with the zip crate, for archives the builder refuses
    /// to make.
    struct Hostile(ZipWriter<Cursor<Vec<u8>>>);

    impl Hostile {
        fn new() -> Self {
            Self(ZipWriter::new(Cursor::new(Vec::new())))
        }
        fn file(mut self, name: &str, body: &[u8]) -> Self {
            self.0.start_file(name, options()).unwrap();
            self.0.write_all(body).unwrap();
            self
        }
        fn file_with_mode(mut self, name: &str, body: &[u8], mode: u32) -> Self {
            self.0
                .start_file(name, options().unix_permissions(mode))
                .unwrap();
            self.0.write_all(body).unwrap();
            self
        }
        fn symlink(mut self, name: &str, target: &str) -> Self {
            self.0.add_symlink(name, target, options()).unwrap();
            self
        }
        fn raw_attributes(mut self, name: &str, external_attributes: u32) -> Self {
            let options = options()
                .system(zip::System::Unix)
                .external_attributes(external_attributes);
            self.0.start_file(name, options).unwrap();
            self
        }
        fn bytes(self) -> Vec<u8> {
            self.0.finish().unwrap().into_inner()
        }
        fn package(self) -> DeploymentPackage {
            DeploymentPackage::from_zip(self.bytes()).unwrap()
        }
    }

    fn assert_unsafe(err: PackageError, expected_name: &str) {
        match err {
            PackageError::UnsafeEntry { name, .. } => assert_eq!(name, expected_name),
            other => panic!("expected UnsafeEntry for {expected_name:?}, got {other}"),
        }
    }

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
    fn missing_destination_and_its_parents_are_created() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("a/b/task");
        let package = CodeZip::new().source("f.txt", "x").build().unwrap();
        extract(&package, &dest, &mut default_budget()).unwrap();
        assert_eq!(fs::read_to_string(dest.join("f.txt")).unwrap(), "x");
    }

    #[test]
    fn entries_without_unix_attributes_get_default_modes() {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        let dos = options().system(zip::System::Dos);
        writer.add_directory("dir/", dos).unwrap();
        writer.start_file("dir/readme.txt", dos).unwrap();
        writer.write_all(b"hi").unwrap();
        let package = DeploymentPackage::from_zip(writer.finish().unwrap().into_inner()).unwrap();
        let dest = tempfile::tempdir().unwrap();
        extract(&package, dest.path(), &mut default_budget()).unwrap();
        let files = snapshot(dest.path());
        // DOS attributes map to 0o775 / 0o664 in the zip crate; absent ones to our defaults.
        assert!(files["dir"].starts_with("dir 7"), "{files:?}");
        assert!(files["dir/readme.txt"].starts_with("file 6"), "{files:?}");
    }

    #[test]
    fn explicit_directory_modes_are_applied_after_the_files_inside_are_written() {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        writer
            .add_directory("ro/", options().unix_permissions(0o555))
            .unwrap();
        writer.start_file("ro/inside.txt", options()).unwrap();
        writer
            .write_all(b"written before the dir became read-only")
            .unwrap();
        let package = DeploymentPackage::from_zip(writer.finish().unwrap().into_inner()).unwrap();
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
            .file_with_mode("suid", b"x", 0o4755)
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
        let fifo = Hostile::new()
            .raw_attributes("pipe", (0o010_644) << 16)
            .package();
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

    /// 300 MiB of zeros, written in chunks so neither side holds it in memory. Flush
    /// points restart the deflate stream cheaply, keeping the build fast in debug builds.
    fn zero_bomb() -> DeploymentPackage {
        const TOTAL: usize = 300 * 1024 * 1024;
        let chunk = vec![0u8; 1024 * 1024];
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        writer
            .start_file(
                "bomb.bin",
                options().compression_level(Some(1)).large_file(false),
            )
            .unwrap();
        for _ in 0..TOTAL / chunk.len() {
            writer.write_all(&chunk).unwrap();
        }
        DeploymentPackage::from_zip(writer.finish().unwrap().into_inner()).unwrap()
    }

    #[test]
    fn zip_bomb_is_stopped_by_the_ratio_check_and_leaves_nothing() {
        let started = Instant::now();
        let bomb = zero_bomb();
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
                assert!(uncompressed <= 100 * compressed + COPY_BUFFER_BYTES as u64);
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
        let bomb = zero_bomb();
        let dest = tempfile::tempdir().unwrap();
        let mut budget = UnzippedBudget::new(ExtractLimits {
            max_unzipped_bytes: 8 * 1024 * 1024,
            max_ratio: u64::MAX,
            ratio_floor_bytes: 0,
        });
        let err = extract(&bomb, dest.path(), &mut budget).unwrap_err();
        match err {
            PackageError::UnzippedTooLarge {
                limit, attempted, ..
            } => {
                assert_eq!(limit, 8 * 1024 * 1024);
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
        // Pseudo-random, mostly incompressible, like a stripped release binary.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let binary: Vec<u8> = (0..5 * 1024 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let package = CodeZip::new()
            .executable("bootstrap", binary)
            .build()
            .unwrap();
        let dest = tempfile::tempdir().unwrap();
        let started = Instant::now();
        extract(&package, dest.path(), &mut default_budget()).unwrap();
        let elapsed = started.elapsed();
        eprintln!("extracted a 5 MiB single-binary zip in {elapsed:?}");
        assert_eq!(
            fs::metadata(dest.path().join("bootstrap")).unwrap().len(),
            5 * 1024 * 1024
        );
        assert!(elapsed.as_millis() < 500, "took {elapsed:?}");
    }
}
