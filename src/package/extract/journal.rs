//! Steps 2 and 3 of extraction: write a planned archive, journalling every change so that
//! a failure can put `dest` back exactly as it was.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};

use super::plan::{Kind, PlannedEntry};
use super::{Archive, UnzippedBudget, malformed};
use crate::package::PackageError;
use crate::package::encode::PackedFile;

/// Where the planned files' contents come from: entry `index` of a zip archive, or
/// `files[index]` of a package built in memory.
pub(super) enum Bodies<'a> {
    /// `consumed` counts the bytes read from the archive, so the ratio check uses the
    /// compressed bytes an entry really consumed rather than the size it declares.
    Archive {
        archive: &'a mut Archive,
        consumed: &'a Cell<u64>,
    },
    Memory(&'a [PackedFile]),
}

const DEFAULT_FILE_MODE: u32 = 0o644;
const DEFAULT_DIR_MODE: u32 = 0o755;
pub(super) const COPY_BUFFER_BYTES: usize = 256 * 1024;

/// Everything one extraction changed under `dest`, so it can be undone.
///
/// All paths are physical: symlinked directories that already existed in `dest` are
/// resolved once, so two names for one location are recognised as the same path.
/// Dropping an uncommitted journal rolls back, so an error *or a panic* mid-extraction
/// leaves `dest` as it was.
pub(super) struct Journal {
    /// Canonical destination root.
    dest: PathBuf,
    /// Paths this extraction created, in creation order.
    created: Vec<PathBuf>,
    created_set: HashSet<PathBuf>,
    /// Final modes of the directories this extraction created.
    created_dir_modes: HashMap<PathBuf, u32>,
    /// Pre-existing paths moved aside: (original, backup).
    displaced: Vec<(PathBuf, PathBuf)>,
    /// Where displaced paths wait, inside `dest` so that moving them is a rename.
    staging: Option<tempfile::TempDir>,
    /// Physical directory for each normalised directory path already ensured.
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
    pub(super) fn begin(dest: &Path) -> Result<Self, PackageError> {
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
                    missing.push(probe);
                    match probe.parent() {
                        Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
                        _ => break,
                    }
                }
                Err(e) => return Err(io_error(probe)(e)),
            }
        }
        for dir in missing.into_iter().rev() {
            fs::create_dir(dir).map_err(io_error(dir))?;
            // Journal the physical spelling, like every path derived from the root below,
            // or rollback would not recognise it.
            let real = fs::canonicalize(dir).map_err(io_error(dir))?;
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
    pub(super) fn apply(
        &mut self,
        bodies: &mut Bodies<'_>,
        plan: &[PlannedEntry],
        budget: &UnzippedBudget,
    ) -> Result<u64, PackageError> {
        let mut written_total = 0u64;
        let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
        // Symlinks go last so that no file is ever written through a link this archive made.
        for entry in plan {
            match entry.kind {
                Kind::Dir => {
                    let dir = self.ensure_dir(&entry.name, &entry.components)?;
                    if let (Some(mode), Some(slot)) =
                        (entry.mode, self.created_dir_modes.get_mut(&dir))
                    {
                        *slot = mode;
                    }
                }
                Kind::File => {
                    let charged_before = budget.used() + written_total;
                    let mut copy = EntryCopy {
                        entry,
                        budget,
                        charged_before,
                        buffer: &mut buffer,
                    };
                    written_total += self.write_file(bodies, &mut copy)?;
                }
                Kind::Symlink { .. } => {}
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
        let Some((leaf, parents)) = components.split_last() else {
            return Ok(self.dest.clone());
        };
        let path = self.ensure_dir(name, parents)?.join(leaf);
        let physical = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.create_dir(&path)?;
                path
            }
            Err(e) => return Err(io_error(&path)(e)),
            Ok(meta) if meta.is_dir() => path,
            // An earlier layer's symlinked directory: write through it, as unzip would, but
            // only while it stays inside `dest`.
            Ok(meta) if meta.file_type().is_symlink() => match self.contained_dir(&path) {
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
            // Two entries reached one location through an earlier layer's symlink.
            return Err(PackageError::UnsafeEntry {
                name: name.to_owned(),
                reason: format!(
                    "resolves to {}, which another entry of this archive already wrote",
                    path.display()
                ),
            });
        }
        let staging = match &self.staging {
            Some(staging) => staging.path().to_path_buf(),
            None => {
                let staging = tempfile::Builder::new()
                    .prefix(".lambda-testkit-replaced-")
                    .tempdir_in(&self.dest)
                    .map_err(io_error(&self.dest))?;
                let path = staging.path().to_path_buf();
                self.staging = Some(staging);
                path
            }
        };
        let backup = staging.join(self.displaced.len().to_string());
        fs::rename(path, &backup).map_err(io_error(path))?;
        self.displaced.push((path.to_path_buf(), backup));
        Ok(())
    }

    /// Frees the final path component for a new file or symlink and returns its path.
    fn prepare_leaf(&mut self, entry: &PlannedEntry) -> Result<PathBuf, PackageError> {
        let (leaf, parents) = entry
            .components
            .split_last()
            .expect("planned entries have at least one component");
        let path = self.ensure_dir(&entry.name, parents)?.join(leaf);
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
        bodies: &mut Bodies<'_>,
        copy: &mut EntryCopy<'_>,
    ) -> Result<u64, PackageError> {
        let path = self.prepare_leaf(copy.entry)?;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?;
        self.record_created(path.clone(), None);
        let written = copy.run(bodies, &mut out, &path)?;
        let mode = copy.entry.mode.unwrap_or(DEFAULT_FILE_MODE);
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
        // link higher up than its name says, so check where it really is.
        let depth = path
            .parent()
            .and_then(|parent| parent.strip_prefix(&self.dest).ok())
            .map_or(0, |relative| relative.components().count());
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

    fn apply_dir_modes(&self) -> Result<(), PackageError> {
        // Deepest first: a parent losing its search bit must not block its children.
        let mut dirs: Vec<_> = self.created_dir_modes.iter().collect();
        dirs.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (path, mode) in dirs {
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).map_err(io_error(path))?;
        }
        Ok(())
    }

    /// Keeps everything written and discards what it replaced.
    pub(super) fn commit(mut self) {
        self.committed = true;
        if let Some(staging) = self.staging.take() {
            // Best effort: what it holds is garbage now, and a leftover is harmless.
            let _ = staging.close();
        }
    }

    fn rollback(&mut self) {
        // Best effort throughout: the first error is already on its way to the caller.
        for dir in self.created_dir_modes.keys() {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
        for path in self.created.iter().rev() {
            let _ = match fs::symlink_metadata(path) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
                Ok(_) => fs::remove_file(path),
                Err(_) => Ok(()),
            };
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
    fn drop(&mut self) {
        if !self.committed {
            self.rollback();
        }
    }
}

/// Writes one file entry to disk, enforcing the budget (and for an archive the ratio) on
/// real bytes.
struct EntryCopy<'a> {
    entry: &'a PlannedEntry,
    budget: &'a UnzippedBudget,
    /// Bytes charged before this entry: earlier extractions plus earlier entries.
    charged_before: u64,
    buffer: &'a mut [u8],
}

impl EntryCopy<'_> {
    fn run(
        &mut self,
        bodies: &mut Bodies<'_>,
        out: &mut fs::File,
        path: &Path,
    ) -> Result<u64, PackageError> {
        let (archive, consumed) = match bodies {
            Bodies::Memory(files) => {
                // One write, no copy through the buffer: the bytes are already in memory.
                let bytes = &files[self.entry.index].bytes;
                self.check_budget(bytes.len() as u64)?;
                out.write_all(bytes).map_err(io_error(path))?;
                return Ok(bytes.len() as u64);
            }
            Bodies::Archive { archive, consumed } => (archive, consumed),
        };
        let name = &self.entry.name;
        let corrupt = |e: &dyn std::fmt::Display| malformed(format!("entry {name:?}: {e}"));
        let mut reader = archive
            .by_index(self.entry.index)
            .map_err(|e| corrupt(&e))?;
        let consumed_at_start = consumed.get();
        let limits = self.budget.limits();
        let mut written = 0u64;
        loop {
            let n = match reader.read(self.buffer) {
                Ok(0) => return Ok(written),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(&e)),
            };
            written += n as u64;
            // Both checks run before the chunk is written, so a bomb never puts more than
            // the limit on disk.
            self.check_budget(written)?;
            let compressed = consumed.get() - consumed_at_start;
            if written > limits.ratio_floor_bytes
                && written > limits.max_ratio.saturating_mul(compressed.max(1))
            {
                return Err(PackageError::CompressionRatioExceeded {
                    entry: name.clone(),
                    max_ratio: limits.max_ratio,
                    compressed,
                    uncompressed: written,
                });
            }
            out.write_all(&self.buffer[..n]).map_err(io_error(path))?;
        }
    }

    /// Fails when `written` bytes of this entry would take the budget over its limit.
    fn check_budget(&self, written: u64) -> Result<(), PackageError> {
        let limit = self.budget.limits().max_unzipped_bytes;
        let attempted = self.charged_before + written;
        if attempted > limit {
            return Err(PackageError::UnzippedTooLarge {
                entry: self.entry.name.clone(),
                limit,
                attempted,
            });
        }
        Ok(())
    }
}
