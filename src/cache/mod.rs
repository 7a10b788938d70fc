//! The content-addressed blob store: the [`CacheBackend`] trait.
//!
//! A backend holds blobs (layers, configs and manifests) by digest. Whatever
//! the backend, one rule holds: nothing is ever readable under a digest
//! name that it does not match. Bytes arrive through a [`BlobWriter`],
//! which hashes and counts them and only makes them visible, atomically,
//! once digest and size both match. An interrupted download is kept as a
//! partial and resumed from where it stopped by the next writer.

pub mod ops;

use crate::oci::digest::Digest;
use async_trait::async_trait;
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

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

/// What a shared store behind a cache did, totalled over runs.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoreStats {
    /// The store, as configured (a URL; it holds no secret).
    #[serde(default)]
    pub store: String,
    /// Blobs (and manifests) that came from the store, not the registry.
    pub fetched: u64,
    pub fetched_bytes: u64,
    /// Blobs uploaded to it after they were committed here.
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    /// Blobs it already had when one was to be uploaded.
    pub already_there: u64,
    /// Objects whose bytes did not match their key (not used).
    pub bad_objects: u64,
    /// Requests that failed (the store down or slow, an upload refused).
    pub failures: u64,
}

impl StoreStats {
    pub fn add(&mut self, o: &StoreStats) {
        self.fetched += o.fetched;
        self.fetched_bytes += o.fetched_bytes;
        self.uploaded += o.uploaded;
        self.uploaded_bytes += o.uploaded_bytes;
        self.already_there += o.already_there;
        self.bad_objects += o.bad_objects;
        self.failures += o.failures;
    }
}

/// What `begin` found.
pub enum Begin {
    /// The blob was committed (by another process) while we waited.
    Present,
    /// Write it; the writer may already hold a prefix from an earlier run.
    Writer(Box<dyn BlobWriter>),
}

/// Bytes to read and seek in: a committed blob opened from any backend.
pub trait ReadSeek: std::io::Read + std::io::Seek + Send {}
impl<T: std::io::Read + std::io::Seek + Send> ReadSeek for T {}

/// Opens a blob again, from its first byte (for blocking code: an
/// exporter's writer thread).
pub type Reopen = Arc<dyn Fn() -> std::io::Result<Box<dyn ReadSeek>> + Send + Sync>;

/// Where an exporter reads a committed blob from.
#[derive(Clone)]
pub enum BlobSource {
    /// A local file holding exactly the blob (link, reflink or copy it).
    File(PathBuf),
    /// A backend without local files: opened as often as needed.
    Reader {
        /// How messages name it.
        name: PathBuf,
        size: u64,
        open: Reopen,
    },
}

impl BlobSource {
    /// Bytes already in memory (a backend that holds them, or one that read
    /// a blob whole).
    pub fn bytes(name: PathBuf, bytes: Bytes) -> BlobSource {
        BlobSource::Reader {
            name,
            size: bytes.len() as u64,
            open: Arc::new(move || Ok(Box::new(std::io::Cursor::new(bytes.clone())))),
        }
    }

    /// How messages name it: the file, or the digest and the backend.
    pub fn name(&self) -> &std::path::Path {
        match self {
            BlobSource::File(p) => p,
            BlobSource::Reader { name, .. } => name,
        }
    }

    /// A reader from the first byte, whatever the source.
    pub fn open(&self) -> std::io::Result<Box<dyn ReadSeek>> {
        match self {
            BlobSource::File(p) => Ok(Box::new(std::fs::File::open(p)?)),
            BlobSource::Reader { open, .. } => open(),
        }
    }

    /// How many bytes it holds now (a file's length is checked, not assumed).
    pub fn size(&self) -> std::io::Result<u64> {
        match self {
            BlobSource::File(p) => Ok(std::fs::metadata(p)?.len()),
            BlobSource::Reader { size, .. } => Ok(*size),
        }
    }

    /// Every byte (a config, a manifest).
    pub fn read_all(&self) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut out = Vec::new();
        self.open()?.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// A committed blob.
#[derive(Clone, Debug)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    pub last_use: Option<SystemTime>,
}

