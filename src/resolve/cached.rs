//! Manifests through the cache (the warm path): a manifest named by digest
//! is served from the cache when held; one named by tag is resolved with a
//! HEAD (which Docker Hub does not count against the quota) and served from
//! the cache when that digest is held. Anything fetched is kept.

use crate::cache::CacheBackend;
use crate::oci::digest::Digest;
use crate::registry::endpoints::Endpoints;
use crate::registry::{FetchedManifest, RegistryError, Tries};

pub struct ManifestSource<'a> {
    pub client: &'a Endpoints,
    /// `None`: always ask the registry (inspect, --no-cache).
    pub cache: Option<&'a dyn CacheBackend>,
    /// A HEAD already made for a tag (`tag`, its headers): not made again.
    pub head: Option<(String, reqwest::header::HeaderMap)>,
}

impl ManifestSource<'_> {
    /// The manifest `reference` names, of at most `max` bytes.
    pub async fn get(
        &self,
        repository: &str,
        reference: &str,
        max: usize,
    ) -> Result<FetchedManifest, RegistryError> {
        // One retry budget for the HEAD and the GET of this manifest.
        let tries = Tries::new(self.client.retry_policy().attempts);
        if let Some(cache) = self.cache {
            let digest = match reference.parse::<Digest>() {
                Ok(d) => Some(d),
                Err(_) => self.head_digest(repository, reference, &tries).await,
            };
            if let Some(digest) = digest {
                if let Ok(bytes) = cache.read(&digest).await.map(bytes::Bytes::from) {
                    // Re-check: a manifest is small and this is the only copy read.
                    if crate::oci::digest::digest_like(&bytes, &digest) == digest {
                        let _ = cache.touch(&digest).await;
                        return Ok(FetchedManifest {
                            bytes,
                            media_type: String::new(),
                            digest,
                        });
                    }
                }
            }
        }
        let fetched = self
            .client
            .manifest(repository, reference, max, &tries)
            .await?;
        if let Some(cache) = self.cache {
            // Best effort: a read-only cache still lets the pull go on.
            let _ = cache.put(&fetched.digest, &fetched.bytes).await;
        }
        Ok(fetched)
    }

    /// The digest a tag points at now, when the registry says on a HEAD.
    async fn head_digest(&self, repository: &str, tag: &str, tries: &Tries) -> Option<Digest> {
        let headers = match &self.head {
            Some((t, h)) if t == tag => h.clone(),
            _ => self
                .client
                .head_manifest(repository, tag, tries)
                .await
                .ok()?,
        };
        headers
            .get("docker-content-digest")?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }
}
