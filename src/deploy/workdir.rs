//! An emulator's work directory (extracted code and layers), and the reaping of those
//! whose emulator died without cleaning up (its test process SIGKILLed).
//!
//! Each work directory `lambda-testkit-XXXXXX` holds a lock file, `.owner.lock`, that its
//! emulator keeps an exclusive `flock` on for as long as it lives. The kernel drops the
//! lock when the process dies however it dies, so a directory whose lock can be taken has
//! no owner: [`reap_abandoned`] removes it. The lock is taken on a temporary name and then
//! renamed into place, so a reaper never sees `.owner.lock` unlocked while its owner is
//! still starting. The file is opened close-on-exec: runtimes do not inherit it, and the
//! lock ends with the emulator's process (not with its orphans). Directories without the
//! file (not ours, or from a version before this one) are left alone.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

const PREFIX: &str = "lambda-testkit-";
const LOCK: &str = ".owner.lock";

/// A live work directory: removed when dropped.
#[derive(Debug)]
pub(crate) struct WorkDir {
    // Field order: the directory goes before its lock is released.
    dir: tempfile::TempDir,
    _lock: File,
}

impl WorkDir {
    /// Makes a fresh work directory under `parent`.
    pub(crate) fn create(parent: &Path) -> std::io::Result<WorkDir> {
        let dir = tempfile::Builder::new().prefix(PREFIX).tempdir_in(parent)?;
        let staging = dir.path().join(".owner.lock.new");
        let lock = File::create(&staging)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        std::fs::rename(&staging, dir.path().join(LOCK))?;
        Ok(WorkDir { dir, _lock: lock })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Reaps abandoned work directories under `parent` once per process, in the background
/// (removing trees costs disk time); called at every emulator start.
pub(crate) fn reap_in_background(parent: &Path) {
    static REAPED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    let fresh = REAPED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(parent.to_path_buf());
    if fresh {
        let parent = parent.to_path_buf();
        std::thread::spawn(move || reap_abandoned(&parent));
    }
}

/// Removes every work directory under `parent` whose emulator is gone, and returns how
/// many. Safe to run beside live emulators: a locked directory is never touched.
pub(crate) fn reap_abandoned(parent: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let mut reaped = 0;
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let Ok(lock) = File::open(entry.path().join(LOCK)) else {
            continue;
        };
        // Taken: nobody holds it, the owner is dead. Held while the tree goes, so that
        // two reapers do not race on it.
        let taken = rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive);
        if taken.is_ok() && std::fs::remove_dir_all(entry.path()).is_ok() {
            reaped += 1;
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_work_directory_is_kept_and_an_abandoned_one_is_reaped() {
        let parent = tempfile::tempdir().unwrap();
        let live = WorkDir::create(parent.path()).unwrap();
        std::fs::write(live.path().join("code"), b"x").unwrap();
        // An abandoned one: its lock file exists, nobody holds it (as after a SIGKILL).
        let dead = parent.path().join("lambda-testkit-dead");
        std::fs::create_dir_all(dead.join("task")).unwrap();
        std::fs::write(dead.join(LOCK), b"").unwrap();
        // Not ours: no lock file.
        let foreign = parent.path().join("lambda-testkit-foreign");
        std::fs::create_dir(&foreign).unwrap();

        assert_eq!(reap_abandoned(parent.path()), 1);
        assert!(!dead.exists());
        assert!(foreign.exists());
        assert!(live.path().join("code").exists());
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists(), "a dropped work directory is removed");
    }
}
