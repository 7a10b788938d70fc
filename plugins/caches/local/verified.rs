//! Which committed blobs are known intact, and when each was last used.
//!
//! `verified/<hex>` records what the blob file looked like when its bytes
//! were last found to match their digest (at commit, or when re-hashed):
//! its inode, size and modification time. A blob whose file still looks
//! like that was not written since; one that does not (edited in place,
//! replaced) is re-hashed before it is used again, and removed if wrong.
//! So a blob changed on disk is never handed to an output, and a warm pull
//! does not re-hash what nothing touched. The record file's own mtime is
//! the blob's last use (the blob's mtime must stay as it was committed).
//! A lost or torn record costs one re-hash, never a wrong blob.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

/// What a blob file looks like: inode, size, mtime (ns).
fn stamp(meta: &std::fs::Metadata) -> String {
    format!(
        "{} {} {}.{:09}",
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

/// Whether `blob` still looks as `record` says it did when verified.
pub fn unchanged(blob: &Path, record: &Path) -> bool {
    let (Ok(meta), Ok(text)) = (std::fs::metadata(blob), std::fs::read_to_string(record)) else {
        return false;
    };
    text.trim() == stamp(&meta)
}

/// Record that `blob`, as it is now, holds the right bytes. Best effort: a
/// record that cannot be written only costs a re-hash later.
pub fn record(blob: &Path, record: &Path) {
    let Ok(meta) = std::fs::metadata(blob) else { return };
    if let Some(dir) = record.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = record.with_extension("tmp");
    if std::fs::write(&tmp, stamp(&meta)).is_ok() && std::fs::rename(&tmp, record).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Mark a use now (the record's mtime).
pub fn touch(record: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(record) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// The last use: the record's mtime, else the blob's own.
pub fn last_use(blob_meta: &std::fs::Metadata, record: &Path) -> Option<SystemTime> {
    std::fs::metadata(record)
        .and_then(|m| m.modified())
        .or_else(|_| blob_meta.modified())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let (blob, rec) = (dir.path().join("b"), dir.path().join("v").join("b"));
        std::fs::write(&blob, b"abc").unwrap();
        assert!(!unchanged(&blob, &rec), "no record yet");
        record(&blob, &rec);
        assert!(unchanged(&blob, &rec));
        touch(&rec);
        assert!(unchanged(&blob, &rec), "a use is no change");
        let linked = dir.path().join("link");
        std::fs::hard_link(&blob, &linked).unwrap();
        assert!(unchanged(&blob, &rec), "a hardlink is no change");
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&linked, b"xyz").unwrap();
        assert!(!unchanged(&blob, &rec), "same size, new bytes");
    }
}
