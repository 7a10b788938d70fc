//! Layers imported from a `docker save` tar are held uncompressed, named by
//! their diff_id. For an output that may carry uncompressed layers
//! (docker-archive), a layer whose compressed blob is not cached but whose
//! diff_id is, is written uncompressed instead of being downloaded — the
//! manifest rewritten to name it, as `docker save` itself does.

use crate::cache::CacheBackend;
use crate::client::FetchedManifest;
use crate::digest::Digest;
use crate::error::Error;
use crate::manifest::{media, ImageConfig, Manifest};
use crate::progress::Reporter;
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
            swaps.push((i, diff.clone(), size));
        }
    }
    if swaps.is_empty() {
        return Ok(0);
    }
    let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&r.fetched.bytes) else {
        return Ok(0);
    };
    let docker = doc["mediaType"].as_str() == Some(media::DOCKER_MANIFEST);
    let tar_type = if docker {
        "application/vnd.docker.image.rootfs.diff.tar"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    };
    for (i, diff, size) in &swaps {
        doc["layers"][*i] =
            serde_json::json!({"mediaType": tar_type, "digest": diff, "size": size});
        reporter.info(&format!(
            "layer {} is taken from the cache uncompressed (imported {})",
            i + 1,
            diff.short()
        ));
    }
    let bytes = serde_json::to_vec(&doc).expect("JSON serializes");
    let Ok(Manifest::Image(manifest)) = Manifest::parse(&r.fetched.media_type, &bytes) else {
        return Ok(0);
    };
    r.fetched = FetchedManifest {
        digest: Digest::of(&bytes),
        media_type: r.fetched.media_type.clone(),
        bytes,
    };
    r.manifest = manifest;
    Ok(swaps.len())
}
