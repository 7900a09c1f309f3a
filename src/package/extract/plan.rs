//! Step 1 of extraction: check the whole archive before anything touches the disk.

use std::collections::HashMap;
use std::io::Read as _;

use zip::CompressionMethod;

use super::{Archive, malformed};
use crate::package::PackageError;
use crate::package::encode::PackedFile;

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
/// Linux's `PATH_MAX` counts the terminating NUL.
const MAX_SYMLINK_TARGET_BYTES: u64 = 4095;

/// What an entry becomes on disk.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
    /// A symlink whose `target` has `leading_parents` leading `..` components and no others.
    Symlink {
        target: String,
        leading_parents: usize,
    },
}

/// An entry that passed every check that can be made without the disk.
#[derive(Debug)]
pub(super) struct PlannedEntry {
    /// Index in the archive's central directory.
    pub(super) index: usize,
    /// The name as stored, for error messages.
    pub(super) name: String,
    /// Normal path components below the destination; never empty.
    pub(super) components: Vec<String>,
    pub(super) kind: Kind,
    /// Permission bits (`0o777` mask) from the external attributes, when present.
    pub(super) mode: Option<u32>,
}

/// Validates every entry of `archive`: names, kinds, symlink targets and layout.
pub(super) fn plan(archive: &mut Archive) -> Result<Vec<PlannedEntry>, PackageError> {
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
        // UTF-8 when it decodes as such, else CP437 (APPNOTE appendix D), like unzip.
        let name = file
            .name()
            .map_err(|e| malformed(format!("entry #{index}: {e}")))?
            .into_owned();
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
                let mut target = Vec::new();
                (&mut file)
                    .take(MAX_SYMLINK_TARGET_BYTES + 1)
                    .read_to_end(&mut target)
                    .map_err(|e| malformed(format!("entry {name:?}: {e}")))?;
                let parent_depth = components.len().saturating_sub(1);
                let (target, leading_parents) =
                    check_symlink_target(target, parent_depth).map_err(unsafe_entry)?;
                Kind::Symlink {
                    target,
                    leading_parents,
                }
            }
            Some(S_IFDIR) => Kind::Dir,
            _ if name.ends_with('/') => Kind::Dir,
            None | Some(0 | S_IFREG) => Kind::File,
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
        });
    }
    check_layout(&entries)?;
    Ok(entries)
}

/// The plan of a package built in memory: every file, its mode, in order. Names were
/// validated by the builder; they are normalised and laid out here all the same, so both
/// kinds of package pass the same checks before anything is written.
pub(super) fn plan_files(files: &[PackedFile]) -> Result<Vec<PlannedEntry>, PackageError> {
    let entries = files
        .iter()
        .enumerate()
        .map(|(index, file)| {
            let components =
                normalise_entry_name(&file.path).map_err(|reason| PackageError::UnsafeEntry {
                    name: file.path.clone(),
                    reason,
                })?;
            Ok(PlannedEntry {
                index,
                name: file.path.clone(),
                components,
                kind: Kind::File,
                mode: Some(file.mode & 0o777),
            })
        })
        .collect::<Result<Vec<_>, PackageError>>()?;
    check_layout(&entries)?;
    Ok(entries)
}

/// Splits an entry name into normal components, refusing anything that could resolve
/// outside the destination on any platform. Empty and `.` components are dropped, as
/// unzip does.
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
        // Windows tools write '\' as a separator: on Linux it would become part of a file
        // name, and any Windows-side consumer could climb out with "..\".
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

/// Accepts a symlink target that stays below the destination when the link's parent is
/// `parent_depth` directories deep; returns it with its count of leading `..` components.
///
/// `..` is only allowed before any normal component: the kernel resolves `a/..` through
/// `a`, which may itself be a symlink, so a later `..` could climb out even when the text
/// looks contained.
fn check_symlink_target(target: Vec<u8>, parent_depth: usize) -> Result<(String, usize), String> {
    if target.len() as u64 > MAX_SYMLINK_TARGET_BYTES {
        return Err("symlink target is longer than PATH_MAX".to_owned());
    }
    let target =
        String::from_utf8(target).map_err(|_| "symlink target is not valid UTF-8".to_owned())?;
    if target.is_empty() {
        return Err("symlink target is empty".to_owned());
    }
    check_path_text(&target).map_err(|reason| format!("symlink target {target:?}: {reason}"))?;
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
    Ok((target, leading_parents))
}

/// Rejects entries that disagree on whether a path is a directory, and duplicates.
fn check_layout(entries: &[PlannedEntry]) -> Result<(), PackageError> {
    #[derive(PartialEq)]
    enum Seen {
        Dir,
        Leaf,
    }
    let mut seen: HashMap<String, Seen> = HashMap::with_capacity(entries.len() * 2);
    for entry in entries {
        let clash = |reason: String| PackageError::UnsafeEntry {
            name: entry.name.clone(),
            reason,
        };
        let mut path = String::new();
        for (i, component) in entry.components.iter().enumerate() {
            if i > 0 {
                path.push('/');
            }
            path.push_str(component);
            let is_leaf = i + 1 == entry.components.len() && entry.kind != Kind::Dir;
            let wanted = if is_leaf { Seen::Leaf } else { Seen::Dir };
            match (seen.get(&path), wanted) {
                (None, wanted) => {
                    seen.insert(path.clone(), wanted);
                }
                (Some(Seen::Dir), Seen::Dir) => {}
                (Some(Seen::Leaf), Seen::Leaf) => {
                    return Err(clash(format!(
                        "names {path:?}, which an earlier entry already names"
                    )));
                }
                (Some(Seen::Leaf), Seen::Dir) => {
                    return Err(clash(format!(
                        "needs {path:?} to be a directory, but another entry makes it a file \
                         or symlink"
                    )));
                }
                (Some(Seen::Dir), Seen::Leaf) => {
                    return Err(clash(format!(
                        "makes {path:?} a file or symlink, but another entry uses it as a \
                         directory"
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_drop_empty_and_dot_components() {
        assert_eq!(normalise_entry_name("./a//b/./c").unwrap(), ["a", "b", "c"]);
        assert_eq!(normalise_entry_name("dir/").unwrap(), ["dir"]);
        assert!(normalise_entry_name("./").unwrap().is_empty());
    }

    #[test]
    fn entry_names_that_could_escape_are_refused() {
        for name in [
            "../x",
            "a/../../x",
            "a/..",
            "/etc/x",
            "C:/x",
            "c:x",
            "a\\..\\x",
            "a\0b",
        ] {
            assert!(normalise_entry_name(name).is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn symlink_targets_may_climb_only_as_deep_as_the_link_sits() {
        let check = |target: &str, depth| check_symlink_target(target.as_bytes().to_vec(), depth);
        assert_eq!(check("../pkg/cli.js", 1).unwrap().1, 1);
        assert_eq!(check("./libfoo.so.1", 0).unwrap().1, 0);
        assert_eq!(check("../../x", 2).unwrap().1, 2);
        assert!(check("../../x", 1).is_err());
        assert!(check("..", 0).is_err());
        assert!(
            check("a/../..", 5).is_err(),
            "'..' after a normal component"
        );
        assert!(check("/etc/passwd", 5).is_err());
        assert!(check("", 5).is_err());
        assert!(check(&"a/".repeat(2048), 0).is_err(), "over PATH_MAX");
        assert!(
            check_symlink_target(vec![0xFF, 0xFE], 0).is_err(),
            "not UTF-8"
        );
    }
}
