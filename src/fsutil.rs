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

/// Temporary files are created 0600; what we commit is meant to be read by
/// others as `docker save` output and cached blobs are (0644).
pub fn set_readable(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
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