/// An unfinished download.
#[derive(Clone, Debug)]
pub struct PartialInfo {
    /// The digest it is for, when its name says.
    pub digest: Option<Digest>,
    /// Bytes held so far.
    pub held: u64,
    /// The blob's full size and where it came from, when recorded.
    pub size: Option<u64>,
    pub source: Option<String>,
    pub modified: Option<SystemTime>,
    pub path: PathBuf,
}

/// A blob store keyed by digest.
///
/// Contract:
/// - `stat` returns the size of a complete, committed blob, or `None`.
/// - `begin` answers `Present` when the blob is committed with that size.
///   A backend shared between processes waits while another one writes the
///   same digest (its writer holds the digest's lock until it is committed
///   or dropped). Dropping a writer without `commit` never leaves the bytes
///   under the digest name; a backend that can keeps them as a partial for
///   the next writer (resume), and `offset` says how many it holds.
/// - `open` reads a committed blob from its start; a backend with local
///   files also answers `local_path` (a file holding exactly the blob's
///   bytes, valid for the rest of the pull), which exporters use as a fast
///   path (hardlink, reflink, `copy_file_range`). Nothing else assumes a
///   local file: an exporter reads through [`CacheBackend::source`].
#[async_trait]
pub trait CacheBackend: Send + Sync {
    /// Name and location, for messages (`local (/path/to/cache)`).
    fn describe(&self) -> String;

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, CacheError>;

    /// `source` names where the bytes come from (kept with the partial).
    async fn begin(&self, digest: &Digest, size: u64, source: &str) -> Result<Begin, CacheError>;

    /// A reader of committed blob `digest` from its first byte
    /// (`Missing` when it is not committed).
    async fn open(&self, digest: &Digest) -> Result<Box<dyn ReadSeek>, CacheError>;

    /// The fast path: a local file holding exactly committed blob
    /// `digest`'s bytes, or `None` (the default) for a backend that keeps
    /// no local files.
    fn local_path(&self, digest: &Digest) -> Result<Option<PathBuf>, CacheError> {
        let _ = digest;
        Ok(None)
    }

    /// Where an exporter reads committed blob `digest` from: its local file
    /// when there is one; else (this default) its bytes read whole, which a
    /// backend that can stream overrides.
    async fn source(&self, digest: &Digest) -> Result<BlobSource, CacheError> {
        if let Some(path) = self.local_path(digest)? {
            return Ok(BlobSource::File(path));
        }
        let name = PathBuf::from(format!("{digest} (in {})", self.describe()));
        Ok(BlobSource::bytes(name, self.read(digest).await?.into()))
    }

    /// `len` bytes of committed blob `digest` from `offset` (fewer at its end).
    async fn read_range(
        &self,
        digest: &Digest,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, CacheError> {
        use std::io::{Read, Seek};
        let mut r = self.open(digest).await?;
        let io = |e| CacheError::io(digest.to_string(), e);
        r.seek(std::io::SeekFrom::Start(offset)).map_err(io)?;
        let mut out = Vec::with_capacity(len.min(1 << 20));
        r.take(len as u64).read_to_end(&mut out).map_err(io)?;
        Ok(out)
    }

    /// A directory on the cache's filesystem for scratch files (pieces of a
    /// chunked download), or `None` (then big blobs come in one stream).
    fn scratch_dir(&self) -> Option<PathBuf> {
        None
    }

    /// Read a small blob (a config, a manifest) whole.
    async fn read(&self, digest: &Digest) -> Result<Vec<u8>, CacheError> {
        use std::io::Read;
        let mut out = Vec::new();
        self.open(digest)
            .await?
            .read_to_end(&mut out)
            .map_err(|e| CacheError::io(digest.to_string(), e))?;
        Ok(out)
    }

    /// Store small bytes (a manifest) under their digest.
    async fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), CacheError> {
        if let Begin::Writer(mut w) = self.begin(digest, bytes.len() as u64, "manifest").await? {
            w.restart().await?;
            w.write(Bytes::copy_from_slice(bytes)).await?;
            w.commit().await?;
        }
        Ok(())
    }

