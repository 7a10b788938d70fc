//! Pushing images into a registry: every blob first (at once, up to a
//! limit; each skipped, mounted or uploaded), then the manifests, each
//! image's children before the index that names them, byte for byte, so
//! the pushed tag has the digest of what was read. Nothing is pushed as a
//! manifest until every blob it names is in the registry.

use super::locations::Locations;
use super::ExportError;
use crate::cache::{BlobSource, CacheBackend};
use crate::oci::digest::Digest;
use crate::oci::manifest::{media, Descriptor};
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::progress::Reporter;
use crate::registry::upload::{Pushed, Upload};
use crate::registry::RegistryClient;
use async_trait::async_trait;
use futures_util::StreamExt;
use std::collections::BTreeMap;

/// A manifest to push, byte for byte, and the blobs it names.
#[derive(Clone, Debug)]
pub struct PushManifest {
    pub bytes: bytes::Bytes,
    pub media_type: String,
    pub digest: Digest,
    /// Config and layers (empty for an index).
    pub blobs: Vec<Descriptor>,
    /// The platform an index names it with.
    pub platform: Option<Platform>,
}

/// One image to push: its image manifests and, for several platforms, the
/// index naming them.
#[derive(Clone, Debug)]
pub struct PushImage {
    /// Where it goes: a tag, or a digest only (then pushed by digest).
    pub dest: Reference,
    pub manifests: Vec<PushManifest>,
    pub index: Option<PushManifest>,
    /// Repositories of the destination registry that hold its blobs (a
    /// copy within one registry), tried for mounts first.
    pub mount_from: Vec<String>,
}

/// Where the blobs to push are read from.
#[async_trait]
pub trait Blobs: Send + Sync {
    async fn source(&self, digest: &Digest) -> Result<BlobSource, ExportError>;
}

/// The blobs of a cache.
pub struct CacheBlobs<'a>(pub &'a dyn CacheBackend);

#[async_trait]
impl Blobs for CacheBlobs<'_> {
    async fn source(&self, digest: &Digest) -> Result<BlobSource, ExportError> {
        Ok(self.0.source(digest).await?)
    }
}

/// How to push.
#[derive(Clone, Debug)]
pub struct PushSettings {
    /// Blobs pushed at once.
    pub concurrency: usize,
    /// Blobs up to this size go in one request, bigger ones in PATCHes of it.
    pub chunk: u64,
}

pub use crate::progress::PushReport;

/// Push `image` with `client` (connected to its destination's registry).
pub async fn push(
    client: &RegistryClient,
    image: &PushImage,
    blobs: &dyn Blobs,
    settings: &PushSettings,
    reporter: &dyn Reporter,
) -> Result<PushReport, ExportError> {
    push_rest(client, image, blobs, settings, reporter, &BTreeMap::new()).await
}

/// [`push`], the blobs in `done` already pushed (streamed as they
/// downloaded): the others, then the manifests.
pub async fn push_rest(
    client: &RegistryClient,
    image: &PushImage,
    blobs: &dyn Blobs,
    settings: &PushSettings,
    reporter: &dyn Reporter,
    done: &BTreeMap<Digest, Pushed>,
) -> Result<PushReport, ExportError> {
    let repository = image.dest.repository.as_str();
    let mut wanted: BTreeMap<Digest, u64> = BTreeMap::new();
    for m in &image.manifests {
        for d in &m.blobs {
            wanted.insert(d.digest.clone(), d.size);
        }
    }
    let mut report = PushReport {
        destination: image.dest.to_string(),
        blobs: wanted.len(),
        ..Default::default()
    };
    let known = Locations::load();
    let registry = image.dest.registry.as_str();
    // Made first, run at most `concurrency` at once.
    let pushes: Vec<_> = wanted
        .iter()
        .filter(|(digest, _)| !done.contains_key(*digest))
        .map(|(digest, size)| {
            let mut from = image.mount_from.clone();
            from.extend(known.of(registry, digest));
            let mut seen = std::collections::HashSet::new();
            from.retain(|r| r != repository && seen.insert(r.clone()));
            from.truncate(MOUNTS_TRIED);
            let blob = Blob {
                digest,
                size: *size,
                mount_from: from,
            };
            push_one(client, repository, blob, blobs, settings, reporter)
        })
        .collect();
    let results = futures_util::stream::iter(pushes)
        .buffer_unordered(settings.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let streamed = done
        .iter()
        .filter_map(|(d, p)| Some(Ok((d, *p, *wanted.get(d)?))));
    for r in results.into_iter().chain(streamed) {
        let (digest, pushed, size) = r?;
        known.record(registry, repository, digest);
        match pushed {
            Pushed::Present => report.present += 1,
            Pushed::Mounted => report.mounted += 1,
            Pushed::Uploaded => {
                report.uploaded += 1;
                report.bytes_uploaded += size;
            }
        }
    }
    if let Err(e) = known.save() {
        reporter.info(&format!("the record of pushed blobs was not saved: {e}"));
    }
    report.digest = Some(push_manifests(client, image).await?);
    reporter.pushed(&report);
    Ok(report)
}

/// Repositories a blob is tried to be mounted from, at most.
const MOUNTS_TRIED: usize = 2;

/// One blob to push, and where it may be mounted from.
struct Blob<'a> {
    digest: &'a Digest,
    size: u64,
    mount_from: Vec<String>,
}

