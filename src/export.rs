//! Writing a pulled image somewhere: the [`Exporter`] trait.

use crate::cache::{CacheBackend, CacheError};
use crate::digest::Digest;
use crate::manifest::ImageManifest;
use crate::platform::Platform;
use crate::reference::Reference;
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// One resolved image, all of whose blobs are in the cache.
#[derive(Clone, Debug)]
pub struct ExportImage {
    /// The reference as pulled (normalized).
    pub reference: Reference,
    /// The name to tag the output with (`None`: untagged, e.g. a pull by
    /// digest without `--tag`). Always carries a tag when set.
    pub tag: Option<Reference>,
    /// The image manifest, byte for byte as fetched, and its digest.
    pub manifest_bytes: Vec<u8>,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub manifest: ImageManifest,
    pub platform: Option<Platform>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{0}")]
    Invalid(String),
}

impl ExportError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ExportError {
        ExportError::Io {
            path: path.into(),
            source,
        }
    }
}

/// An output format.
///
/// Contract: `export` writes every image in `images` to `dest`, reading
/// blobs from `cache`. On `Ok`, `dest` is complete; on `Err`, nothing new
/// is left at `dest` (write to a temporary name, then rename), so a failed
/// or interrupted pull never leaves a file that looks complete.
#[async_trait]
pub trait Exporter: Send + Sync {
    /// The extension of default output names (`tar`), `None` for a directory.
    fn extension(&self) -> Option<&'static str>;

    async fn export(
        &self,
        images: &[ExportImage],
        cache: &dyn CacheBackend,
        dest: &Path,
    ) -> Result<(), ExportError>;
}
