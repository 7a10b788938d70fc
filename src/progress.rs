//! Progress events: the [`Reporter`] trait. The library reports; only the
//! CLI decides how (or whether) to draw.

use crate::digest::Digest;

/// Receives pull events. Every method has a no-op default; calls may come
/// from several tasks at once.
pub trait Reporter: Send + Sync {
    /// A blob is needed: `cached` when the cache already holds it.
    fn blob_start(&self, digest: &Digest, size: u64, cached: bool) {
        let _ = (digest, size, cached);
    }
    /// `bytes` more bytes of `digest` arrived.
    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        let _ = (digest, bytes);
    }
    /// `digest` is verified and committed to the cache.
    fn blob_done(&self, digest: &Digest) {
        let _ = digest;
    }
    /// A line of information for the person (`-v`).
    fn info(&self, message: &str) {
        let _ = message;
    }
    /// Something the person should know even without `-v` (not with `-q`).
    fn warn(&self, message: &str) {
        let _ = message;
    }
}

/// Reports nothing.
pub struct Silent;

impl Reporter for Silent {}
