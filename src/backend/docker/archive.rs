//! A deployment as the tar uploaded at `/` (into its code volumes): the code at
//! `var/task`, the layers at `opt`. For OS-only runtimes, `/var/runtime/bootstrap` must
//! point at the function's bootstrap, where AWS's `provided` base images look for it: the
//! entrypoint wrapper links it (see `fence`), or, in an image without a shell, a tiny tar
//! of just that link ([`bootstrap_link`]) is uploaded into the container.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::deploy::Deployment;
use crate::error::BackendError;

const TASK_BOOTSTRAP: &str = "/var/task/bootstrap";
const OPT_BOOTSTRAP: &str = "/opt/bootstrap";

/// For `provided.*`: the bootstrap the runtime runs (the code's, else a layer's), as the
/// container sees it; Lambda's `Runtime.InvalidEntrypoint` when there is none.
pub(super) fn bootstrap(deployment: &Deployment) -> Result<Option<&'static str>, BackendError> {
    if !deployment.config.runtime.is_some_and(|r| r.is_provided()) {
        return Ok(None);
    }
    if is_executable(&deployment.task_dir().join("bootstrap")) {
        Ok(Some(TASK_BOOTSTRAP))
    } else if is_executable(&deployment.opt_dir().join("bootstrap")) {
        Ok(Some(OPT_BOOTSTRAP))
    } else {
        Err(BackendError::NoBootstrap {
            task: TASK_BOOTSTRAP.to_string(),
            opt: OPT_BOOTSTRAP.to_string(),
        })
    }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Builds the tar. Files are owned by root with modes 0644/0755 (executable bits kept),
/// as Lambda presents a deployment package. Blocking.
pub(super) fn build(deployment: &Deployment) -> std::io::Result<Vec<u8>> {
    let mut tar = builder();
    tar.append_dir_all("var/task", deployment.task_dir())?;
    tar.append_dir_all("opt", deployment.opt_dir())?;
    tar.into_inner()
}

/// The builder for a deployment's files. Plain entries only: Docker's untar refuses GNU
/// sparse entries (`unhandled tar header type 83`), which the `tar` crate writes by default
/// for any file with holes (seen in CI for a file of a pip-built layer).
fn builder() -> tar::Builder<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    tar.sparse(false);
    tar
}

/// A tar holding only `var/runtime/bootstrap` → `target`.
pub(super) fn bootstrap_link(target: &str) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "var/runtime/", std::io::empty())?;
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    tar.append_link(&mut link, "var/runtime/bootstrap", target)?;
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    #[test]
    fn a_file_with_holes_is_archived_as_a_plain_file_with_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = std::fs::File::create(dir.path().join("holes.bin")).unwrap();
        file.seek(SeekFrom::Start(1 << 20)).unwrap();
        file.write_all(b"end").unwrap();
        file.sync_all().unwrap();
        drop(file);
        let mut tar = builder();
        tar.append_dir_all("var/task", dir.path()).unwrap();
        let bytes = tar.into_inner().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut entry = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().ends_with("holes.bin"))
            .unwrap();
        assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        assert_eq!(content.len(), (1 << 20) + 3);
        assert!(content.ends_with(b"end") && content[..1 << 20].iter().all(|b| *b == 0));
    }
}
