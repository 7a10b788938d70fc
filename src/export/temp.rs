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

/// Where a temporary name is made before it is locked: not a name
/// [`clear_stale`] looks at, so nothing can be taken for a leftover in the
/// moment between its creation and its lock.
const UNLOCKED: &str = ".imgpull-new-";

/// Lock `f` for as long as it is open. A filesystem without `flock` (some
/// network ones) is no reason to fail: the lock only guards cleanup.
fn hold(f: &File, path: &Path) -> Result<(), ExportError> {
    match f.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(ExportError::io(
            path,
            std::io::Error::other("held by another process"),
        )),
        Err(std::fs::TryLockError::Error(_)) => Ok(()),
    }
}

/// `prefix` + the random part of `made` (a name starting with `UNLOCKED`).
fn renamed(made: &Path, prefix: &str) -> PathBuf {
    let name = made
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    made.with_file_name(format!("{prefix}{}", name.trim_start_matches(UNLOCKED)))
}

/// A hidden temporary file beside `dest` (`.NAME.partial-XXXX`), held
/// while it lives; removed when dropped unless persisted (which renames it
/// while still held).
pub fn file_beside(dest: &Path) -> Result<tempfile::NamedTempFile, ExportError> {
    let dir = parent_dir(dest);
    let made = tempfile::Builder::new()
        .prefix(UNLOCKED)
        .tempfile_in(&dir)
        .map_err(|e| ExportError::io(&dir, e))?;
    hold(made.as_file(), made.path())?;
    let (file, path) = made.into_parts();
    let to = renamed(&path, &partial_prefix(dest));
    std::fs::rename(&path, &to).map_err(|e| ExportError::io(&to, e))?;
    let _ = path.keep();
    let path = tempfile::TempPath::try_from_path(&to).map_err(|e| ExportError::io(&to, e))?;
    Ok(tempfile::NamedTempFile::from_parts(file, path))
}

/// A temporary directory, held while it lives; removed when dropped
/// unless persisted.
pub struct Dir {
    path: PathBuf,
    lock: Option<File>,
    keep: bool,
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
        let made = tempfile::Builder::new()
            .prefix(UNLOCKED)
            .tempdir_in(parent)
            .map_err(|e| ExportError::io(parent, e))?
            .keep();
        let cleanup = |e: ExportError| {
            let _ = std::fs::remove_dir_all(&made);
            e
        };
        let lock = File::open(&made).map_err(|e| cleanup(ExportError::io(&made, e)))?;
        hold(&lock, &made).map_err(cleanup)?;
        let path = renamed(&made, prefix);
        std::fs::rename(&made, &path).map_err(|e| cleanup(ExportError::io(&path, e)))?;
        Ok(Dir {
            path,
            lock: Some(lock),
            keep: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rename it to `dest`, still held while it moves (so no cleanup can
    /// take it for a leftover on the way).
    pub fn persist(mut self, dest: &Path) -> Result<(), ExportError> {
        match std::fs::rename(&self.path, dest) {
            Ok(()) => {
                self.keep = true;
                Ok(())
            }
            Err(e) => Err(ExportError::io(dest, e)),
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
        self.lock.take();
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
