//! What an entry carries besides its bytes and mode: extended attributes
//! (PAX `SCHILY.xattr.*` records, as Docker and containerd write them) and
//! its modification time, restored as containerd's applier does — on the
//! entry itself, never through a symlink.
//!
//! Which attributes: `user.*` always; as root (the kernel allows nothing
//! else) `security.capability` (a `setcap` binary's), `trusted.*` and
//! POSIX ACLs (`system.posix_acl_*`). Never overlayfs's own (`*.overlay.*`:
//! a layer must not plant whiteouts or redirects for a later overlay mount
//! of the tree) nor the other `security.*` ones (SELinux labels, IMA and
//! EVM signatures belong to the host), as umoci does. One that cannot be
//! set is a warning, not a failure (a filesystem without xattrs, say).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The PAX records naming extended attributes.
const PREFIX: &str = "SCHILY.xattr.";

/// The `(name, value)` xattrs of an entry's PAX records.
pub fn xattrs<R: std::io::Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Vec::new();
    };
    exts.flatten()
        .filter_map(|e| {
            let name = e.key().ok()?.strip_prefix(PREFIX)?.to_string();
            Some((name, e.value_bytes().to_vec()))
        })
        .collect()
}

/// Whether attribute `name` may be set by this process.
fn allowed(name: &str, as_root: bool) -> bool {
    if name.contains(".overlay.") {
        return false;
    }
    name.starts_with("user.")
        || (as_root
            && (name == "security.capability"
                || name.starts_with("trusted.")
                || name.starts_with("system.posix_acl_")))
}

/// Set `attrs` on `path` (not following a symlink there). Returns what
/// could not be set, for a warning.
pub fn set_xattrs(path: &Path, attrs: &[(String, Vec<u8>)], as_root: bool) -> Vec<String> {
    let mut failed = Vec::new();
    let Ok(p) = CString::new(path.as_os_str().as_bytes()) else {
        return failed;
    };
    for (name, value) in attrs {
        if !allowed(name, as_root) {
            let root_would = name == "security.capability"
                || name.starts_with("trusted.")
                || name.starts_with("system.posix_acl_");
            let why = match !as_root && root_would && !name.contains(".overlay.") {
                true => "needs root",
                false => "not restored",
            };
            failed.push(format!("{name} ({why})"));
            continue;
        }
        let Ok(n) = CString::new(name.as_str()) else {
            continue;
        };
        // SAFETY: valid NUL-terminated strings and a buffer of `len` bytes.
        let r = unsafe {
            libc::lsetxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if r != 0 {
            failed.push(format!("{name} ({})", std::io::Error::last_os_error()));
        }
    }
    failed
}

/// Set `path`'s access and modification times to `mtime` (seconds), not
/// following a symlink there.
pub fn set_mtime(path: &Path, mtime: u64) -> std::io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a NUL in the path"))?;
    let secs = libc::time_t::try_from(mtime).unwrap_or(libc::time_t::MAX);
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: a valid path and two timespecs, as utimensat requires.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
