//! `local`: the content-addressed cache on the local filesystem.
//!
//! ```text
//! <dir>/                      default ./docker_images_cache
//! ├── blobs/sha256/<hex>      committed blobs: exactly the bytes of that digest
//! └── ingest/<hex>.<random>   partial downloads, renamed into blobs/ once verified
//! ```
//!
//! Commit is write to `ingest/`, fsync, verify digest and size, rename. A
//! crash at any point leaves at most a stray file in `ingest/`, never a
//! wrong one under `blobs/`; two processes committing the same digest are
//! safe because both renames put identical bytes in place.

use crate::cache::{BlobWriter, CacheBackend, CacheError};
use crate::catalog::{Build, Kind, Plugin, PluginConfig, PluginError};
use crate::digest::{Digest, Verifier};
use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the cache lives when config says nothing (the seed's default).
pub const DEFAULT_DIR: &str = "./docker_images_cache";

pub struct LocalCache {
    dir: PathBuf,
}

impl LocalCache {
    pub fn new(dir: impl Into<PathBuf>) -> LocalCache {
        LocalCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blob_file(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm_name())
            .join(digest.hex())
    }

    fn ensure_dir(path: &Path) -> Result<(), CacheError> {
        std::fs::create_dir_all(path).map_err(|e| CacheError::io(path, e))
    }
}

fn build(cfg: &PluginConfig) -> Result<Arc<dyn CacheBackend>, PluginError> {
    let dir = match cfg.get("dir") {
        None => PathBuf::from(DEFAULT_DIR),
        Some(toml::Value::String(s)) => PathBuf::from(s),
        Some(_) => {
            return Err(PluginError::invalid(
                Kind::Cache,
                "local",
                "`dir` must be a string",
            ))
        }
    };
    if let Some(k) = cfg.keys().find(|k| *k != "dir") {
        return Err(PluginError::invalid(
            Kind::Cache,
            "local",
            format!("unknown key `{k}`"),
        ));
    }
    Ok(Arc::new(LocalCache::new(dir)))
}

inventory::submit! {
    Plugin {
        name: "local",
        summary: "content-addressed blobs on the local filesystem (default)",
        build: Build::Cache(build),
    }
}

#[async_trait]
impl CacheBackend for LocalCache {
    fn describe(&self) -> String {
        format!("local ({})", self.dir.display())
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, CacheError> {
        let path = self.blob_file(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CacheError::io(path, e)),
        }
    }

    async fn begin(&self, digest: &Digest, size: u64) -> Result<Box<dyn BlobWriter>, CacheError> {
        let verifier =
            Verifier::new(digest).ok_or_else(|| CacheError::UnsupportedDigest(digest.clone()))?;
        let ingest = self.dir.join("ingest");
        Self::ensure_dir(&ingest)?;
        let final_path = self.blob_file(digest);
        Self::ensure_dir(final_path.parent().expect("blob path has a parent"))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{}.", digest.hex()))
            .tempfile_in(&ingest)
            .map_err(|e| CacheError::io(&ingest, e))?;
        let file = tmp.reopen().map_err(|e| CacheError::io(tmp.path(), e))?;
        Ok(Box::new(LocalWriter {
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            tmp,
            verifier,
            digest: digest.clone(),
            size,
            final_path,
        }))
    }

    fn blob_path(&self, digest: &Digest) -> Result<PathBuf, CacheError> {
        let p = self.blob_file(digest);
        if p.is_file() {
            Ok(p)
        } else {
            Err(CacheError::Missing(digest.clone()))
        }
    }
}

struct LocalWriter {
    out: std::io::BufWriter<std::fs::File>,
    /// Owns the temp file: dropped without commit, it is deleted.
    tmp: tempfile::NamedTempFile,
    verifier: Verifier,
    digest: Digest,
    size: u64,
    final_path: PathBuf,
}

#[async_trait]
impl BlobWriter for LocalWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), CacheError> {
        if self.verifier.len() + chunk.len() as u64 > self.size {
            return Err(CacheError::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                found: self.verifier.len() + chunk.len() as u64,
            });
        }
        self.verifier.update(chunk);
        self.out
            .write_all(chunk)
            .map_err(|e| CacheError::io(self.tmp.path(), e))
    }

    async fn commit(self: Box<Self>) -> Result<(), CacheError> {
        let LocalWriter {
            out,
            tmp,
            verifier,
            digest,
            size,
            final_path,
        } = *self;
        let tmp_path = tmp.path().to_path_buf();
        if verifier.len() != size {
            return Err(CacheError::SizeMismatch {
                digest,
                expected: size,
                found: verifier.len(),
            });
        }
        let found = verifier.finish();
        if found != digest {
            return Err(CacheError::DigestMismatch {
                expected: digest,
                found,
            });
        }
        let file = out
            .into_inner()
            .map_err(|e| CacheError::io(&tmp_path, e.into_error()))?;
        tokio::task::spawn_blocking(move || -> Result<(), CacheError> {
            file.sync_all().map_err(|e| CacheError::io(&tmp_path, e))?;
            crate::fsutil::set_readable(&tmp_path).map_err(|e| CacheError::io(&tmp_path, e))?;
            tmp.persist(&final_path)
                .map_err(|e| CacheError::io(&final_path, e.error))?;
            if let Some(parent) = final_path.parent() {
                // Make the rename durable too; not every filesystem allows it.
                let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
            }
            Ok(())
        })
        .await
        .map_err(|e| CacheError::io("<commit task>", std::io::Error::other(e)))?
    }
}
