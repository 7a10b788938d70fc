//! Small filesystem helpers shared by the cache and the exporters.

use std::path::Path;

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
