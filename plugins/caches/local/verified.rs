//! Which committed blobs are known intact, and when each was last used.
//!
//! `verified/<hex>` records what the blob file looked like when its bytes
//! were last found to match their digest (at commit, or when re-hashed):
//! inode, size, modification time and change time. A blob whose file
//! still looks like that was not written since — the change time cannot
//! be set back by anyone, so an edit whose mtime was put back is caught
//! too; one that does not (edited, replaced, touched) is re-hashed before
//! it is used again, and removed if wrong. So a blob changed on disk is
//! never handed to an output, and a warm pull does not re-hash what
//! nothing touched. The record file's own mtime is the blob's last use
//! (the blob's own times must stay as they were). A lost or torn record
//! costs one re-hash, never a wrong blob.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

/// What a blob file looks like: inode, size, mtime, ctime (ns), links.
pub fn stamp(meta: &std::fs::Metadata) -> String {
    format!(
        "{} {} {}.{:09} {}.{:09} {}",
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.nlink()
    )
}

/// Whether two looks of a blob file show no write between them: equal,
/// or equal but for a link added or removed (an OCI layout linking the
/// blob, or removed: the change time moves with the link count then, while
/// inode, size and mtime stay). A write with its mtime put back moves the
/// change time alone.
pub fn alike(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (x, y): (Vec<&str>, Vec<&str>) = (
        a.split_whitespace().collect(),
        b.split_whitespace().collect(),
    );
    x.len() == 5 && y.len() == 5 && x[..3] == y[..3] && x[4] != y[4]
}

/// Whether `record` says the blob looked like `now` (see [`alike`]) when
/// it was verified.
pub fn matches(record: &Path, now: &str) -> bool {
    std::fs::read_to_string(record).is_ok_and(|old| alike(old.trim(), now))
}

/// Record `stamp` as a verified look of the blob. Best effort: a record
/// that cannot be written only costs a re-hash later.
pub fn write(record: &Path, stamp: &str) {
    if let Some(dir) = record.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = record.with_extension("tmp");
    if std::fs::write(&tmp, stamp).is_ok() && std::fs::rename(&tmp, record).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// `blob` was hardlinked by us (an OCI layout): record its new look if
/// only its links moved, so the next use needs no re-hash.
pub fn relinked(blob: &Path, record: &Path) {
    if let Ok(m) = std::fs::metadata(blob) {
        let now = stamp(&m);
        if matches(record, &now) {
            write(record, &now);
        }
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
    fn a_rewrite_is_noticed_even_with_its_mtime_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let (blob, rec) = (dir.path().join("b"), dir.path().join("v").join("b"));
        std::fs::write(&blob, b"abc").unwrap();
        let look = || stamp(&std::fs::metadata(&blob).unwrap());
        assert!(!matches(&rec, &look()), "no record yet");
        write(&rec, &look());
        assert!(matches(&rec, &look()));
        touch(&rec);
        assert!(matches(&rec, &look()), "a use is no change");
        let linked = dir.path().join("link");
        std::fs::hard_link(&blob, &linked).unwrap();
        assert!(
            matches(&rec, &look()),
            "a link moves the change time and the link count"
        );
        write(&rec, &look());
        let mtime = std::fs::metadata(&blob).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&linked, b"xyz").unwrap();
        let f = std::fs::File::options().append(true).open(&blob).unwrap();
        f.set_modified(mtime).unwrap();
        assert!(
            !matches(&rec, &look()),
            "same size, new bytes, mtime put back"
        );
    }
}
