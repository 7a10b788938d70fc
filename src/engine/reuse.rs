//! Layers imported from a `docker save` tar are held uncompressed, named by
//! their diff_id. For an output that may carry uncompressed layers
//! (docker-archive), a layer whose compressed blob is not cached but whose
//! diff_id is, is written uncompressed instead of being downloaded — the
//! manifest rewritten to name it, as `docker save` itself does.

use crate::cache::CacheBackend;
use crate::error::Error;
use crate::oci::digest::Digest;
use crate::oci::manifest::{ImageConfig, Manifest};
use crate::progress::Reporter;
use crate::registry::FetchedManifest;
use crate::resolve::Resolved;

/// Substitute what can be; returns how many layers were.
pub async fn use_uncompressed(
    r: &mut Resolved,
    cache: &dyn CacheBackend,
    reporter: &dyn Reporter,
) -> Result<usize, Error> {
    let Ok(config) = cache.read(&r.manifest.config.digest).await else {
        return Ok(0);
    };
    let Ok(config) = serde_json::from_slice::<ImageConfig>(&config) else {
        return Ok(0);
    };
    let diff_ids = config.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    if diff_ids.len() != r.manifest.layers.len() {
        return Ok(0);
    }
    let mut swaps: Vec<(usize, Digest, u64)> = Vec::new();
    for (i, (layer, diff)) in r.manifest.layers.iter().zip(&diff_ids).enumerate() {
        let cached = cache.stat(&layer.digest).await.ok().flatten() == Some(layer.size);
        if cached || *diff == layer.digest {
            continue;
        }
        if let Ok(Some(size)) = cache.stat(diff).await {
            if cache.check(diff).await.unwrap_or(false) {
                swaps.push((i, diff.clone(), size));
            }
        }
    }
    if swaps.is_empty() {
        return Ok(0);
    }
    let Some(bytes) = crate::oci::manifest::with_uncompressed_layers(&r.fetched.bytes, &swaps)
    else {
        return Ok(0);
    };
    for (i, diff, _) in &swaps {
        reporter.info(&format!(
            "layer {} is taken from the cache uncompressed (imported {})",
            i + 1,
            diff.short()
        ));
    }
    let Ok(Manifest::Image(manifest)) = Manifest::parse(&r.fetched.media_type, &bytes) else {
        return Ok(0);
    };
    r.fetched = FetchedManifest {
        digest: Digest::of(&bytes),
        media_type: r.fetched.media_type.clone(),
        bytes: bytes.into(),
    };
    r.manifest = manifest;
    Ok(swaps.len())
}