    /// Whether committed blob `digest` is intact. `Ok(true)` only when its
    /// bytes were found to match the digest — now, or earlier with nothing
    /// changed since; a blob found wrong is removed and `Ok(false)`
    /// returned, so the caller fetches it again. Called before a cached
    /// blob is used: a blob changed on disk never reaches an output.
    async fn check(&self, digest: &Digest) -> Result<bool, CacheError> {
        let _ = digest;
        Ok(true)
    }

    /// An exporter hardlinked the blob's file (`local_path`) somewhere: its
    /// metadata changed, its bytes did not; a backend that records
    /// verification by metadata keeps it verified.
    async fn linked(&self, digest: &Digest) -> Result<(), CacheError> {
        let _ = digest;
        Ok(())
    }

    /// Record that a blob was used now (least-recently-used pruning).
    async fn touch(&self, digest: &Digest) -> Result<(), CacheError> {
        let _ = digest;
        Ok(())
    }

    /// What the user should hear about the cache as it was found (e.g.
    /// blobs re-checked after a power cut); said once, as warnings.
    fn notices(&self) -> Vec<String> {
        Vec::new()
    }

    /// Before the registry is asked for `digest`: put its bytes into
    /// `writer` (just begun, empty) from a store behind this cache, when
    /// that store has them. `true` when all `size` bytes went in: the
    /// caller commits, and a wrong blob fails that commit as any would
    /// (then the registry serves it). `false`: the writer is empty, the
    /// registry serves the blob. The default has no store.
    async fn fill(&self, digest: &Digest, size: u64, writer: &mut dyn BlobWriter) -> bool {
        let _ = (digest, size, writer);
        false
    }

    /// When the command's work is done: wait for what the backend does
    /// beside it (uploads to a shared store). What went wrong there comes
    /// back as warnings; it never fails the command.
    async fn finish(&self) -> Vec<String> {
        Vec::new()
    }

    /// The shared store behind this cache and what it did, all runs
    /// together (`cache stats`); `None` when there is none.
    fn store_stats(&self) -> Option<StoreStats> {
        None
    }

    /// Rehash every object of the shared store behind this cache (with
    /// `repair`, remove the bad ones): how many were checked and the bad
    /// ones. `None` when there is no such store.
    async fn verify_store(
        &self,
        repair: bool,
    ) -> Option<Result<(usize, Vec<ops::Bad>), CacheError>> {
        let _ = repair;
        None
    }

    /// Housekeeping at the start of a pull (expire old partials).
    async fn maintain(&self) -> Result<(), CacheError> {
        Ok(())
    }

    /// Every committed blob.
    async fn list(&self) -> Result<Vec<BlobInfo>, CacheError>;

    /// Every unfinished download.
    async fn partials(&self) -> Result<Vec<PartialInfo>, CacheError>;

    /// Remove a blob; `false` when it was not there.
    async fn remove(&self, digest: &Digest) -> Result<bool, CacheError>;

    async fn remove_partial(&self, partial: &PartialInfo) -> Result<(), CacheError>;
}

/// One blob on its way into the cache.
#[async_trait]
pub trait BlobWriter: Send {
    /// Bytes already held (and hashed) from an earlier, interrupted run:
    /// the download continues from here.
    fn offset(&self) -> u64;

    /// Drop what is held and start again from byte 0 (the server would not
    /// resume).
    async fn restart(&mut self) -> Result<(), CacheError>;

    /// Append bytes (shared with the caller, who may hand the same chunk
    /// elsewhere: a writer keeps them without copying). Fails early with
    /// `SizeMismatch` when more bytes arrive than the descriptor announced.
    async fn write(&mut self, chunk: Bytes) -> Result<(), CacheError>;

    /// Check size and digest, make the blob durable and visible under its
    /// digest. On `Err` nothing was committed and the partial is deleted
    /// (its bytes were wrong).
    async fn commit(self: Box<Self>) -> Result<(), CacheError>;
}
