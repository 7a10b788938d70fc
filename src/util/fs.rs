//! Small filesystem helpers shared by the cache and the exporters.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether tar outputs are fsynced before they are renamed into place (config
/// `sync_output`, `--sync`). Process-wide: set from the configuration when
/// an engine is made (the CLI makes one per run). An OCI layout directory,
/// which may be updated in place, always syncs copied blobs before its
/// `index.json` names them.
static SYNC_OUTPUT: AtomicBool = AtomicBool::new(false);

pub fn set_sync_output(on: bool) {
    SYNC_OUTPUT.store(on, Ordering::Relaxed);
}

/// Make a finished output durable when `sync_output` asks for it. Without
/// it an output is still never seen incomplete after a failed or killed
/// pull (it is renamed into place when written), but after a power cut
/// soon after, the file may show up empty or cut short under its name.
pub fn sync_output(file: &std::fs::File) -> std::io::Result<()> {
    if SYNC_OUTPUT.load(Ordering::Relaxed) {
        file.sync_all()?;
    }
    Ok(())
}

/// After an output was renamed into `dir`: make the rename durable too
/// (fsync the directory) when `sync_output` asks. Errors are ignored, as
/// some filesystems refuse to sync a directory.
pub fn sync_output_dir(dir: &Path) {
    if SYNC_OUTPUT.load(Ordering::Relaxed) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
}

/// [`start_writeback`] for an output, when it will be synced (otherwise
/// the kernel writes it back in its own time, off the pull's path).
pub fn start_output_writeback(file: &std::fs::File) {
    if SYNC_OUTPUT.load(Ordering::Relaxed) {
        start_writeback(file);
    }
}

/// The process's umask, read once (from `/proc/self/status`, which does
/// not change it; `umask(2)` would, for a moment, for every thread).
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("Umask:"))?;
                u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
            })
            // SAFETY: umask has no preconditions; it is set back at once.
            .unwrap_or_else(|| unsafe {
                let m = libc::umask(0o022);
                libc::umask(m);
                m as u32
            })
    })
}

/// The mode a new file gets from `open(2)` under the umask (0644 under the
/// usual 022, 0600 under 077).
pub fn file_mode() -> u32 {
    0o666 & !umask()
}

/// The mode a new directory gets from `mkdir(2)` under the umask.
pub fn dir_mode() -> u32 {
    0o777 & !umask()
}

/// Temporary files are created 0600; what we commit gets the mode any new
/// file would (readable by others only if the umask allows it, as
/// `docker save` output and `cp` copies are).
pub fn set_readable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(file_mode()))
}

/// A directory built under a temporary name (0700) gets the mode a new
/// directory would before it is renamed into place.
pub fn set_dir_mode(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(dir_mode()))
}

/// Ask the kernel to start writing `file`'s dirty pages now (without
/// waiting): the disk works while we hash, and the final fsync is short.
#[cfg(target_os = "linux")]
pub fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open fd; offset 0 / nbytes 0 means "to the end";
    // SYNC_FILE_RANGE_WRITE only starts writeback. Errors are harmless.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
pub fn start_writeback(_file: &std::fs::File) {}
