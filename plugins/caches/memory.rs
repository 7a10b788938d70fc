//! `memory`: blobs held in memory for one command, gone when it ends.
//!
//! The second implementation of [`CacheBackend`], with no local files: it
//! answers no `local_path`, so everything that reads from a cache reads
//! through `open`/`source` (`cache = "memory"`, or
//! `IMGPULL_CACHE=memory`). Meant for tests and
//! for small images that must not touch the disk besides their output;
//! every byte of every blob of a pull is held in RAM until it ends.
//! `IMGPULL_TEST_CACHE=memory` runs the exporter and pull suites on it
//! (scripts/test does).
//!
//! The same rule as every backend: a blob becomes visible under its digest
//! only once its bytes hash to it and its size matches. An interrupted
//! download is not kept (nothing outlives the process to resume it).

use crate::cache::{
    Begin, BlobInfo, BlobSource, BlobWriter, CacheBackend, CacheError, PartialInfo, ReadSeek,
};
use crate::catalog::{Build, Kind, NoOptions, Plugin, PluginConfig, PluginError};
use crate::oci::digest::{Digest, Verifier};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Committed blobs by digest, with when each was last used.
type Blobs = Arc<Mutex<BTreeMap<Digest, (Bytes, SystemTime)>>>;

#[derive(Default)]
pub struct MemoryCache {
    blobs: Blobs,
}

impl MemoryCache {
    fn get(&self, digest: &Digest) -> Result<Bytes, CacheError> {
        let blobs = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        blobs
            .get(digest)
            .map(|(b, _)| b.clone())
            .ok_or_else(|| CacheError::Missing(digest.clone()))
    }
}

#[async_trait]
impl CacheBackend for MemoryCache {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, CacheError> {
        Ok(self.get(digest).ok().map(|b| b.len() as u64))
    }

    async fn begin(&self, digest: &Digest, size: u64, _source: &str) -> Result<Begin, CacheError> {
        // Held with the size asked for: as the local cache answers.
        if self.get(digest).is_ok_and(|b| b.len() as u64 == size) {
            return Ok(Begin::Present);
        }
        let verifier =
            Verifier::new(digest).ok_or_else(|| CacheError::UnsupportedDigest(digest.clone()))?;
        Ok(Begin::Writer(Box::new(MemoryWriter {
            blobs: self.blobs.clone(),
            digest: digest.clone(),
            size,
            bytes: BytesMut::new(),
            verifier,
        })))
    }

    async fn open(&self, digest: &Digest) -> Result<Box<dyn ReadSeek>, CacheError> {
        Ok(Box::new(std::io::Cursor::new(self.get(digest)?)))
    }

    /// The bytes themselves, shared (no copy).
    async fn source(&self, digest: &Digest) -> Result<BlobSource, CacheError> {
        let name = PathBuf::from(format!("{digest} (in memory)"));
        Ok(BlobSource::bytes(name, self.get(digest)?))
    }

    async fn read(&self, digest: &Digest) -> Result<Vec<u8>, CacheError> {
        Ok(self.get(digest)?.to_vec())
    }

    async fn touch(&self, digest: &Digest) -> Result<(), CacheError> {
        if let Some(e) = self
            .blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(digest)
        {
            e.1 = SystemTime::now();
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<BlobInfo>, CacheError> {
        let blobs = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(blobs
            .iter()
            .map(|(d, (b, used))| BlobInfo {
                digest: d.clone(),
                size: b.len() as u64,
                last_use: Some(*used),
            })
            .collect())
    }

    async fn partials(&self) -> Result<Vec<PartialInfo>, CacheError> {
        Ok(Vec::new())
    }

    async fn remove(&self, digest: &Digest) -> Result<bool, CacheError> {
        Ok(self
            .blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(digest)
            .is_some())
    }

    async fn remove_partial(&self, _partial: &PartialInfo) -> Result<(), CacheError> {
        Ok(())
    }
}

/// A blob on its way in: hashed as it arrives, visible only on a good
/// `commit`.
struct MemoryWriter {
    blobs: Blobs,
    digest: Digest,
    size: u64,
    bytes: BytesMut,
    verifier: Verifier,
}

#[async_trait]
impl BlobWriter for MemoryWriter {
    /// What this writer holds: a failed try resumes from here.
    fn offset(&self) -> u64 {
        self.bytes.len() as u64
    }

    async fn restart(&mut self) -> Result<(), CacheError> {
        self.bytes.clear();
        self.verifier = Verifier::of(self.digest.algorithm());
        Ok(())
    }

    async fn write(&mut self, chunk: Bytes) -> Result<(), CacheError> {
        let found = self.bytes.len() as u64 + chunk.len() as u64;
        if found > self.size {
            return Err(CacheError::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                found,
            });
        }
        self.verifier.update(&chunk);
        self.bytes.extend_from_slice(&chunk);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), CacheError> {
        let w = *self;
        if w.verifier.len() != w.size {
            return Err(CacheError::SizeMismatch {
                digest: w.digest,
                expected: w.size,
                found: w.verifier.len(),
            });
        }
        let found = w.verifier.finish();
        if found != w.digest {
            return Err(CacheError::DigestMismatch {
                expected: w.digest,
                found,
            });
        }
        let mut blobs = w.blobs.lock().unwrap_or_else(|e| e.into_inner());
        blobs.insert(w.digest, (w.bytes.freeze(), SystemTime::now()));
        Ok(())
    }
}

fn build(cfg: &PluginConfig) -> Result<Arc<dyn CacheBackend>, PluginError> {
    crate::catalog::options::<NoOptions>(Kind::Cache, "memory", cfg)?;
    Ok(Arc::new(MemoryCache::default()))
}

inventory::submit! {
    Plugin {
        name: "memory",
        summary: "blobs in memory for one command, nothing on disk (tests, small images)",
        build: Build::Cache(build),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_matching_blob_is_visible() {
        let c = MemoryCache::default();
        let good = Digest::of(b"hello");
        let Begin::Writer(mut w) = c.begin(&good, 5, "t").await.unwrap() else {
            panic!()
        };
        w.write(Bytes::from_static(b"hellx")).await.unwrap();
        assert!(w.commit().await.is_err());
        assert_eq!(c.stat(&good).await.unwrap(), None);
        let Begin::Writer(mut w) = c.begin(&good, 5, "t").await.unwrap() else {
            panic!()
        };
        assert!(w.write(Bytes::from_static(b"hello!")).await.is_err());
        w.restart().await.unwrap();
        w.write(Bytes::from_static(b"hello")).await.unwrap();
        w.commit().await.unwrap();
        assert_eq!(c.read(&good).await.unwrap(), b"hello");
        assert_eq!(c.read_range(&good, 1, 3).await.unwrap(), b"ell");
        assert!(c.local_path(&good).unwrap().is_none());
        assert!(matches!(
            c.begin(&good, 5, "t").await.unwrap(),
            Begin::Present
        ));
    }
}
