//! The content-addressed blob store: the [`CacheBackend`] trait.
//!
//! A backend holds blobs by digest. Whatever the backend, one rule holds:
//! nothing is ever readable under a digest name that it does not match.
//! Bytes arrive through a [`BlobWriter`], which hashes and counts them and
//! only makes them visible, atomically, once digest and size both match.

use crate::digest::Digest;
use async_trait::async_trait;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    #[error("cache I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("integrity error: blob {expected} has digest {found}; it was not stored")]
    DigestMismatch { expected: Digest, found: Digest },
    #[error(
        "integrity error: blob {digest} should be {expected} bytes, got {found}; it was not stored"
    )]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        found: u64,
    },
    #[error("cannot verify {0}: only sha256 digests are supported")]
    UnsupportedDigest(Digest),
    #[error("blob {0} is not in the cache")]
    Missing(Digest),
}

impl CacheError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> CacheError {
        CacheError::Io {
            path: path.into(),
            source,
        }
    }
}

/// A blob store keyed by digest.
///
/// Contract:
/// - `stat` returns the size of a complete, committed blob, or `None`.
/// - `begin` returns a writer for one blob; dropping it without `commit`
///   leaves nothing under the digest name.
/// - `blob_path` names a local file holding exactly the blob's bytes, valid
///   for the rest of the pull (exporters link or copy from it).
/// - Several writers for the same digest may run at once (several pulls on
///   one cache); the first commit wins and the others are discarded.
#[async_trait]
pub trait CacheBackend: Send + Sync {
    /// Name and location, for messages (`local (/path/to/cache)`).
    fn describe(&self) -> String;

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, CacheError>;

    async fn begin(&self, digest: &Digest, size: u64) -> Result<Box<dyn BlobWriter>, CacheError>;

    fn blob_path(&self, digest: &Digest) -> Result<PathBuf, CacheError>;

    /// Read a small blob (a config, a manifest) whole.
    async fn read(&self, digest: &Digest) -> Result<Vec<u8>, CacheError> {
        let path = self.blob_path(digest)?;
        tokio::fs::read(&path)
            .await
            .map_err(|e| CacheError::io(path, e))
    }
}

/// One blob on its way into the cache.
#[async_trait]
pub trait BlobWriter: Send {
    /// Append bytes. Fails early with `SizeMismatch` when more bytes arrive
    /// than the descriptor announced.
    async fn write(&mut self, chunk: &[u8]) -> Result<(), CacheError>;

    /// Check size and digest, make the blob durable and visible under its
    /// digest. On `Err` nothing was committed and the partial is gone.
    async fn commit(self: Box<Self>) -> Result<(), CacheError>;
}
