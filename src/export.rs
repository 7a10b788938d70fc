//! Writing pulled images somewhere: the [`Exporter`] trait.

use crate::cache::{CacheBackend, CacheError};
use crate::digest::Digest;
use crate::manifest::ImageManifest;
use crate::platform::Platform;
use crate::reference::Reference;
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// One pulled reference: one or several platform manifests, all of whose
/// blobs are in the cache.
#[derive(Clone, Debug)]
pub struct ExportImage {
    /// The reference as pulled (normalized).
    pub reference: Reference,
    /// The name to tag the output with (`None`: untagged, e.g. a pull by
    /// digest without `--tag`). Always carries a tag when set.
    pub tag: Option<Reference>,
    /// One per platform, in the order asked (at least one). Formats with
    /// one tag per manifest tag the first.
    pub manifests: Vec<ExportManifest>,
}

/// One image manifest, byte for byte as fetched.
#[derive(Clone, Debug)]
pub struct ExportManifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
    pub manifest: ImageManifest,
    /// The platform the index named for it, if it came from an index.
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
/// at `dest` looks complete (write to a temporary name, then rename), so a
/// failed or interrupted pull never leaves a file that passes for output.
#[async_trait]
pub trait Exporter: Send + Sync {
    /// The extension of default output names (`tar`), `None` for a directory.
    fn extension(&self) -> Option<&'static str>;

    /// Whether a layer may be written uncompressed (named by its diff_id)
    /// instead of the registry's compressed blob, as `docker save` does.
    /// Lets a pull use layers imported from a `docker save` tar.
    fn accepts_uncompressed_layers(&self) -> bool {
        false
    }

    async fn export(
        &self,
        images: &[ExportImage],
        cache: &dyn CacheBackend,
        dest: &Path,
    ) -> Result<(), ExportError>;
}

/// Where an exported blob lives in an OCI layout / docker archive.
pub fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm_name(), d.hex())
}

/// The annotations naming an image in an OCI index, as Docker 25+ and
/// containerd write them.
pub fn name_annotations(tag: &Reference) -> serde_json::Value {
    let t = tag.tag.clone().unwrap_or_default();
    serde_json::json!({
        "io.containerd.image.name": format!("{}:{t}", tag.name()),
        "org.opencontainers.image.ref.name": t,
    })
}

/// The directory `dest` is in (`.` for a bare name).
pub fn parent_dir(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A tar being written under a hidden temporary name beside its
/// destination; [`TarOut::finish`] makes it durable and renames it into
/// place, and dropping it unfinished removes it.
pub struct TarOut {
    pub tar: tar::Builder<std::io::BufWriter<std::fs::File>>,
    tmp: tempfile::NamedTempFile,
}

impl TarOut {
    pub fn create(dest: &Path) -> Result<TarOut, ExportError> {
        let dir = parent_dir(dest);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempfile_in(&dir)
            .map_err(|e| ExportError::io(&dir, e))?;
        let file = tmp
            .as_file()
            .try_clone()
            .map_err(|e| ExportError::io(tmp.path(), e))?;
        let tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, file));
        Ok(TarOut { tar, tmp })
    }

    /// Map an I/O error to one naming the temporary file.
    pub fn err(&self, e: std::io::Error) -> ExportError {
        ExportError::io(self.tmp.path(), e)
    }

    pub fn finish(self, dest: &Path) -> Result<(), ExportError> {
        use std::io::Write;
        let path = self.tmp.path().to_path_buf();
        let io = |e: std::io::Error| ExportError::io(&path, e);
        let mut out = self.tar.into_inner().map_err(io)?;
        out.flush().map_err(io)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        crate::fsutil::set_readable(&path).map_err(io)?;
        self.tmp
            .persist(dest)
            .map_err(|e| ExportError::io(dest, e.error))?;
        Ok(())
    }
}
