//! Fetch blobs into the cache: in parallel (bounded), each streamed to a
//! partial file while hashed, verified, then committed. A blob already in
//! the cache is not requested.

use crate::cache::{CacheBackend, CacheError};
use crate::client::RegistryClient;
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::Descriptor;
use crate::progress::Reporter;
use futures_util::{StreamExt, TryStreamExt};
use std::collections::HashSet;

/// What happened to one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobOutcome {
    pub digest: Digest,
    pub size: u64,
    /// Already in the cache before this pull.
    pub cached: bool,
}

/// Make sure every blob in `blobs` is in `cache`, downloading at most
/// `concurrency` at once. Duplicates are fetched once. Outcomes come back
/// in the order given.
pub async fn fetch_all(
    client: &RegistryClient,
    repository: &str,
    cache: &dyn CacheBackend,
    blobs: &[Descriptor],
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Result<Vec<BlobOutcome>, Error> {
    let mut seen = HashSet::new();
    let unique: Vec<&Descriptor> = blobs
        .iter()
        .filter(|d| seen.insert(d.digest.clone()))
        .collect();
    let outcomes: Vec<BlobOutcome> = futures_util::stream::iter(unique)
        .map(|d| fetch_one(client, repository, cache, d, reporter))
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(blobs
        .iter()
        .map(|d| {
            outcomes
                .iter()
                .find(|o| o.digest == d.digest)
                .cloned()
                .expect("every unique blob has an outcome")
        })
        .collect())
}

async fn fetch_one(
    client: &RegistryClient,
    repository: &str,
    cache: &dyn CacheBackend,
    d: &Descriptor,
    reporter: &dyn Reporter,
) -> Result<BlobOutcome, Error> {
    let cache_err = |source: CacheError| Error::Cache {
        registry: client.registry().to_string(),
        source,
    };
    if cache.stat(&d.digest).await.map_err(cache_err)? == Some(d.size) {
        reporter.blob_start(&d.digest, d.size, true);
        reporter.blob_done(&d.digest);
        return Ok(BlobOutcome {
            digest: d.digest.clone(),
            size: d.size,
            cached: true,
        });
    }
    reporter.blob_start(&d.digest, d.size, false);
    // Refuse before any byte is fetched if we cannot verify the digest.
    let mut writer = cache.begin(&d.digest, d.size).await.map_err(cache_err)?;
    let resp = client.blob(repository, &d.digest).await?;
    let url = resp.url().to_string();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| client.body_error(&url, &e))?;
        writer.write(&chunk).await.map_err(cache_err)?;
        reporter.blob_progress(&d.digest, chunk.len() as u64);
    }
    writer.commit().await.map_err(cache_err)?;
    reporter.blob_done(&d.digest);
    Ok(BlobOutcome {
        digest: d.digest.clone(),
        size: d.size,
        cached: false,
    })
}