/// One blob, from `blobs`, into `repository`.
async fn push_one<'a>(
    client: &RegistryClient,
    repository: &str,
    blob: Blob<'a>,
    blobs: &dyn Blobs,
    settings: &PushSettings,
    reporter: &dyn Reporter,
) -> Result<(&'a Digest, Pushed, u64), ExportError> {
    let (digest, size) = (blob.digest, blob.size);
    // Before the source is looked for: a copy does not download what the
    // destination has.
    if client.blob_present(repository, digest).await? {
        reporter.blob_state(digest, crate::progress::BlobState::AlreadyThere);
        return Ok((digest, Pushed::Present, size));
    }
    let source = blobs.source(digest).await?;
    reporter.blob_upload(digest, size);
    let up = Upload {
        repository,
        digest,
        size,
        source: &source,
        mount_from: &blob.mount_from,
        chunk: settings.chunk,
        reporter,
    };
    let pushed = client.push_blob(&up).await?;
    use crate::progress::BlobState;
    match pushed {
        Pushed::Present => reporter.blob_state(digest, BlobState::AlreadyThere),
        Pushed::Mounted => reporter.blob_state(digest, BlobState::Mounted),
        Pushed::Uploaded => {}
    }
    reporter.blob_done(digest);
    Ok((digest, pushed, size))
}

/// The manifests of `image`: children by digest, then the tag (or digest)
/// on the index, or on the one manifest. Returns the digest tagged.
async fn push_manifests(client: &RegistryClient, image: &PushImage) -> Result<Digest, ExportError> {
    let dest = &image.dest;
    let top_ref = |d: &Digest| dest.tag.clone().unwrap_or_else(|| d.to_string());
    let top = match (&image.index, image.manifests.as_slice()) {
        (Some(index), _) => index.clone(),
        (None, [one]) => one.clone(),
        (None, many) => index_of(many)?,
    };
    if image.index.is_some() || image.manifests.len() > 1 {
        for m in &image.manifests {
            let r = m.digest.to_string();
            client
                .put_manifest(&dest.repository, &r, &m.media_type, &m.bytes, &m.digest)
                .await?;
        }
    }
    client
        .put_manifest(
            &dest.repository,
            &top_ref(&top.digest),
            &top.media_type,
            &top.bytes,
            &top.digest,
        )
        .await?;
    Ok(top.digest)
}

/// A new index naming `manifests` with their platforms (an OCI index, or a
/// Docker list when they are Docker manifests).
pub fn index_of(manifests: &[PushManifest]) -> Result<PushManifest, ExportError> {
    let docker = manifests
        .iter()
        .all(|m| m.media_type == media::DOCKER_MANIFEST);
    let media_type = if docker {
        media::DOCKER_LIST
    } else {
        media::OCI_INDEX
    };
    let entries: Vec<serde_json::Value> = manifests
        .iter()
        .map(|m| {
            let mut e = serde_json::json!({
                "mediaType": m.media_type,
                "digest": m.digest.to_string(),
                "size": m.bytes.len(),
            });
            if let Some(p) = &m.platform {
                e["platform"] = serde_json::to_value(p).unwrap_or_default();
            }
            e
        })
        .collect();
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": entries,
    });
    let bytes = bytes::Bytes::from(
        serde_json::to_vec_pretty(&doc).map_err(|e| ExportError::Invalid(e.to_string()))?,
    );
    Ok(PushManifest {
        digest: Digest::of(&bytes),
        bytes,
        media_type: media_type.to_string(),
        blobs: Vec::new(),
        platform: None,
    })
}
