//! Temporary files and directories beside an output: an output is built
//! under a hidden name (`.NAME.partial-XXXX`, and work directories named
//! `.imgpull-*-XXXX`) and renamed into place when complete, so nothing
//! that looks like output exists before it is.
//!
//! Each is held with a lock (`flock`) for as long as it is in use. A
//! process killed with SIGKILL cannot remove its own, so the next pull
//! beside the same output removes those whose lock is free
//! ([`clear_stale`]): an interrupted pull never leaves one behind for long,
//! and a pull still running keeps its own.

use super::{parent_dir, ExportError};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Prefixes of the work directories imgpull makes beside an output.
pub const WORK_PREFIXES: [&str; 3] = [
    ".imgpull-nocache-",
    ".imgpull-layers-",
    ".imgpull-oci-archive-",
];

/// `.NAME.partial-`: the prefix of `dest`'s own temporary names.
fn partial_prefix(dest: &Path) -> String {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    format!(".{name}.partial-")
}

/// A hidden temporary file beside `dest`, held while it lives; removed
/// when dropped unless persisted.
pub fn file_beside(dest: &Path) -> Result<tempfile::NamedTempFile, ExportError> {
    let dir = parent_dir(dest);
    let tmp = tempfile::Builder::new()
        .prefix(&partial_prefix(dest))
        .tempfile_in(&dir)
        .map_err(|e| ExportError::io(&dir, e))?;
    tmp.as_file()
        .try_lock()
        .map_err(|e| ExportError::io(tmp.path(), std::io::Error::other(e)))?;
    Ok(tmp)
}

/// A temporary directory, held while it lives; removed when dropped
/// unless kept.
pub struct Dir {
    dir: tempfile::TempDir,
    _lock: File,
}

impl Dir {
    /// Beside `dest`: `.NAME.partial-XXXX` (built to become `dest`), or a
    /// work directory with `prefix` (one of [`WORK_PREFIXES`]).
    pub fn beside(dest: &Path, prefix: Option<&str>) -> Result<Dir, ExportError> {
        let parent = parent_dir(dest);
        let prefix = prefix.map_or_else(|| partial_prefix(dest), str::to_string);
        Dir::new_in(&parent, &prefix)
    }

    /// In `parent`, with `prefix`.
    pub fn new_in(parent: &Path, prefix: &str) -> Result<Dir, ExportError> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(|e| ExportError::io(parent, e))?;
        let lock = File::open(dir.path()).map_err(|e| ExportError::io(dir.path(), e))?;
        lock.try_lock()
            .map_err(|e| ExportError::io(dir.path(), std::io::Error::other(e)))?;
        Ok(Dir { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Stop removing it on drop (it was renamed into place, or is removed
    /// by hand); the lock goes with this value.
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }
}

/// Remove what killed runs left beside `dest`: its own `.NAME.partial-*`
/// and imgpull's work directories, when no process holds them. Best
/// effort: what cannot be removed stays.
pub fn clear_stale(dest: &Path) {
    let parent = parent_dir(dest);
    let own = partial_prefix(dest);
    let Ok(rd) = std::fs::read_dir(&parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with(&own) || WORK_PREFIXES.iter().any(|p| name.starts_with(p));
        if !ours {
            continue;
        }
        let path = e.path();
        let Ok(f) = File::open(&path) else { continue };
        // Held: a pull still running.
        if f.try_lock().is_err() {
            continue;
        }
        let _ = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(_) => continue,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unheld_leftovers_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.tar");
        let held = file_beside(&dest).unwrap();
        let held_dir = Dir::beside(&dest, Some(WORK_PREFIXES[0])).unwrap();
        // What a killed run leaves: nobody holds them.
        let left = dir.path().join(".out.tar.partial-dead");
        std::fs::write(&left, b"half").unwrap();
        let left_dir = dir.path().join(".imgpull-layers-dead");
        std::fs::create_dir(&left_dir).unwrap();
        std::fs::write(left_dir.join("x"), b"").unwrap();
        let other = dir.path().join(".other.tar.partial-x");
        std::fs::write(&other, b"").unwrap();
        clear_stale(&dest);
        assert!(!left.exists() && !left_dir.exists());
        assert!(held.path().exists() && held_dir.path().exists());
        assert!(other.exists(), "another output's partial is not ours");
    }
}
