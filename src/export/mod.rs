//! Writing pulled images somewhere: the [`Exporter`] trait.

use crate::cache::{CacheBackend, CacheError};
use crate::oci::digest::Digest;
use crate::oci::manifest::{ImageConfig, ImageManifest};
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::progress::Reporter;
use async_trait::async_trait;
use std::path::{Path, PathBuf};

pub mod live;
pub mod locations;
pub mod placed;
pub mod push;
pub mod tar_out;
pub mod temp;
mod uncompress;
pub use live::{LiveOutput, SlotId};
pub use placed::PlacedTar;
pub use tar_out::{Entry, TarOut};
pub use uncompress::Uncompressed;

/// Where an exporter writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// A file or a directory: every format that writes files.
    Path(PathBuf),
    /// An image in a registry (`docker://HOST/PATH:TAG`), for an exporter
    /// that pushes; the others refuse it.
    Reference(Reference),
}

impl Destination {
    /// The path of a file or directory destination; an exporter that writes
    /// files refuses a registry reference with a clear error.
    pub fn path(&self) -> Result<&Path, ExportError> {
        match self {
            Destination::Path(p) => Ok(p),
            Destination::Reference(r) => Err(ExportError::Invalid(format!(
                "this format writes files; docker://{r} is an image in a registry"
            ))),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Path(p) => write!(f, "{}", p.display()),
            Destination::Reference(r) => write!(f, "docker://{r}"),
        }
    }
}

/// What an exporter may use besides the images: the cache holding their
/// blobs, where to report, and registries to write to.
pub struct ExportContext<'a> {
    pub cache: &'a dyn CacheBackend,
    pub reporter: &'a dyn Reporter,
    pub registries: &'a dyn Registries,
}

/// Registry access through the engine, for an exporter whose destination
/// is a [`Destination::Reference`]: a client connected as pulls connect
/// (TLS, proxies, the credentials configured for that registry), never
/// sending them anywhere else.
#[async_trait]
pub trait Registries: Send + Sync {
    /// A client for `reference`'s registry.
    async fn client(
        &self,
        reference: &Reference,
    ) -> Result<crate::registry::RegistryClient, ExportError>;
}

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
    /// The index the manifests were chosen from, byte for byte (`None`
    /// for a single image): what a copy into a registry tags, when every
    /// manifest it names is among `manifests`.
    pub top: Option<ExportIndex>,
}

/// An index as fetched.
#[derive(Clone, Debug)]
pub struct ExportIndex {
    pub bytes: bytes::Bytes,
    pub digest: Digest,
    pub media_type: String,
}

/// One image manifest, byte for byte as fetched.
#[derive(Clone, Debug)]
pub struct ExportManifest {
    pub bytes: bytes::Bytes,
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
    #[error(transparent)]
    Unpack(#[from] crate::layer::unpack::UnpackError),
    /// The registry an exporter writes to failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// A layer's uncompressed bytes do not hash to its diff_id.
    #[error("integrity error: layer {layer}: {source}")]
    DiffId {
        layer: Digest,
        source: crate::layer::LayerError,
    },
    /// A layer breaks a limit (README "Limits").
    #[error("layer {layer} refused: {source}")]
    Refused {
        layer: Digest,
        source: crate::layer::GuardError,
    },
}

impl ExportError {
    /// The error of uncompressing layer `layer` (blob file `path`).
    pub fn layer(layer: &Digest, path: &Path, e: crate::layer::LayerError) -> ExportError {
        use crate::layer::LayerError as L;
        match e {
            L::Refused(source) => ExportError::Refused {
                layer: layer.clone(),
                source,
            },
            e @ L::DiffIdMismatch { .. } => ExportError::DiffId {
                layer: layer.clone(),
                source: e,
            },
            L::Io(e) => ExportError::io(path, e),
        }
    }
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
/// Contract: `export` writes every image in `images` to `dest` (a path, or
/// an image reference for an exporter that pushes: see [`Destination`]),
/// reading blobs from `cx.cache` (through [`CacheBackend::source`], never
/// assuming a local file); warnings go to `cx.reporter`. On `Ok`, `dest` is
/// complete; on `Err`, nothing new
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

    /// An output laid out before the layers arrive (their sizes are in the
    /// manifests), so their bytes can go into it as they download: the
    /// engine fetches the layers of `images` with it, then calls
    /// [`LiveOutput::finish`] instead of `export`. `Ok(None)` (the default):
    /// `export` once everything is cached. Same contract on `dest`.
    fn live(
        &self,
        images: &[ExportImage],
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<Option<std::sync::Arc<dyn LiveOutput>>, ExportError> {
        let _ = (images, dest, cx);
        Ok(None)
    }

    async fn export(
        &self,
        images: &[ExportImage],
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<(), ExportError>;

    /// Blobs of `images` that `dest` holds already (a registry that has
    /// them): the engine does not download them, so `export` and `finish`
    /// must do without them in the cache. The default: none.
    async fn already_there(
        &self,
        images: &[ExportImage],
        dest: &Destination,
        cx: &ExportContext<'_>,
    ) -> Result<std::collections::BTreeSet<Digest>, ExportError> {
        let _ = (images, dest, cx);
        Ok(Default::default())
    }

    /// Push images that are not in the cache (a tar's, a layout's: `imgpull
    /// push`) into a registry, reading their blobs from `blobs`. The
    /// default: this exporter does not push.
    async fn push(
        &self,
        images: &[push::PushImage],
        blobs: &dyn push::Blobs,
        registries: &dyn Registries,
        reporter: &dyn Reporter,
    ) -> Result<Vec<push::PushReport>, ExportError> {
        let _ = (images, blobs, registries, reporter);
        Err(ExportError::Invalid(
            "this output format does not push".into(),
        ))
    }

    /// What the person should know about how this output of `images` will
    /// be read (before anything is downloaded), e.g. a reader that cannot.
    fn warnings(&self, images: &[ExportImage]) -> Vec<String> {
        let _ = images;
        Vec::new()
    }
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

/// The config's diff_ids, one per layer.
pub fn diff_ids(
    config: &crate::cache::BlobSource,
    em: &ExportManifest,
) -> Result<Vec<Digest>, ExportError> {
    let bytes = config
        .read_all()
        .map_err(|e| ExportError::io(config.name(), e))?;
    let cfg: ImageConfig = serde_json::from_slice(&bytes).map_err(|e| {
        ExportError::Invalid(format!(
            "config {} is not an image config: {e}",
            em.manifest.config.digest
        ))
    })?;
    let ids = cfg.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    if ids.len() != em.manifest.layers.len() {
        return Err(ExportError::Invalid(format!(
            "image {}: config lists {} diff_ids for {} layers; cannot write uncompressed layers",
            em.digest,
            ids.len(),
            em.manifest.layers.len()
        )));
    }
    Ok(ids)
}
