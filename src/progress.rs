//! Progress events: the [`Reporter`] trait. The library reports; only the
//! CLI decides how (or whether) to draw.

use crate::oci::digest::Digest;

/// Where a blob download stands, besides bytes arriving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobState {
    /// Continuing from byte `from` (a partial from an earlier run, or
    /// after a reset).
    Resuming { from: u64 },
    /// What was held is dropped; from byte 0 again.
    StartingOver,
    /// Every byte is in; the digest is being checked.
    Verifying,
    /// Pushing: the registry had it already.
    AlreadyThere,
    /// Pushing: mounted from another repository of the registry.
    Mounted,
}

impl BlobState {
    pub fn name(&self) -> &'static str {
        match self {
            BlobState::Resuming { .. } => "resuming",
            BlobState::StartingOver => "starting over",
            BlobState::Verifying => "verifying",
            BlobState::AlreadyThere => "already there",
            BlobState::Mounted => "mounted",
        }
    }
}

/// Receives pull events. Every method has a no-op default; calls may come
/// from several tasks at once.
pub trait Reporter: Send + Sync {
    /// A blob is needed: `cached` when the cache already holds it.
    fn blob_start(&self, digest: &Digest, size: u64, cached: bool) {
        let _ = (digest, size, cached);
    }
    /// A blob of a push: `size` bytes to upload, unless the registry has
    /// it (then [`BlobState::AlreadyThere`] or [`BlobState::Mounted`]).
    fn blob_upload(&self, digest: &Digest, size: u64) {
        self.blob_start(digest, size, false)
    }
    /// `bytes` more bytes of `digest` arrived (or, pushing, were sent).
    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        let _ = (digest, bytes);
    }
    /// `digest` changed state (see [`BlobState`]).
    fn blob_state(&self, digest: &Digest, state: BlobState) {
        let _ = (digest, state);
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
    /// An image was pushed into a registry.
    fn pushed(&self, report: &PushReport) {
        let _ = report;
    }
}

/// What a push did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PushReport {
    /// `HOST/PATH:TAG` (or `@DIGEST`).
    pub destination: String,
    /// The digest the tag now names.
    pub digest: Option<Digest>,
    pub blobs: usize,
    pub uploaded: usize,
    pub present: usize,
    pub mounted: usize,
    pub bytes_uploaded: u64,
}

/// Reports nothing.
pub struct Silent;

impl Reporter for Silent {}
