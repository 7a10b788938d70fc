//! What `imgpull cache …` does, on any [`CacheBackend`]: stats, verify
//! (rehash every blob), prune (least recently used first).

use crate::cache::{BlobInfo, CacheBackend, CacheError, PartialInfo};
use crate::oci::digest::Digest;
use std::time::{Duration, SystemTime};

#[derive(Debug, Default, serde::Serialize)]
pub struct Stats {
    pub blobs: usize,
    pub bytes: u64,
    pub partials: usize,
    pub partial_bytes: u64,
    pub oldest_use: Option<u64>,
    pub newest_use: Option<u64>,
    /// The store behind the cache, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<super::StoreStats>,
}

fn epoch(t: Option<SystemTime>) -> Option<u64> {
    t?.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

pub async fn stats(cache: &dyn CacheBackend) -> Result<Stats, CacheError> {
    let blobs = cache.list().await?;
    let partials = cache.partials().await?;
    Ok(Stats {
        blobs: blobs.len(),
        bytes: blobs.iter().map(|b| b.size).sum(),
        partials: partials.len(),
        partial_bytes: partials.iter().map(|p| p.held).sum(),
        oldest_use: blobs.iter().filter_map(|b| epoch(b.last_use)).min(),
        newest_use: blobs.iter().filter_map(|b| epoch(b.last_use)).max(),
        store: cache.store_stats(),
    })
}

/// One blob whose bytes do not match its name.
#[derive(Debug, serde::Serialize)]
pub struct Bad {
    pub digest: Digest,
    pub found: Option<Digest>,
    pub removed: bool,
}

/// Rehash every blob; with `repair`, remove the bad ones.
pub async fn verify(
    cache: &dyn CacheBackend,
    repair: bool,
) -> Result<(usize, Vec<Bad>), CacheError> {
    let blobs = cache.list().await?;
    let mut bad = Vec::new();
    for b in &blobs {
        let blob = cache.source(&b.digest).await?;
        let digest = b.digest.clone();
        let found = tokio::task::spawn_blocking(move || {
            let io = |e| CacheError::io(blob.name(), e);
            crate::oci::digest::hash_reader(&mut blob.open().map_err(io)?, &digest).map_err(io)
        })
        .await
        .map_err(|e| CacheError::io("<verify task>", std::io::Error::other(e)))??;
        if found.as_ref() != Some(&b.digest) {
            let removed = repair && cache.remove(&b.digest).await?;
            bad.push(Bad {
                digest: b.digest.clone(),
                found,
                removed,
            });
        }
    }
    Ok((blobs.len(), bad))
}

/// What to prune.
#[derive(Debug, Default)]
pub struct PruneOptions {
    /// Blobs (and partials) not used for this long.
    pub older_than: Option<Duration>,
    /// Remove least recently used blobs until the cache holds at most this.
    pub max_size: Option<u64>,
    /// Everything.
    pub all: bool,
    /// Partials at least this old are removed in any case.
    pub partial_max_age: Duration,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Pruned {
    pub blobs: usize,
    pub bytes: u64,
    pub partials: usize,
}

pub async fn prune(cache: &dyn CacheBackend, opts: &PruneOptions) -> Result<Pruned, CacheError> {
    let now = SystemTime::now();
    let older = |t: Option<SystemTime>, age: Duration| {
        t.and_then(|t| now.duration_since(t).ok())
            .is_some_and(|d| d >= age)
    };
    let mut out = Pruned::default();
    let partials: Vec<PartialInfo> = cache.partials().await?;
    for p in partials {
        let age = opts
            .older_than
            .unwrap_or(opts.partial_max_age)
            .min(opts.partial_max_age);
        if opts.all || older(p.modified, age) {
            cache.remove_partial(&p).await?;
            out.partials += 1;
        }
    }
    let mut blobs: Vec<BlobInfo> = cache.list().await?;
    // Least recently used first.
    blobs.sort_by_key(|b| b.last_use);
    let mut total: u64 = blobs.iter().map(|b| b.size).sum();
    for b in blobs {
        let over_size = opts.max_size.is_some_and(|m| total > m);
        let too_old = opts.older_than.is_some_and(|age| older(b.last_use, age));
        if (opts.all || over_size || too_old) && cache.remove(&b.digest).await? {
            out.blobs += 1;
            out.bytes += b.size;
            total -= b.size;
        }
    }
    Ok(out)
}
